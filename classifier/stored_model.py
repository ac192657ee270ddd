"""The model in the BentoML store, read without torch: its exact tag, its card, its integrity."""

from __future__ import annotations

import bentoml

from .artifact import ModelCard, ModelIntegrityError, read_weights
from .settings import get_settings


def check_stored_model(tag: str) -> None:
    """Refuse to start, with one clear message, when the stored model fails its integrity check
    (its card, its weights' SHA-256, their head against its labels): better than workers
    crashing in a loop. Without torch: it runs in `bentoml serve`'s own process."""
    try:
        stored = bentoml.models.get(tag)
        read_weights(stored.path, stored.info.metadata)
    except ModelIntegrityError as error:
        raise SystemExit(
            f"ImageClassifier refuses to start: the model {tag} failed its integrity check "
            f"({error}). Save the model again with `python -m train ...`, or set "
            "CLASSIFIER_MODEL_TAG to a good model from `bentoml models list`."
        ) from None


def model_tag(service) -> str:
    """The exact model a built Bento of `service` was packaged with, else the configured tag.

    BentoML pins the versions of Hugging Face models in a Bento, not of BentoModels: without
    this, "resnet50:latest" would mean whatever was saved last on the serving machine.
    """
    bento = getattr(service, "bento", None)
    if bento is None:
        return get_settings().model_tag
    [info] = [info for info in bento.info.services if info.name == service.name]
    return str(info.models[0].tag)


def stored_card(tag: str) -> tuple[str, ModelCard]:
    """The exact tag and the card (labels, preprocessing) of a stored model, without its weights."""
    stored = bentoml.models.get(tag)
    return str(stored.tag), ModelCard.model_validate(dict(stored.info.metadata))
