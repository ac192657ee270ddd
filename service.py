"""ImageClassifier: a ResNet50 from the BentoML model store behind HTTP, with adaptive batching.

Each request is decoded, validated, resized and cropped on its own (in a worker thread), and
only then joins an adaptive batch in `classify`, so one bad upload never fails the requests
batched with it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import bentoml
import numpy as np
from fastapi import FastAPI
from pydantic import Field
from starlette.responses import JSONResponse

from classifier.artifact import load_model
from classifier.inference import Predictor, top_k
from classifier.ingest import InvalidImage, decode_base64, load_image
from classifier.schemas import (
    BatchItem,
    BatchResponse,
    ErrorResponse,
    ModelInfo,
    PredictResponse,
    PreparedImage,
)
from classifier.settings import get_settings

settings = get_settings()

TopK = Annotated[
    int,
    Field(ge=1, description="How many classes to return, at most the number of labels."),
]

info_app = FastAPI(
    title="ImageClassifier extras", docs_url=None, redoc_url=None, openapi_url=None
)


@bentoml.asgi_app(info_app, path="/")
@bentoml.service(
    traffic={"timeout": 60},
    threads=1,  # one model call at a time; adaptive batching fills it instead
)
class ImageClassifier:
    """Classify images with a ResNet50 (ImageNet, fine-tuned or the offline demo model)."""

    model = bentoml.models.BentoModel(settings.model_tag)

    def __init__(self) -> None:
        stored = self.model
        network, self.card = load_model(stored.path, stored.info.metadata)
        self.tag = str(stored.tag)
        self.predictor = Predictor(
            network,
            self.card,
            device=settings.device,
            precision=settings.precision,
            threads=settings.threads,
        )
        self.predictor.warm_up()  # before /readyz answers, so the first request is not slow

    @bentoml.api(
        batchable=True,
        max_batch_size=settings.max_batch_size,
        max_latency_ms=settings.max_latency_ms,
    )
    def classify(self, images: list[PreparedImage]) -> list[BatchItem]:
        """Classify already prepared pixels; the other APIs call this to join adaptive batches."""
        size = self.card.preprocessing.crop_size
        expected = size * size * 3
        results = [
            BatchItem(error=f"pixels must be {size}x{size}x3 = {expected} bytes")
            if len(image.pixels) != expected
            else None
            for image in images
        ]
        valid = [i for i, result in enumerate(results) if result is None]
        if valid:
            pixels = np.stack(
                [np.frombuffer(images[i].pixels, np.uint8).reshape(size, size, 3) for i in valid]
            )
            probabilities = self.predictor.predict(pixels)
            for row, i in enumerate(valid):
                predictions = top_k(probabilities[row], self.card.labels, images[i].top_k)
                results[i] = BatchItem(predictions=predictions)
        return results

    @bentoml.api
    async def predict(
        self,
        image: Annotated[Path, Field(description="An image file: JPEG, PNG, GIF, WebP, ...")],
        top_k: TopK = settings.default_top_k,
    ) -> PredictResponse:
        """Classify one uploaded image (multipart field `image`)."""
        try:
            self._check_top_k(top_k)
            prepared = await asyncio.to_thread(self._prepare, image.read_bytes(), top_k)
        except InvalidImage as error:
            return _error(error)
        [result] = await self._classify([prepared])
        return PredictResponse(model=self.tag, predictions=result.predictions)

    @bentoml.api
    async def predict_batch(
        self,
        images: Annotated[list[Path], Field(description="Several image files, field `images`.")],
        top_k: TopK = settings.default_top_k,
    ) -> BatchResponse:
        """Classify several uploaded images; an unreadable one gets its own `error` entry."""
        try:
            self._check_top_k(top_k)
            if not images:
                raise InvalidImage("send at least one image in the field 'images'")
            if len(images) > settings.max_batch_images:
                raise InvalidImage(
                    f"{len(images)} images in one request; the limit is "
                    f"{settings.max_batch_images}",
                    status=413,
                )
        except InvalidImage as error:
            return _error(error)

        async def prepare(path: Path) -> PreparedImage | BatchItem:
            try:
                return await asyncio.to_thread(self._prepare, path.read_bytes(), top_k)
            except InvalidImage as error:
                return BatchItem(error=error.message)

        prepared = await asyncio.gather(*(prepare(path) for path in images))
        valid = [item for item in prepared if isinstance(item, PreparedImage)]
        answers = iter(await self._classify(valid))
        results = [item if isinstance(item, BatchItem) else next(answers) for item in prepared]
        return BatchResponse(model=self.tag, results=results)

    @bentoml.api
    async def predict_base64(
        self,
        image: Annotated[
            str,
            Field(
                description="The image as base64, or a data: URI.",
                examples=["data:image/png;base64,iVBORw0KGgo..."],
            ),
        ],
        top_k: TopK = settings.default_top_k,
    ) -> PredictResponse:
        """Classify one image sent as base64 in JSON (for mobile and browser clients)."""
        try:
            self._check_top_k(top_k)
            prepared = await asyncio.to_thread(self._prepare, decode_base64(image), top_k)
        except InvalidImage as error:
            return _error(error)
        [result] = await self._classify([prepared])
        return PredictResponse(model=self.tag, predictions=result.predictions)

    def describe(self) -> ModelInfo:
        card = self.card
        return ModelInfo(
            model=self.tag,
            architecture=card.architecture,
            weights_source=card.weights_source,
            is_demo=card.weights_source == "demo",
            labels=card.labels,
            num_classes=card.num_classes,
            preprocessing=card.preprocessing,
            weights_sha256=card.weights_sha256,
            validation_accuracy=card.validation_accuracy,
            precision=self.predictor.precision,
            device=str(self.predictor.device),
            max_batch_size=settings.max_batch_size,
            max_latency_ms=settings.max_latency_ms,
            limits={
                "max_request_bytes": settings.max_request_bytes,
                "max_image_pixels": settings.max_image_pixels,
                "max_batch_images": settings.max_batch_images,
            },
        )

    def _check_top_k(self, k: int) -> None:
        if k > self.card.num_classes:
            raise InvalidImage(
                f"top_k is {k}, but the model has only {self.card.num_classes} labels"
            )

    def _prepare(self, data: bytes, k: int) -> PreparedImage:
        image = load_image(
            data, max_pixels=settings.max_image_pixels, max_bytes=settings.max_request_bytes
        )
        pixels = self.card.preprocessing.prepare(image)
        return PreparedImage(pixels=pixels.tobytes(), top_k=k)

    async def _classify(self, images: list[PreparedImage]) -> list[BatchItem]:
        """Send prepared images through the adaptive batcher, at most one batch's worth a call."""
        step = settings.max_batch_size
        chunks = [images[i : i + step] for i in range(0, len(images), step)]
        answers = await asyncio.gather(*(self.to_async.classify(chunk) for chunk in chunks))
        return [BatchItem.model_validate(item) for answer in answers for item in answer]


@info_app.get("/info", response_model=ModelInfo, tags=["Service APIs"])
def info() -> ModelInfo:
    """The served model: tag, weights source, labels, preprocessing, precision, batching."""
    return bentoml.get_current_service().describe()


def _error(error: InvalidImage) -> JSONResponse:
    return JSONResponse(ErrorResponse(error=error.message).model_dump(), status_code=error.status)


class RequestSizeLimit:
    """ASGI middleware: bodies over `max_bytes` get 413, declared or streamed."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(send)
        received = 0
        too_large = False

        async def counting_receive():
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise ValueError("request body too large")
            return message

        replaced = False

        async def guarded_send(message) -> None:
            # The app turns the exception above into a 500; answer 413 in its place.
            nonlocal replaced
            if too_large:
                if not replaced:
                    replaced = True
                    await self._reject(send)
                return
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _reject(self, send) -> None:
        body = json.dumps(
            {"error": f"the request body is larger than the limit of {self.max_bytes} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


ImageClassifier.add_asgi_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes)
