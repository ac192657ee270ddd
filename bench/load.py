"""A closed-loop HTTP load generator and a sampler of a server's CPU and memory."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
import psutil


@dataclass
class LoadResult:
    concurrency: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)  # successful requests only
    statuses: collections.Counter = field(default_factory=collections.Counter)
    cpu_percent: float = 0.0  # of one core, server processes only
    client_cpu_percent: float = 0.0  # of one core, the load generator (this process)
    peak_rss_mb: float = 0.0
    # Server-Timing phases of successful requests, ms (servers that send the header)
    phases_ms: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))

    @property
    def ok(self) -> int:
        return self.statuses.get("200", 0)

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.latencies_ms)) if self.latencies_ms else float("nan")

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    @property
    def errors(self) -> dict[str, int]:
        return {k: v for k, v in sorted(self.statuses.items()) if k != "200"}

    def mean_phases_ms(self) -> dict[str, float]:
        return {name: float(np.mean(values)) for name, values in self.phases_ms.items()}


def batch_counters(base_url: str) -> tuple[float, float] | None:
    """(images, model calls) so far, from the service's classifier_batch_size histogram."""
    try:
        text = httpx.get(f"{base_url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    totals = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for kind in totals:
            if line.startswith(f"classifier_batch_size_{kind}"):
                totals[kind] += float(line.rsplit(" ", 1)[1])
    return (totals["sum"], totals["count"]) if totals["count"] else None


def mean_batch(before: tuple[float, float] | None, after: tuple[float, float] | None):
    """Images per model call between two batch_counters() readings; None if unknown."""
    before = before or (0.0, 0.0)  # no model call yet
    if not after or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def server_timing(header: str) -> dict[str, float]:
    """`prepare;dur=9.1, model;dur=30.2` -> {"prepare": 9.1, "model": 30.2}"""
    phases = {}
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        if name and duration:
            phases[name] = float(duration)
    return phases


def run_load(
    url: str,
    bodies: list[bytes],
    *,
    form_field: str,
    concurrency: int,
    seconds: float,
    warmup: float = 3.0,
    pid: int | None = None,
) -> LoadResult:
    """`concurrency` clients each POST an image, wait for the answer, and repeat."""
    result = LoadResult(concurrency, seconds)
    with ProcessSampler(pid) as sampler:
        asyncio.run(_drive(url, bodies, form_field, concurrency, warmup, seconds, result, sampler))
    result.cpu_percent, result.peak_rss_mb = sampler.cpu_percent, sampler.peak_rss_mb
    result.client_cpu_percent = sampler.client_cpu_percent
    return result


async def _drive(url, bodies, form_field, concurrency, warmup, seconds, result, sampler) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        start = time.perf_counter()
        measure_from, stop_at = start + warmup, start + warmup + seconds

        async def client_loop(index: int) -> None:
            n = index
            while (now := time.perf_counter()) < stop_at:
                body = bodies[n % len(bodies)]
                n += concurrency
                try:
                    response = await client.post(url, files={form_field: ("photo.jpg", body)})
                    status = str(response.status_code)
                except httpx.TimeoutException:
                    status = "timeout"
                except httpx.HTTPError as error:
                    status = type(error).__name__
                done = time.perf_counter()
                # Count what completes inside the window, whenever it started: at high
                # concurrency a request takes seconds, and counting only those that start and
                # end inside the window would undercount throughput.
                if measure_from <= done <= stop_at:
                    result.statuses[status] += 1
                    if status == "200":
                        result.latencies_ms.append((done - now) * 1000)
                        timing = server_timing(response.headers.get("server-timing", ""))
                        for phase, ms in timing.items():
                            result.phases_ms[phase].append(ms)

        async def start_sampling() -> None:
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            sampler.reset()

        await asyncio.gather(start_sampling(), *(client_loop(i) for i in range(concurrency)))


class ProcessSampler:
    """Samples a process tree's RSS every 0.2 s, and its CPU time between `reset` and exit; also
    the CPU time of this process, the load generator, which shares the machine's cores."""

    def __init__(self, pid: int | None) -> None:
        self.root = psutil.Process(pid) if pid else None
        self.peak_rss_mb = 0.0
        self.cpu_percent = 0.0
        self.client_cpu_percent = 0.0
        self._stop = threading.Event()
        self._cpu_start = self._wall_start = self._client_start = 0.0

    def _tree(self) -> list[psutil.Process]:
        if self.root is None:
            return []
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _cpu_seconds(self) -> float:
        total = 0.0
        for process in self._tree():
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss_mb(self) -> float:
        total = 0
        for process in self._tree():
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total / 2**20

    @staticmethod
    def _client_seconds() -> float:
        times = psutil.Process().cpu_times()
        return times.user + times.system

    def reset(self) -> None:
        self._cpu_start, self._wall_start = self._cpu_seconds(), time.perf_counter()
        self._client_start = self._client_seconds()
        self.peak_rss_mb = self.rss_mb()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_rss_mb = max(self.peak_rss_mb, self.rss_mb())

    def __enter__(self) -> ProcessSampler:
        self.reset()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()
        wall = time.perf_counter() - self._wall_start
        self.cpu_percent = 100 * (self._cpu_seconds() - self._cpu_start) / max(wall, 1e-9)
        client = self._client_seconds() - self._client_start
        self.client_cpu_percent = 100 * client / max(wall, 1e-9)
