"""The saved-model format: a ResNet50 state_dict plus a `ModelCard` in the BentoML model store.

A state_dict, not a pickled module (`bentoml.pytorch.save_model`'s loader breaks on torch >= 2.6),
and a card that rebuilds the model exactly: architecture, labels, preprocessing, where the
weights came from and their SHA-256, which is checked again on every load.

    >>> stored = save_model(model, ModelCard(weights_source="demo", labels=[...], ...))
    >>> model, card = load_model(stored.path, stored.info.metadata)

The card and the SHA-256 need no torch (`read_weights`): `bentoml serve` checks the stored model
in a process that never runs it, before any worker starts, and importing torch and torchvision
there cost 7 s of every start on a Zen 3. torch is imported by the functions that use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import io
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, ValidationError

from .preprocess import Preprocessing

if TYPE_CHECKING:
    from torch import nn

MODEL_NAME = "resnet50"
WEIGHTS_FILE = "weights.pt"
WeightsSource = Literal["imagenet", "file", "finetune", "demo"]


class ModelIntegrityError(RuntimeError):
    """The stored model is missing, corrupt or does not match its card."""


class ModelCard(BaseModel):
    """Everything needed to rebuild and describe a stored model; saved as its metadata."""

    architecture: Literal["resnet50"] = "resnet50"
    weights_source: WeightsSource
    labels: list[str] = Field(min_length=2)
    preprocessing: Preprocessing
    weights_sha256: str = ""
    source_file_sha256: str | None = Field(
        None, description="SHA-256 of the checkpoint file the weights were loaded from."
    )
    validation_accuracy: float | None = None
    training: dict = Field(default_factory=dict, description="How the model was trained.")
    torch_version: str = Field(default_factory=lambda: _version_of("torch"))
    torchvision_version: str = Field(default_factory=lambda: _version_of("torchvision"))

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def build_model(num_classes: int) -> nn.Module:
    """An untrained torchvision ResNet50 with a `num_classes`-way head."""
    import torchvision

    # zero_init_residual: each block starts as identity; training from scratch starts those
    # scales at 0.1 instead (train/finetune.py RESIDUAL_SCALE_FROM_SCRATCH)
    return torchvision.models.resnet50(
        weights=None, num_classes=num_classes, zero_init_residual=True
    )


def _version_of(package: str) -> str:
    """The version torch or torchvision reports, build included (2.14.1+cpu): a card is made
    where the model was, so this imports nothing new."""
    return importlib.import_module(package).__version__


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_model(model: nn.Module, card: ModelCard, name: str = MODEL_NAME):
    """Save to the BentoML model store under `name`; returns the stored `bentoml.Model`.

    The version starts with the weights source (`resnet50:demo-...`, `resnet50:imagenet-...`),
    so that every answer's model tag says which weights gave it.
    """
    import bentoml  # the model store only; keeps this module importable without it
    import torch

    buffer = io.BytesIO()
    torch.save({key: value.cpu() for key, value in model.state_dict().items()}, buffer)
    data = buffer.getvalue()
    card = card.model_copy(update={"weights_sha256": sha256_of(data)})
    version = bentoml.Tag(name).make_new_version().version
    with _store_lock(name):
        with bentoml.models.create(
            bentoml.Tag(name, f"{card.weights_source}-{version}"),
            labels={"source": card.weights_source, "architecture": card.architecture},
            metadata=card.model_dump(mode="json", exclude_none=True),  # the store rejects None
        ) as created:
            Path(created.path_of(WEIGHTS_FILE)).write_bytes(data)
    return bentoml.models.get(created.tag)  # the copy in the store, not the staging directory


@contextlib.contextmanager
def _store_lock(name: str):
    """One save of `name` at a time, across processes.

    BentoML's store copies a new model into place and then rewrites the `latest` file in place;
    two saves at once could interleave those steps. (A server starting at the very moment of a
    save may still read `latest` half-written: it then refuses to start, and says why.)
    """
    from bentoml._internal.configuration.containers import BentoMLContainer

    models = Path(BentoMLContainer.model_store_dir.get())
    models.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(models / f".{name}.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def load_model(directory: str | Path, metadata: Mapping) -> tuple[nn.Module, ModelCard]:
    """Rebuild a stored model in eval mode after checking its weights against the card, to
    answer with: the blocks its weights make identities skipped (`identity_blocks`)."""
    import torch

    from .identity_blocks import skip_identity_blocks

    data, card = read_weights(directory, metadata)
    weights_path = Path(directory) / WEIGHTS_FILE
    model = build_model(card.num_classes)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as error:  # the card's hash matched, but the weights do not fit the card
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelIntegrityError(
            f"the weights in {weights_path} do not fit a {card.architecture} with "
            f"{card.num_classes} labels: {first_line}"
        ) from None
    skip_identity_blocks(model)
    return model.eval(), card


def read_weights(directory: str | Path, metadata: Mapping) -> tuple[bytes, ModelCard]:
    """A stored model's card and the bytes of its weights, checked against the card's SHA-256
    and its number of labels (`ModelIntegrityError` if either is unusable); without torch."""
    try:
        card = ModelCard.model_validate(dict(metadata))
    except ValidationError as error:
        raise ModelIntegrityError(
            f"the model's metadata is not a valid model card: {error}"
        ) from None
    weights_path = Path(directory) / WEIGHTS_FILE
    try:
        data = weights_path.read_bytes()
    except OSError as error:
        raise ModelIntegrityError(f"cannot read the weights file {weights_path}: {error}") from None
    digest = sha256_of(data)
    if digest != card.weights_sha256:
        raise ModelIntegrityError(
            f"the weights file {weights_path} has SHA-256 {digest}, but the model card says "
            f"{card.weights_sha256}: the file is corrupt or was replaced"
        )
    # the hash vouches for the weights, not for labels edited on the card since
    head = tensor_shapes(data).get("fc.weight")
    if head is None or head[0] != card.num_classes:
        found = "no last layer (fc)" if head is None else f"a last layer of {head[0]} outputs"
        raise ModelIntegrityError(
            f"the weights in {weights_path} do not fit a {card.architecture} with "
            f"{card.num_classes} labels: they have {found}"
        )
    return data, card


class _TensorShapes(pickle.Unpickler):
    """torch.save's pickle with each tensor read as its shape: no torch, and no storage read."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, *rest: tuple(size)
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if module == "torch" and name.endswith("Storage"):
            return name
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a state_dict")

    def persistent_load(self, saved_id):
        return None  # a tensor's storage: only its shape is wanted


def tensor_shapes(data: bytes) -> dict[str, tuple[int, ...]]:
    """The shape of each tensor in a state_dict saved by `torch.save` (a zip whose data.pkl
    rebuilds each tensor from a storage and a size); empty if it is not one."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            [pickled] = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            shapes = _TensorShapes(io.BytesIO(archive.read(pickled))).load()
    except Exception:  # a broken or foreign file: whatever it raises, it is not a state_dict
        return {}
    if not isinstance(shapes, dict):
        return {}
    return {key: shape for key, shape in shapes.items() if isinstance(shape, tuple)}
