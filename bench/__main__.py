"""Run every benchmark on this machine and rewrite BENCHMARKS.md: `python -m bench --help`.

(a) the raw model in process at the service's precision, eager and compiled, (b) the service's
pipeline without HTTP, (c) the service over HTTP (compiled, as by default, and eager), LitServe
(eager and compiled) and a tutorial-style FastAPI server, all on the same generated JPEG
photographs, one after the other so that they never share the CPU; start to ready with an
empty and a warm compile cache.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import (
    BASELINE,
    BENTOML_BATCHER,
    LITSERVE,
    LITSERVE_COMPILED,
    SERVICE,
    SERVICE_2W,
    SERVICE_EAGER,
    emulation,
)

ROOT = Path(__file__).resolve().parents[1]
# the throughput-bound configuration on small CPUs (see the sweep): a process per core
TWO_WORKERS = {
    "CLASSIFIER_WORKERS": "2",
    "CLASSIFIER_THREADS": "1",
    "CLASSIFIER_PREPARE_THREADS": "1",
}
CONTENDERS = [
    SERVICE,
    SERVICE_EAGER,
    SERVICE_2W,
    BENTOML_BATCHER,
    LITSERVE,
    LITSERVE_COMPILED,
    BASELINE,
]
EAGER = {"CLASSIFIER_COMPILE": "off"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=15, help="measured time per level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 32, 64])
    parser.add_argument("--images", type=int, default=24, help="distinct photos sent")
    parser.add_argument(
        "--pipeline-clients", type=int, nargs="+", default=[16, 64], help="bench.pipeline callers"
    )
    parser.add_argument("--slow-senders", type=int, default=100, help="uploads at a byte a second")
    parser.add_argument("--burst", type=int, default=160, help="clients arriving at once")
    parser.add_argument(
        "--contenders",
        nargs="+",
        choices=CONTENDERS,
        default=CONTENDERS,
        help="which servers to measure (default: all)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "BENCHMARKS.md",
        help="the report; its figures go to bench/ beside it",
    )
    emulation.add_option(parser)
    args = parser.parse_args(argv)
    emulation.restart_if_asked(args, "bench", argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    os.environ["BENTOML_HOME"] = str(workdir / "bentoml")  # before anything imports bentoml
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    try:
        results = run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    from bench.report import data_file, rerender

    data_file(args.output, "results.json").write_text(json.dumps(results, indent=1))
    rerender(args.output)
    print(f"wrote {args.output} and its figures in {data_file(args.output, '')}")
    return 0


def run(args: argparse.Namespace, workdir: Path) -> dict:
    from bench.inputs import SIZES, photo, photos
    from bench.load import ProcessSampler
    from bench.raw import measure_compiled, measure_preprocessing, measure_raw
    from classifier.artifact import load_model
    from classifier.compilation import compiled_batch_sizes
    from classifier.inference import Predictor
    from classifier.settings import get_settings
    from classifier.testing.server import Server

    settings = get_settings()
    stored = save_benchmark_model()
    card = stored_card(stored)

    def served_network():  # as the service loads it
        return load_model(stored.path, stored.info.metadata)[0]

    model = served_network()
    baseline_dir = workdir / "baseline-model"
    baseline_dir.mkdir()
    shutil.copy(stored.path_of("weights.pt"), baseline_dir / "weights.pt")
    (baseline_dir / "card.json").write_text(json.dumps(stored.info.metadata))
    bodies = photos(args.images)
    results: dict = {"machine": machine(), "settings": settings.model_dump(), "contenders": {}}

    print("== raw model, in process", flush=True)
    # up to the service's largest batch: 16 on CPUs, more where a GPU is set up for it
    batch_sizes = compiled_batch_sizes(settings.max_batch_size)
    predictor = Predictor(model, card, precision=settings.precision)
    results["raw"] = {
        "precision": predictor.precision,
        **measure_raw(predictor, batch_sizes=batch_sizes, seconds=min(6.0, args.seconds)),
    }
    print("== raw model, compiled, in process", flush=True)
    results["raw_compiled"] = measure_compiled(
        stored, card, settings, workdir / "raw-compile-cache", min(6.0, args.seconds)
    )
    print(json.dumps(results["raw_compiled"], indent=1), flush=True)
    best = results["raw"]["best_batch_size"]
    contiguous = Predictor(model, card, precision=settings.precision, channels_last=False)
    results["raw_contiguous"] = measure_raw(
        contiguous, batch_sizes=(1, best), seconds=min(4.0, args.seconds)
    )
    fp32 = Predictor(served_network(), card, precision="fp32")
    results["raw_fp32"] = measure_raw(fp32, batch_sizes=(1,), seconds=min(4.0, args.seconds))
    results["preprocessing"] = measure_preprocessing(
        bodies, card.preprocessing, settings.fast_jpeg_decode
    )
    del predictor, contiguous, fp32, model
    gc.collect()
    print(json.dumps(results["raw"], indent=1), flush=True)

    print("== the service's decoding and batching in process, without HTTP", flush=True)
    results["pipeline"] = [  # with the raw model's compile cache: the service's stays empty
        measure_pipeline(str(stored.tag), clients, args.seconds, workdir / "raw-compile-cache")
        for clients in args.pipeline_clients
    ]
    print(json.dumps(results["pipeline"]), flush=True)

    bentoml = str(Path(sys.executable).with_name("bentoml"))
    serve = [bentoml, "serve", "service:ImageClassifier"]
    # every server compiles into (and reads from) one cache, empty when the first one starts
    cache = {"CLASSIFIER_COMPILE_CACHE_DIR": str(workdir / "compile-cache")}
    tag = {"CLASSIFIER_MODEL_TAG": str(stored.tag), **cache}
    model_dir = {"BASELINE_MODEL_DIR": str(baseline_dir), **cache}
    litserve = [sys.executable, "-m", "bench.litserve_server"]
    contenders = {  # command, environment, readiness path
        SERVICE: (serve, tag, "/readyz"),
        SERVICE_EAGER: (serve, {**tag, **EAGER}, "/readyz"),
        SERVICE_2W: (serve, {**tag, **TWO_WORKERS}, "/readyz"),
        BENTOML_BATCHER: (serve, {**tag, "CLASSIFIER_BATCHING": "bentoml"}, "/readyz"),
        LITSERVE: (litserve, {**model_dir, **EAGER}, "/health"),
        LITSERVE_COMPILED: (litserve, model_dir, "/health"),
        BASELINE: ([sys.executable, "-m", "uvicorn", "bench.baseline:app"], model_dir, "/readyz"),
    }
    for name in args.contenders:
        command, env, ready = contenders[name]
        print(f"== {name}", flush=True)
        server = Server(command, env, workdir / f"{name}.log", cwd=ROOT)
        try:
            cold_start = server.wait_ready(path=ready)
            # the service answers eagerly while it compiles: measured once the compiled model is in
            compiled_start = server.wait_compiled() if command is serve else None
            time.sleep(2)
            idle = ProcessSampler(server.process.pid).rss_mb()
            compiled = compile_info(server) if command is serve else None
            levels = []
            for concurrency in args.concurrency:
                levels.append(measure_level(server, bodies, concurrency, args.seconds))
                print(json.dumps(levels[-1]), flush=True)
            if name == SERVICE:  # what cheap decoding would give: the smallest photos only
                small = [photo(1000 + i, SIZES[0]) for i in range(8)]
                results["small_photos"] = {
                    "size": list(SIZES[0]),
                    **measure_level(server, small, max(args.concurrency), args.seconds),
                }
                print(json.dumps(results["small_photos"]), flush=True)
                results.update(measure_slow_clients(server, bodies, args, settings))
            after = compile_info(server) if compiled else None
        finally:
            server.stop()
        results["contenders"][name] = {
            "cold_start_s": cold_start,
            "compiled_s": compiled_start,
            "idle_rss_mb": idle,
            "compile": compiled,
            "recompilations": after and after["recompilations"],
            "levels": levels,
        }
        # the same again, now that the compile cache is warm (nothing was cached where the
        # service served the eager model: CLASSIFIER_COMPILE=off, or compiling failed)
        if name == SERVICE and compiled and compiled["compiled"]:
            server = Server(command, env, workdir / f"{name}-warm.log", cwd=ROOT)
            try:
                results["contenders"][name]["warm_start_s"] = server.wait_ready(path=ready)
                results["contenders"][name]["warm_compiled_s"] = server.wait_compiled()
                results["contenders"][name]["warm_compile"] = compile_info(server)
            finally:
                server.stop()
            print(json.dumps(results["contenders"][name]["warm_compile"]), flush=True)
    return results


def measure_slow_clients(server, bodies: list[bytes], args, settings) -> dict:
    """Uploads trickling in at a byte a second while 16 clients send these photos, until the
    service's body timeout; then a burst of clients at once: what the slow senders, the others
    and the refused got."""
    from classifier.testing.overload import measure_burst, photo_requests
    from classifier.testing.slow_senders import measure_slow_senders

    requests = photo_requests(server.url, bodies)
    seconds = max(1.0, settings.body_timeout_s - 2)  # while every slow sender is connected
    slow = measure_slow_senders(
        server.url, requests, senders=args.slow_senders, clients=16, seconds=seconds
    )
    print(json.dumps(slow), flush=True)
    burst = measure_burst(server.url, requests, clients=args.burst, seconds=args.seconds + 5)
    print(json.dumps(burst), flush=True)
    return {"slow_senders": slow, "burst": burst}


def compile_info(server) -> dict:
    """The service's /info about its compiled model."""
    import httpx

    return httpx.get(f"{server.url}/info", timeout=30).json()["compile"]


def measure_level(server, bodies: list[bytes], concurrency: int, seconds: float) -> dict:
    """One closed-loop load level against `server`'s /predict."""
    from bench.load import batch_counters, mean_batch, run_load

    before = batch_counters(server.url)
    result = run_load(
        f"{server.url}/predict",
        bodies,
        form_field="image",
        concurrency=concurrency,
        seconds=seconds,
        pid=server.process.pid,
    )
    return {
        "concurrency": concurrency,
        "throughput": result.throughput,
        "p50_ms": result.percentile(50),
        "p95_ms": result.percentile(95),
        "p99_ms": result.percentile(99),
        "mean_ms": result.mean_ms,
        "ok": result.ok,
        "errors": result.errors,
        "cpu_percent": result.cpu_percent,
        "client_cpu_percent": result.client_cpu_percent,
        "peak_rss_mb": result.peak_rss_mb,
        "phases_ms": result.mean_phases_ms(),
        "mean_batch": mean_batch(before, batch_counters(server.url)),
    }


def measure_pipeline(tag: str, clients: int, seconds: float, compile_cache: Path) -> dict:
    """`python -m bench.pipeline` in a process of its own (its own OpenMP setting)."""
    import subprocess

    from classifier.settings import OPENMP_ENVIRONMENT

    command = [sys.executable, "-m", "bench.pipeline", "--tag", tag, "--clients", str(clients)]
    done = subprocess.run(
        [*command, "--seconds", str(seconds)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        # the OpenMP setting the service's workers get
        env={
            **OPENMP_ENVIRONMENT,
            **os.environ,
            "CLASSIFIER_COMPILE_CACHE_DIR": str(compile_cache),
        },
    )
    if done.returncode:
        raise RuntimeError(f"bench.pipeline failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def benchmark_network(num_classes: int):
    """The benchmarks' random ResNet50: every residual block at work, as ImageNet's are.

    With BENCH_BLOCKS_PER_STAGE=1, only the first block of each stage works and the others are
    identities, skipped when served: a third of the work, for the suite's test of the commands,
    which tests that they run and what they write, not the figures.
    """
    from classifier.testing.models import random_network

    blocks = os.environ.get("BENCH_BLOCKS_PER_STAGE")
    return random_network(num_classes, blocks_per_stage=int(blocks) if blocks else None)


def save_benchmark_model():
    """A random-weight ResNet50 with ImageNet's labels and preprocessing, in the model store:
    exactly as fast as the trained one, and needs no download."""
    from torchvision.models import ResNet50_Weights

    from classifier.artifact import ModelCard, save_model
    from classifier.preprocess import Preprocessing

    weights = ResNet50_Weights.IMAGENET1K_V2
    card = ModelCard(
        weights_source="file",
        labels=list(weights.meta["categories"]),
        preprocessing=Preprocessing.from_weights(weights),
        training={"note": "random weights: same speed as the real ones, for benchmarks"},
    )
    return save_model(benchmark_network(1000), card)


def stored_card(stored):
    from classifier.artifact import ModelCard

    return ModelCard.model_validate(stored.info.metadata)


def machine() -> dict:
    """Where the figures come from: the CPU with its features and what torch used of them."""
    import platform

    import bentoml
    import torch

    from classifier.cpu import describe_cpu

    cpu = describe_cpu()
    return {
        "cpu": cpu.model,
        "cores": cpu.cores,
        "cpu_info": cpu.model_dump(),
        "kind": cpu.kind,
        "summary": cpu.summary(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "bentoml": bentoml.__version__,
    }


if __name__ == "__main__":
    sys.exit(main())
