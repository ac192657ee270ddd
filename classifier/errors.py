"""Errors that are the client's to fix (or to retry), each with the HTTP status it deserves."""

from __future__ import annotations


class ClientError(Exception):
    """A request the service refuses: `status` is 4xx, or 503 with `retry_after` seconds."""

    def __init__(self, message: str, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


class InvalidImage(ClientError):
    """One image could not be used: empty, not an image, corrupt, or too large."""
