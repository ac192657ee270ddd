"""A spike of clients on top of steady ones, measured: refusals, wrong answers, recovery."""

from __future__ import annotations

import asyncio
import collections

import httpx
import numpy as np

from classifier.testing.traffic import Answer, Clock, Request, drive, per_window, percentile

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


def measure_burst(url: str, requests: list[Request], *, clients: int, seconds: float) -> dict:
    """`clients` clients at once, from a standing start, for `seconds`: how fast the ones the
    service cannot take are refused."""
    answers = asyncio.run(
        drive(url, requests, clients=clients, start=0, stop=seconds, clock=Clock())
    )
    refused_ms = [a.seconds * 1000 for a in answers if a.status in REFUSED]
    answered_ms = [a.seconds * 1000 for a in answers if a.status == "200"]
    return {
        "clients": clients,
        "seconds": seconds,
        "statuses": dict(collections.Counter(a.status for a in answers)),
        "wrong_answers": sum(a.correct is False for a in answers),
        "refused_with_retry_after": sum(
            a.retry_after is not None for a in answers if a.status in REFUSED
        ),
        "refusal_ms": {
            "p50": percentile(refused_ms, 50),
            "p99": percentile(refused_ms, 99),
            "max": max(refused_ms, default=None),
        },
        "refused_after_2s": sum(ms > 2000 for ms in refused_ms),
        "answered_ms": {"p50": percentile(answered_ms, 50), "p99": percentile(answered_ms, 99)},
    }
