"""Soak: `python -m bench.soak` (11 minutes by default; not run in CI).

Clients send a steady mix of good requests (photos, base64, batches) and bad ones (truncated,
not images, a decompression bomb, bad top_k, missing fields, wrong media type) for at least ten
minutes and 20,000 requests. Records errors by class, the server's RSS over time (is there an
upward trend?) and p99 over time. Writes bench/KIND/soak.json and soak.png and re-renders
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench import emulation
from classifier.testing.traffic import Answer, Clock, Request, drive, per_window

ROOT = Path(__file__).resolve().parents[1]


def mixed_requests(bodies: list[bytes]) -> list[Request]:
    """Good and bad requests, interleaved; each bad one with the status it must get."""
    from tests import images  # the hostile files the tests make

    jpeg = ("a.jpg", bodies[0], "image/jpeg")
    encoded = base64.b64encode(bodies[1]).decode()

    def upload(kind: str, data: bytes, expect: int, **fields) -> Request:
        files = {"image": ("upload.jpg", data, "image/jpeg")}
        return Request(kind, "POST", "/predict", {"files": files, "data": fields}, expect)

    good = [
        *(upload("photo", body, 200) for body in bodies),
        Request("base64", "POST", "/predict_base64", {"json": {"image": encoded}}),
        Request(
            "batch",
            "POST",
            "/predict_batch",
            {"files": [("images", (f"{i}.jpg", body)) for i, body in enumerate(bodies[:3])]},
        ),
    ]
    bad = [
        upload("truncated JPEG", images.HOSTILE["truncated_jpeg"][0], 422),
        upload("text as image", images.HOSTILE["text"][0], 415),
        upload("HTML as image", images.HOSTILE["html"][0], 415),
        upload("empty file", b"", 400),
        upload("30000x30000 PNG bomb", images.HOSTILE["bomb"][0], 413),
        upload("top_k 0", bodies[0], 400, top_k=0),
        upload("top_k 'five'", bodies[0], 400, top_k="five"),
        Request("missing field", "POST", "/predict", {"files": {"picture": jpeg}}, 400),
        Request("JSON to /predict", "POST", "/predict", {"json": {"image": "x"}}, 415),
        Request("garbage base64", "POST", "/predict_base64", {"json": {"image": "!!"}}, 400),
        Request("wrong JSON type", "POST", "/predict_base64", {"json": {"image": 5}}, 400),
    ]
    mixed = []
    for i in range(max(len(good), len(bad))):
        mixed += [good[i % len(good)], bad[i % len(bad)]]
    return mixed


class RssRecorder:
    """The server's RSS every `every` seconds, on a thread, as (seconds, MB) pairs."""

    def __init__(self, sampler, clock: Clock, every: float = 5.0) -> None:
        self.sampler, self.clock, self.every = sampler, clock, every
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((self.clock(), self.sampler.rss_mb()))
            self._stop.wait(self.every)

    def __enter__(self) -> RssRecorder:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


def summarize(answers: list[Answer], rss: list[tuple[float, float]], seconds: float) -> dict:
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    classes = collections.Counter()
    for answer in answers:
        by_kind[answer.kind][answer.status] += 1
        expected = f"{answer.status[0]}xx as expected" if answer.expected else None
        classes[expected or f"unexpected {answer.status}"] += 1
    times = np.array([t for t, _ in rss])
    mbs = np.array([mb for _, mb in rss])
    settled = times >= 60  # the first minute fills caches and allocator pools
    slope = float(np.polyfit(times[settled], mbs[settled], 1)[0]) if settled.sum() > 2 else None
    return {
        "seconds": seconds,
        "requests": len(answers),
        "requests_per_s": len(answers) / seconds,
        "classes": dict(classes),
        "by_kind": {kind: dict(counter) for kind, counter in sorted(by_kind.items())},
        "rss_mb": {
            "first": float(mbs[0]),
            "after_1_min": float(mbs[settled][0]) if settled.any() else None,
            "last": float(mbs[-1]),
            "max": float(mbs.max()),
            "trend_mb_per_10_min": None if slope is None else slope * 600,
        },
        "rss_samples": rss,
        "windows": per_window(answers, 30.0, seconds),
    }


def plot(result: dict, path: Path) -> None:
    from bench.report import two_panels

    title = f"soak: {result['requests']} mixed requests, {result['clients']} clients"
    with two_panels(path, title, "minutes") as (top, bottom):
        times, mbs = zip(*result["rss_samples"])
        top.plot(np.array(times) / 60, mbs)
        top.set_ylabel("server RSS, MB")
        windows = result["windows"]
        minutes = [(w["from_s"] + 15) / 60 for w in windows]
        bottom.plot(minutes, [w["p99_ms"] for w in windows], label="p99 of good requests")
        bottom.plot(minutes, [w["p50_ms"] for w in windows], label="p50 of good requests")
        bottom.set_ylabel("latency per 30 s, ms")
        bottom.legend()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=660)
    parser.add_argument("--requests", type=int, default=20_000, help="at least this many")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    emulation.add_option(parser)
    args = parser.parse_args(argv)
    emulation.restart_if_asked(args, "bench.soak", argv)
    from bench.__main__ import machine
    from bench.inputs import SIZES, photo
    from bench.load import ProcessSampler
    from bench.report import record
    from bench.servers import benchmark_service

    bodies = [photo(i, SIZES[i % 3]) for i in range(6)]  # 640x480 to 1280x960
    with benchmark_service("soak") as server:
        clock = Clock()

        async def run() -> list[Answer]:
            return await drive(
                server.url,
                mixed_requests(bodies),
                clients=args.clients,
                start=0,
                stop=args.seconds,
                clock=clock,
                min_answers=args.requests,
            )

        with RssRecorder(ProcessSampler(server.process.pid), clock) as rss:
            started = time.perf_counter()
            answers = asyncio.run(run())
            seconds = time.perf_counter() - started
        result = {
            "clients": args.clients,
            **summarize(answers, rss.samples, seconds),
            "server_alive": server.process.poll() is None,
            "machine": machine(),
        }
    record(args.output, "soak", result, plot)
    print(
        json.dumps(
            {k: v for k, v in result.items() if k not in ("windows", "rss_samples")}, indent=1
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
