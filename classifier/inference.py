"""Run a loaded model on batches of prepared pixels: device, precision, compilation, top-k.

>>> predictor = Predictor(model, card, device="auto", precision="auto", compile="auto")
>>> predictor.warm_up()                              # compiles, before the first request
>>> predictor.warm_up(compile_in_background=True)    # or answers eagerly while it compiles
>>> probabilities = predictor.predict(pixels)        # (N, crop, crop, 3) uint8
>>> top_k(probabilities[0], card.labels, k=5)
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .artifact import ModelCard
from .compilation import (
    compile_model,
    compiled_batch_sizes,
    compiling,
    graphs_compiled,
    graphs_from_cache,
    missing_toolchain,
    padded_size,
    release_compile_workers,
    use_cache_dir,
)
from .cpu import cpu_supports_bf16
from .schemas import CompileInfo, Prediction
from .settings import CompileMode

logger = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


COMPILE_ATTEMPTS = 2


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but CUDA is not available")
    return device


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
    """A model placed on its device at its precision, answering softmax probabilities.

    With `compile` other than "off", `warm_up` compiles it for a fixed set of batch sizes (see
    `classifier.compilation`) and `predict` pads each batch up to one of them; if compiling is
    impossible or fails, it says why in one log line and the eager model answers instead.
    """

    def __init__(
        self,
        model: nn.Module,
        card: ModelCard,
        *,
        device: str = "auto",
        precision: str = "auto",
        threads: int = 0,
        channels_last: bool = True,  # NHWC: what oneDNN and tensor cores run fastest
        compile: CompileMode = "off",
        max_batch_size: int = 16,
        compile_cache_dir: Path | None = None,
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
        self.max_batch_size = max_batch_size
        # what answers, and for which batch sizes (None: eager, any size), as one reference:
        # a compiling thread replaces it whole, so that a batch never pads for one and runs on
        # the other
        self.serving: tuple[Callable[[torch.Tensor], torch.Tensor], tuple[int, ...] | None] = (
            self.model,
            None,
        )
        self.seconds_per_batch: dict[int, float] = {}
        self.compilation = CompileInfo(
            mode=compile,
            compiled=False,
            reason="CLASSIFIER_COMPILE is off" if compile == "off" else None,
            cache_dir=str(compile_cache_dir) if compile_cache_dir else None,
        )
        self._graphs_when_ready = 0

    @property
    def forward(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.serving[0]

    @property
    def batch_sizes(self) -> tuple[int, ...] | None:
        """The compiled batch sizes; None while the eager model answers (any size)."""
        return self.serving[1]

    @torch.inference_mode()
    def predict(self, pixels: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 pixels to (N, classes) float32 probabilities on the CPU."""
        batch = torch.from_numpy(pixels)
        if self.device.type == "cuda":
            # uint8 crosses the bus (4x less than float), pinned for an async copy
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        return self.probabilities(self.card.preprocessing.normalize(batch))

    @torch.inference_mode()
    def probabilities(self, inputs: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised float inputs to (N, classes) float32 probabilities on the CPU."""
        forward, batch_sizes = self.serving  # once: the compiled model may come in meanwhile
        count = len(inputs)
        if batch_sizes is not None and count not in batch_sizes:
            # zero rows up to a compiled size, dropped from the answer: never a new graph
            size = padded_size(count, batch_sizes)
            inputs = torch.cat([inputs, inputs.new_zeros((size - count, *inputs.shape[1:]))])
        return self._run(forward, inputs)[:count]

    def _run(self, forward: Callable, inputs: torch.Tensor) -> torch.Tensor:
        inputs = inputs.to(self.device, dtype=self.dtype, memory_format=self.memory_format)
        return forward(inputs).float().softmax(dim=1).cpu()

    def warm_up(self, compile_in_background: bool = False) -> None:
        """Run the model at the batch sizes it will see, so that no request pays for kernel
        selection, and compile it if asked; call it before serving, on the model's thread.

        `compile_in_background` (CPUs): return once the eager model is warm, and compile in a
        thread of its own while the eager model answers; once every graph is made, the next
        batch runs compiled, so no request waits for compilation (on a CPU without bf16 the
        five graphs take minutes). That thread runs torch too, while it compiles: GNU OpenMP
        lets neither thread's workers spin meanwhile, and frees the thread's own when it ends.
        On GPUs it compiles first: inductor records its CUDA graphs for the thread that first
        runs them.
        """
        self.seconds_per_batch = self._time_batches(self.model, (1, self.max_batch_size), 1)
        if self.compilation.mode == "off":
            return
        if compile_in_background and self.device.type == "cpu":
            self.compilation = self.compilation.model_copy(update={"compiling": True})
            # torch's compiler settings are context variables: it compiles with the caller's
            caller = contextvars.copy_context()
            threading.Thread(
                target=caller.run, args=(self._compile,), name="compile", daemon=True
            ).start()
        else:
            self._compile()

    @torch.inference_mode()
    def _time_batches(self, forward: Callable, batch_sizes, runs: int) -> dict[int, float]:
        """The best of `runs` timed calls of `forward` at each batch size (the first call of a
        compiled size compiles its graph, untimed)."""
        size = self.card.preprocessing.crop_size
        seconds = {}
        for batch_size in batch_sizes:
            inputs = self.card.preprocessing.normalize(
                np.zeros((batch_size, size, size, 3), dtype=np.uint8)
            )
            if forward is not self.model:
                self._run(forward, inputs)
            timed = []
            for _ in range(runs):
                started = time.perf_counter()
                self._run(forward, inputs)
                timed.append(time.perf_counter() - started)
            seconds[batch_size] = min(timed)
        return seconds

    def _compile(self) -> None:
        """Compile every batch size, then answer with the compiled model from the next batch on;
        on failure, say why and leave the eager model answering."""
        reason = missing_toolchain(self.device)
        if reason is not None and self.compilation.mode == "auto":
            self._serve_eager(f"cannot compile here: {reason}")
            return
        if self.compilation.cache_dir:
            use_cache_dir(Path(self.compilation.cache_dir))
        started, cached = time.perf_counter(), graphs_from_cache()
        batch_sizes = compiled_batch_sizes(self.max_batch_size)
        try:  # without a toolchain it fails each time: once is enough to say why
            forward, seconds = self._compiled_and_timed(
                batch_sizes, attempts=1 if reason else COMPILE_ATTEMPTS
            )
        except Exception as error:  # a missing compiler, an unsupported device, a torch bug
            self._serve_eager(f"compiling failed: {_first_line(error)}")
            return
        finally:
            release_compile_workers()
        compiled = self.compilation.model_copy(
            update={
                "compiled": True,
                "compiling": False,
                "batch_sizes": list(batch_sizes),
                "seconds": round(time.perf_counter() - started, 1),
                "graphs_from_cache": graphs_from_cache() - cached,
            }
        )
        self.seconds_per_batch = seconds  # before the batch sizes they are for
        self._graphs_when_ready = graphs_compiled()
        self.serving = (forward, batch_sizes)
        self.compilation = compiled
        logger.info(
            "serving the compiled model from the next batch on (batch sizes %s, %.0f s to compile)",
            ", ".join(map(str, batch_sizes)),
            compiled.seconds,
        )

    def _compiled_and_timed(
        self, batch_sizes: tuple[int, ...], attempts: int
    ) -> tuple[Callable, dict[int, float]]:
        """The compiled model and its timed batch sizes, tried `attempts` times from a fresh
        compiler state: inductor once failed on the second of two graphs of a model it compiles
        every day (an IndexError, in a CI run on a Zen 3), and compiled it when tried again."""
        for attempt in range(1, attempts + 1):
            forward = compile_model(self.model, self.device)
            try:
                with compiling(len(batch_sizes)):
                    return forward, self._time_batches(forward, batch_sizes, 2)
            except Exception as error:
                torch._dynamo.reset()
                # the whole traceback, for a bug report to torch; /info says its first line
                logger.warning(
                    "compiling the model failed (attempt %d of %d)",
                    attempt,
                    attempts,
                    exc_info=error,
                )
                if attempt == attempts:
                    raise

    def _serve_eager(self, reason: str) -> None:
        logger.warning(
            "serving the eager model (CLASSIFIER_COMPILE=%s): %s", self.compilation.mode, reason
        )
        self._graphs_when_ready = graphs_compiled()
        self.compilation = self.compilation.model_copy(
            update={"reason": reason, "compiling": False}
        )

    def describe_compilation(self) -> CompileInfo:
        """What was compiled, and torch's count of graphs compiled since serving began."""
        graphs = graphs_compiled()
        compilation = self.compilation  # a compiling thread may replace it meanwhile
        recompilations = 0 if compilation.compiling else graphs - self._graphs_when_ready
        return compilation.model_copy(update={"graphs": graphs, "recompilations": recompilations})

    def batch_size_for(self, queued: int) -> int:
        """How many of `queued` waiting images to run next: all of them, up to the largest
        batch, unless padding them up to a compiled size costs more per image than running
        the largest compiled size they fill (on CPUs, where a batch's cost grows with its
        size; on GPUs padding is almost free and fewer, fuller calls win)."""
        return cheapest_batch(
            min(queued, self.max_batch_size), self.batch_sizes, self.seconds_per_batch
        )


def cheapest_batch(
    count: int, batch_sizes: tuple[int, ...] | None, seconds_per_batch: dict[int, float]
) -> int:
    """`count` images, or the largest compiled size they fill if padding them up to the next
    compiled size costs more per image (see `Predictor.batch_size_for`)."""
    if batch_sizes is None or count in batch_sizes:
        return count
    up = padded_size(count, batch_sizes)
    down = max(size for size in batch_sizes if size <= count)
    seconds = seconds_per_batch
    return count if seconds[up] / count <= seconds[down] / down else down


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def top_k(probabilities: torch.Tensor | np.ndarray, labels: list[str], k: int) -> list[Prediction]:
    """The `k` most probable classes of one image, highest first."""
    scores, indices = torch.topk(torch.as_tensor(probabilities), min(k, len(labels)))
    return [
        Prediction(label=labels[index], index=index, score=score)
        for score, index in zip(scores.tolist(), indices.tolist())
    ]
