"""Send many files to the service: batches, bounded concurrency, polite retries, a clean stop.

httpx rather than BentoML's client: retrying politely needs each answer's status and Retry-After
header, which BentoML's client turns into an exception without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import mimetypes
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .explaining import Explaining
from .records import IMAGE_ERROR_STATUSES, Record

DEFAULT_IMAGES_PER_REQUEST = 8  # measured by bench.bulk: about the fastest, small model or large
MAX_WAIT_S = 60  # the longest Retry-After honoured, and the longest backoff
# answers that may differ if the same request is sent again: the service was busy, a proxy failed
RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
MULTIPART_OVERHEAD = 512  # bytes per file in a multipart body, besides the file itself


class Refused(Exception):
    """The service refuses every request (a missing or wrong API key): no use going on."""


@dataclass
class Limits:
    """What the service accepts, from its /info."""

    model: str
    labels: list[str]
    max_batch_size: int
    max_concurrency: int
    max_batch_images: int
    max_request_bytes: int
    max_explanations: int

    @classmethod
    def from_info(cls, info: dict) -> Limits:
        limits = info.get("limits", {})
        return cls(
            model=info["model"],
            labels=info["labels"],
            max_batch_size=info.get("max_batch_size", 16),
            max_concurrency=limits.get("max_concurrency", 64),
            max_batch_images=limits.get("max_batch_images", 32),
            max_request_bytes=limits.get("max_request_bytes", 32 * 2**20),
            max_explanations=limits.get("max_explanations", 2),
        )

    def concurrency_for(self, images_per_request: int) -> int:
        """Enough requests in flight for two of the model's batches: one running, the next
        ready; never more than a worker handles at once."""
        wanted = -(-2 * self.max_batch_size // images_per_request)
        return max(1, min(self.max_concurrency, wanted))


@dataclass
class Sender:
    """Sends files as /predict (one) or /predict_batch (several), or with `explaining` to
    /explain (one at a time); records what came back.

    Once `stopping` is set it sends nothing more: a request waiting to be retried returns no
    records, so that its files stay unanswered for --resume.
    """

    client: httpx.AsyncClient
    top_k: int | None
    retries: int = 8
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    sleep: Callable[[float], Awaitable] | None = None  # tests replace the wait between tries
    retried: int = 0  # requests sent again after a busy answer or a failed connection
    explaining: Explaining | None = None

    async def send(self, paths: list[Path]) -> list[Record]:
        try:
            contents = [path.read_bytes() for path in paths]
        except OSError as error:  # one unreadable file: the others still go
            if len(paths) == 1:
                return [Record(path=str(paths[0]), error=f"cannot read: {error.strerror}")]
            return await self._one_by_one(paths)
        for attempt in range(self.retries + 1):
            if self.stopping.is_set():
                return []
            try:
                response = await self._post(paths, contents)
            except httpx.TransportError as error:
                reason, status, wait = f"no answer: {error!r}", None, None
            else:
                reason, status = _error_message(response), response.status_code
                if status == 200:
                    try:
                        return self._answers(paths, response.json())
                    except (ValueError, KeyError, TypeError) as error:  # a proxy's page, say
                        return self._failed(paths, f"not the service's answer: {error!r}", 200)
                if status in (401, 403):
                    raise Refused(f"{status}: {reason}")
                if status in IMAGE_ERROR_STATUSES and len(paths) > 1:
                    # refused as a whole (too large, say): each on its own gets its own answer
                    return await self._one_by_one(paths)
                if status not in RETRYABLE_STATUSES:
                    return self._failed(paths, reason, status)
                wait = retry_after(response)
            if attempt < self.retries:
                self.retried += 1
                await self._pause(backoff(attempt, wait))
        return self._failed(paths, f"{reason} ({self.retries + 1} tries)", status)

    async def _one_by_one(self, paths: list[Path]) -> list[Record]:
        return [record for path in paths for record in await self.send([path])]

    async def _pause(self, seconds: float) -> None:
        """Wait before trying again; cut short when the run is stopping."""
        if self.sleep is not None:
            await self.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _post(self, paths: list[Path], contents: list[bytes]) -> httpx.Response:
        data = {"top_k": str(self.top_k)} if self.top_k else {}
        parts = [(path.name, content, _mime(path)) for path, content in zip(paths, contents)]
        if self.explaining is not None:
            [part] = parts
            if self.explaining.label is not None:
                data["label"] = self.explaining.label
            return await self.client.post("/explain", files={"image": part}, data=data)
        if len(paths) == 1:
            return await self.client.post("/predict", files={"image": parts[0]}, data=data)
        files = [("images", part) for part in parts]
        return await self.client.post("/predict_batch", files=files, data=data)

    def _answers(self, paths: list[Path], answer: dict) -> list[Record]:
        if self.explaining is not None:
            return [self.explaining.record(path, answer) for path in paths]
        model = answer.get("model")
        results = answer["results"] if "results" in answer else [answer]
        if len(results) != len(paths):
            raise ValueError(f"{len(results)} results for {len(paths)} images")
        return [
            Record(path=str(path), model=model, predictions=result["predictions"], status=200)
            if "predictions" in result
            else Record(
                path=str(path), model=model, error=result["error"], status=result.get("status")
            )
            for path, result in zip(paths, results)
        ]

    @staticmethod
    def _failed(paths: list[Path], reason: str, status: int | None) -> list[Record]:
        return [Record(path=str(path), error=reason, status=status) for path in paths]


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the service asked us to wait, from Retry-After in seconds or as a date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def backoff(attempt: int, asked: float | None) -> float:
    """What the service asked for, else exponential from half a second; with jitter, so that
    clients refused together do not all come back together; never over MAX_WAIT_S (a longer
    Retry-After is cut to it)."""
    base = asked if asked is not None else 0.5 * 2**attempt
    return min(MAX_WAIT_S, base * random.uniform(1.0, 1.5))


def batches(paths: list[Path], images: int, max_bytes: int) -> Iterator[list[Path]]:
    """Consecutive groups of at most `images` files whose body stays under `max_bytes`."""
    group: list[Path] = []
    size = 0
    for path in paths:
        try:
            length = path.stat().st_size + MULTIPART_OVERHEAD
        except OSError:
            length = MULTIPART_OVERHEAD  # sending it records why it cannot be read
        if group and (len(group) == images or size + length > max_bytes):
            yield group
            group, size = [], 0
        group.append(path)
        size += length
    if group:
        yield group


@dataclass
class Run:
    """How a bulk run went."""

    sent: int = 0
    answered: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # error message: files
    retried: int = 0  # requests sent again
    interrupted: bool = False
    refused: str | None = None  # why the service refused every request
    seconds: float = 0.0


async def send_all(
    groups: list[list[Path]],
    sender: Sender,
    concurrency: int,
    on_records: Callable[[list[Record]], None],
) -> Run:
    """Send every group, `concurrency` requests at a time. The first SIGINT or SIGTERM stops
    sending and waits for the answers in flight (each is recorded, so nothing answered is ever
    sent again); a second one stops at once."""
    run = Run()
    started = time.perf_counter()
    pending = iter(groups)
    stopping = sender.stopping

    async def worker() -> None:
        for group in pending:
            if stopping.is_set():
                return
            try:
                records = await sender.send(group)
            except Refused as error:
                run.refused = str(error)
                stopping.set()
                return
            except Exception as error:  # noqa: BLE001 - one odd answer must not end the run
                records = Sender._failed(group, f"client error: {error!r}", None)
            run.sent += len(records)
            for record in records:
                if record.predictions is not None:
                    run.answered += 1
                else:
                    run.failed[record.error] = run.failed.get(record.error, 0) + 1
            on_records(records)

    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if stopping.is_set():
            for task in workers:
                task.cancel()
            return
        stopping.set()
        run.interrupted = True
        print(
            "\nstopping: waiting for the answers in flight (again to stop at once)",
            file=sys.stderr,
        )

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    try:
        await asyncio.gather(*workers)
    except asyncio.CancelledError:
        pass
    except BaseException:  # writing the records failed: stop the others before saying why
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        run.seconds = time.perf_counter() - started
    return run


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


def _mime(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"
