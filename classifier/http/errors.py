"""The service's one error shape, {"error": "..."}: sent by middlewares, made of BentoML's."""

from __future__ import annotations

import json
import logging

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError
from starlette.responses import JSONResponse

from ..errors import ClientError
from .rewrite import RewriteJSON


async def send_error(send, status: int, message: str, headers: list | None = None) -> None:
    """An ASGI response {"error": message}, for middlewares that answer before the app does."""
    content = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *(headers or []),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})


def error_response(error: ClientError, ctx) -> JSONResponse:
    """The answer to a refused request, from inside an API."""
    # BentoML applies the context's status and headers to any response of an API that takes one
    ctx.response.status_code = error.status
    if error.retry_after:
        ctx.response.headers["Retry-After"] = str(error.retry_after)
    return JSONResponse({"error": error.message}, status_code=error.status)


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


class ReadableErrors(RewriteJSON):
    """ASGI middleware: every 4xx JSON body becomes {"error": "<what is wrong, and where>"}.

    BentoML answers validation errors with "1 validation error for Input" (the field is only in
    "detail") and wraps other client errors in a list; clients deserve one shape that names
    the problem.
    """

    def holds(self, start: dict) -> bool:
        content_type = dict(start["headers"]).get(b"content-type", b"")
        return 400 <= start["status"] < 500 and content_type.startswith(b"application/json")

    def rewrite(self, body: bytes) -> dict:
        return readable_error(body)


class ClientErrorsAreNotLogged(logging.Filter):
    """Drops BentoML's ERROR record, with traceback, of every request it refuses as invalid.

    A client's mistake is not a server fault, and hostile traffic must not flood the logs; the
    access log still has each of these requests, with its status. `request_models` names the
    input specs whose validation errors are the client's.
    """

    def __init__(self, request_models: set[str]) -> None:
        super().__init__()
        self.request_models = request_models

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):  # a request's, not one the service's code made
            return error.title not in self.request_models
        return not (isinstance(error, BentoMLException) and error.error_code < 500)
