"""What a training step of the demo's network costs: `python -m bench.training [--emulate avx2]`.

The demo trains the first block of each stage of a fresh ResNet50 (`train/steps.py`). On CPUs
without bf16 it runs its smallest strided convolutions as matmuls (`ConvolutionAsMatmul`): the
same function, whose backward oneDNN's AVX2 kernels made a third of the step. This measures a
step at each size the demo trains at, with oneDNN's convolutions and as the demo trains, in
alternating rounds (the machine's speed moves between them), at this CPU's training precision;
writes bench/KIND/training.json and re-renders BENCHMARKS.md (`bench/report.py`'s "Training the
demo's network").
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bench import emulation

ONEDNN, AS_TRAINED = "oneDNN's convolutions", "as the demo trains"


def step_seconds(network, image_size: int, batch_size: int, steps: int) -> float:
    """The median of `steps` steps of a fresh demo network, after two to warm up."""
    import torch

    from classifier.artifact import build_model
    from train.shapes import SHAPES
    from train.steps import train_step, training_optimizer

    torch.manual_seed(0)
    model = build_model(len(SHAPES)).to(memory_format=torch.channels_last).train()
    model.conv1.weight.requires_grad_(False)  # as the whitened stem is
    images = torch.randn(batch_size, 3, image_size, image_size)
    targets = torch.arange(batch_size) % len(SHAPES)
    with network(model):
        optimizer = training_optimizer(model, 1e-3)
        for _ in range(2):
            train_step(model, optimizer, images, targets)
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            train_step(model, optimizer, images, targets)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(rounds: int, steps: int) -> dict:
    from train.demo import RESOLUTIONS
    from train.steps import first_blocks_only, training_network, training_precision

    networks = {
        ONEDNN: lambda model: first_blocks_only(model, 1),
        AS_TRAINED: lambda model: training_network(model, 1),
    }
    sizes = {}
    for image_size, batch_size in RESOLUTIONS:
        seconds: dict[str, list[float]] = {name: [] for name in networks}
        for _ in range(rounds):
            for name, network in networks.items():
                seconds[name].append(step_seconds(network, image_size, batch_size, steps))
        medians = {name: statistics.median(values) for name, values in seconds.items()}
        sizes[f"{image_size} px, {batch_size} a step"] = {
            "ms": {name: round(1000 * value, 1) for name, value in medians.items()},
            "rounds_ms": {name: [round(1000 * v, 1) for v in vs] for name, vs in seconds.items()},
            "speedup": round(medians[ONEDNN] / medians[AS_TRAINED], 3),
        }
        print(json.dumps({f"{image_size} px": sizes[f"{image_size} px, {batch_size} a step"]}))
    return {"precision": training_precision(), "rounds": rounds, "steps": steps, "sizes": sizes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of each")
    parser.add_argument("--steps", type=int, default=12, help="timed steps a round")
    parser.add_argument("--output", type=Path, help="the report (default: BENCHMARKS.md)")
    emulation.add_option(parser)
    args = parser.parse_args(argv)
    emulation.restart_if_asked(args, "bench.training", argv)

    from bench.__main__ import machine
    from bench.report import REPORT, data_file, rerender

    report = args.output or REPORT
    result = {"machine": machine(), **measure(args.rounds, args.steps)}
    data_file(report, "training.json").write_text(json.dumps(result, indent=1))
    rerender(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
