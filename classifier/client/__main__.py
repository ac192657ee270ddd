"""Classify images with a running service, from a few files to folders of thousands.

    python -m classifier.client cat.jpg dog.png --top-k 3           # a table for each file
    python -m classifier.client photos/ --output results.jsonl      # a folder, concurrently
    python -m classifier.client photos/ --output results.jsonl --resume    # finish a stopped run
    python -m classifier.client evaluate test-set/ --report report/  # accuracy on labelled images

Folders are searched recursively for image files, recognised by content. Results go to --output
as JSON Lines or CSV (by its suffix), one record per file as answers arrive. With an API key on
the service, pass `--api-key` or set CLASSIFIER_API_KEY. Exits 1 when some files failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import httpx

from classifier.progress import progress

from .finding import find_images
from .records import Record, RecordWriter, output_format, read_records
from .sending import DEFAULT_IMAGES_PER_REQUEST, Limits, Run, Sender, batches, send_all


def format_table(name: str, predictions: list) -> str:
    """A plain-text table: rank, label, score as a percentage."""
    rows = [f"{name}", f"  {'#':>2}  {'label':<30} {'score':>8}"]
    for rank, prediction in enumerate(predictions, start=1):
        rows.append(f"  {rank:>2}  {prediction.label:<30} {prediction.score:>8.2%}")
    return "\n".join(rows)


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://localhost:3000", help="%(default)s")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CLASSIFIER_API_KEY"),
        help="sent as 'Authorization: Bearer <key>' (default: $CLASSIFIER_API_KEY)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        help="requests in flight (default: sized from the service's /info)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_IMAGES_PER_REQUEST,
        help="images per request: 1 sends /predict, more /predict_batch (default %(default)s, "
        "measured in BENCHMARKS.md)",
    )
    parser.add_argument("--retries", type=int, default=8, help="per request when busy, %(default)s")
    parser.add_argument("--timeout", type=float, default=120, help="seconds, %(default)s")


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
) -> Run:
    """Send `paths` with the options in `args`; `on_records` gets each answer's records."""
    images = max(1, min(args.batch_size, limits.max_batch_images))
    concurrency = args.concurrency or limits.concurrency_for(images)
    groups = list(batches(paths, images, limits.max_request_bytes))

    async def main() -> Run:
        async with httpx.AsyncClient(
            base_url=args.url,
            headers=_headers(args),
            timeout=args.timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        ) as client:
            sender = Sender(client, top_k, retries=args.retries)
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


def summary(run: Run, total: int) -> str:
    lines = [
        f"{run.answered} of {total} files classified, {sum(run.failed.values())} failed, "
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


def run_classify(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m classifier.client",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path, help="image files and folders")
    parser.add_argument("--top-k", type=int, help="labels per image (default: the service's)")
    parser.add_argument("--output", "-o", type=Path, help="results file: .jsonl or .csv")
    parser.add_argument(
        "--resume", action="store_true", help="skip the files --output already has answers for"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    add_connection_options(parser)
    args = parser.parse_args(argv)

    paths = list(find_images(args.paths))
    if not paths:
        print("error: no image files found", file=sys.stderr)
        return 2
    if args.output is None:
        return _print_tables(args, paths)
    if args.output.exists() and not (args.resume or args.overwrite):
        print(f"error: {args.output} exists: --resume to finish it, --overwrite to replace it",
              file=sys.stderr)  # fmt: skip
        return 2
    kept = [r for r in read_records(args.output) if r.final] if args.resume else []
    done = {record.path for record in kept}
    todo = [path for path in paths if str(path) not in done]
    if kept:
        print(f"resuming: {len(done)} files already answered, {len(todo)} to go", file=sys.stderr)
    writer = RecordWriter(args.output, args.top_k or 5, kept)
    try:
        run = classify(
            args, service_limits(args), todo, args.top_k, lambda rs: list(map(writer.write, rs))
        )
    finally:
        writer.close()
    held = read_records(args.output)
    failed = sum(1 for record in held if record.predictions is None)
    print(summary(run, len(todo)), file=sys.stderr)
    print(
        f"{args.output} ({output_format(args.output)}) holds {len(held)} of {len(paths)} files: "
        f"{len(held) - failed} classified, {failed} failed",
        file=sys.stderr,
    )
    if run.interrupted or run.refused:
        return 130 if run.interrupted else 1
    return 1 if failed else 0


def _print_tables(args: argparse.Namespace, paths: list[Path]) -> int:
    """Few files, no --output: a table for each on stdout, in the order given."""
    answers: dict[str, Record] = {}
    limits = service_limits(args)
    run = classify(
        args, limits, paths, args.top_k, lambda rs: answers.update((r.path, r) for r in rs)
    )
    for path in paths:
        record = answers.get(str(path))
        if record is None:
            continue
        if record.predictions is None:
            print(f"{path}\n  error: {record.error}", file=sys.stderr)
        else:
            print(format_table(str(path), record.predictions))
            print(f"  model {record.model}")
    if run.refused:
        print(f"error: {run.refused}", file=sys.stderr)
    return 0 if run.answered == len(paths) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["evaluate"]:
        from .evaluation import run_evaluate

        return run_evaluate(argv[1:])
    return run_classify(argv)


if __name__ == "__main__":
    sys.exit(main())
