"""The README's first command on this CPU: `python -m bench.demo [--emulate avx2]`.

`bash scripts/serve.sh` from an empty model store, with no way to download ImageNet weights, as
a new user runs it: it trains the demo model in its time budget and serves it. Records how long
until it answers (and until the compiled model answers), what the budget bought (plan, steps,
precision, the card's accuracy) and what `evaluate` measures against the served model on the
second renderer's 500 shapes; then, the server stopped, the stored model in process with the
residual blocks its weights make identities skipped, as served, and computed, as they were until
2026-12-07 (`classifier/identity_blocks.py`); and adds its section to BENCHMARKS.md.
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
        described = subprocess.run(
            [bentoml, "models", "get", "resnet50:latest", "-o", "json"],
            env={**os.environ, **offline},
            capture_output=True,
            text=True,
            check=True,
        )
        stored = json.loads(described.stdout)
        metadata = stored["metadata"]
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
        server.stop()  # its cores to the measurement alone
        model_dir = work / "bentoml" / "models" / stored["name"] / stored["version"]
        result["blocks"] = blocks_compared(model_dir, metadata)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))
    data_file(args.output, "demo.json").write_text(json.dumps(result, indent=1))
    rerender(args.output)
    return 0


def blocks_compared(directory: Path, metadata: dict, rounds: int = 5) -> dict:
    """The stored model's eager speed in process at its own size, its identity blocks skipped
    and computed: ms a batch of 1 and of 8, the median of alternating rounds of 2 s."""
    import time

    import numpy as np
    import torch

    from classifier.artifact import build_model, load_model
    from classifier.identity_blocks import residual_blocks
    from classifier.inference import Predictor

    served, card = load_model(directory, metadata)
    whole = build_model(card.num_classes)
    whole.load_state_dict(torch.load(directory / "weights.pt", weights_only=True))
    ways = {"skipped": served, "computed": whole}
    predictors = {way: Predictor(model, card) for way, model in ways.items()}
    found: dict = {
        "residual_blocks": {way: residual_blocks(model) for way, model in ways.items()},
        "precision": predictors["skipped"].precision,
        "batches": {},
    }
    crop = card.preprocessing.crop_size
    for batch in (1, 8):
        pixels = np.random.default_rng(0).integers(0, 256, (batch, crop, crop, 3), np.uint8)
        times: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(rounds):
            for way, predictor in predictors.items():
                predictor.predict(pixels)  # warm for this shape
                calls, started = 0, time.perf_counter()
                while time.perf_counter() - started < 2:
                    predictor.predict(pixels)
                    calls += 1
                times[way].append((time.perf_counter() - started) * 1000 / calls)
        ms = {way: float(np.median(values)) for way, values in times.items()}
        found["batches"][batch] = {"ms": ms, "speedup": ms["computed"] / ms["skipped"]}
    return found


if __name__ == "__main__":
    sys.exit(main())
