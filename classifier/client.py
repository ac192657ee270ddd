"""Classify image files with a running service from the command line, via BentoML's client.

python -m classifier.client cat.jpg dog.png --url http://localhost:3000 --top-k 3

With an API key on the service, pass `--api-key` or set CLASSIFIER_API_KEY.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import bentoml
from bentoml.exceptions import BentoMLException


def format_table(name: str, predictions: list[dict]) -> str:
    """A plain-text table: rank, label, score as a percentage."""
    rows = [f"{name}", f"  {'#':>2}  {'label':<30} {'score':>8}"]
    for rank, prediction in enumerate(predictions, start=1):
        rows.append(f"  {rank:>2}  {prediction['label']:<30} {prediction['score']:>8.2%}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m classifier.client", description=__doc__)
    parser.add_argument("images", nargs="+", type=Path, help="image files to classify")
    parser.add_argument("--url", default="http://localhost:3000", help="%(default)s")
    parser.add_argument("--top-k", type=int, default=5, help="%(default)s")
    parser.add_argument("--timeout", type=float, default=60, help="seconds, %(default)s")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CLASSIFIER_API_KEY"),
        help="sent as 'Authorization: Bearer <key>' (default: $CLASSIFIER_API_KEY)",
    )
    args = parser.parse_args(argv)

    failures = 0
    # "" rather than None: BentoML would otherwise send $BENTO_CLOUD_API_KEY to any --url
    token = args.api_key or ""
    with bentoml.SyncHTTPClient(args.url, timeout=args.timeout, token=token) as client:
        for path in args.images:
            try:
                answer = client.predict(image=path, top_k=args.top_k)
            except (BentoMLException, OSError) as error:
                failures += 1
                print(f"{path}\n  error: {error}", file=sys.stderr)
                continue
            print(format_table(str(path), answer["predictions"]))
            print(f"  model {answer['model']}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
