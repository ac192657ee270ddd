"""Continuous batching: concurrent single-image calls grouped into model batches in process.

One model thread takes whatever is queued, up to `max_batch_size`, the moment the previous batch
is done: an idle model answers a lone request at once, and under load the queue that builds up
while a batch runs becomes the next batch. Nothing waits on a timer and nothing is serialised:
callers hand over numpy arrays and get Python objects back on their own event loop.

BentoML's batchable APIs do the same grouping in its `CorkDispatcher`, in a service of their own
that the API service calls (CLASSIFIER_BATCHING=bentoml); `python -m bench` measures both ways in
the same run (BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from classifier.errors import ClientError

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class Overloaded(ClientError):
    """The queue is full: refused at once, with a hint of when to come back."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("the service is busy; retry shortly", 503, retry_after)


@dataclass
class _Job(Generic[Item, Result]):
    item: Item
    future: asyncio.Future | concurrent.futures.Future
    loop: asyncio.AbstractEventLoop | None  # None: a caller blocked in `run` on another thread
    queued_at: float
    timing: dict[str, float] | None

    def settle(self, result, error: Exception | None) -> None:
        if self.loop is None:
            _settle(self.future, result, error)
        else:
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)


@dataclass(eq=False)
class _IdleWork:
    job: _Job
    quiet_s: float
    due: float  # perf_counter time after which it runs before the next batch


class Batcher(Generic[Item, Result]):
    """`await batcher.submit(item)` returns `run_batch([... item ...])`'s answer for that item.

    `run_batch` runs on the batcher's own thread, one batch at a time, and must return one
    result per item in order. An exception it raises goes to every caller of that batch.
    `setup()`, if given, runs first on that same thread, and the constructor returns once it has
    (raising what it raised): give it everything that touches the model. GNU OpenMP gives each
    thread that starts parallel work a pool of its own, and once there are more such threads
    than cores it stops letting them spin between parallel regions, which makes a single-image
    forward pass about a third slower on 2 cores; so only this thread should ever run torch.
    `on_batch(size, queue_seconds, run_seconds)` is called after each batch (for metrics).
    `take(queued)`, if given, says how many of the queued items make the next batch (at least
    one, at most `max_batch_size`): a compiled model prefers sizes it was compiled for.
    `when_idle(work)` runs other model work on the same thread, in the batches' spare time.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Item]], Sequence[Result]],
        *,
        max_batch_size: int,
        max_queue: int,
        setup: Callable[[], None] | None = None,
        on_batch: Callable[[int, float, float], None] | None = None,
        take: Callable[[int], int] | None = None,
        name: str = "batcher",
    ) -> None:
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.take = take
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._queue: collections.deque[_Job] = collections.deque()
        self._ready = threading.Condition()
        self._closed = False
        self._seconds_per_item = 0.05  # refined after each batch; only used for Retry-After
        self._idle_work: collections.deque[_IdleWork] = collections.deque()
        self._last_busy = 0.0  # an item last queued, a batch or idle work last ended (perf_counter)
        self._setup_error: BaseException | None = None
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(setup, ready), name=name, daemon=True
        )
        self._thread.start()
        ready.wait()
        if self._setup_error is not None:
            raise self._setup_error

    async def submit(self, item: Item, timing: dict[str, float] | None = None) -> Result:
        """`item`'s result; `timing`, if given, gets the seconds spent in "queue" and "model"."""
        loop = asyncio.get_running_loop()
        [job] = self._enqueue([_Job(item, loop.create_future(), loop, time.perf_counter(), timing)])
        return await job.future

    async def when_idle(
        self, work: Callable[[], Result], *, quiet_s: float, due_s: float
    ) -> Result:
        """`work()`'s result, run on the batcher's thread once the model has been idle for
        `quiet_s` seconds (no batch running, no item queued), so that it never holds up a batch
        that was waiting; if that moment has not come within `due_s`, it takes its turn before
        the next batch instead, so that a busy model delays each batch by at most one piece of
        such work every `due_s` seconds.

        The quiet spell matters under load: between one batch and the next the queue is empty
        for as long as the answers take to come back as new requests.
        """
        loop = asyncio.get_running_loop()
        job = _Job(work, loop.create_future(), loop, time.perf_counter(), None)
        entry = _IdleWork(job, quiet_s, job.queued_at + due_s)
        with self._ready:
            if self._closed:
                raise ClientError("the service is shutting down", 503, 1)
            self._idle_work.append(entry)
            self._ready.notify()
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:  # the caller went away: never run it, if not begun
            with self._ready:
                if any(waiting is entry for waiting in self._idle_work):
                    self._idle_work.remove(entry)
            job.future.cancel()
            raise

    def run(self, items: Sequence[Item]) -> list[Result]:
        """From a thread that is not an event loop: `items`' results, batched like the rest."""
        now = time.perf_counter()
        jobs = [_Job(item, concurrent.futures.Future(), None, now, None) for item in items]
        return [job.future.result() for job in self._enqueue(jobs)]

    def _enqueue(self, jobs: list[_Job]) -> list[_Job]:
        with self._ready:
            if self._closed:
                raise ClientError("the service is shutting down", 503, 1)
            if len(self._queue) + len(jobs) > self.max_queue:
                raise Overloaded(self.retry_after())
            self._queue.extend(jobs)
            self._last_busy = time.perf_counter()
            self._ready.notify()
        return jobs

    def retry_after(self) -> int:
        """Whole seconds until the current queue is likely to have drained (at least 1)."""
        return max(1, round(len(self._queue) * self._seconds_per_item))

    def close(self, timeout: float | None = None) -> None:
        """Refuse new items, finish the queued ones, and stop the thread."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout)

    def _serve(self, setup: Callable[[], None] | None, ready: threading.Event) -> None:
        try:
            if setup is not None:
                setup()
        except BaseException as error:  # handed to the constructor, which raises it
            self._setup_error = error
            return
        finally:
            ready.set()
        while True:
            idle_job = jobs = None
            with self._ready:
                while True:
                    idle_job, wait = self._idle_job()
                    if idle_job is not None:
                        break
                    if self._queue:
                        count = min(len(self._queue), self.max_batch_size)
                        if self.take is not None:
                            count = max(1, min(self.take(len(self._queue)), count))
                        jobs = [self._queue.popleft() for _ in range(count)]
                        break
                    if self._closed:  # and drained
                        return
                    self._ready.wait(wait)
            if idle_job is not None:
                self._run_idle(idle_job)
                continue
            jobs = [job for job in jobs if not job.future.cancelled()]  # caller went away
            if jobs:
                self._run(jobs)

    def _idle_job(self) -> tuple[_Job | None, float | None]:
        """With the lock held: the idle work to run now (due, or its quiet spell has passed),
        else how long to wait before looking again (None: until notified)."""
        if not self._idle_work:
            return None, None
        head = self._idle_work[0]
        now = time.perf_counter()
        quiet_for = now - self._last_busy
        if now >= head.due or (not self._queue and (quiet_for >= head.quiet_s or self._closed)):
            self._idle_work.popleft()
            return head.job, None
        return None, min(head.quiet_s - quiet_for, head.due - now)

    def _run_idle(self, job: _Job) -> None:
        try:
            result, error = job.item(), None
        except Exception as exception:  # the caller's to see, as with a batch
            result, error = None, exception
        with self._ready:
            self._last_busy = time.perf_counter()
        _settle_safely(job, result, error)

    def _run(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        try:
            results, error = self.run_batch([job.item for job in jobs]), None
            if len(results) != len(jobs):
                raise RuntimeError(f"{len(results)} results for a batch of {len(jobs)}")
        except Exception as exception:  # every caller of this batch gets it
            results, error = [None] * len(jobs), exception
        elapsed = time.perf_counter() - started
        with self._ready:
            self._last_busy = started + elapsed
        self._seconds_per_item = 0.8 * self._seconds_per_item + 0.2 * elapsed / len(jobs)
        for job, result in zip(jobs, results):
            if job.timing is not None:
                job.timing["queue"] = started - job.queued_at
                job.timing["model"] = elapsed
            _settle_safely(job, result, error)
        if self.on_batch is not None:
            try:
                self.on_batch(len(jobs), started - jobs[0].queued_at, elapsed)
            except Exception:  # metrics must never stop the model thread
                logger.exception("on_batch failed")


def _settle_safely(job: _Job, result, error: Exception | None) -> None:
    try:
        job.settle(result, error)
    except Exception:  # a caller's event loop already closed: never stop the model thread
        logger.exception("could not hand back an answer")


def _settle(future, result, error: Exception | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
