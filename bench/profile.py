"""Where the service's worker spends CPU per image under load: `python -m bench.profile --help`."""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from bench import emulation

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "bench" / "profiles"  # raw stacks and speedscope files, not in git
CACHE = "/tmp/bench-profile-cache"
PY_SPY = str(Path(sys.executable).with_name("py-spy"))
# A sample goes to the category of its innermost frame that one matches (the first category, for
# that frame): pydantic called by BentoML is validation, a temp file written by a pydantic
# validator is temp files, and a middleware counts its own code, not the app it wraps. The
# patterns match "file:function", files relative to site-packages, the stdlib or the project.
RULES = {
    "service middlewares": r"(service|classifier/http/\w+)\.py:(RequestSizeLimit|ApiKeyAuth"
    r"|ConcurrencyLimit|Admission|RewriteJSON|ReadableErrors|DocumentedErrors|_?send_(json|error))",
    "model": r"(torch|torchvision|functorch)/|/tmp/torchinductor|classifier/(inference|compilation"
    r"|batching|served_model)\.py|service\.py:ImageClassifier\._run_batch",
    "decode + preprocess": r"PIL/|classifier/(preprocess|ingest)\.py|service\.py:.*\._prepare",
    "multipart + temp files": r"(python_)?multipart/|starlette/formparsers|tempfile|shutil"
    r"|_bentoml_sdk/validators|bentoml/_internal/utils/filesystem|.*:(UploadFile|FormData|Path\.read_bytes)",
    "logging": r"logging/|uvicorn/logging|bentoml/_internal/(log|server/http/access)\.py",
    "metrics": r"prometheus_client/|bentoml/(metrics|_internal/server/(metrics/|http/instruments))",
    "tracing": r"opentelemetry/|.*:.*server_request_hook",
    "JSON encoding": r"json/|_bentoml_impl/serde|.*:(JSONResponse\.|.*model_dump)",
    "pydantic validation": r"pydantic(_core)?/|annotated_types/",
    "HTTP server + event loop": r"(uvicorn|h11|httptools|uvloop|asyncio)/|selectors",
    "thread handoff": r"anyio/|concurrent/futures/|threading|queue",
    "service handlers": r"service\.py:|classifier/",
    "BentoML + Starlette": r"(bentoml|_bentoml_sdk|_bentoml_impl|starlette|fastapi|simple_di)/",
}
OWN_WORK = ("model", "decode + preprocess")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=30, help="sampled time")
    parser.add_argument("--warmup", type=float, default=10, help="load before sampling")
    parser.add_argument("--eager", action="store_true", help="CLASSIFIER_COMPILE=off")
    parser.add_argument("--label", help="the record's name in --output (default: compiled/eager)")
    parser.add_argument(
        "--output", type=Path, help="default: bench/KIND/profile.json, KIND this CPU's kind"
    )
    emulation.add_option(parser)
    args = parser.parse_args(argv)
    emulation.restart_if_asked(args, "bench.profile", argv)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    os.environ.setdefault("CLASSIFIER_COMPILE_CACHE_DIR", CACHE)  # compiles once: reruns are fast
    if args.eager:
        os.environ["CLASSIFIER_COMPILE"] = "off"
    label = args.label or ("eager" if args.eager else "compiled")
    from bench.__main__ import machine
    from bench.inputs import photos
    from bench.report import REPORT, data_file
    from bench.servers import benchmark_service

    with benchmark_service("profile") as server:
        record = {"command": " ".join(["python -m bench.profile", *sys.argv[1:]])}
        record |= {"machine": machine(), **profile(server, photos(), args, label)}
    output = args.output or data_file(REPORT, "profile.json")
    results = json.loads(output.read_text()) if output.exists() else {}
    output.write_text(json.dumps({**results, label: record}, indent=1) + "\n")
    print(report(record))
    return 0


def profile(server, bodies: list[bytes], args, label: str) -> dict:
    """`args.clients` clients upload photos while py-spy samples the worker's busy threads."""
    from bench.load import batch_counters, mean_batch, run_load

    tree = psutil.Process(server.process.pid).children(recursive=True)
    [worker] = [p for p in tree if "--fd" in p.cmdline()]  # the service's worker process
    PROFILES.mkdir(exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    raw = PROFILES / f"{slug}.txt"
    # idle threads (in epoll, on a lock, waiting for the GIL) are left out by default, as long as
    # the worker runs on while sampled: paused for each sample, every thread looks busy
    spy = [PY_SPY, "record", "--pid", str(worker.pid), "--rate", "100", "--duration"]
    spy += [str(args.seconds), "--format", "raw", "--threads", "--full-filenames", "--nonblocking"]
    seen: dict = {"load_average": os.getloadavg()}

    def record() -> None:
        before, started = thread_seconds(worker), time.perf_counter()
        spying = subprocess.Popen([*spy, "--output", str(raw)], stdout=subprocess.DEVNULL)
        after: dict[int, float] = {}
        while spying.poll() is None:  # threads come and go: each one's last reading counts
            after |= thread_seconds(worker)
            time.sleep(0.5)
        seen["wall"], after = time.perf_counter() - started, after | thread_seconds(worker)
        seen["cpu"] = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
        dump = subprocess.run([PY_SPY, "dump", "--pid", str(worker.pid), "--json"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        seen["python"] = {thread["os_thread_id"] for thread in json.loads(dump.stdout)}

    timer = threading.Timer(args.warmup + 1, record)  # inside the measured window
    timer.start()
    batches = batch_counters(server.url)
    load = run_load(f"{server.url}/predict", bodies, form_field="image", warmup=args.warmup,
                    concurrency=args.clients, seconds=args.seconds + 3)  # fmt: skip
    timer.join()
    stacks = list(read_raw(raw))
    write_speedscope(stacks, PROFILES / f"{slug}.speedscope.json")
    # py-spy counts a thread that waits for a core as busy: each thread's samples share out its
    # CPU time as the kernel counted it, and the threads without Python (OpenMP's) are the model's
    ids, by_thread = collections.defaultdict(set), collections.defaultdict(collections.Counter)
    sampled, functions = collections.Counter(), collections.Counter()
    for (tid, name), frames, count in stacks:
        category, (function, file) = classify(frames)
        ids[name].add(tid)
        by_thread[name][category] += count
        sampled[category] += count
        if category not in OWN_WORK:
            functions[f"{short(file)}:{function} [{category}]"] += count
    per_image = 1000 / (load.throughput * seen["wall"])  # core-ms per image of a CPU second
    python = seen["python"].union(*ids.values())
    ids["threads without Python"] = set(seen["cpu"]) - python
    threads = {name: per_image * sum(seen["cpu"].get(tid, 0) for tid in ids[name]) for name in ids}
    cpu = collections.Counter({"model": threads["threads without Python"]})
    for name, counter in by_thread.items():
        for category, n in counter.items():
            cpu[category] += threads[name] * n / counter.total()
    samples, mean = sampled.total(), mean_batch(batches, batch_counters(server.url))
    return {
        "clients": args.clients, "sampled_s": seen["wall"], "load_average": seen["load_average"],
        "samples": samples, "images_per_s": load.throughput, "errors": load.errors,
        "p50_ms": load.percentile(50), "mean_batch": mean, "core_ms_per_image": cpu.total(),
        "categories": {c: {"samples_percent": 100 * sampled[c] / samples, "core_ms_per_image": ms}
                       for c, ms in cpu.most_common()},
        "threads_core_ms_per_image": dict(sorted(threads.items(), key=lambda t: -t[1])),
        "top_functions": {f: 100 * n / samples for f, n in functions.most_common(25)},
    }  # fmt: skip


def thread_seconds(process: psutil.Process) -> dict[int, float]:
    return {thread.id: thread.user_time + thread.system_time for thread in process.threads()}


def read_raw(path: Path):
    """py-spy's collapsed stacks: (thread id, name), [(function, file), outermost first], count"""
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread, *frames = stack.split(";")
        tid, _, name = thread.removeprefix("thread (").partition(")")
        frames = [re.match(r"(.*) \((.*):\d+\)$", f) or (f, f, "") for f in frames]
        yield (int(tid), name.lstrip(": ")), [(f[1], f[2]) for f in frames], int(count)


def classify(frames: list[tuple[str, str]]) -> tuple[str, tuple[str, str]]:
    """The sample's category, and its innermost frame."""
    for function, file in reversed(frames):
        for category, pattern in RULES.items():
            if re.match(pattern, f"{short(file)}:{function}"):
                return category, frames[-1]
    return "other", frames[-1] if frames else ("?", "")


def short(file: str) -> str:
    for prefix in ("site-packages/", "python3.11/", f"{ROOT}/"):
        file = file.split(prefix, 1)[-1]
    return file


def write_speedscope(stacks, path: Path) -> None:
    """For https://www.speedscope.app: a profile per thread."""
    frames: dict[tuple[str, str], int] = {}
    profiles: dict[tuple, dict] = collections.defaultdict(lambda: {"samples": [], "weights": []})
    for thread, stack, count in stacks:
        profiles[thread]["samples"].append([frames.setdefault(f, len(frames)) for f in stack])
        profiles[thread]["weights"].append(count)
    shared = {"frames": [{"name": function, "file": short(file)} for function, file in frames]}
    profiles = [{"type": "sampled", "name": f"{name} ({tid})", "unit": "none", "startValue": 0,
                 "endValue": sum(p["weights"]), **p}
                for (tid, name), p in profiles.items()]  # fmt: skip
    schema = "https://www.speedscope.app/file-format-schema.json"
    path.write_text(json.dumps({"$schema": schema, "shared": shared, "profiles": profiles}))


def report(record: dict) -> str:
    total = record["core_ms_per_image"]
    lines = [
        f"{record['command']}: {record['images_per_s']:.1f} images/s from {record['clients']} "
        f"clients, mean batch {record['mean_batch'] or 0:.1f}, {record['samples']} samples",
        f"{'category':<26}{'% samples':>10}{'% CPU':>8}{'core-ms/image':>15}",
        *(f"{c:<26}{v['samples_percent']:>10.1f}{100 * v['core_ms_per_image'] / total:>8.1f}"
          f"{v['core_ms_per_image']:>15.2f}" for c, v in record["categories"].items()),
        f"{'the worker':<44}{total:>15.2f}",
        "\nthreads, core-ms/image: " + ", ".join(
            f"{name} {ms:.1f}" for name, ms in record["threads_core_ms_per_image"].items()),
        "\nhottest functions outside the model and decoding, % of samples (own time):",
        *(f"{p:6.2f}  {f}" for f, p in record["top_functions"].items()),
    ]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
