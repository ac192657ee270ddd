"""ImageNet ResNet50 weights: torchvision's download, or a checkpoint file for air-gapped machines.

Labels and preprocessing always come from the torchvision weights enum (`meta["categories"]`,
`transforms()`), which ships inside torchvision and needs no download.
"""

from __future__ import annotations

import io
import socket
from pathlib import Path

import torch
from torchvision.models import ResNet50_Weights

from classifier.artifact import ModelCard, build_model, sha256_of
from classifier.preprocess import Preprocessing

DOWNLOAD_TIMEOUT_SECONDS = 30


class WeightsUnavailable(RuntimeError):
    """The ImageNet weights could be neither downloaded nor read from a file."""


def recipe(name: str = "IMAGENET1K_V2") -> ResNet50_Weights:
    try:
        return ResNet50_Weights[name]
    except KeyError:
        known = ", ".join(w.name for w in ResNet50_Weights)
        raise WeightsUnavailable(f"unknown weights {name!r}; torchvision has {known}") from None


def load_torchvision_weights(
    weights_file: Path | None = None, weights: str = "IMAGENET1K_V2"
) -> tuple[dict, ResNet50_Weights, str | None]:
    """The state_dict, its weights enum member and the file's SHA-256 (None when downloaded)."""
    member = recipe(weights)
    if weights_file is not None:
        path = Path(weights_file)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise WeightsUnavailable(f"cannot read the weights file {path}: {error}") from None
        return _parse_checkpoint(data, path), member, sha256_of(data)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    try:
        state_dict = member.get_state_dict(progress=True, check_hash=True)
    except Exception as error:  # URLError, timeouts, proxies, hash mismatch: all mean the same
        raise WeightsUnavailable(
            f"could not download the ResNet50 {member.name} weights from {member.url} "
            f"({type(error).__name__}: {error}).\n"
            "  - On a machine without internet, download that file elsewhere and pass it:\n"
            "      python -m train imagenet --weights-file resnet50.pth\n"
            "  - Or train the offline demo model instead:  python -m train demo"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return state_dict, member, None


def imagenet_model(weights_file: Path | None = None, weights: str = "IMAGENET1K_V2"):
    """A ResNet50 with ImageNet weights and its card, ready for `save_model`."""
    state_dict, member, file_sha256 = load_torchvision_weights(weights_file, weights)
    model = build_model(len(member.meta["categories"]))
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise WeightsUnavailable(
            f"{weights_file} is not a torchvision resnet50 checkpoint: {error}"
        ) from None
    card = ModelCard(
        weights_source="file" if weights_file else "imagenet",
        labels=list(member.meta["categories"]),
        preprocessing=Preprocessing.from_weights(member),
        source_file_sha256=file_sha256,
        # torchvision's published figure holds for its own file, not for an arbitrary one
        validation_accuracy=None
        if weights_file
        else member.meta["_metrics"]["ImageNet-1K"]["acc@1"] / 100,
        training={"torchvision_weights": member.name, "weights_url": member.url},
    )
    return model.eval(), card


def _parse_checkpoint(data: bytes, path: Path) -> dict:
    """A state_dict from a plain or wrapped ({"state_dict": ...}, {"model": ...}) checkpoint."""
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsUnavailable(f"{path} is not a readable PyTorch checkpoint: {error}") from None
    for key in ("state_dict", "model"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
    if not isinstance(checkpoint, dict):
        raise WeightsUnavailable(f"{path} holds a {type(checkpoint).__name__}, not a state_dict")
    return {key.removeprefix("module."): value for key, value in checkpoint.items()}
