"""Sweep the batcher's settings: `python -m bench.sweep`.

Serves a random-weight ResNet50 with each CLASSIFIER_MAX_BATCH_SIZE x CLASSIFIER_MAX_LATENCY_MS
pair and loads it at 16 and 64 clients; writes bench/sweep.json and re-renders BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--latencies-ms", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    os.environ["BENTOML_HOME"] = str(workdir / "bentoml")

    from bench.__main__ import save_benchmark_model
    from bench.inputs import photos
    from bench.load import run_load
    from bench.report import SWEEP, rerender
    from bench.servers import Server

    stored = save_benchmark_model()
    bodies = photos(24)
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    rows = []
    for batch_size in args.batch_sizes:
        for latency in args.latencies_ms:
            env = {
                "CLASSIFIER_MODEL_TAG": str(stored.tag),
                "CLASSIFIER_MAX_BATCH_SIZE": str(batch_size),
                "CLASSIFIER_MAX_LATENCY_MS": str(latency),
            }
            server = Server([bentoml, "serve", "service:ImageClassifier"], env,
                            workdir / "serve.log", cwd=ROOT)  # fmt: skip
            try:
                server.wait_ready()
                for concurrency in args.concurrency:
                    result = run_load(f"{server.url}/predict", bodies, form_field="image",
                                      concurrency=concurrency, seconds=args.seconds)  # fmt: skip
                    rows.append(
                        {
                            "max_batch_size": batch_size,
                            "max_latency_ms": latency,
                            "concurrency": concurrency,
                            "throughput": result.throughput,
                            "p99_ms": result.percentile(99),
                            "errors": result.errors,
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
            finally:
                server.stop()
    SWEEP.write_text(json.dumps(rows, indent=1))
    rerender()
    return 0


if __name__ == "__main__":
    sys.exit(main())
