"""The bulk client: `python -m bench.bulk` (about 5 minutes).

Classifies a folder of phone-sized photos with `python -m classifier.client DIR --output ...` at 1,
2, 4, 8 and 16 images per request (1 sends /predict, more /predict_batch), against the service with
its default settings serving two models: the ImageNet-sized one (224x224, where the model's time
dominates; 320 photos) and a small one (48x48, the demo model's size until 2026-12-01, 64x64 now;
where HTTP's time dominates; 960 photos, so that each run lasts a few seconds). Each setting runs
twice, in opposite orders, and the figures are ratios to one image per request in the same run.
Writes bench/KIND/bulk.json and re-renders BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import emulation

ROOT = Path(__file__).resolve().parents[1]
IMAGES_PER_REQUEST = [1, 2, 4, 8, 16]


def save_small_model():
    """A random ResNet50 for 48x48 inputs with five labels, every block at work: the demo model's
    size until 2026-12."""
    from torchvision.models import ResNet50_Weights

    from bench.__main__ import benchmark_network
    from classifier.artifact import ModelCard, save_model
    from classifier.preprocess import Preprocessing

    card = ModelCard(
        weights_source="file",
        labels=["circle", "cross", "square", "star", "triangle"],
        preprocessing=Preprocessing.from_weights(ResNet50_Weights.IMAGENET1K_V2).at_size(48),
        training={"note": "random weights, the demo model's size: for benchmarks"},
    )
    return save_model(benchmark_network(5), card)


def images_per_second(url: str, folder: Path, images: int, workdir: Path) -> float:
    output = workdir / f"bulk-{images}.jsonl"
    output.unlink(missing_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "classifier.client", str(folder), "--url", url,
         "--output", str(output), "--batch-size", str(images)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return float(re.search(r"\(([\d.]+) images/s", result.stderr).group(1))


def measure(url: str, folder: Path, workdir: Path, rounds: int) -> dict:
    import httpx

    info = httpx.get(f"{url}/info").json()
    from classifier.client.sending import Limits

    limits = Limits.from_info(info)
    runs: dict[int, list[float]] = {n: [] for n in IMAGES_PER_REQUEST}
    images_per_second(url, folder, 8, workdir)  # warm up: first requests, first batch sizes
    for round_ in range(rounds):
        order = IMAGES_PER_REQUEST if round_ % 2 == 0 else IMAGES_PER_REQUEST[::-1]
        for images in order:
            runs[images].append(images_per_second(url, folder, images, workdir))
    baseline = sum(runs[1]) / len(runs[1])
    return {
        "model_input": info["preprocessing"]["crop_size"],
        "precision": info["precision"],
        "compiled": info["compile"]["compiled"],
        "levels": [
            {
                "images_per_request": images,
                "concurrency": limits.concurrency_for(images),
                "images_per_s": sum(runs[images]) / len(runs[images]),
                "runs": runs[images],
                "ratio_to_one": sum(runs[images]) / len(runs[images]) / baseline,
            }
            for images in IMAGES_PER_REQUEST
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk", description=__doc__)
    parser.add_argument("--photos", type=int, default=320, help="for the ImageNet-sized model")
    parser.add_argument("--demo-photos", type=int, default=960, help="for the demo-sized one")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    emulation.add_option(parser)
    args = parser.parse_args(argv)
    emulation.restart_if_asked(args, "bench.bulk", argv)
    from bench.__main__ import machine, save_benchmark_model
    from bench.inputs import SIZES, photo
    from bench.report import data_file, rerender
    from bench.servers import serve_service

    workdir = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    os.environ["BENTOML_HOME"] = str(workdir / "bentoml")
    folders = {"imagenet": workdir / "imagenet", "demo": workdir / "demo"}
    for name, count in (("imagenet", args.photos), ("demo", args.demo_photos)):
        folders[name].mkdir()
        for n in range(count):  # phone-sized, as a user's folder of photos would be
            (folders[name] / f"{n:04d}.jpg").write_bytes(photo(n, SIZES[n % 2]))
    result = {
        "photos": {"imagenet": args.photos, "demo": args.demo_photos},
        "photo_sizes": [list(size) for size in SIZES[:2]],
        "models": {},
    }
    try:
        for name, stored in (("imagenet", save_benchmark_model()), ("demo", save_small_model())):
            server = serve_service({"CLASSIFIER_MODEL_TAG": str(stored.tag)}, workdir / "serve.log")
            try:
                server.wait_ready()
                server.wait_compiled()  # measured compiled, as served once it has compiled
                result["models"][name] = measure(server.url, folders[name], workdir, args.rounds)
            finally:
                server.stop()
            print(json.dumps(result["models"][name], indent=1), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["machine"] = machine()
    data_file(args.output, "bulk.json").write_text(json.dumps(result, indent=1))
    rerender(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
