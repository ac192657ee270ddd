"""The served model: loaded from the BentoML model store, run one batch at a time, described.

model = ServedModel.load("resnet50:abc", settings)  # checked, placed, compiled, warmed up
model.answer([(pixels, 5), ...])                    # one answer per image, in order
"""

from __future__ import annotations

import threading
import time

import bentoml
import numpy as np

from .artifact import ModelCard, ModelIntegrityError, load_model
from .batching import Batcher
from .inference import Predictor, top_k
from .schemas import Classified, ModelInfo
from .settings import Settings, get_settings

BATCH_SIZE = bentoml.metrics.Histogram(
    name="classifier_batch_size",
    documentation="Images per model call",
    buckets=[1, 2, 4, 8, 16, 32, 64, 128],
)
QUEUE_SECONDS = bentoml.metrics.Histogram(
    name="classifier_queue_seconds",
    documentation="Time the oldest image of a batch waited for the model (continuous batching)",
)
MODEL_SECONDS = bentoml.metrics.Histogram(
    name="classifier_model_seconds",
    documentation="Time of one model call (a whole batch)",
)


def check_stored_model(tag: str) -> None:
    """Refuse to start, with one clear message, when the stored model fails its integrity check
    (its card, the SHA-256, the weights): better than workers crashing in a loop."""
    try:
        stored = bentoml.models.get(tag)
        load_model(stored.path, stored.info.metadata)
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


class ServedModel:
    """A stored model on its device, answering batches of prepared pixels."""

    def __init__(self, tag: str, card: ModelCard, predictor: Predictor) -> None:
        self.tag = tag
        self.card = card
        self.predictor = predictor
        # one model call at a time, whoever calls (the batcher's thread, BentoML's batcher)
        self.lock = threading.Lock()

    @classmethod
    def load(cls, tag: str, settings: Settings) -> ServedModel:
        """Loaded, checked, placed, compiled and warmed up, so that no request waits for it."""
        stored = bentoml.models.get(tag)
        network, card = load_model(stored.path, stored.info.metadata)
        predictor = Predictor(network, card, **settings.predictor_options())
        predictor.warm_up()
        return cls(str(stored.tag), card, predictor)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(N, crop, crop, 3) uint8 pixels to (N, classes) float32 probabilities."""
        with self.lock:
            started = time.perf_counter()
            probabilities = self.predictor.predict(pixels).numpy()
            MODEL_SECONDS.observe(time.perf_counter() - started)
            BATCH_SIZE.observe(len(pixels))
        return probabilities

    def answer(self, batch: list[tuple[np.ndarray, int]]) -> list[Classified]:
        """(pixels, top_k) pairs through the model at once: one answer each, in order."""
        if not batch:
            return []
        probabilities = self.probabilities(np.stack([pixels for pixels, _ in batch]))
        return [
            Classified(predictions=top_k(row, self.card.labels, k))
            for row, (_, k) in zip(probabilities, batch)
        ]

    def describe(self, settings: Settings) -> ModelInfo:
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
            batching=settings.batching,
            max_batch_size=settings.max_batch_size,
            max_latency_ms=settings.max_latency_ms,
            compile=self.predictor.describe_compilation(),
            limits={
                "max_queue": settings.max_queue,
                "max_request_bytes": settings.max_request_bytes,
                "max_image_pixels": settings.max_image_pixels,
                "max_batch_images": settings.max_batch_images,
                "max_top_k": settings.max_top_k,
                "max_concurrency": settings.max_concurrency,
                "max_receiving": settings.max_receiving,
                "request_timeout_s": settings.request_timeout_s,
            },
        )


class BatchedModel:
    """A ServedModel behind the continuous batcher (`classifier.batching`): loaded, compiled and
    run on the batcher's own thread only, and started once it is ready to answer."""

    def __init__(self, tag: str, settings: Settings) -> None:
        def load() -> None:
            self.model = ServedModel.load(tag, settings)

        self.batcher: Batcher = Batcher(
            lambda batch: self.model.answer(batch),
            setup=load,
            max_batch_size=settings.max_batch_size,
            max_queue=settings.max_queue,
            on_batch=lambda size, waited, ran: QUEUE_SECONDS.observe(waited),
            take=lambda queued: self.model.predictor.batch_size_for(queued),
            name="model",
        )

    async def answer(self, pixels: np.ndarray, k: int, phases: dict[str, float]) -> Classified:
        """One image's top `k`, batched with whatever else is queued; its wait and model time
        go in `phases`."""
        return await self.batcher.submit((pixels, k), phases)
