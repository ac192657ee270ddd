"""Overload: `python -m bench.overload` (about 2 minutes).

Steady clients load the service; then, for 30 s, five times as many clients as it admits at once
(`CLASSIFIER_MAX_CONCURRENCY`) join them; then the steady clients go on alone. Records how fast
the excess is refused (503 + Retry-After), whether every accepted request is answered right,
what the steady clients saw, and how soon throughput and latency are back to where they were.
Writes bench/KIND/overload.json and overload.png, and re-renders BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import httpx

from bench import emulation
from classifier.testing.overload import REFUSED, measure_spike, photo_requests

ROOT = Path(__file__).resolve().parents[1]


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
    emulation.add_option(parser)
    args = parser.parse_args(argv)
    emulation.restart_if_asked(args, "bench.overload", argv)
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
