"""Closed-loop clients sending many kinds of request, every answer recorded: for the overload and
soak benchmarks (and the overload test).

    >>> answers = asyncio.run(drive(url, [Request("photo", "POST", "/predict", ...)], clients=8,
    ...                             start=0, stop=30))
"""

from __future__ import annotations

import asyncio
import collections
import functools
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np

RETRY_AFTER_CAP_S = 5.0


@dataclass(frozen=True)
class Request:
    """One kind of request, and what a healthy service answers to it."""

    kind: str
    method: str
    path: str
    options: dict = field(default_factory=dict)  # httpx keyword arguments: files, json, data
    expect: int = 200
    # for an expected 200: is the answer right? (None: any 200 will do)
    check: Callable[[httpx.Response], bool] | None = None


@dataclass
class Answer:
    kind: str
    sent: float  # seconds since the run's clock started
    seconds: float
    status: str  # "200", "503", ..., or "timeout" / the httpx error's name
    expected: bool  # the status a healthy service gives this kind (503 is judged by callers)
    correct: bool | None  # for a 200 with a check
    retry_after: str | None


class Clock:
    """Seconds since the start of a run, shared by every group of clients in it."""

    def __init__(self) -> None:
        self.zero = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.zero


async def drive(
    base_url: str,
    requests: Sequence[Request],
    *,
    clients: int,
    start: float,
    stop: float,
    clock: Clock,
    honor_retry_after: bool = True,
    offset: int = 0,
    min_answers: int = 0,
    pause: float = 0.0,
) -> list[Answer]:
    """`clients` loops that each send the next request, wait for the answer and repeat, from
    `start` to `stop` seconds on `clock`, and on until `min_answers` are in. A client told
    503/429 + Retry-After waits that long (up to 5 s) first, as a well-behaved client does;
    after any other answer it waits `pause` seconds (a paced load, with idle moments).

    Each client has a connection pool of its own: httpx scans a shared pool's connections for
    every request, which with hundreds of clients costs more CPU than the server under test.
    """
    answers: list[Answer] = []

    async def client_loop(index: int) -> None:
        async with http_client(base_url, 1) as client:
            await send_requests(client, index)

    async def send_requests(client: httpx.AsyncClient, index: int) -> None:
        await asyncio.sleep(max(0.0, start - clock()))
        n = (offset + index) * len(requests) // max(1, clients)  # spread, then in order
        while (sent := clock()) < stop or len(answers) < min_answers:
            request = requests[n % len(requests)]
            n += 1
            retry_after = None
            try:
                response = await client.request(request.method, request.path, **request.options)
                status = str(response.status_code)
                retry_after = response.headers.get("retry-after")
                correct = (
                    request.check(response)
                    if request.check is not None and response.status_code == 200
                    else None
                )
            except httpx.TimeoutException:
                status, correct = "timeout", None
            except httpx.HTTPError as error:
                status, correct = type(error).__name__, None
            answers.append(
                Answer(
                    request.kind,
                    sent,
                    clock() - sent,
                    status,
                    status == str(request.expect),
                    correct,
                    retry_after,
                )
            )
            if honor_retry_after and status in ("429", "503") and retry_after:
                await asyncio.sleep(min(float(retry_after), RETRY_AFTER_CAP_S))
            elif pause:
                await asyncio.sleep(pause)

    await asyncio.gather(*(client_loop(i) for i in range(clients)))
    return answers


@functools.cache
def _tls() -> ssl.SSLContext:
    # made once: each client building its own takes about 20 ms of the shared event loop
    return httpx.create_ssl_context()


def http_client(base_url: str, connections: int, timeout: float = 60) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits, verify=_tls())


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def per_window(answers: Sequence[Answer], window: float, until: float) -> list[dict]:
    """Per `window` seconds of completion time: answers by status, and latency of the 200s."""
    windows = []
    for begin in np.arange(0.0, until, window):
        inside = [a for a in answers if begin <= a.sent + a.seconds < begin + window]
        ok_ms = [a.seconds * 1000 for a in inside if a.status == "200"]
        windows.append(
            {
                "from_s": float(begin),
                "statuses": dict(collections.Counter(a.status for a in inside)),
                "ok_per_s": len(ok_ms) / window,
                "p50_ms": percentile(ok_ms, 50),
                "p99_ms": percentile(ok_ms, 99),
            }
        )
    return windows
