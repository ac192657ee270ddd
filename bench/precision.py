"""How much lower precision and compilation change the answers: `python -m bench.precision`.

Compares each precision this machine runs (bf16 on CPUs with native bf16 and on GPUs, fp16 on
GPUs) with fp32, and the compiled model with the eager one at each precision, on fixed image
sets: the demo model on rendered shapes it never saw (a model whose answers mean something) and
a random-weight ImageNet-shaped ResNet50 on generated photographs. Writes bench/KIND/precision.json
and re-renders BENCHMARKS.md. Compiles each model at each precision: about 10 minutes.
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

ROOT = Path(__file__).resolve().parents[1]


def compare(model_factory, card, pixels, precisions) -> dict:
    """Each precision against fp32 (top-1 agreement, probability differences), and the model
    compiled as the service compiles it against the same precision run eagerly."""
    from classifier.inference import Predictor

    reference = answers(Predictor(model_factory(), card, precision="fp32"), pixels)
    rows = {}
    for precision in ["fp32", *precisions]:
        eager = answers(Predictor(model_factory(), card, precision=precision), pixels)
        compiled = Predictor(model_factory(), card, precision=precision, compile="inductor")
        compiled.warm_up()
        rows[precision] = {
            **differences(eager, reference),
            "fp32_top1_probability_mean": float(reference.max(1).values.mean()),
            "compiled_vs_eager": (
                differences(answers(compiled, pixels), eager)
                if compiled.batch_sizes
                else {"not compiled": compiled.describe_compilation().reason}
            ),
        }
    return rows


def answers(predictor, pixels):
    """Probabilities for every image, in batches no larger than the predictor runs."""
    import torch

    size = predictor.max_batch_size
    return torch.cat([predictor.predict(pixels[i : i + size]) for i in range(0, len(pixels), size)])


def differences(probabilities, reference) -> dict:
    difference = (probabilities - reference).abs()
    return {
        "images": len(probabilities),
        "top1_agreement": float((probabilities.argmax(1) == reference.argmax(1)).float().mean()),
        "max_abs_probability_difference": float(difference.max()),
        "mean_abs_probability_difference": float(difference.mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.precision", description=__doc__)
    parser.add_argument(
        "--json", type=Path, help="default: bench/KIND/precision.json, KIND this CPU's kind"
    )
    emulation.add_option(parser)
    args = parser.parse_args(argv)
    emulation.restart_if_asked(args, "bench.precision", argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-precision-"))
    os.environ["BENTOML_HOME"] = str(workdir / "bentoml")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(workdir / "compile-cache")
    try:
        return measure(args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure(args: argparse.Namespace) -> int:

    import io

    import numpy as np
    import torch
    from torchvision.models import ResNet50_Weights

    from bench.inputs import photos
    from classifier.artifact import ModelCard, build_model
    from classifier.cpu import cpu_supports_bf16
    from classifier.preprocess import Preprocessing
    from classifier.testing.models import random_network
    from train.demo import DemoConfig, train_demo
    from train.shapes import SHAPES, STYLES, render

    precisions = ["bf16"] if cpu_supports_bf16() or torch.cuda.is_available() else []
    if torch.cuda.is_available():
        precisions.append("fp16")

    weights = ResNet50_Weights.IMAGENET1K_V2
    card = ModelCard(
        weights_source="file",
        labels=list(weights.meta["categories"]),
        preprocessing=Preprocessing.from_weights(weights),
    )
    pixels = np.stack(
        [card.preprocessing.prepare_bytes(p, max_pixels=10**9, fast_jpeg=False) for p in photos(32)]
    )

    def random_model():  # every block at work, as ImageNet's are
        return random_network(1000)

    results = {"random weights, 32 photographs": compare(random_model, card, pixels, precisions)}

    print("training the demo model for the comparison (its budget: 4 minutes)", flush=True)
    demo, demo_card, *_ = train_demo(DemoConfig())
    state = {k: v.clone() for k, v in demo.state_dict().items()}

    def demo_model():
        model = build_model(len(demo_card.labels))
        model.load_state_dict(state)
        return model

    shapes = [
        render(shape, STYLES[n % len(STYLES)], 128, seed=50_000 + 100 * i + n)
        for i, shape in enumerate(SHAPES)
        for n in range(20)
    ]
    buffers = []
    for shape in shapes:
        buffer = io.BytesIO()
        shape.save(buffer, "PNG")
        buffers.append(buffer.getvalue())
    demo_pixels = np.stack(
        [demo_card.preprocessing.prepare_bytes(b, max_pixels=10**9) for b in buffers]
    )
    results["demo model, 100 rendered shapes"] = compare(
        demo_model, demo_card, demo_pixels, precisions
    )
    from bench.report import REPORT, data_file, rerender

    (args.json or data_file(REPORT, "precision.json")).write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    rerender()
    return 0


if __name__ == "__main__":
    sys.exit(main())
