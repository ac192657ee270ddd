"""Explanations beside predictions: `python -m bench.explain` (about 12 minutes).

Does /explain slow /predict? Against the service with its default settings, serving the
ImageNet-sized model (224x224: Grad-CAM) and then a small one (48x48, the demo model's size until
2026-12-01; it is 64x64 now: integrated gradients), closed-loop clients send /predict alone, then
with one more client sending /explain back to back (waiting as long as Retry-After says after a
503), in the order alone, with, with, alone... so that the machine's noise hits both alike; the
ratio of throughputs is taken in the same run. Saturated, the model is never idle and explanations
wait for it in vain; so the same again with a light, paced load (a few clients pausing between
requests), where explanations do run and the predictions' latency shows what they cost. Then
/explain alone on the idle service, one request at a time, with the model's own time from
`classifier_explain_seconds`. Writes bench/KIND/explain.json and re-renders BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import emulation
from classifier.testing.overload import REFUSED, photo_requests
from classifier.testing.traffic import Answer, Clock, Request, drive, percentile

ROOT = Path(__file__).resolve().parents[1]
ALONE, WITH_EXPLANATIONS = "alone", "with explanations"


def explain_requests(bodies: list[bytes]) -> list[Request]:
    return [
        Request(f"explain {i}", "POST", "/explain",
                {"files": {"image": (f"{i}.jpg", body, "image/jpeg")}})
        for i, body in enumerate(bodies)
    ]  # fmt: skip


def explain_seconds(url: str) -> tuple[float, float]:
    """(seconds, explanations) so far, from the classifier_explain_seconds histogram."""
    totals = {"sum": 0.0, "count": 0.0}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        for kind in totals:
            if line.startswith(f"classifier_explain_seconds_{kind}"):
                totals[kind] += float(line.rsplit(" ", 1)[1])
    return totals["sum"], totals["count"]


def run_phase(
    url: str, predicts: list[Request], explains: list[Request] | None, *, clients: int,
    begin: float, end: float, pause: float = 0.0,
) -> tuple[list[Answer], list[Answer] | None]:  # fmt: skip
    """The answers that came back between `begin` and `end` seconds, of `clients` predicting
    clients (each pausing `pause` s between requests) and, if `explains`, of one explaining
    client, all sending from 0 to `end`."""

    async def run() -> list[list[Answer]]:
        clock = Clock()
        groups = [
            drive(url, predicts, clients=clients, start=0, stop=end, clock=clock, pause=pause)
        ]
        if explains:
            groups.append(drive(url, explains, clients=1, start=0, stop=end, clock=clock))
        return await asyncio.gather(*groups)

    predicted, *explained = (measured(answers, begin, end) for answers in asyncio.run(run()))
    return predicted, explained[0] if explained else None


def measured(answers: list[Answer], begin: float, end: float) -> list[Answer]:
    """The answers that came back between `begin` and `end` (whenever they were sent): at 16
    clients a request takes a second, and counting only those sent inside would undercount."""
    return [a for a in answers if begin <= a.sent + a.seconds <= end]


def latencies(answers: list[Answer]) -> dict:
    ok_ms = [a.seconds * 1000 for a in answers if a.status == "200"]
    return {"answered": len(ok_ms), "p50_ms": percentile(ok_ms, 50),
            "p99_ms": percentile(ok_ms, 99)}  # fmt: skip


def statuses(answers: list[Answer]) -> dict[str, int]:
    return dict(sorted(collections.Counter(a.status for a in answers).items()))


def summary(predicted: list[Answer], explained: list[Answer] | None, seconds: float) -> dict:
    """Throughput and latency of the predictions, and what the explaining client (if any) got."""
    result = {
        "images_per_s": sum(a.status == "200" for a in predicted) / seconds,
        **latencies(predicted),
        "statuses": statuses(predicted),
        "wrong_answers": sum(a.correct is False for a in predicted),
    }
    if explained is not None:
        refused = [a for a in explained if a.status in REFUSED]
        result["explain"] = {
            **latencies(explained),
            "refused": len(refused),
            "refused_p50_ms": percentile([a.seconds * 1000 for a in refused], 50),
            "statuses": statuses(explained),
        }
    return result


def idle_explanations(url: str, explains: list[Request], count: int) -> dict:
    """/explain one request at a time on an otherwise idle service."""
    with httpx.Client(base_url=url, timeout=120) as client:
        first = client.post("/explain", **explains[0].options)  # warm up: the first backward
        first.raise_for_status()
        (seconds_before, count_before), answers = explain_seconds(url), []
        for n in range(count):
            started = time.perf_counter()
            response = client.post("/explain", **explains[n % len(explains)].options)
            seconds = time.perf_counter() - started
            answers.append(
                Answer("explain", 0, seconds, str(response.status_code), True, None, None)
            )
    seconds_after, count_after = explain_seconds(url)
    explanation = first.json()["explanation"]
    return {
        "requests": count,
        **latencies(answers),
        "statuses": statuses(answers),
        "model_ms_mean": 1000 * (seconds_after - seconds_before) / (count_after - count_before),
        "method": explanation["method"],
        "description": explanation["description"],
    }


def both_phases(
    server, predicts: list[Request], explains: list[Request], args, *, clients: int,
    pause: float = 0.0,
) -> dict:  # fmt: skip
    """Predictions alone and with explanations, `args.rounds` of each in turn."""
    from bench.load import ProcessSampler

    runs: dict[str, list[dict]] = {ALONE: [], WITH_EXPLANATIONS: []}
    answers = {ALONE: ([], None), WITH_EXPLANATIONS: ([], [])}  # (predicted, explained)
    for round_ in range(args.rounds):
        order = [ALONE, WITH_EXPLANATIONS] if round_ % 2 == 0 else [WITH_EXPLANATIONS, ALONE]
        for phase in order:
            with ProcessSampler(server.process.pid) as sampler:
                predicted, explained = run_phase(
                    server.url, predicts, explains if phase == WITH_EXPLANATIONS else None,
                    clients=clients, begin=args.warmup, end=args.warmup + args.seconds,
                    pause=pause,
                )  # fmt: skip
            run = summary(predicted, explained, args.seconds)
            runs[phase].append({**run, "server_cpu_percent": sampler.cpu_percent})
            answers[phase][0].extend(predicted)
            if explained is not None:
                answers[phase][1].extend(explained)
            print(phase, json.dumps(runs[phase][-1]), flush=True)
    phases = {phase: summary(*answers[phase], args.seconds * args.rounds) for phase in runs}
    return {
        "clients": clients,
        "pause_s": pause,
        "phases": phases,
        "runs": runs,
        "throughput_ratio": phases[WITH_EXPLANATIONS]["images_per_s"]
        / phases[ALONE]["images_per_s"],
    }


def measure(server, bodies: list[bytes], args: argparse.Namespace) -> dict:
    url = server.url
    info = httpx.get(f"{url}/info").json()
    predicts = photo_requests(url, bodies)  # each answer checked against the idle service's
    explains = explain_requests(bodies)
    saturated = both_phases(server, predicts, explains, args, clients=args.concurrency)
    light = both_phases(
        server, predicts, explains, args, clients=args.light_clients, pause=args.pause
    )
    return {
        "model_input": info["preprocessing"]["crop_size"],
        "precision": info["precision"],
        "compiled": info["compile"]["compiled"],
        "max_explanations": info["limits"]["max_explanations"],
        **saturated,
        "light": light,
        "idle": idle_explanations(url, explains, args.explanations),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.explain", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20, help="measured, per phase")
    parser.add_argument("--warmup", type=float, default=3, help="before each phase's measuring")
    parser.add_argument("--concurrency", type=int, default=16, help="predicting clients")
    parser.add_argument("--rounds", type=int, default=2, help="of both phases, in turn")
    parser.add_argument("--light-clients", type=int, default=2, help="the light load's clients")
    parser.add_argument("--pause", type=float, default=0.25,
                        help="seconds each light-load client waits between requests")  # fmt: skip
    parser.add_argument("--explanations", type=int, default=20, help="on the idle service")
    parser.add_argument("--models", nargs="+", choices=["imagenet", "demo"],
                        default=["imagenet", "demo"])  # fmt: skip
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md",
                        help="the report to re-render; the figures go to bench/KIND/explain.json "
                        "beside it")  # fmt: skip
    emulation.add_option(parser)
    args = parser.parse_args(argv)
    emulation.restart_if_asked(args, "bench.explain", argv)
    from bench.__main__ import machine, save_benchmark_model
    from bench.bulk import save_small_model
    from bench.inputs import SIZES, photo
    from bench.report import data_file, rerender
    from bench.servers import serve_service

    workdir = Path(tempfile.mkdtemp(prefix="bench-explain-"))
    os.environ["BENTOML_HOME"] = str(workdir / "bentoml")
    # phone-sized photos (640x480 to 1280x960), as in bench.overload: the load generator shares
    # the cores, and 12-megapixel uploads would cost it more than the service
    bodies = [photo(i, SIZES[i % 3]) for i in range(12)]
    savers = {"imagenet": save_benchmark_model, "demo": save_small_model}
    result = {
        "clients": args.concurrency,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "machine": machine(),  # and when the run started
        "load_average_before": os.getloadavg(),  # other work on the machine disturbs the figures
        "models": {},
    }
    try:
        for name in args.models:
            stored = savers[name]()
            server = serve_service({"CLASSIFIER_MODEL_TAG": str(stored.tag)}, workdir / "serve.log")
            try:
                server.wait_ready()
                server.wait_compiled()  # measured compiled, as served once it has compiled
                result["models"][name] = measure(server, bodies, args)
            finally:
                server.stop()
            print(name, json.dumps(result["models"][name], indent=1), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["load_average_after"] = os.getloadavg()
    data_file(args.output, "explain.json").write_text(json.dumps(result, indent=1))
    rerender(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
