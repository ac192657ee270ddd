"""A fixed number of places for one kind of work in a worker; beyond them, a polite 503 at once.

explanations = Slots(2, "explanations")
with explanations.take():   # ClientError 503, with Retry-After, when all are taken
    ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .errors import ClientError


class Slots:
    """Counted on one event loop (one per worker process), so no lock is needed."""

    def __init__(self, limit: int, what: str, retry_after: int = 1) -> None:
        self.limit = limit
        self.what = what
        self.retry_after = retry_after
        self.taken = 0

    @contextlib.contextmanager
    def take(self) -> Iterator[None]:
        if self.taken >= self.limit:
            busy = f"the service is handling its limit of {self.limit} {self.what}"
            raise ClientError(f"{busy}; retry shortly", 503, self.retry_after)
        self.taken += 1
        try:
            yield
        finally:
            self.taken -= 1
