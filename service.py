"""ImageClassifier: a ResNet50 from the BentoML model store behind HTTP, with adaptive batching.

Each request is parsed strictly, then decoded, validated, resized and cropped on its own (in a
worker thread), and only then joins an adaptive batch in `classify`, so one bad upload never
fails the requests batched with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import hmac
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, get_origin

import aiohttp
import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException, ServiceUnavailable
from fastapi import FastAPI
from pydantic import Field, ValidationError
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from classifier.artifact import ModelIntegrityError, load_model
from classifier.batching import Batcher
from classifier.errors import ClientError, InvalidImage
from classifier.inference import Predictor, top_k
from classifier.ingest import decode_base64
from classifier.schemas import (
    BatchItem,
    BatchResponse,
    ErrorResponse,
    ModelInfo,
    PredictResponse,
    PreparedImage,
)
from classifier.settings import get_settings


def _settings_or_exit():
    """The settings and the API key (None: no key), or a clear refusal to start (not a
    traceback) when they are invalid or the key file cannot be read."""
    try:
        settings = get_settings()
        return settings, settings.required_api_key()
    except ValueError as error:  # pydantic's ValidationError is one
        raise SystemExit(f"ImageClassifier refuses to start: {error}") from None


settings, API_KEY = _settings_or_exit()
INTERNAL_ATTEMPTS = 3
# Set while the service calls its own `classify` through BentoML's in-process client (batching
# = bentoml): that call runs the whole ASGI stack again, in the caller's context, for a request
# already let in, which must be neither counted again nor asked for a key.
INTERNAL_CALL = contextvars.ContextVar("internal_call", default=False)

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


class StrictForm(bentoml.IODescriptor):
    """multipart/form-data parsed strictly.

    BentoML's own parser fetches a URL given in a file field as text (nothing may download at
    run time here) and answers 500 to a binary part in a field it does not expect.
    """

    @classmethod
    async def from_http_request(cls, request, serde):
        _require_media_type(request, "multipart/form-data")
        try:
            form = await request.form(max_files=settings.max_batch_images, max_fields=16)
        except Exception as error:  # malformed bodies surface as several exception types
            detail = str(getattr(error, "detail", error))
            too_many = "too many files" in detail.lower()
            raise BentoMLException(
                f"too many images: the limit is {settings.max_batch_images} per request"
                if too_many
                else f"malformed multipart body: {detail}",
                error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE
                if too_many
                else HTTPStatus.BAD_REQUEST,
            ) from None
        data = {}
        for key in set(form.keys()) & set(cls.model_fields):
            values = form.getlist(key)
            is_file = [isinstance(value, UploadFile) for value in values]
            if key in cls.multipart_fields:
                if not all(is_file):
                    raise BentoMLException(
                        f"field '{key}' must be a file upload", error_code=HTTPStatus.BAD_REQUEST
                    )
                many = get_origin(cls.model_fields[key].annotation) is list
                data[key] = values if many else values[0]
            elif any(is_file):
                raise BentoMLException(
                    f"field '{key}' must be text, not a file", error_code=HTTPStatus.BAD_REQUEST
                )
            else:
                data[key] = values[-1]
        return cls.model_validate(data)


class StrictJSON(bentoml.IODescriptor):
    """An application/json body, validated by pydantic and nothing else."""

    @classmethod
    async def from_http_request(cls, request, serde):
        _require_media_type(request, "application/json")
        return cls.model_validate_json(await request.body() or b"{}")


def _require_media_type(request, expected: str) -> None:
    got = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if got != expected:
        raise BentoMLException(
            f"send {expected}, not {got or 'a body without a Content-Type'}",
            error_code=HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        )


class PredictForm(StrictForm):
    image: ImageFile
    top_k: TopK = None


class PredictBatchForm(StrictForm):
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


info_app = FastAPI(title="ImageClassifier", docs_url=None, redoc_url=None, openapi_url=None)

# The page at /ui (classifier/web): its files, read once. It loads nothing from anywhere else and
# says so to the browser; it calls the APIs with the key the person enters, if any.
WEB_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
WEB_FILES = {  # name: (body, media type, ETag)
    file.name: (
        body := file.read_bytes(),
        f"{WEB_TYPES[file.suffix]}; charset=utf-8",
        f'"{hashlib.sha256(body).hexdigest()[:32]}"',
    )
    for file in (Path(__file__).parent / "classifier" / "web").iterdir()
    if file.suffix in WEB_TYPES
}
WEB_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidated with the ETag: a new release shows at once
}


def web_file(request: Request) -> Response:
    name = request.path_params.get("name", "index.html")
    if name not in WEB_FILES:
        return JSONResponse({"error": f"no such file in the web page: {name}"}, status_code=404)
    body, media_type, etag = WEB_FILES[name]
    headers = {**WEB_HEADERS, "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=HTTPStatus.NOT_MODIFIED, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


web_app = Starlette(routes=[Route("/", web_file), Route("/{name}", web_file)])


@bentoml.asgi_app(info_app, path="/")
@bentoml.asgi_app(web_app, path="/ui")  # mounted first: "/" would take /ui too
@bentoml.service(
    traffic={"timeout": settings.request_timeout_s},
    workers=settings.workers,
    **({"resources": {"gpu": settings.gpus}} if settings.gpus else {}),
    threads=1,  # one model call at a time; adaptive batching fills it instead
)
class ImageClassifier:
    """Classify images with a ResNet50 (ImageNet, fine-tuned or the offline demo model)."""

    model = bentoml.models.BentoModel(settings.model_tag)  # what `bentoml build` packages

    def __init__(self) -> None:
        # BentoML's batcher (`classify`) and ours must never run the model at the same time
        self.model_lock = threading.Lock()
        self.batcher = None
        if settings.batching == "continuous":
            # the model is loaded, placed and warmed up on the batcher's thread: see Batcher
            self.batcher = Batcher(
                self._run_batch,
                setup=self._load_model,
                max_batch_size=settings.max_batch_size,
                max_queue=settings.max_queue,
                on_batch=lambda size, waited, ran: QUEUE_SECONDS.observe(waited),
                take=lambda queued: self.predictor.batch_size_for(queued),
                name="model",
            )
        else:
            self._load_model()
        # Decoding more images at once than there are cores only slows the model down;
        # uploads wait their turn here instead.
        self.prepare_pool = ThreadPoolExecutor(
            settings.prepare_threads or len(os.sched_getaffinity(0)), thread_name_prefix="prepare"
        )
        _refuse_new_connections_on_sigterm()

    @bentoml.on_deployment
    def check_model() -> None:
        """Once per `bentoml serve`, in the main process, before any worker starts: a corrupt
        model stops the server with one clear message instead of crashing workers in a loop."""
        tag = _model_tag()
        try:
            stored = bentoml.models.get(tag)
            load_model(stored.path, stored.info.metadata)  # the card, the SHA-256, the weights
        except ModelIntegrityError as error:
            raise SystemExit(
                f"ImageClassifier refuses to start: the model {tag} failed its integrity check "
                f"({error}). Save the model again with `python -m train ...`, or set "
                "CLASSIFIER_MODEL_TAG to a good model from `bentoml models list`."
            ) from None

    @bentoml.on_shutdown
    def stop(self) -> None:
        """After the server has answered every request it accepted (SIGTERM)."""
        if self.batcher is not None:
            self.batcher.close(timeout=5)
        self.prepare_pool.shutdown(wait=False, cancel_futures=True)

    def _load_model(self) -> None:
        stored = bentoml.models.get(_model_tag())
        network, self.card = load_model(stored.path, stored.info.metadata)
        self.tag = str(stored.tag)
        self.predictor = Predictor(network, self.card, **settings.predictor_options())
        # compiled and warmed up before /readyz answers, so that no request waits for it
        self.predictor.warm_up()

    @bentoml.api(
        batchable=True,
        max_batch_size=settings.max_batch_size,
        max_latency_ms=settings.max_latency_ms,
        input_spec=ClassifyBody,
    )
    def classify(self, images: list[PreparedImage]) -> list[BatchItem]:
        """Classify prepared 224x224 RGB pixels (for clients that resize themselves)."""
        size = self.card.preprocessing.crop_size
        expected = size * size * 3
        results: list[BatchItem | None] = [
            None
            if len(image.pixels) == expected
            else BatchItem(error=f"pixels must be {size}x{size}x3 = {expected} bytes")
            for image in images
        ]
        valid = [i for i, result in enumerate(results) if result is None]
        batch = [
            (np.frombuffer(images[i].pixels, np.uint8).reshape(size, size, 3), images[i].top_k)
            for i in valid
        ]
        if self.batcher is None:
            answers = self._run_batch(batch)
        else:  # torch runs on the model thread only (see Batcher), joining its batches
            try:
                answers = self.batcher.run(batch)
            except ClientError as error:  # the queue is full or the service stops
                raise ServiceUnavailable(error.message) from None
        for i, answer in zip(valid, answers):
            results[i] = answer
        return results

    def _run_batch(self, batch: list[tuple[np.ndarray, int]]) -> list[BatchItem]:
        """(pixels, top_k) pairs through the model at once."""
        if not batch:
            return []
        with self.model_lock:
            started = time.perf_counter()
            probabilities = self.predictor.predict(np.stack([pixels for pixels, _ in batch]))
            MODEL_SECONDS.observe(time.perf_counter() - started)
            BATCH_SIZE.observe(len(batch))
        labels = self.card.labels
        return [
            BatchItem(predictions=top_k(probabilities[row], labels, k))
            for row, (_, k) in enumerate(batch)
        ]

    @bentoml.api(input_spec=PredictForm)
    async def predict(
        self, image: Path, top_k: int | None, ctx: bentoml.Context
    ) -> PredictResponse:
        """Classify one uploaded image (multipart field `image`)."""
        timing = Timing(ctx)
        try:
            result = await self._answer(image.read_bytes, self._top_k(top_k), timing)
        except ClientError as error:
            return _error(error, ctx)
        return PredictResponse(model=self.tag, predictions=result.predictions)

    @bentoml.api(input_spec=PredictBatchForm)
    async def predict_batch(
        self, images: list[Path], top_k: int | None, ctx: bentoml.Context
    ) -> BatchResponse:
        """Classify several uploaded images; an unreadable one gets its own `error` entry."""
        timing = Timing(ctx)

        async def answer(path: Path) -> BatchItem:
            try:
                return await self._answer(path.read_bytes, top_k, timing)
            except InvalidImage as error:
                return BatchItem(error=error.message)

        try:
            top_k = self._top_k(top_k)
            results = await asyncio.gather(*(answer(path) for path in images))
        except ClientError as error:
            return _error(error, ctx)
        return BatchResponse(model=self.tag, results=results)

    @bentoml.api(input_spec=Base64Body)
    async def predict_base64(
        self, image: str, top_k: int | None, ctx: bentoml.Context
    ) -> PredictResponse:
        """Classify one image sent as base64 in JSON (for mobile and browser clients)."""
        timing = Timing(ctx)
        try:
            k = self._top_k(top_k)
            result = await self._answer(lambda: decode_base64(image), k, timing)
        except ClientError as error:
            return _error(error, ctx)
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
                "request_timeout_s": settings.request_timeout_s,
            },
        )

    def _top_k(self, k: int | None) -> int:
        if k is None:
            return min(settings.default_top_k, self.card.num_classes)
        if k > self.card.num_classes:
            raise ClientError(
                f"top_k is {k}, but the model has only {self.card.num_classes} labels"
            )
        return k

    async def _answer(self, read, k: int, timing: Timing) -> BatchItem:
        """Bytes from `read()` to an answer: prepared in the decode pool, then batched."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        pixels = await loop.run_in_executor(self.prepare_pool, self._prepare, read)
        timing.add("prepare", time.perf_counter() - started)
        if self.batcher is None:
            started = time.perf_counter()
            answer = await self._classify_via_bentoml(
                PreparedImage(pixels=pixels.tobytes(), top_k=k)
            )
            timing.add("batch", time.perf_counter() - started)
            return answer
        phases: dict[str, float] = {}
        answer = await self.batcher.submit((pixels, k), phases)
        for name, seconds in phases.items():
            timing.add(name, seconds)
        return answer

    def _prepare(self, read) -> np.ndarray:
        """Runs in a worker thread: bytes to validated, resized, cropped pixels."""
        # No byte limit here: RequestSizeLimit already bounds every body, so every image in it.
        return self.card.preprocessing.prepare_bytes(
            read(), max_pixels=settings.max_image_pixels, fast_jpeg=settings.fast_jpeg_decode
        )

    async def _classify_via_bentoml(self, image: PreparedImage) -> BatchItem:
        """One image through BentoML's adaptive batcher, by calling `classify` over BentoML's
        in-process client (settings.batching == "bentoml")."""
        for attempt in range(INTERNAL_ATTEMPTS):
            token = INTERNAL_CALL.set(True)
            try:
                [answer] = await self.to_async.classify([image])
                return BatchItem.model_validate(answer)
            except BentoMLException as error:
                if error.error_code == HTTPStatus.SERVICE_UNAVAILABLE:
                    raise ClientError("the service is overloaded; retry shortly", 503, 1) from None
                raise
            except aiohttp.ClientConnectionError:
                # BentoML's in-process client (bentoml 1.4.39) replaces its session every 100
                # calls and closes the old one under the calls still in flight; classify is
                # idempotent, so send it again on the new session.
                if attempt == INTERNAL_ATTEMPTS - 1:
                    raise
            finally:
                INTERNAL_CALL.reset(token)


class Timing:
    """Seconds per phase of one request, sent back as a Server-Timing header (milliseconds).

    For several images (/predict_batch), each phase is the slowest image's.
    """

    def __init__(self, ctx: bentoml.Context) -> None:
        self.phases: dict[str, float] = {}
        self.headers = ctx.response.headers

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = max(seconds, self.phases.get(phase, 0.0))
        self.headers["Server-Timing"] = ", ".join(
            f"{name};dur={value * 1000:.1f}" for name, value in self.phases.items()
        )


def _refuse_new_connections_on_sigterm() -> None:
    """On SIGTERM, stop the kernel from queueing new connections for this server.

    uvicorn stops accepting and lets the requests in flight finish, but BentoML's supervisor
    keeps the listening socket open until its workers have exited, so during that drain new
    clients would wait in the kernel's backlog for nothing and then be reset. Shutting down the
    socket's reading side makes them refused at once (or reset, if they came in the instant
    before), as a load balancer expects of a stopping backend; none is served. The socket is
    the whole server's, shared by every worker: SIGTERM is for stopping the server, never one
    worker. Not in development mode, where `--reload` restarts workers on the same socket.
    """
    argv = sys.argv
    if "--fd" not in argv or "--development-mode" in argv:
        return  # not a `bentoml serve` worker
    listener = socket.socket(fileno=os.dup(int(argv[argv.index("--fd") + 1])))
    previous = signal.getsignal(signal.SIGTERM)

    def refuse() -> None:
        with contextlib.suppress(OSError):  # another worker got there first
            listener.shutdown(socket.SHUT_RD)

    def on_sigterm(signum, frame) -> None:
        # a moment later: uvicorn first stops accepting, so no accepted connection is cut
        threading.Timer(0.3, refuse).start()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def _model_tag() -> str:
    """The exact model a built Bento was packaged with; else the configured tag.

    BentoML pins the versions of Hugging Face models in a Bento, not of BentoModels: without
    this, "resnet50:latest" would mean whatever was saved last on the serving machine.
    """
    bento = getattr(ImageClassifier, "bento", None)
    if bento is None:
        return settings.model_tag
    [service] = [info for info in bento.info.services if info.name == ImageClassifier.name]
    return str(service.models[0].tag)


@info_app.get("/info", response_model=ModelInfo, tags=["Service APIs"])
def info() -> ModelInfo:
    """The served model: tag, weights source, labels, preprocessing, precision, batching."""
    return bentoml.get_current_service().describe()


def _error(error: ClientError, ctx: bentoml.Context) -> JSONResponse:
    # BentoML applies the context's status and headers to any response of an API that takes one
    ctx.response.status_code = error.status
    if error.retry_after:
        ctx.response.headers["Retry-After"] = str(error.retry_after)
    body = ErrorResponse(error=error.message).model_dump()
    return JSONResponse(body, status_code=error.status)


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
        too_large = replaced = False

        async def counting_receive():
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise ValueError("request body too large")
            return message

        async def guarded_send(message) -> None:
            # The app turns the exception above into a 500; answer 413 in its place.
            nonlocal replaced
            if not too_large:
                return await send(message)
            if not replaced:
                replaced = True
                await self._reject(send)

        await self.app(scope, counting_receive, guarded_send)

    async def _reject(self, send) -> None:
        limit = f"the request body is larger than the limit of {self.max_bytes} bytes"
        await _send_json(send, 413, {"error": limit}, [(b"connection", b"close")])


class ApiKeyAuth:
    """ASGI middleware: every path but `open_paths` needs `Authorization: Bearer <key>`, else 401.

    Keys are compared as SHA-256 digests with `hmac.compare_digest`: constant time, and the same
    length whatever the client sends. Neither the key nor what a client sent is ever logged.
    """

    def __init__(self, app, key: str, open_paths: frozenset[str]) -> None:
        self.app = app
        self.digest = hashlib.sha256(key.encode()).digest()
        self.open_paths = open_paths

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] not in ("http", "websocket")
            or INTERNAL_CALL.get()
            or self.is_open(scope["path"], self.open_paths)
            or self._authorized(scope)
        ):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":  # none today; refused all the same
            return await send({"type": "websocket.close", "code": 1008})
        await _send_json(
            send,
            401,
            {"error": "missing or wrong API key: send 'Authorization: Bearer <key>'"},
            [(b"www-authenticate", b'Bearer realm="classifier"')],
        )

    @staticmethod
    def is_open(path: str, open_paths: frozenset[str]) -> bool:
        return path in open_paths or path.startswith(("/static_content/", "/ui/"))

    def _authorized(self, scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        given = hashlib.sha256(token.strip()).digest()
        return hmac.compare_digest(given, self.digest) and scheme.lower() == b"bearer"


class ConcurrencyLimit:
    """ASGI middleware: at most `limit` requests to `paths` at once; more get 503 at once.

    Refused with Retry-After before any work is done on them, so an overloaded service answers
    the excess in milliseconds instead of letting it time out in a queue. The refused body is
    read and dropped first (up to `max_bytes`): closing a connection with unread data in it
    makes the kernel reset it, and the client would see a broken connection instead of the 503.
    A request gives its slot back as its response is sent, not when the app returns: the
    client may already be sending its next request while the app cleans up (uvicorn starts it
    on a kept-alive connection as soon as the response is complete), and that request must
    find the slot free.
    """

    def __init__(self, app, limit: int, paths: frozenset[str], max_bytes: int) -> None:
        self.app = app
        self.limit = limit
        self.paths = paths
        self.max_bytes = max_bytes
        self.active = 0  # one event loop per worker process: no lock needed

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths or INTERNAL_CALL.get():
            return await self.app(scope, receive, send)
        if self.active >= self.limit:
            return await self._refuse(receive, send)
        self.active += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.active -= 1

        async def releasing_send(message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                release()  # before the last bytes leave: the client's next request may follow
            await send(message)

        try:
            await self.app(scope, receive, releasing_send)
        finally:
            release()

    async def _refuse(self, receive, send) -> None:
        received, more = 0, True
        while more and received <= self.max_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client is gone
            received += len(message.get("body", b""))
            more = message.get("more_body", False)
        headers = [(b"retry-after", b"1")]
        if more:
            headers.append((b"connection", b"close"))
        busy = f"the service is handling its limit of {self.limit} requests; retry shortly"
        await _send_json(send, 503, {"error": busy}, headers)


class RewriteJSON:
    """ASGI middleware base: responses that `holds` picks are buffered and sent on as the JSON
    that `rewrite` makes of their body, with the same status and headers."""

    def __init__(self, app) -> None:
        self.app = app

    def applies(self, scope) -> bool:
        return True

    def holds(self, start: dict) -> bool:
        raise NotImplementedError

    def rewrite(self, body: bytes) -> dict:
        raise NotImplementedError

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.applies(scope):
            return await self.app(scope, receive, send)
        held = None
        chunks: list[bytes] = []

        async def rewriting_send(message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and self.holds(message):
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                return await send(message)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                headers = [(k, v) for k, v in held["headers"] if k.lower() != b"content-length"]
                await _send_json(send, held["status"], self.rewrite(b"".join(chunks)), headers)

        await self.app(scope, receive, rewriting_send)


class ReadableErrors(RewriteJSON):
    """Every 4xx JSON body becomes {"error": "<what is wrong, and where>"}.

    BentoML answers validation errors with "1 validation error for Input" (the field is only in
    "detail") and wraps other client errors in a list; clients deserve one shape that names
    the problem.
    """

    def holds(self, start: dict) -> bool:
        content_type = dict(start["headers"]).get(b"content-type", b"")
        return 400 <= start["status"] < 500 and content_type.startswith(b"application/json")

    def rewrite(self, body: bytes) -> dict:
        return readable_error(body)


def readable_error(body: bytes) -> dict:
    """BentoML's error bodies in the service's one error shape."""
    try:
        data = json.loads(body)
    except ValueError:
        return {"error": body.decode("utf-8", "replace")}
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]  # BentoMLException 4xx bodies come wrapped in a list
    if not isinstance(data, dict):
        return {"error": str(data)}
    details = data.get("detail")
    if isinstance(details, list) and details:
        problems = []
        for detail in details:
            where = ".".join(str(part) for part in detail.get("loc", ()))
            problems.append(f"{where}: {detail.get('msg')}" if where else str(detail.get("msg")))
        data["error"] = "invalid request: " + "; ".join(problems)
        del data["detail"]  # the schema (BentoML's InvalidArgument) documents `detail` as a string
    return data


async def _send_json(send, status: int, body: dict, headers: list) -> None:
    content = json.dumps(body).encode()
    headers = [
        *(header for header in headers if header[0].lower() != b"content-type"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


class DocumentedErrors(RewriteJSON):
    """/docs.json lists every status the APIs answer, not only 400, 404 and 500.

    BentoML 1.4 documents those three for every API and offers no way to add others; all of the
    service's errors share the 400's shape, {"error": "..."}.
    """

    def __init__(self, app, statuses: dict[int, str], keyed_paths=None) -> None:
        super().__init__(app)
        self.statuses = statuses
        self.keyed_paths = keyed_paths  # path -> needs the API key? None: no key at all

    def applies(self, scope) -> bool:
        return scope["path"] == "/docs.json"

    def holds(self, start: dict) -> bool:
        return start["status"] == 200

    def rewrite(self, body: bytes) -> dict:
        return self._document(json.loads(body))

    def _document(self, spec: dict) -> dict:
        for item in spec["paths"].values():
            operation = item.get("post", {})
            if "x-bentoml-name" in operation:  # the service's own APIs
                error = operation["responses"]["400"]["content"]
                for status, meaning in self.statuses.items():
                    operation["responses"][str(status)] = {"description": meaning, "content": error}
        if self.keyed_paths is not None:  # Swagger UI's "Authorize" button then sends the key
            schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["apiKey"] = {"type": "http", "scheme": "bearer"}
            for path, item in spec["paths"].items():
                if self.keyed_paths(path):
                    for operation in item.values():
                        operation["security"] = [{"apiKey": []}]
        return spec


class ClientErrorsAreNotLogged(logging.Filter):
    """Drops BentoML's ERROR record, with traceback, of every request it refuses as invalid.

    A client's mistake is not a server fault, and hostile traffic must not flood the logs; the
    access log still has each of these requests, with its status.
    """

    REQUESTS = {spec.__name__ for spec in (PredictForm, PredictBatchForm, Base64Body, ClassifyBody)}

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):  # a request's, not one the service's code made
            return error.title not in self.REQUESTS
        return not (isinstance(error, BentoMLException) and error.error_code < 500)


logging.getLogger("bentoml._internal.server.http_app").addFilter(ClientErrorsAreNotLogged())


def _add_middlewares() -> None:
    """Outermost first: CORS answers preflights itself, then the key, the concurrency limit."""
    if settings.cors_origins:
        ImageClassifier.add_asgi_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type"],
            expose_headers=["retry-after", "server-timing"],
            max_age=600,
        )
    error_statuses = {
        413: "Too large: the body, an image's pixels, or too many images",
        415: "Not a supported media type or image format",
        422: "A truncated or corrupt image",
        503: "Busy or shutting down: retry after Retry-After seconds",
        504: f"Not answered within {settings.request_timeout_s} s",
    }
    keyed_paths = None
    if API_KEY is not None:
        error_statuses[401] = "Missing or wrong API key (Authorization: Bearer <key>)"
        # health probes; the docs and the schema BentoML's Python client reads first
        open_paths = {"/livez", "/readyz", "/healthz", "/", "/docs.json", "/schema.json", "/ui"}
        if not settings.metrics_require_key:
            open_paths.add("/metrics")
        open_paths = frozenset(open_paths)
        ImageClassifier.add_asgi_middleware(ApiKeyAuth, key=API_KEY, open_paths=open_paths)

        def keyed_paths(path: str) -> bool:
            return not ApiKeyAuth.is_open(path, open_paths)

    ImageClassifier.add_asgi_middleware(
        ConcurrencyLimit,
        limit=settings.max_concurrency,
        paths=frozenset(api.route for api in ImageClassifier.apis.values()),
        max_bytes=settings.max_request_bytes,
    )
    ImageClassifier.add_asgi_middleware(
        DocumentedErrors, statuses=error_statuses, keyed_paths=keyed_paths
    )
    ImageClassifier.add_asgi_middleware(ReadableErrors)
    ImageClassifier.add_asgi_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes)


_add_middlewares()
