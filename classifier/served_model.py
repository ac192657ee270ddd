"""The served model: loaded from the BentoML model store, run one batch at a time, described.

model = ServedModel.load("resnet50:abc", settings)  # checked, placed, compiled, warmed up
model.answer([(pixels, 5), ...])                    # one answer per image, in order
model.explain(pixels, index=3)                      # where it looked for label 3
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import threading
import time
from http import HTTPStatus

import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException

from .artifact import ModelCard, load_model
from .batching import Batcher
from .cpu import describe_cpu
from .errors import ClientError
from .explanation import Attribution, Explainer
from .heatmap import overlay_png
from .identity_blocks import residual_blocks
from .inference import Predictor, top_k
from .schemas import Classified, ExplainResponse, Explanation, ModelInfo
from .settings import Settings
from .stored_model import stored_card

# An explanation starts once the model has been idle this long: between batches under load the
# queue is empty only while answers travel back as new requests
EXPLAIN_QUIET_S = 0.05

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
EXPLAIN_SECONDS = bentoml.metrics.Histogram(
    name="classifier_explain_seconds",
    documentation="Time the model took for one explanation's attributions (its gradients)",
)


class ServedModel:
    """A stored model on its device, answering batches of prepared pixels."""

    def __init__(self, tag: str, card: ModelCard, predictor: Predictor) -> None:
        self.tag = tag
        self.card = card
        self.predictor = predictor
        self.explainer = Explainer(predictor.model, card)
        # one model call at a time, whoever calls (the batcher's thread, BentoML's batcher)
        self.lock = threading.Lock()

    @classmethod
    def load(cls, tag: str, settings: Settings) -> ServedModel:
        """Loaded, checked, placed and warmed up, so that no request waits for it; compiled in
        the background meanwhile (see `Predictor.warm_up`)."""
        stored = bentoml.models.get(tag)
        network, card = load_model(stored.path, stored.info.metadata)
        predictor = Predictor(network, card, **settings.predictor_options())
        predictor.warm_up(compile_in_background=True)
        served = cls(str(stored.tag), card, predictor)
        # the first backward pass picks its kernels and allocates: not while a request waits
        crop = card.preprocessing.crop_size
        # (the explainer itself: a warm-up is no explanation for classifier_explain_seconds)
        served.explainer.explain(np.zeros((crop, crop, 3), np.uint8), 0)
        return served

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

    def attribute(self, pixels: np.ndarray, index: int) -> Attribution:
        """Where the model looked for class `index` in (crop, crop, 3) uint8 `pixels`."""
        with self.lock:
            started = time.perf_counter()
            attribution = self.explainer.explain(pixels, index)
            EXPLAIN_SECONDS.observe(time.perf_counter() - started)
        return attribution

    def explanation(self, pixels: np.ndarray, attribution: Attribution) -> Explanation:
        """The heatmap and the grid, as the API answers them: no model work, any thread."""
        return Explanation(
            method=attribution.method,
            layer=attribution.layer,
            description=self.explainer.describe(),
            heatmap_png=base64.b64encode(overlay_png(pixels, attribution.grid)).decode("ascii"),
            attributions=np.round(attribution.grid.astype(np.float64), 4).tolist(),
        )

    def explain(self, pixels: np.ndarray, index: int) -> Explanation:
        return self.explanation(pixels, self.attribute(pixels, index))

    def describe(self, settings: Settings) -> ModelInfo:
        card = self.card
        return ModelInfo(
            model=self.tag,
            architecture=card.architecture,
            residual_blocks=residual_blocks(self.predictor.model),
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
                "max_explanations": settings.max_explanations,
                "request_timeout_s": settings.request_timeout_s,
            },
            cpu=describe_cpu(),
        )


class BatchedModel:
    """A ServedModel behind the continuous batcher (`classifier.batching`): loaded, compiled and
    run on the batcher's own thread only, and started once it is ready to answer."""

    def __init__(self, tag: str, settings: Settings) -> None:
        self.explain_wait_s = settings.explain_wait_s
        self.heatmap_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="heatmap")

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

    @property
    def tag(self) -> str:
        return self.model.tag

    @property
    def card(self) -> ModelCard:
        return self.model.card

    async def answer(self, pixels: np.ndarray, k: int, phases: dict[str, float]) -> Classified:
        """One image's top `k`, batched with whatever else is queued; its wait and model time
        go in `phases`."""
        return await self.batcher.submit((pixels, k), phases)

    async def explain(
        self, pixels: np.ndarray, index: int | None, k: int, phases: dict[str, float]
    ) -> ExplainResponse:
        """Class `index` (None: the top one) explained on the model's thread in the batches'
        spare time: once the model has been idle for EXPLAIN_QUIET_S, or before the next batch
        once it has waited `explain_wait_s`. The classification that comes with it runs there
        too, as a batch of one: the same answer as /predict's, without a batch of its own to
        wait after. The heatmap is drawn on another thread."""
        model, started = self.model, time.perf_counter()

        def classify_and_attribute():
            [ranked] = model.answer([(pixels, model.card.num_classes)])
            target = ranked.predictions[0].index if index is None else index
            return ranked, target, model.attribute(pixels, target)

        ranked, target, attribution = await self.batcher.when_idle(
            classify_and_attribute, quiet_s=EXPLAIN_QUIET_S, due_s=self.explain_wait_s
        )
        phases["explain"] = time.perf_counter() - started
        explanation = await asyncio.get_running_loop().run_in_executor(
            self.heatmap_thread, model.explanation, pixels, attribution
        )
        return explain_response(self.tag, ranked, target, k, explanation)

    def describe(self, settings: Settings) -> ModelInfo:
        return self.model.describe(settings)

    def close(self) -> None:
        self.batcher.close(timeout=5)
        self.heatmap_thread.shutdown(wait=False, cancel_futures=True)


class ModelService:
    """The ImageModel service (CLASSIFIER_BATCHING=bentoml) through `bentoml.depends`, answering
    as BatchedModel does, except that its explanations take turns with the batches as they come,
    without waiting for an idle moment."""

    def __init__(self, service, tag: str) -> None:
        self.service = service
        self.tag, self.card = stored_card(tag)

    async def answer(self, pixels: np.ndarray, k: int, phases: dict[str, float]) -> Classified:
        started = time.perf_counter()
        [probabilities] = await _refused_as_busy(
            self.service.to_async.probabilities(pixels[np.newaxis])
        )
        phases["batch"] = time.perf_counter() - started
        return Classified(predictions=top_k(probabilities, self.card.labels, k))

    async def explain(
        self, pixels: np.ndarray, index: int | None, k: int, phases: dict[str, float]
    ) -> ExplainResponse:
        ranked = await self.answer(pixels, self.card.num_classes, phases)
        target = ranked.predictions[0].index if index is None else index
        started = time.perf_counter()
        answer = await _refused_as_busy(self.service.to_async.explain(pixels, target))
        phases["explain"] = time.perf_counter() - started
        explanation = Explanation.model_validate(answer)
        return explain_response(self.tag, ranked, target, k, explanation)

    def describe(self, settings: Settings) -> ModelInfo:
        return ModelInfo.model_validate(self.service.describe())

    def close(self) -> None:
        pass


def explain_response(
    tag: str, ranked: Classified, index: int, k: int, explanation: Explanation
) -> ExplainResponse:
    """The answer to /explain: every class ranked, cut to the top `k`, and the one explained."""
    [explained] = [p for p in ranked.predictions if p.index == index]
    return ExplainResponse(
        model=tag, predictions=ranked.predictions[:k], explained=explained, explanation=explanation
    )


async def _refused_as_busy(call):
    try:
        return await call
    except BentoMLException as error:  # its batcher's queue is longer than max_latency_ms
        if error.error_code != HTTPStatus.SERVICE_UNAVAILABLE:
            raise
        raise ClientError("the service is overloaded; retry shortly", 503, 1) from None
