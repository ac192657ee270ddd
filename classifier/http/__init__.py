"""The HTTP layer around the service: admission and limits, the API key, one error shape, the
documented statuses, strict request parsing, the web page and a polite shutdown.

    install_http_layer(ImageClassifier, settings, api_key)
"""

from __future__ import annotations

import logging

from starlette.middleware.cors import CORSMiddleware

from ..settings import Settings
from .admission import Admission
from .auth import OPEN_PATHS, ApiKeyAuth, is_open
from .errors import ClientErrorsAreNotLogged, ReadableErrors
from .openapi import DocumentedErrors
from .requests import REQUEST_MODELS


def install_http_layer(service, settings: Settings, api_key: str | None) -> None:
    """The middlewares around `service`'s APIs, outermost first: CORS answers preflights
    itself, then the key, admission, and the error shapes nearest to BentoML's own."""
    if settings.cors_origins:
        service.add_asgi_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type"],
            expose_headers=["retry-after", "server-timing"],
            max_age=600,
        )
    statuses = {
        408: "The body did not arrive in time",
        413: "Too large: the body, an image's pixels, or too many images",
        415: "Not a supported media type or image format",
        422: "A truncated or corrupt image",
        503: "Busy or shutting down: retry after Retry-After seconds",
        504: f"Not answered within {settings.request_timeout_s} s",
    }
    needs_key = None
    if api_key is not None:
        statuses[401] = "Missing or wrong API key (Authorization: Bearer <key>)"
        open_paths = OPEN_PATHS if settings.metrics_require_key else OPEN_PATHS | {"/metrics"}
        service.add_asgi_middleware(ApiKeyAuth, key=api_key, open_paths=open_paths)

        def needs_key(path: str) -> bool:
            return not is_open(path, open_paths)

    service.add_asgi_middleware(
        Admission,
        paths=frozenset(api.route for api in service.apis.values()),
        max_concurrency=settings.max_concurrency,
        max_receiving=settings.max_receiving,
        max_body_bytes=settings.max_request_bytes,
        body_timeout_s=settings.body_timeout_s,
        body_min_rate=settings.body_min_rate,
    )
    service.add_asgi_middleware(DocumentedErrors, statuses=statuses, needs_key=needs_key)
    service.add_asgi_middleware(ReadableErrors)
    logging.getLogger("bentoml._internal.server.http_app").addFilter(
        ClientErrorsAreNotLogged(REQUEST_MODELS)
    )
