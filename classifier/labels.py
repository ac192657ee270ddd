"""What a request may ask of the model's labels: how many of them, and which one."""

from __future__ import annotations

from .errors import ClientError


def checked_top_k(k: int | None, num_classes: int, default: int) -> int:
    """The number of classes to answer with: `default` (at most every class) when the request
    names none; a request for more classes than the model has is the client's to fix."""
    if k is None:
        return min(default, num_classes)
    if k > num_classes:
        raise ClientError(f"top_k is {k}, but the model has only {num_classes} labels")
    return k


def label_index(label: str | None, labels: list[str]) -> int | None:
    """The class index of `label` (None for None); a label the model does not have is the
    client's to fix."""
    if label is None:
        return None
    if label not in labels:
        raise ClientError(
            f"label {label!r} is not one of the model's {len(labels)} labels (see /info)"
        )
    return labels.index(label)
