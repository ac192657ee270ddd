"""The model's own limit: in-process inference on prepared pixels, no HTTP, no decoding."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from classifier.inference import Predictor


def measure_raw(predictor: Predictor, batch_sizes=(1, 4, 8, 16), seconds: float = 6.0) -> dict:
    """Images per second at each batch size, and the latency of one image alone (p50, ms)."""
    size = predictor.card.preprocessing.crop_size
    rng = np.random.default_rng(0)
    throughput = {}
    for batch_size in batch_sizes:
        pixels = rng.integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8)
        predictor.predict(pixels)  # warm-up for this shape
        images, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            predictor.predict(pixels)
            images += batch_size
        throughput[batch_size] = images / (time.perf_counter() - start)
    single = rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    latencies = []
    for _ in range(30):
        start = time.perf_counter()
        predictor.predict(single)
        latencies.append((time.perf_counter() - start) * 1000)
    best = max(throughput, key=throughput.get)
    return {
        "throughput": throughput,
        "best_batch_size": best,
        "best_throughput": throughput[best],
        "single_latency_ms": float(np.median(latencies)),
    }


def measure_compiled(stored, card, settings, cache_dir: Path, seconds: float) -> dict:
    """`measure_raw` of the model compiled as the service compiles it, and what compiling cost."""
    from classifier.artifact import load_model

    model, _ = load_model(stored.path, stored.info.metadata)
    options = {**settings.predictor_options(), "compile_cache_dir": cache_dir}
    if options["compile"] == "off":  # measured all the same: this is the compiled model's limit
        options["compile"] = "inductor"
    predictor = Predictor(model, card, **options)
    predictor.warm_up()
    compiled = predictor.describe_compilation()
    if not compiled.compiled:
        return {"compile": compiled.model_dump()}
    return {
        "precision": predictor.precision,
        "compile": compiled.model_dump(),
        **measure_raw(predictor, batch_sizes=predictor.batch_sizes, seconds=seconds),
    }


def measure_preprocessing(bodies: list[bytes], spec, fast_jpeg: bool) -> dict:
    """Milliseconds of one core to decode, validate, resize and crop each input photo."""
    costs = []
    for _ in range(2):
        for body in bodies:
            start = time.perf_counter()
            spec.prepare_bytes(body, max_pixels=10**9, fast_jpeg=fast_jpeg)
            costs.append((time.perf_counter() - start) * 1000)
    return {"mean_ms": float(np.mean(costs)), "max_ms": float(np.max(costs))}
