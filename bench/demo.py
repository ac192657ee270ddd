"""The README's first command on this CPU: `python -m bench.demo [--emulate avx2]`.

`bash scripts/serve.sh` from an empty model store, with no way to download ImageNet weights, as
a new user runs it: it trains the demo model in its time budget and serves it. Records how long
until it answers (and until the compiled model answers), what the budget bought (plan, steps,
precision, the card's accuracy) and what `evaluate` measures against the served model on the
second renderer's 500 shapes, then adds its section to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import emulation

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.demo", description=__doc__)
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    emulation.add_option(parser)
    args = parser.parse_args(argv)
    emulation.restart_if_asked(args, "bench.demo", argv)

    from bench.__main__ import machine
    from bench.report import data_file, rerender
    from classifier.testing.server import Server

    work = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    offline = {
        "BENTOML_HOME": str(work / "bentoml"),
        "TORCH_HOME": str(work / "torch"),  # no cached download to fall back on
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    result = {"machine": machine()}
    server = Server(["bash", "scripts/serve.sh"], offline, work / "serve.log", cwd=ROOT)
    try:
        result["ready_s"] = server.wait_ready(timeout=1200)
        result["compiled_s"] = server.wait_compiled()
        stored = subprocess.run(
            [bentoml, "models", "get", "resnet50:latest", "-o", "json"],
            env={**os.environ, **offline},
            capture_output=True,
            text=True,
            check=True,
        )
        metadata = json.loads(stored.stdout)["metadata"]
        training = metadata["training"]
        result |= {
            key: training[key]
            for key in (
                "time_budget_s",
                "plan",
                "steps",
                "batch_size",
                "image_size",
                "seconds_per_step",
                "training_seconds",
                "precision",
                "field_shapes_accuracy",
            )
        }
        result["drawing_s"] = training["drawing_seconds"]
        result["validation_accuracy"] = metadata["validation_accuracy"]
        shapes, report = work / "shapes", work / "report"
        subprocess.run(
            [sys.executable, "-m", "train.field_shapes", str(shapes), "--per-class",
             str(training["field_shapes"]["per_class"])],
            cwd=ROOT, check=True,
        )  # fmt: skip
        subprocess.run(
            [sys.executable, "-m", "classifier.client", "evaluate", str(shapes), "--report",
             str(report), "--url", server.url],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        evaluated = json.loads((report / "report.json").read_text())
        result["evaluated_accuracy"] = evaluated["top1_accuracy"]
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))
    data_file(args.output, "demo.json").write_text(json.dumps(result, indent=1))
    rerender(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
