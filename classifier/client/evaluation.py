"""Evaluate the model as served on labelled images: accuracy, per-class scores, confusions.

python -m classifier.client evaluate DIR --report OUT, where DIR is an ImageFolder tree (each
subfolder's name is the true label of the images in it). OUT gets report.md, report.json,
confusion_matrix.png and predictions.jsonl. Metrics are scikit-learn's, the plot matplotlib's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .finding import find_images
from .records import Record, RecordWriter
from .running import add_connection_options, classify, service_limits, summary

OTHER = "(other)"  # predictions outside the folders' labels, in the confusion matrix


def labelled_images(root: Path, known: list[str]) -> list[tuple[Path, str]]:
    """(image, true label) for each image under root/<label>/; ValueError, before anything is
    sent, when a folder's name is not one of the model's labels."""
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    folders = sorted(f for f in root.iterdir() if f.is_dir() and not f.name.startswith("."))
    if not folders:
        raise ValueError(f"{root} has no subfolders: it needs one per label, named as the model's")
    unknown = [folder.name for folder in folders if folder.name not in known]
    if unknown:
        shown = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
        raise ValueError(
            f"the model does not know the labels {', '.join(map(repr, unknown))} (folder names "
            f"in {root}); it knows {shown}"
        )
    images = [(path, folder.name) for folder in folders for path in find_images([folder])]
    if not images:
        raise ValueError(f"no image files in the folders of {root}")
    return images


def score(records: list[Record], truth: dict[str, str], top_k: int, mistakes: int = 10) -> dict:
    """The metrics of the answered records, against `truth` (path: label)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    answered = [record for record in records if record.predictions]
    true = [truth[record.path] for record in answered]
    guessed = [record.predictions[0].label for record in answered]
    classes = sorted(set(truth.values()))
    columns = [label if label in classes else OTHER for label in guessed]
    matrix_labels = classes + ([OTHER] if OTHER in columns else [])
    precision, recall, f1, support = precision_recall_fscore_support(
        true, columns, labels=classes, zero_division=0
    )
    macro = precision_recall_fscore_support(
        true, columns, labels=classes, average="macro", zero_division=0
    )
    wrong = [
        (record, label) for record, label in zip(answered, true)
        if record.predictions[0].label != label
    ]  # fmt: skip
    wrong.sort(key=lambda pair: -pair[0].predictions[0].score)
    return {
        "model": next((record.model for record in answered), None),
        "images": len(records),
        "answered": len(answered),
        "failed": [{"path": r.path, "error": r.error} for r in records if not r.predictions],
        "top1_accuracy": accuracy_score(true, guessed) if answered else 0.0,
        "top_k": top_k,
        "top_k_accuracy": sum(
            label in [p.label for p in record.predictions[:top_k]]
            for record, label in zip(answered, true)
        )
        / max(len(answered), 1),
        "macro": {"precision": macro[0], "recall": macro[1], "f1": macro[2]},
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
            for label, p, r, f, n in zip(classes, precision, recall, f1, support)
        },  # fmt: skip
        "confusion_matrix": {
            "labels": matrix_labels,  # rows: true labels; columns: top-1 predictions
            "counts": confusion_matrix(true, columns, labels=matrix_labels).tolist(),
        },
        "most_confident_mistakes": [
            {
                "path": record.path,
                "true": label,
                "predicted": record.predictions[0].label,
                "score": record.predictions[0].score,
            }
            for record, label in wrong[:mistakes]
        ],
    }


def plot_confusion_matrix(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    labels = report["confusion_matrix"]["labels"]
    counts = np.array(report["confusion_matrix"]["counts"])
    side = min(4 + 0.45 * len(labels), 40)
    figure, axes = plt.subplots(figsize=(side, side), dpi=100)
    ConfusionMatrixDisplay(counts, display_labels=labels).plot(
        ax=axes,
        cmap="Blues",
        colorbar=False,
        xticks_rotation=45 if len(labels) > 6 else "horizontal",
        include_values=len(labels) <= 30,
    )
    axes.set_title(
        # two lines: a model tag is as wide as the plot of a handful of labels
        f"{report['model']}\ntop-1 {report['top1_accuracy']:.1%} on {report['answered']} images"
    )
    axes.set_ylabel("true label (folder)")
    axes.set_xlabel("predicted label (top 1)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def markdown(report: dict, source: str) -> str:
    k = report["top_k"]
    lines = [
        f"# Evaluation of {report['model']}",
        "",
        f"{report['answered']} images from `{source}` classified by the running service"
        + (f"; {len(report['failed'])} could not be" if report["failed"] else "")
        + ".",
        "",
        "| top-1 accuracy | top-{k} accuracy | macro precision | macro recall | macro F1 |".replace(
            "{k}", str(k)
        ),
        "|---:|---:|---:|---:|---:|",
        f"| {report['top1_accuracy']:.1%} | {report['top_k_accuracy']:.1%} "
        f"| {report['macro']['precision']:.3f} | {report['macro']['recall']:.3f} "
        f"| {report['macro']['f1']:.3f} |",
        "",
        "## Per class",
        "",
        "| label | precision | recall | F1 | images |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} "
            f"| {m['support']} |"
            for label, m in report["per_class"].items()
        ),
        "",
        "## Confusion matrix",
        "",
        "Rows are the true labels (folders), columns the top-1 predictions.",
        "",
        "![Confusion matrix](confusion_matrix.png)",
        "",
        "## Most confident mistakes",
        "",
    ]
    if report["most_confident_mistakes"]:
        lines += ["| image | true | predicted | score |", "|---|---|---|---:|"]
        lines += [
            f"| `{m['path']}` | {m['true']} | {m['predicted']} | {m['score']:.1%} |"
            for m in report["most_confident_mistakes"]
        ]
    else:
        lines.append("None: every image was classified correctly.")
    if report["failed"]:
        lines += ["", "## Not classified", "", "| image | error |", "|---|---|"]
        lines += [f"| `{f['path']}` | {f['error']} |" for f in report["failed"]]
    return "\n".join(lines) + "\n"


def run_evaluate(argv: list[str]) -> int:

    parser = argparse.ArgumentParser(
        prog="python -m classifier.client evaluate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("data", type=Path, help="one subfolder of images per label")
    parser.add_argument("--report", type=Path, required=True, help="folder for the report")
    parser.add_argument("--top-k", type=int, default=5, help="for top-k accuracy, %(default)s")
    parser.add_argument("--mistakes", type=int, default=10, help="listed, %(default)s")
    add_connection_options(parser)
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as error:
        print(f"error: evaluate needs {error.name}: pip install -r requirements-evaluate.txt",
              file=sys.stderr)  # fmt: skip
        return 2

    limits = service_limits(args)
    try:
        images = labelled_images(args.data, limits.labels)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    top_k = max(1, min(args.top_k, len(limits.labels)))
    args.report.mkdir(parents=True, exist_ok=True)
    records: list[Record] = []
    writer = RecordWriter(args.report / "predictions.jsonl", top_k)

    def keep(batch: list[Record]) -> None:
        records.extend(batch)
        for record in batch:
            writer.write(record)

    try:
        run = classify(args, limits, [path for path, _ in images], top_k, keep, "evaluating")
    finally:
        writer.close()
    print(summary(run, len(images)), file=sys.stderr)
    if run.interrupted or run.refused:
        return 130 if run.interrupted else 1
    report = score(records, {str(path): label for path, label in images}, top_k, args.mistakes)
    (args.report / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    plot_confusion_matrix(report, args.report / "confusion_matrix.png")
    (args.report / "report.md").write_text(markdown(report, str(args.data)))
    print(
        f"top-1 {report['top1_accuracy']:.1%}, top-{top_k} {report['top_k_accuracy']:.1%} "
        f"on {report['answered']} images; report in {args.report}/report.md",
        file=sys.stderr,
    )
    return 1 if report["failed"] else 0
