"""Runtime settings and limits, read once from `CLASSIFIER_*` environment variables."""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Every tunable of the service in one place; see the README's Configuration section."""

    model_config = SettingsConfigDict(env_prefix="CLASSIFIER_", frozen=True)

    model_tag: str = Field("resnet50:latest", description="Model store tag served.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on GPUs and on CPUs with native bf16, else fp32."
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    workers: int = Field(
        1, ge=1, description="Server processes, each with its own copy of the model."
    )
    threads: int = Field(0, ge=0, description="torch intra-op threads; 0 = one per core.")
    prepare_threads: int = Field(
        0, ge=0, description="Threads that decode and resize uploads; 0 = one per core."
    )

    fast_jpeg_decode: bool = Field(
        True, description="Decode large JPEGs at reduced scale (no smaller than the resize)."
    )

    batching: Literal["continuous", "bentoml"] = Field(
        "continuous",
        description="continuous: the APIs batch in process (the model takes whatever is queued "
        "whenever it is free); bentoml: they call the batchable `classify` API through BentoML's "
        "in-process client and its CorkDispatcher. `python -m bench` measures both.",
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
    default_top_k: int = Field(5, ge=1)


@functools.cache
def get_settings() -> Settings:
    return Settings()
