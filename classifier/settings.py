"""Runtime settings and limits, read once from `CLASSIFIER_*` environment variables."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024 * 1024
CompileMode = Literal["auto", "inductor", "off"]

# GNU OpenMP's threads spin for 300,000 iterations after each parallel region before they sleep.
# In the service the decode threads and the event loop need those cores meanwhile: at 64 clients
# the spinning cost 7 core-ms of every image (`python -m bench.profile`). 10,000 spins keep a lone
# model's speed (19 ms for one image either way) and serve 11% more images under load. Read when
# torch starts, so it is set in the environment of the processes that run the model.
OPENMP_ENVIRONMENT = {"GOMP_SPINCOUNT": "10000"}


class Settings(BaseSettings):
    """Every tunable of the service in one place; see the README's Configuration section."""

    # hide_input_in_errors: a refused setting's value (it may be the API key) is never echoed
    model_config = SettingsConfigDict(
        env_prefix="CLASSIFIER_", frozen=True, hide_input_in_errors=True
    )

    model_tag: str = Field("resnet50:latest", description="Model store tag served.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on GPUs and on CPUs with native bf16, else fp32."
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    workers: int = Field(
        1, ge=1, description="Server processes, each with its own copy of the model."
    )
    gpus: int = Field(
        0,
        ge=0,
        description="GPUs the service asks BentoML for (resources.gpu): its workers get those "
        "devices, and the Bento records them for schedulers. The GPU image sets 1.",
    )
    threads: int = Field(0, ge=0, description="torch intra-op threads; 0 = one per core.")
    prepare_threads: int = Field(
        0, ge=0, description="Threads that decode and resize uploads; 0 = one per core."
    )

    compile: CompileMode = Field(
        "auto",
        description="auto: compile the model with PyTorch's inductor where a compiler for the "
        "device is present (a C++ compiler on CPUs, triton on GPUs), else serve it eagerly; "
        "inductor: always try; off: eager. A failed compilation serves the eager model.",
    )
    compile_cache_dir: Path | None = Field(
        None,
        description="Where compiled code is kept across restarts (a volume makes restarts fast); "
        "by default compile-cache in BENTOML_HOME.",
    )

    fast_jpeg_decode: bool = Field(
        True, description="Decode large JPEGs at reduced scale (no smaller than the resize)."
    )

    batching: Literal["continuous", "bentoml"] = Field(
        "continuous",
        description="continuous: the APIs batch in process (the model takes whatever is queued "
        "whenever it is free); bentoml: they send prepared pixels to the ImageModel service "
        "(bentoml.depends), whose batchable API BentoML's adaptive batcher feeds. "
        "`python -m bench` measures both.",
    )
    max_batch_size: int = Field(16, ge=2, description="Largest batch the model runs.")
    max_queue: int = Field(
        256,
        ge=1,
        description="Images waiting for the model (continuous batching); more get 503 at once, "
        "with Retry-After.",
    )
    max_latency_ms: int = Field(
        20000,
        ge=10,
        description="BentoML's batcher (`classify`, and the APIs with batching=bentoml): a "
        "request that would wait longer for the model gets 503.",
    )

    max_request_bytes: int = Field(32 * MiB, ge=1024, description="Larger bodies get 413.")
    max_image_pixels: int = Field(
        40_000_000, ge=1, description="Images with more pixels get 413 (decompression bombs)."
    )
    max_batch_images: int = Field(32, ge=1, description="Most images in one /predict_batch.")
    default_top_k: int = Field(5, ge=1, description="top_k when a request gives none.")
    max_top_k: int = Field(
        100, ge=1, description="Most classes one answer may list (and never more than the labels)."
    )
    max_concurrency: int = Field(
        64,
        ge=1,
        description="Requests to the APIs handled at once by each worker; more get 503 at once, "
        "with Retry-After, before any work is done on them.",
    )
    max_receiving: int = Field(
        256,
        ge=1,
        description="Request bodies each worker receives at once; more get 503 at once, with "
        "Retry-After. A request counts against max_concurrency only once its body has arrived.",
    )
    body_timeout_s: float = Field(
        10,
        gt=0,
        description="A request body must arrive within this time, plus 1 s for every "
        "body_min_rate bytes received, else 408 (slow uploads cannot hold the service).",
    )
    body_min_rate: int = Field(
        1000, ge=1, description="Bytes per second a body must keep arriving at: body_timeout_s."
    )
    max_explanations: int = Field(
        2,
        ge=1,
        description="Explanations (/explain) each worker handles at once, running or waiting "
        "for the model; more get 503 at once, with Retry-After.",
    )
    explain_wait_s: float = Field(
        10,
        gt=0,
        description="Predictions come first: an explanation runs once the model has been idle "
        "for 50 ms, or, if that has not happened within this time, before the next batch, so "
        "that a busy model gives explanations at most one turn in this time per waiting "
        "explanation (continuous batching; with bentoml batching they take turns as they come).",
    )
    request_timeout_s: float = Field(
        60, gt=0, description="A request not answered in this time gets 504 (BentoML's timeout)."
    )

    api_key: SecretStr | None = Field(
        None, description="If set, every API needs `Authorization: Bearer <key>`."
    )
    api_key_file: Path | None = Field(
        None, description="A file holding the API key (a mounted secret), instead of api_key."
    )
    metrics_require_key: bool = Field(
        False, description="With an API key, /metrics needs it too (else it stays open)."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins browsers may call the APIs from (comma-separated, or *); none by "
        "default.",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value):
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _check_access_settings(self) -> Settings:
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError("set CLASSIFIER_API_KEY or CLASSIFIER_API_KEY_FILE, not both")
        if self.api_key is not None and not self.api_key.get_secret_value().strip():
            raise ValueError("CLASSIFIER_API_KEY is empty")
        if self.metrics_require_key and self.api_key is None and self.api_key_file is None:
            raise ValueError(
                "CLASSIFIER_METRICS_REQUIRE_KEY needs CLASSIFIER_API_KEY or CLASSIFIER_API_KEY_FILE"
            )
        return self

    def predictor_options(self) -> dict:
        """`Predictor`'s keyword arguments: how and where the model runs."""
        cache_dir = self.compile_cache_dir
        if cache_dir is None:  # beside the model store
            cache_dir = Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml")
            cache_dir /= "compile-cache"
        return {
            "device": self.device,
            "precision": self.precision,
            "threads": self.threads,
            "compile": self.compile,
            "max_batch_size": self.max_batch_size,
            "compile_cache_dir": cache_dir,
        }

    def required_api_key(self) -> str | None:
        """The API key clients must send, read from the file if one is named; None: no auth."""
        if self.api_key_file is not None:
            try:
                key = self.api_key_file.read_text().strip()
            except OSError as error:
                raise ValueError(f"cannot read CLASSIFIER_API_KEY_FILE: {error}") from None
            if not key:
                raise ValueError(f"CLASSIFIER_API_KEY_FILE {self.api_key_file} is empty")
            return key
        return None if self.api_key is None else self.api_key.get_secret_value().strip()


def settings_and_key_or_exit() -> tuple[Settings, str | None]:
    """The settings and the API key (None: no key), or a clear refusal to start (not a
    traceback) when they are invalid or the key file cannot be read."""
    try:
        settings = get_settings()
        return settings, settings.required_api_key()
    except ValueError as error:  # pydantic's ValidationError is one
        raise SystemExit(f"ImageClassifier refuses to start: {error}") from None


@functools.cache
def get_settings() -> Settings:
    return Settings()
