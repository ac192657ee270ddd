"""Overload: `python -m bench.overload` (about 2 minutes).

Steady clients load the service; then, for 30 s, five times as many clients as it admits at once
(`CLASSIFIER_MAX_CONCURRENCY`) join them; then the steady clients go on alone. Records how fast
the excess is refused (503 + Retry-After), whether every accepted request is answered right,
what the steady clients saw, and how soon throughput and latency are back to where they were.
Writes bench/overload.json and bench/overload.png, and re-renders BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import httpx
import numpy as np

from bench.traffic import Answer, Clock, Request, drive, per_window, percentile

ROOT = Path(__file__).resolve().parents[1]
REFUSED = ("503", "429")


def photo_requests(url: str, bodies: list[bytes], top_k: int = 5) -> list[Request]:
    """A /predict request per body, checked against the answer the idle service gives it."""
    requests = []
    for i, body in enumerate(bodies):
        options = {"files": {"image": (f"{i}.jpg", body, "image/jpeg")}, "data": {"top_k": top_k}}
        reference = httpx.post(f"{url}/predict", timeout=60, **options)
        reference.raise_for_status()
        requests.append(
            Request(f"photo {i}", "POST", "/predict", options, 200, same_answer(reference.json()))
        )
    return requests


def same_answer(expected: dict):
    labels = [p["label"] for p in expected["predictions"]]
    scores = np.array([p["score"] for p in expected["predictions"]])

    def check(response: httpx.Response) -> bool:
        got = response.json()["predictions"]
        # bf16 kernels may round a little differently at another batch size
        return [p["label"] for p in got] == labels and bool(
            np.allclose([p["score"] for p in got], scores, atol=0.02)
        )

    return check


def measure_spike(
    url: str,
    requests: list[Request],
    *,
    steady: int,
    spike: int,
    before: float,
    during: float,
    after: float,
    window: float = 1.0,
) -> dict:
    """Steady clients from 0 to before+during+after seconds, a spike of clients in between."""

    async def run() -> tuple[list[Answer], list[Answer]]:
        clock = Clock()
        common = {"clock": clock, "honor_retry_after": True}
        return await asyncio.gather(
            drive(url, requests, clients=steady, start=0, stop=end, **common),
            drive(
                url,
                requests,
                clients=spike,
                start=before,
                stop=before + during,
                offset=steady,
                **common,
            ),
        )

    end = before + during + after
    steady_answers, spike_answers = asyncio.run(run())
    everything = steady_answers + spike_answers
    refused = [a for a in everything if a.status in REFUSED]
    accepted = [a for a in everything if a.status == "200"]
    others: dict[str, int] = {}
    for answer in everything:
        if answer.status not in (*REFUSED, "200"):
            others[answer.status] = others.get(answer.status, 0) + 1

    def phase(begin: float, finish: float) -> dict:
        inside = [a for a in steady_answers if begin <= a.sent < finish]
        ok_ms = [a.seconds * 1000 for a in inside if a.status == "200"]
        return {
            "ok_per_s": len(ok_ms) / (finish - begin),
            "p50_ms": percentile(ok_ms, 50),
            "p99_ms": percentile(ok_ms, 99),
            "refused": sum(a.status in REFUSED for a in inside),
        }

    last = max((a.sent + a.seconds for a in everything), default=end)
    windows = per_window(everything, window, last)
    normal = phase(0, before)
    return {
        "steady_clients": steady,
        "spike_clients": spike,
        "seconds": {"before": before, "during": during, "after": after},
        "requests": len(everything),
        "accepted": len(accepted),
        "wrong_answers": sum(a.correct is False for a in accepted),
        "refused": len(refused),
        "refused_with_retry_after": sum(a.retry_after is not None for a in refused),
        "refusal_ms": {
            "p50": percentile([a.seconds * 1000 for a in refused], 50),
            "p99": percentile([a.seconds * 1000 for a in refused], 99),
            "max": max((a.seconds * 1000 for a in refused), default=None),
        },
        "accepted_during_spike_ms": {
            "p50": percentile(
                [a.seconds * 1000 for a in accepted if before <= a.sent < before + during], 50
            ),
            "p99": percentile(
                [a.seconds * 1000 for a in accepted if before <= a.sent < before + during], 99
            ),
        },
        "other_statuses": others,
        "steady": {
            "before": normal,
            "during": phase(before, before + during),
            "after": phase(before + during, end),
        },
        "recovered_after_s": recovery(windows, normal, before + during, window),
        "windows": windows,
    }


def recovery(windows: list[dict], normal: dict, spike_end: float, window: float) -> float | None:
    """Seconds from the spike's end to the first window from which on two in a row serve at
    least 70 % of the normal throughput with a median latency under 1.5x normal."""
    if not normal["ok_per_s"] or normal["p50_ms"] is None:
        return None
    good = [
        w["from_s"] >= spike_end
        and w["ok_per_s"] >= 0.7 * normal["ok_per_s"]
        and w["p50_ms"] is not None
        and w["p50_ms"] <= 1.5 * normal["p50_ms"]
        for w in windows
    ]
    for i in range(len(windows) - 1):
        if good[i] and good[i + 1]:
            return max(0.0, windows[i]["from_s"] + window - spike_end)
    return None


def plot(result: dict, path: Path) -> None:
    from bench.report import two_panels

    windows = result["windows"]
    times = [w["from_s"] for w in windows]
    spike_start = result["seconds"]["before"]
    spike_end = spike_start + result["seconds"]["during"]
    title = f"{result['spike_clients']} extra clients from {spike_start:.0f} to {spike_end:.0f} s"
    with two_panels(path, title, "seconds") as (top, bottom):
        top.plot(times, [w["ok_per_s"] for w in windows], label="answered (200) per s")
        refused = [sum(w["statuses"].get(s, 0) for s in REFUSED) for w in windows]
        top.plot(times, refused, label="refused (503) per s")
        top.set_ylabel("requests per second")
        bottom.plot(times, [w["p50_ms"] for w in windows], label="p50 of answered")
        bottom.plot(times, [w["p99_ms"] for w in windows], label="p99 of answered")
        bottom.set_ylabel("latency, ms")
        for axis in (top, bottom):
            axis.axvspan(spike_start, spike_end, color="red", alpha=0.08)
            axis.legend()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overload", description=__doc__)
    parser.add_argument("--steady", type=int, default=16, help="clients before, during, after")
    parser.add_argument("--times", type=float, default=5, help="spike: this x the admitted")
    parser.add_argument("--before", type=float, default=20)
    parser.add_argument("--during", type=float, default=30)
    parser.add_argument("--after", type=float, default=20)
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    from bench.__main__ import machine
    from bench.inputs import SIZES, photo
    from bench.load import ProcessSampler
    from bench.report import record
    from bench.servers import benchmark_service

    with benchmark_service("overload") as server:
        limit = httpx.get(f"{server.url}/info").json()["limits"]["max_concurrency"]
        # phone-sized photos (640x480 to 1280x960): with 12-megapixel uploads the load generator,
        # on the same cores, would spend more CPU sending them than the server spends refusing
        bodies = [photo(i, SIZES[i % 3]) for i in range(12)]
        requests = photo_requests(server.url, bodies)
        with ProcessSampler(server.process.pid) as sampler:
            idle_rss = sampler.rss_mb()
            result = measure_spike(
                server.url,
                requests,
                steady=args.steady,
                spike=int(args.times * limit),
                before=args.before,
                during=args.during,
                after=args.after,
            )
            result["rss_mb"] = {"idle": idle_rss, "peak": sampler.peak_rss_mb,
                                "end": sampler.rss_mb()}  # fmt: skip
        result["cpu_percent"] = {"server": sampler.cpu_percent,
                                 "load_generator": sampler.client_cpu_percent}  # fmt: skip
        result["photo_bytes"] = {"min": min(map(len, bodies)), "max": max(map(len, bodies))}
        result["max_concurrency"] = limit
        result["server_alive"] = server.process.poll() is None
        result["machine"] = machine()
    record(args.output, "overload", result, plot)
    print(json.dumps({k: v for k, v in result.items() if k != "windows"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
