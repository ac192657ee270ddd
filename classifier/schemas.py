"""The HTTP API's request and response shapes: the contract clients and docs rely on."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from .cpu import CpuInfo
from .preprocess import Preprocessing


class Prediction(BaseModel):
    label: str = Field(examples=["circle"])
    index: int = Field(ge=0, description="Class index in the model's output.", examples=[0])
    score: float = Field(ge=0, le=1, description="Softmax probability.", examples=[0.97])


PREDICTIONS_EXAMPLE = [
    {"label": "circle", "index": 0, "score": 0.97},
    {"label": "star", "index": 3, "score": 0.02},
]


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"model": "resnet50:abc", "predictions": PREDICTIONS_EXAMPLE}}
    )

    model: str = Field(description="Tag of the model that answered.", examples=["resnet50:abc"])
    predictions: list[Prediction] = Field(description="Highest score first.")


class Classified(BaseModel):
    """An image of a batch, classified."""

    predictions: list[Prediction] = Field(description="Highest score first.")


class Unclassified(BaseModel):
    """An image of a batch that could not be classified, and why."""

    error: str = Field(examples=["the image is empty (0 bytes)"])
    status: int = Field(
        examples=[400], description="The HTTP status this image alone would have been answered."
    )


class BatchItem(RootModel[Classified | Unclassified]):
    """One image's answer in a batch: exactly one of `predictions` and `error`."""


class BatchResponse(BaseModel):
    # "example", not "examples": BentoML's OpenAPI 3.0 schema objects reject the latter here
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "model": "resnet50:abc",
                "results": [
                    {"predictions": PREDICTIONS_EXAMPLE},
                    {"error": "the image is empty (0 bytes)", "status": 400},
                ],
            }
        }
    )

    model: str
    results: list[BatchItem] = Field(description="One entry per image, in input order.")


ExplanationMethod = Literal["grad-cam", "integrated-gradients"]


class Explanation(BaseModel):
    """Where the model looked for one label."""

    method: ExplanationMethod = Field(
        description="grad-cam (Captum's LayerGradCam on the last convolutional stage) where that "
        "stage is at least 7x7, else integrated-gradients (pixel-level, from a blurred copy)."
    )
    layer: str | None = Field(description="The layer Grad-CAM read; null for pixel-level methods.")
    description: str = Field(examples=["Grad-CAM on layer4 (7x7)"])
    heatmap_png: str = Field(
        description="Base64 PNG: the attributions in colour over the image as the model saw it "
        "(resized and centre-cropped), brighter and more opaque where they are higher."
    )
    attributions: list[list[float]] = Field(
        description="The raw grid, row by row from the top of the cropped image: non-negative, "
        "highest 1 (all 0 if nothing counted). Grad-CAM's is the stage's size (7x7 at 224 "
        "pixels); integrated gradients' is one value per pixel."
    )


class ExplainResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "model": "resnet50:abc",
                "predictions": PREDICTIONS_EXAMPLE,
                "explained": PREDICTIONS_EXAMPLE[0],
                "explanation": {
                    "method": "grad-cam",
                    "layer": "layer4",
                    "description": "Grad-CAM on layer4 (7x7)",
                    "heatmap_png": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8A"
                    "AAAMBAQDJ/pLvAAAAAElFTkSuQmCC",
                    "attributions": [[0.0, 0.25], [0.5, 1.0]],
                },
            }
        }
    )

    model: str = Field(description="Tag of the model that answered.", examples=["resnet50:abc"])
    predictions: list[Prediction] = Field(description="Highest score first, as /predict answers.")
    explained: Prediction = Field(description="The label explained: `label`, else the top one.")
    explanation: Explanation


class ErrorResponse(BaseModel):
    error: str = Field(description="What was wrong with the request, in plain words.")


class PreparedImage(BaseModel):
    """A validated, resized and cropped image on its way into an adaptive batch."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    pixels: bytes = Field(description="crop x crop x 3 uint8 RGB pixels, row-major.")
    top_k: int = Field(ge=1)


class CompileInfo(BaseModel):
    """Whether the model runs compiled, for which batch sizes, and whether anything recompiled."""

    mode: str = Field(description="CLASSIFIER_COMPILE: auto, inductor or off.")
    compiled: bool = Field(description="True when the compiled model answers, else the eager one.")
    compiling: bool = Field(
        False,
        description="True while the graphs are made in the background; the eager model answers "
        "meanwhile, and the compiled one from the batch after they are ready.",
    )
    reason: str | None = Field(None, description="Why the eager model answers, if it does.")
    batch_sizes: list[int] = Field(
        default_factory=list, description="Compiled batch sizes; each batch is padded to one."
    )
    seconds: float | None = Field(None, description="Time compilation took.")
    cache_dir: str | None = Field(None, description="Where compiled code is kept across starts.")
    graphs_from_cache: int = Field(
        0, description="Compiled graphs loaded from cache_dir at start instead of generated."
    )
    graphs: int = Field(0, description="Graphs torch has compiled in this worker.")
    recompilations: int = Field(
        0, description="Graphs compiled since the worker became ready: 0 unless something is wrong."
    )


class ModelInfo(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "model": "resnet50:abc",
                "architecture": "resnet50",
                "residual_blocks": 16,
                "weights_source": "imagenet",
                "is_demo": False,
                "labels": ["tench", "goldfish", "..."],
                "num_classes": 1000,
                "preprocessing": {
                    "resize_size": 232,
                    "crop_size": 224,
                    "mean": [0.485, 0.456, 0.406],
                    "std": [0.229, 0.224, 0.225],
                    "interpolation": "bilinear",
                },
                "weights_sha256": "a" * 64,
                "validation_accuracy": 0.80858,
                "precision": "bf16",
                "device": "cpu",
                "batching": "continuous",
                "max_batch_size": 16,
                "max_latency_ms": 20000,
                "compile": {
                    "mode": "auto",
                    "compiled": True,
                    "compiling": False,
                    "reason": None,
                    "batch_sizes": [1, 2, 4, 8, 16],
                    "seconds": 14.9,
                    "cache_dir": "/home/bentoml/bentoml/compile-cache",
                    "graphs_from_cache": 5,
                    "graphs": 5,
                    "recompilations": 0,
                },
                "limits": {"max_request_bytes": 33554432},
                "cpu": {
                    "model": "AMD EPYC 9R14",
                    "cores": 2,
                    "features": {
                        "avx2": True,
                        "avx512": True,
                        "avx512_bf16": True,
                        "vnni": True,
                        "amx": False,
                    },
                    "torch_isa": "AVX512",
                    "bf16": True,
                    "kind": "avx512-bf16",
                    "switches": {},
                },
            }
        }
    )

    model: str
    architecture: str
    residual_blocks: int = Field(
        description="Residual blocks the model computes: all 16 of a ResNet50, fewer where "
        "its weights make some exact identities, which are skipped (the demo computes 4)."
    )
    weights_source: str = Field(description="imagenet, file, finetune or demo.")
    is_demo: bool = Field(description="True when the demo shapes model is being served.")
    labels: list[str]
    num_classes: int
    preprocessing: Preprocessing
    weights_sha256: str
    validation_accuracy: float | None
    precision: str
    device: str
    batching: str = Field(
        description="continuous (in process) or bentoml (BentoML's batcher in a model service)."
    )
    max_batch_size: int
    max_latency_ms: int
    compile: CompileInfo
    limits: dict[str, int]
    cpu: CpuInfo = Field(
        description="The CPU the service runs on: the features it found (AVX2, AVX-512, "
        "AVX-512 BF16, VNNI, AMX) and what torch uses of them, which sets the precision and "
        "the speed."
    )
