"""Classify images with a running service, from a few files to folders of thousands.

    python -m classifier.client cat.jpg dog.png --top-k 3           # a table for each file
    python -m classifier.client photos/ --output results.jsonl      # a folder, concurrently
    python -m classifier.client photos/ --output results.jsonl --resume    # finish a stopped run
    python -m classifier.client photos/ -o explained.jsonl --explain heatmaps/  # where it looked
    python -m classifier.client evaluate test-set/ --report report/  # accuracy on labelled images

Folders are searched recursively for image files, recognised by content. Results go to --output
as JSON Lines or CSV (by its suffix), one record per file as answers arrive. With an API key on
the service, pass `--api-key` or set CLASSIFIER_API_KEY. Exits 1 when some files failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .explaining import Explaining, heatmap_paths
from .finding import find_images
from .records import Record, RecordWriter, output_format, read_records
from .running import (
    add_connection_options,
    checked_label,
    checked_top_k,
    classify,
    service_limits,
    summary,
)


def format_table(name: str, predictions: list) -> str:
    """A plain-text table: rank, label, score as a percentage."""
    rows = [f"{name}", f"  {'#':>2}  {'label':<30} {'score':>8}"]
    for rank, prediction in enumerate(predictions, start=1):
        rows.append(f"  {rank:>2}  {prediction.label:<30} {prediction.score:>8.2%}")
    return "\n".join(rows)


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
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output (and heatmaps)"
    )
    parser.add_argument(
        "--explain",
        type=Path,
        metavar="DIR",
        help="send each image to /explain and save where the model looked as a PNG under DIR, "
        "at the image's path in its folder (one image a request; by default as many at a time as "
        "the service explains)",
    )
    parser.add_argument(
        "--label", help="with --explain: the label to explain (default: each image's top one)"
    )
    add_connection_options(parser)
    args = parser.parse_args(argv)
    if args.label is not None and args.explain is None:
        parser.error("--label needs --explain")

    paths = list(find_images(args.paths))
    if not paths:
        print("error: no image files found", file=sys.stderr)
        return 2
    explaining = None
    if args.explain is not None:
        explaining = Explaining(heatmap_paths(paths, args.paths, args.explain), args.label)
        if not (args.resume or args.overwrite) and (refusal := _existing_heatmaps(explaining)):
            print(refusal, file=sys.stderr)
            return 2
    if args.output is None:
        return _print_tables(args, paths, explaining)
    if args.output.exists() and not (args.resume or args.overwrite):
        print(f"error: {args.output} exists: --resume to finish it, --overwrite to replace it",
              file=sys.stderr)  # fmt: skip
        return 2
    limits = service_limits(args)  # before the output is touched: a wrong --url changes nothing
    top_k = checked_top_k(args.top_k, limits)
    checked_label(args.label, limits)
    # paths as found: resume from the same folder with the same arguments
    kept = [r for r in read_records(args.output) if r.final] if args.resume else []
    if explaining is not None:  # an answer from /predict, or a heatmap since lost, is not one
        kept = [record for record in kept if explaining.done(record)]
    done = {record.path for record in kept}
    todo = [path for path in paths if str(path) not in done]
    if kept:
        print(f"resuming: {len(done)} files already answered, {len(todo)} to go", file=sys.stderr)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    writer = RecordWriter(args.output, top_k or 5, kept, explaining=explaining is not None)
    desc, verb = ("explaining", "explained") if explaining else ("classifying", "classified")
    try:
        run = classify(
            args, limits, todo, top_k, lambda rs: list(map(writer.write, rs)), desc, explaining
        )
    finally:
        writer.close()
    held = read_records(args.output)
    failed = sum(1 for record in held if record.predictions is None)
    print(summary(run, len(todo), verb), file=sys.stderr)
    print(
        f"{args.output} ({output_format(args.output)}) holds {len(held)} of {len(paths)} files: "
        f"{len(held) - failed} {verb}, {failed} failed",
        file=sys.stderr,
    )
    if run.interrupted or run.refused:
        return 130 if run.interrupted else 1
    return 1 if failed else 0


def _existing_heatmaps(explaining: Explaining) -> str | None:
    """Why not to start: heatmaps this run would write are there already (another run's)."""
    existing = [path for path in explaining.heatmaps.values() if path.exists()]
    if not existing:
        return None
    more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
    return (
        f"error: {existing[0]} exists{more}: --resume to finish the run that wrote it, "
        "--overwrite to replace it"
    )


def _print_tables(
    args: argparse.Namespace, paths: list[Path], explaining: Explaining | None
) -> int:
    """Few files, no --output: a table for each on stdout, in the order given."""
    answers: dict[str, Record] = {}
    limits = service_limits(args)
    top_k = checked_top_k(args.top_k, limits)
    checked_label(args.label, limits)

    def keep(records: list[Record]) -> None:
        answers.update((record.path, record) for record in records)

    desc = "explaining" if explaining else "classifying"
    run = classify(args, limits, paths, top_k, keep, desc, explaining)
    for path in paths:
        record = answers.get(str(path))
        if record is None:
            continue
        if record.predictions is None:
            print(f"{path}\n  error: {record.error}", file=sys.stderr)
        else:
            print(format_table(str(path), record.predictions))
            print(f"  model {record.model}")
            if record.heatmap:
                print(f"  explained {record.explained} ({record.method}): {record.heatmap}")
    if run.refused:
        print(f"error: {run.refused}", file=sys.stderr)
    if run.interrupted:
        return 130
    return 0 if run.answered == len(paths) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["evaluate"]:
        from .evaluation import run_evaluate

        return run_evaluate(argv[1:])
    return run_classify(argv)


if __name__ == "__main__":
    sys.exit(main())
