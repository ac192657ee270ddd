"""The APIs' request bodies: what each one takes, documented, and limited by the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field

from ..schemas import PreparedImage
from ..settings import settings_and_key_or_exit
from .forms import StrictForm, StrictJSON

settings, _ = settings_and_key_or_exit()  # a clear message, not a traceback, if invalid

TopK = Annotated[
    int | None,
    Field(
        ge=1,
        le=settings.max_top_k,
        description=f"How many classes to return: 1 to the number of labels (at most "
        f"{settings.max_top_k}); by default {settings.default_top_k}, or all labels if the model "
        "has fewer.",
        examples=[3],
    ),
]
ImageFile = Annotated[Path, Field(description="An image file: JPEG, PNG, GIF, WebP, BMP, TIFF.")]


class PredictForm(StrictForm):
    max_files: ClassVar[int] = settings.max_batch_images

    image: ImageFile
    top_k: TopK = None


class ExplainForm(StrictForm):
    max_files: ClassVar[int] = settings.max_batch_images  # as /predict's

    image: ImageFile
    label: str | None = Field(
        None,
        max_length=200,
        description="The label to explain, one of /info's `labels`; by default the top one.",
        examples=["star"],
    )
    top_k: TopK = None


class PredictBatchForm(StrictForm):
    max_files: ClassVar[int] = settings.max_batch_images

    images: list[ImageFile] = Field(description="Several image files, all in the field `images`.")
    top_k: TopK = None


class Base64Body(StrictJSON):
    image: str = Field(
        description="The image as base64, or as a data: URI.",
        examples=[
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
        ],
    )
    top_k: TopK = None


class ClassifyBody(StrictJSON):
    images: list[PreparedImage]


REQUEST_MODELS = {
    model.__name__
    for model in (PredictForm, ExplainForm, PredictBatchForm, Base64Body, ClassifyBody)
}
