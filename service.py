"""ImageClassifier: a ResNet50 from the BentoML model store behind HTTP, with adaptive batching.

Each upload is received in full and parsed strictly (`classifier.http`), then prepared on its
own in a worker thread, and only then joins a batch, so one bad upload never fails the requests
batched with it. The batch forms in process (CLASSIFIER_BATCHING=continuous, the default) or in
the ImageModel service, which BentoML's adaptive batcher feeds (bentoml).
"""

from __future__ import annotations

import asyncio

import bentoml
import numpy as np
from fastapi import FastAPI

from classifier.errors import ClientError, InvalidImage
from classifier.http import install_http_layer
from classifier.http.errors import error_response
from classifier.http.requests import (
    Base64Body,
    ClassifyBody,
    ExplainForm,
    PredictBatchForm,
    PredictForm,
)
from classifier.http.shutdown import refuse_new_connections_on_sigterm
from classifier.http.timing import Timing
from classifier.http.web import web_app
from classifier.ingest import decode_base64
from classifier.labels import checked_top_k, label_index
from classifier.preparing import PreparePool
from classifier.schemas import (
    BatchItem,
    BatchResponse,
    Classified,
    ExplainResponse,
    Explanation,
    ModelInfo,
    PredictResponse,
    PreparedImage,
    Unclassified,
)
from classifier.settings import OPENMP_ENVIRONMENT, settings_and_key_or_exit
from classifier.slots import Slots
from classifier.stored_model import check_stored_model, model_tag

settings, API_KEY = settings_and_key_or_exit()
MODEL_SERVICE = settings.batching == "bentoml"
GPUS = {"resources": {"gpu": settings.gpus}} if settings.gpus else {}
ENVS = [{"name": name, "value": value} for name, value in OPENMP_ENVIRONMENT.items()]


@bentoml.service(
    workers=1,
    threads=1,  # one model call at a time: batches fill it
    # BentoML's client renews its connection every 100 calls or 300 s by closing it under the
    # calls in flight, which then fail (bentoml 1.4.39); one local model service needs no renewal
    runner_connection={"max_requests": 2**31 - 1, "max_age": 1e9},
    envs=ENVS,
    **GPUS,
)
class ImageModel:
    """The model alone, for CLASSIFIER_BATCHING=bentoml: prepared pixels in, probabilities out,
    in batches BentoML's adaptive batcher forms from every API worker's calls."""

    model = bentoml.models.BentoModel(settings.model_tag)

    def __init__(self) -> None:
        from classifier.served_model import ServedModel  # torch: see ImageClassifier.__init__

        self.served = ServedModel.load(model_tag(ImageModel), settings)

    @bentoml.api(
        batchable=True,
        max_batch_size=settings.max_batch_size,
        max_latency_ms=settings.max_latency_ms,
    )
    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(N, crop, crop, 3) uint8 RGB pixels to (N, classes) probabilities."""
        return self.served.probabilities(pixels)

    @bentoml.api
    def explain(self, pixels: np.ndarray, index: int) -> Explanation:
        """(crop, crop, 3) uint8 RGB pixels: where the model looked for class `index`."""
        return self.served.explain(pixels, index)

    @bentoml.api
    def describe(self) -> ModelInfo:
        return self.served.describe(settings)


info_app = FastAPI(title="ImageClassifier", docs_url=None, redoc_url=None, openapi_url=None)


@bentoml.asgi_app(info_app, path="/")
@bentoml.asgi_app(web_app(), path="/ui")  # mounted first: "/" would take /ui too
@bentoml.service(
    traffic={"timeout": settings.request_timeout_s},
    workers=settings.workers,
    threads=1,  # one model call at a time; adaptive batching fills it instead
    envs=ENVS,
    **({} if MODEL_SERVICE else GPUS),
)
class ImageClassifier:
    """Classify images with a ResNet50 (ImageNet, fine-tuned or the offline demo model)."""

    model = bentoml.models.BentoModel(settings.model_tag)  # what `bentoml build` packages
    if MODEL_SERVICE:
        model_service = bentoml.depends(ImageModel)

    def __init__(self) -> None:
        # torch, only in the workers: `bentoml serve` imports this file to find the services,
        # and importing torch and torchvision there took 7 s of every start on a Zen 3
        from classifier.served_model import BatchedModel, ModelService

        # where images go to be classified and explained
        if MODEL_SERVICE:
            self.backend = ModelService(self.model_service, model_tag(ImageClassifier))
        else:  # torch runs on the batcher's thread only: see BatchedModel
            self.backend = BatchedModel(model_tag(ImageClassifier), settings)
        self.tag, self.card = self.backend.tag, self.backend.card
        self.preparing = PreparePool(self.card.preprocessing, settings)
        self.explanations = Slots(settings.max_explanations, "explanations")
        refuse_new_connections_on_sigterm()  # after uvicorn's own handler, which it then calls

    @bentoml.on_deployment
    def check_model() -> None:
        """Once per `bentoml serve`, in the main process, before any worker starts: a corrupt
        model stops the server with one clear message instead of crashing workers in a loop."""
        check_stored_model(model_tag(ImageClassifier))

    @bentoml.on_shutdown
    def stop(self) -> None:
        """After the server has answered every request it accepted (SIGTERM)."""
        self.backend.close()
        self.preparing.close()

    @bentoml.api(input_spec=PredictForm)
    async def predict(
        self, image: bytes, top_k: int | None, ctx: bentoml.Context
    ) -> PredictResponse:
        """Classify one uploaded image (multipart field `image`)."""
        timing = Timing(ctx.response.headers)
        try:
            result = await self._answer(lambda: image, self._top_k(top_k), timing)
        except ClientError as error:
            return error_response(error, ctx)
        return PredictResponse(model=self.tag, predictions=result.predictions)

    @bentoml.api(input_spec=ExplainForm)
    async def explain(
        self, image: bytes, label: str | None, top_k: int | None, ctx: bentoml.Context
    ) -> ExplainResponse:
        """Classify one uploaded image and show where the model looked for `label` (by default
        the top one): a heatmap over the image, and the attributions it was drawn from."""
        timing, phases = Timing(ctx.response.headers), {}
        try:
            with self.explanations.take():  # gradients are costly: a few at a time
                k, index = self._top_k(top_k), label_index(label, self.card.labels)
                pixels = await self.preparing.prepare(lambda: image, phases)
                answer = await self.backend.explain(pixels, index, k, phases)
        except ClientError as error:
            return error_response(error, ctx)
        timing.add_all(phases)
        return answer

    @bentoml.api(input_spec=PredictBatchForm)
    async def predict_batch(
        self, images: list[bytes], top_k: int | None, ctx: bentoml.Context
    ) -> BatchResponse:
        """Classify several uploaded images; an unreadable one gets its own `error` entry."""
        timing = Timing(ctx.response.headers)

        async def answer(image: bytes) -> Classified | Unclassified:
            try:
                return await self._answer(lambda: image, top_k, timing)
            except InvalidImage as error:
                return Unclassified(error=error.message, status=error.status)

        try:
            top_k = self._top_k(top_k)
            results = await asyncio.gather(*(answer(image) for image in images))
        except ClientError as error:
            return error_response(error, ctx)
        return BatchResponse(model=self.tag, results=results)

    @bentoml.api(input_spec=Base64Body)
    async def predict_base64(
        self, image: str, top_k: int | None, ctx: bentoml.Context
    ) -> PredictResponse:
        """Classify one image sent as base64 in JSON (for mobile and browser clients)."""
        timing = Timing(ctx.response.headers)
        try:
            k = self._top_k(top_k)
            result = await self._answer(lambda: decode_base64(image), k, timing)
        except ClientError as error:
            return error_response(error, ctx)
        return PredictResponse(model=self.tag, predictions=result.predictions)

    @bentoml.api(input_spec=ClassifyBody)
    async def classify(self, images: list[PreparedImage], ctx: bentoml.Context) -> list[BatchItem]:
        """Classify prepared 224x224 RGB pixels (for clients that resize themselves)."""
        size = self.card.preprocessing.crop_size
        expected = size * size * 3

        async def answer(image: PreparedImage) -> Classified | Unclassified:
            if len(image.pixels) != expected:
                return Unclassified(
                    error=f"pixels must be {size}x{size}x3 = {expected} bytes", status=422
                )
            pixels = np.frombuffer(image.pixels, np.uint8).reshape(size, size, 3)
            return await self.backend.answer(pixels, image.top_k, {})

        try:
            return list(await asyncio.gather(*(answer(image) for image in images)))
        except ClientError as error:
            return error_response(error, ctx)

    def describe(self) -> ModelInfo:
        return self.backend.describe(settings)

    def _top_k(self, k: int | None) -> int:
        return checked_top_k(k, self.card.num_classes, settings.default_top_k)

    async def _answer(self, read, k: int, timing: Timing) -> Classified:
        """Bytes from `read()` to an answer: prepared in the pool, then batched."""
        phases: dict[str, float] = {}
        answer = await self.backend.answer(await self.preparing.prepare(read, phases), k, phases)
        timing.add_all(phases)
        return answer


@info_app.get("/info", response_model=ModelInfo, tags=["Service APIs"])
def info() -> ModelInfo:
    """The served model: tag, weights source, labels, preprocessing, precision, batching."""
    return bentoml.get_current_service().describe()


install_http_layer(ImageClassifier, settings, API_KEY)
