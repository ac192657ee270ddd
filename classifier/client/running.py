"""One bulk run from command-line options: the service's limits, the sender, progress, summary."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import httpx

from classifier.progress import progress

from .explaining import Explaining
from .records import Record
from .sending import DEFAULT_IMAGES_PER_REQUEST, Limits, Run, Sender, batches, send_all


def at_least(minimum: int):
    """An argparse type: an integer no smaller than `minimum`."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://localhost:3000", help="%(default)s")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CLASSIFIER_API_KEY"),
        help="sent as 'Authorization: Bearer <key>' (default: $CLASSIFIER_API_KEY)",
    )
    parser.add_argument(
        "--concurrency",
        type=at_least(1),
        help="requests in flight (default: sized from the service's /info)",
    )
    parser.add_argument(
        "--batch-size",
        type=at_least(1),
        default=DEFAULT_IMAGES_PER_REQUEST,
        help="images per request: 1 sends /predict, more /predict_batch (default %(default)s, "
        "measured in BENCHMARKS.md)",
    )
    parser.add_argument(
        "--retries", type=at_least(0), default=8, help="per request when busy, %(default)s"
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds, %(default)s")


def checked_label(label: str | None, limits: Limits) -> str | None:
    """`label` if the model has it; SystemExit before anything is sent if not."""
    if label is not None and label not in limits.labels:
        shown = ", ".join(limits.labels[:20]) + (" ..." if len(limits.labels) > 20 else "")
        raise SystemExit(f"error: --label {label!r}: the model's labels are {shown}")
    return label


def checked_top_k(top_k: int | None, limits: Limits) -> int | None:
    """`top_k` if the model has that many labels; SystemExit before anything is sent if not
    (every request would be refused, and each refusal recorded as the file's answer)."""
    if top_k is not None and not 1 <= top_k <= len(limits.labels):
        raise SystemExit(f"error: --top-k {top_k}: the model has {len(limits.labels)} labels")
    return top_k


def service_limits(args: argparse.Namespace) -> Limits:
    """The service's model and limits, from its /info; SystemExit with why when it cannot say."""
    try:
        info = httpx.get(f"{args.url}/info", headers=_headers(args), timeout=args.timeout)
    except httpx.HTTPError as error:
        raise SystemExit(f"error: cannot reach {args.url}: {error}") from None
    if info.status_code != 200:
        raise SystemExit(f"error: {args.url}/info answered {info.status_code}: {info.text[:200]}")
    return Limits.from_info(info.json())


def classify(
    args: argparse.Namespace,
    limits: Limits,
    paths: list[Path],
    top_k: int | None,
    on_records,
    desc: str = "classifying",
    explaining: Explaining | None = None,
) -> Run:
    """Send `paths` with the options in `args`; `on_records` gets each answer's records. With
    `explaining`, to /explain one by one, by default as many at a time as a worker explains."""
    if explaining is not None:
        images, default_concurrency = 1, limits.max_explanations
    else:
        images = max(1, min(args.batch_size, limits.max_batch_images))
        default_concurrency = limits.concurrency_for(images)
    concurrency = args.concurrency or default_concurrency
    groups = list(batches(paths, images, limits.max_request_bytes))

    async def main() -> Run:
        async with httpx.AsyncClient(
            base_url=args.url,
            headers=_headers(args),
            timeout=args.timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        ) as client:
            sender = Sender(client, top_k, retries=args.retries, explaining=explaining)
            with progress(len(paths), desc, unit="img", every_s=5) as bar:

                def record(records: list[Record]) -> None:
                    on_records(records)
                    bar.update(len(records))

                run = await send_all(groups, sender, concurrency, record)
            run.retried = sender.retried
            return run

    return asyncio.run(main())


def _headers(args: argparse.Namespace) -> dict[str, str]:
    return {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}


def summary(run: Run, total: int, done: str = "classified") -> str:
    lines = [
        f"{run.answered} of {total} files {done}, {sum(run.failed.values())} failed, "
        f"in {run.seconds:.1f} s ({run.sent / max(run.seconds, 1e-9):.1f} images/s; "
        f"{run.retried} requests retried)"
    ]
    for error, count in sorted(run.failed.items(), key=lambda item: -item[1])[:10]:
        lines.append(f"  {count:>6}  {error}")
    if run.refused:
        lines.append(f"stopped: the service refuses every request ({run.refused})")
    elif run.interrupted:
        lines.append(f"stopped after {run.sent} of {total}: run again with --resume to finish")
    return "\n".join(lines)
