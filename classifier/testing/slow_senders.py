"""Clients that trickle their uploads (a phone on a bad network, or a script meaning harm), and
what the service answers them and everyone else meanwhile.

    >>> result = measure_slow_senders(url, photo_requests(url, photos), senders=100, clients=4,
    ...                               seconds=8)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from urllib.parse import urlsplit

from .traffic import Clock, Request, drive, percentile

BOUNDARY = "trickle"


async def trickle_upload(
    url: str, *, declared_bytes: int = 200_000, bytes_per_second: float = 1, give_up_s: float = 60
) -> tuple[int | None, float]:
    """Announce a `declared_bytes` upload to /predict, then send a byte every
    1/`bytes_per_second` s until the service answers: (its status, None if it closed the
    connection without one; seconds from connecting)."""
    parts = urlsplit(url)
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {declared_bytes}\r\n\r\n"
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
    )
    status_line = asyncio.create_task(reader.readline())
    try:
        writer.write(head.encode())
        while not status_line.done() and time.perf_counter() - started < give_up_s:
            with contextlib.suppress(ConnectionError):
                writer.write(b"x")
                await writer.drain()
            await asyncio.wait({status_line}, timeout=1 / bytes_per_second)
        line = await status_line if status_line.done() else b""
    except ConnectionError:
        line = b""
    finally:
        status_line.cancel()
        writer.close()
    fields = line.split()
    status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
    return status, time.perf_counter() - started


def measure_slow_senders(
    url: str, requests: list[Request], *, senders: int, clients: int, seconds: float
) -> dict:
    """`senders` trickling uploads connect first; then, for `seconds`, `clients` closed-loop
    clients send `requests`. What the slow senders got in the end, and what the others got
    while they were connected."""

    async def run():
        slow = [asyncio.create_task(trickle_upload(url)) for _ in range(senders)]
        await asyncio.sleep(1)  # all connected, all trickling
        clock = Clock()
        answers = await drive(url, requests, clients=clients, start=0, stop=seconds, clock=clock)
        return answers, await asyncio.gather(*slow)

    answers, slow = asyncio.run(run())
    answered_ms = [answer.seconds * 1000 for answer in answers if answer.status == "200"]
    return {
        "slow_senders": senders,
        "slow_statuses": dict(collections.Counter(str(status) for status, _ in slow)),
        "slow_answered_after_s": {
            "min": min(seconds for _, seconds in slow),
            "max": max(seconds for _, seconds in slow),
        },
        "clients": clients,
        "requests": len(answers),
        "statuses": dict(collections.Counter(answer.status for answer in answers)),
        "wrong_answers": sum(answer.correct is False for answer in answers),
        "ms": {
            "p50": percentile(answered_ms, 50),
            "p99": percentile(answered_ms, 99),
            "max": max(answered_ms, default=None),
        },
    }
