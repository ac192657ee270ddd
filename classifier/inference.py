"""Run a loaded model on batches of prepared pixels: device, precision, softmax and top-k.

>>> predictor = Predictor(model, card, device="auto", precision="auto")
>>> probabilities = predictor.predict(pixels)        # (N, crop, crop, 3) uint8
>>> top_k(probabilities[0], card.labels, k=5)
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from .artifact import ModelCard
from .schemas import Prediction

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but CUDA is not available")
    return device


def cpu_supports_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 matrix maths at full speed on this CPU."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(name: str, device: torch.device) -> str:
    """`auto` is bf16 where the hardware does it natively (GPUs, CPUs with AVX-512 BF16/AMX)."""
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_supports_bf16() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise ValueError("fp16 is for GPUs; use bf16 or fp32 on the CPU")
    return name


class Predictor:
    """A model placed on its device at its precision, answering softmax probabilities."""

    def __init__(
        self,
        model: nn.Module,
        card: ModelCard,
        *,
        device: str = "auto",
        precision: str = "auto",
        threads: int = 0,
        channels_last: bool = True,  # NHWC: what oneDNN and tensor cores run fastest
    ) -> None:
        self.card = card
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.dtype = PRECISIONS[self.precision]
        if self.device.type == "cpu":
            torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
        self.model = model.eval().to(
            self.device, dtype=self.dtype, memory_format=self.memory_format
        )

    @torch.inference_mode()
    def predict(self, pixels: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 pixels to (N, classes) float32 probabilities on the CPU."""
        batch = torch.from_numpy(pixels)
        if self.device.type == "cuda":
            # uint8 crosses the bus (4x less than float), pinned for an async copy
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        inputs = self.card.preprocessing.normalize(batch)
        inputs = inputs.to(dtype=self.dtype, memory_format=self.memory_format)
        logits = self.model(inputs)
        return logits.float().softmax(dim=1).cpu()

    def warm_up(self, batch_sizes: tuple[int, ...] = (1,)) -> None:
        """Run each batch size once, so that real requests do not pay for kernel selection."""
        size = self.card.preprocessing.crop_size
        for batch_size in batch_sizes:
            self.predict(np.zeros((batch_size, size, size, 3), dtype=np.uint8))


def top_k(probabilities: torch.Tensor, labels: list[str], k: int) -> list[Prediction]:
    """The `k` most probable classes of one image, highest first."""
    scores, indices = torch.topk(probabilities, min(k, len(labels)))
    return [
        Prediction(label=labels[index], index=index, score=score)
        for score, index in zip(scores.tolist(), indices.tolist())
    ]
