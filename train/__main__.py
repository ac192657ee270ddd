"""Fill the model store with a ResNet50: `python -m train {imagenet,finetune,demo} --help`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from classifier.artifact import MODEL_NAME, save_model


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except Exception as error:  # a message, not a traceback, for what the user can fix
        from train.imagenet import WeightsUnavailable

        if isinstance(error, (WeightsUnavailable, ValueError, FileNotFoundError)):
            print(f"error: {error}", file=sys.stderr)
            return 2
        raise


def build_parser() -> argparse.ArgumentParser:
    """The command line; each command's defaults are those of its config model."""
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__)
    parser.add_argument(
        "--name", default=MODEL_NAME, help="model store name (default: %(default)s)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    imagenet = commands.add_parser("imagenet", help="torchvision's ImageNet weights")
    imagenet.add_argument("--weights-file", type=Path, help="a torchvision resnet50 checkpoint")
    imagenet.add_argument("--weights", default="IMAGENET1K_V2", help="IMAGENET1K_V1 or _V2")

    tune = commands.add_parser("finetune", help="transfer learning on an ImageFolder tree")
    tune.add_argument("--data", type=Path, required=True, help="one folder per class")
    tune.add_argument("--epochs", type=int, default=3)
    tune.add_argument("--learning-rate", "--lr", type=float, default=1e-3)
    tune.add_argument("--batch-size", type=int, default=32)
    tune.add_argument("--freeze-backbone", action=argparse.BooleanOptionalAction, default=True)
    tune.add_argument("--image-size", type=int, default=224)
    tune.add_argument("--start-weights", choices=["imagenet", "file", "none"], default="imagenet")
    tune.add_argument("--start-weights-file", type=Path)
    tune.add_argument("--validation-fraction", type=float, default=0.2)
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    tune.add_argument("--max-steps", type=int, help="stop after this many steps")

    demo = commands.add_parser("demo", help="render shapes and train on them, fully offline")
    demo.add_argument(
        "--time-budget", dest="time_budget_s", type=float,
        help="seconds to draw and train (default: 240 with bf16, 285 without); the steps "
        "follow from this CPU's measured speed",
    )  # fmt: skip
    demo.add_argument("--per-class", type=int, help="images per shape (default: the budget's)")
    demo.add_argument("--validation-fraction", type=float, default=0.05)
    demo.add_argument("--epochs", type=int, default=2, help="passes over the images")
    demo.add_argument(
        "--clean-first", type=float, default=0.28, help="share of images, all clean, taken first"
    )
    demo.add_argument("--learning-rate", "--lr", type=float, default=3e-3)
    demo.add_argument("--batch-size", type=int, help="default: by the budget, 64 or 32")
    demo.add_argument("--image-size", type=int, help="default: by the budget, 64 or 48")
    demo.add_argument(
        "--render-size", type=int, help="drawn at (default: what the model resizes to)"
    )
    demo.add_argument(
        "--field-per-class", type=int, default=100, help="shapes drawn another way, to measure on"
    )
    demo.add_argument(
        "--blocks-per-stage", type=int, default=1, help="residual blocks trained in each stage"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--min-images-seen", type=int, default=28_800,
        help="steps x batch size at least, past the budget on a slower machine",
    )  # fmt: skip
    demo.add_argument("--max-steps", type=int, help="this many steps, whatever the budget")
    demo.add_argument("--data", type=Path, help="keep the rendered images in this folder")

    return parser


def _run(args: argparse.Namespace) -> int:
    # options not given take the config's own defaults (the demo's budget is the CPU's)
    options = {
        k: v for k, v in vars(args).items() if k not in ("command", "name") and v is not None
    }
    if args.command == "imagenet":
        from train.imagenet import imagenet_model

        model, card = imagenet_model(args.weights_file, args.weights)
    elif args.command == "finetune":
        from train.finetune import FinetuneConfig, finetune

        if args.start_weights == "file" and args.start_weights_file is None:
            raise ValueError("--start-weights file needs --start-weights-file PATH")
        model, card, result = finetune(FinetuneConfig(**options))
        print(f"validation accuracy {result.validation_accuracy:.1%} in {result.seconds:.0f} s")
    else:
        from train.demo import DemoConfig, train_demo

        model, card, result, field_accuracy = train_demo(DemoConfig(**options))
        print(
            f"validation accuracy {result.validation_accuracy:.1%}, on shapes drawn another way "
            f"(train/field_shapes.py) {field_accuracy:.1%}, in {result.seconds:.0f} s"
        )
    stored = save_model(model, card, args.name)
    print(f"saved {stored.tag} ({card.weights_source}, {card.num_classes} labels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
