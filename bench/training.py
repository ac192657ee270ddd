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
from pathlib import Path

from bench import emulation

ONEDNN, AS_TRAINED = "oneDNN's convolutions", "as the demo trains"


def measure(rounds: int, steps: int) -> dict:
    from train.budget import seconds_per_step
    from train.demo import RESOLUTIONS
    from train.shapes import SHAPES
    from train.steps import first_blocks_only, training_network, training_precision

    networks = {ONEDNN: first_blocks_only, AS_TRAINED: training_network}
    sizes = {}
    for image_size, batch_size in RESOLUTIONS:
        seconds: dict[str, list[float]] = {name: [] for name in networks}
        for _ in range(rounds):
            for name, network in networks.items():
                seconds[name].append(
                    seconds_per_step(
                        num_classes=len(SHAPES),
                        image_size=image_size,
                        batch_size=batch_size,
                        blocks_per_stage=1,
                        network=network,
                        timed_steps=steps,
                    )
                )
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
