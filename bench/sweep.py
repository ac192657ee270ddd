"""Sweep the service's tuning settings: `python -m bench.sweep`.

Serves a random-weight ResNet50 with the defaults and with one setting changed at a time
(largest batch, OpenMP waiting, workers against threads, JPEG decoding at reduced scale,
BentoML's batcher), loads each with 1, 16 and 64 clients, writes bench/KIND/sweep.json and
re-renders BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench import emulation
from bench.__main__ import TWO_WORKERS

ROOT = Path(__file__).resolve().parents[1]

# name -> the environment that differs from the defaults
CONFIGS = {
    "defaults": {},
    "max_batch_size 4": {"CLASSIFIER_MAX_BATCH_SIZE": "4"},
    "max_batch_size 8": {"CLASSIFIER_MAX_BATCH_SIZE": "8"},
    "max_batch_size 32": {"CLASSIFIER_MAX_BATCH_SIZE": "32"},
    "OpenMP threads never spin (OMP_WAIT_POLICY=PASSIVE)": {"OMP_WAIT_POLICY": "PASSIVE"},
    "2 workers x 1 thread": TWO_WORKERS,
    "full-size JPEG decoding": {"CLASSIFIER_FAST_JPEG_DECODE": "false"},
    "BentoML batcher, max_latency_ms 2000": {
        "CLASSIFIER_BATCHING": "bentoml",
        "CLASSIFIER_MAX_LATENCY_MS": "2000",
    },
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__)
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    emulation.add_option(parser)
    args = parser.parse_args(argv)
    emulation.restart_if_asked(args, "bench.sweep", argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    os.environ["BENTOML_HOME"] = str(workdir / "bentoml")

    from bench.__main__ import measure_level, save_benchmark_model
    from bench.inputs import photos
    from bench.report import data_file, rerender
    from bench.servers import serve_service

    stored = save_benchmark_model()
    bodies = photos(24)
    rows = []
    for name in args.configs:
        env = {"CLASSIFIER_MODEL_TAG": str(stored.tag), **CONFIGS[name]}
        server = serve_service(env, workdir / "serve.log")
        try:
            server.wait_ready()
            server.wait_compiled()  # measured compiled, as served once it has compiled
            for concurrency in args.concurrency:
                level = measure_level(server, bodies, concurrency, args.seconds)
                rows.append({"config": name, "env": CONFIGS[name], **level})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            server.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    data_file(args.output, "sweep.json").write_text(json.dumps(rows, indent=1))
    rerender(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
