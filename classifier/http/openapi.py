"""/docs.json completed: every status the APIs answer, and the API key scheme for Swagger UI."""

from __future__ import annotations

import json
from collections.abc import Callable

from .rewrite import RewriteJSON


class DocumentedErrors(RewriteJSON):
    """ASGI middleware: /docs.json lists every status the APIs answer, not only 400, 404 and 500.

    BentoML 1.4 documents those three for every API and offers no way to add others; all of the
    service's errors share the 400's shape, {"error": "..."}. With `needs_key`, the paths it
    names get the bearer scheme, so that Swagger UI's "Authorize" button sends the key.
    """

    def __init__(
        self, app, statuses: dict[int, str], needs_key: Callable[[str], bool] | None = None
    ) -> None:
        super().__init__(app)
        self.statuses = statuses
        self.needs_key = needs_key

    def applies(self, scope) -> bool:
        return scope["path"] == "/docs.json"

    def holds(self, start: dict) -> bool:
        return start["status"] == 200

    def rewrite(self, body: bytes) -> dict:
        return self.document(json.loads(body))

    def document(self, spec: dict) -> dict:
        for item in spec["paths"].values():
            operation = item.get("post", {})
            if "x-bentoml-name" in operation:  # the service's own APIs
                error = operation["responses"]["400"]["content"]
                for status, meaning in self.statuses.items():
                    operation["responses"][str(status)] = {"description": meaning, "content": error}
        if self.needs_key is not None:
            schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["apiKey"] = {"type": "http", "scheme": "bearer"}
            for path, item in spec["paths"].items():
                if self.needs_key(path):
                    for operation in item.values():
                        operation["security"] = [{"apiKey": []}]
        return spec
