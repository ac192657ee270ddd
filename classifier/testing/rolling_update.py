"""A rolling model update under steady traffic, with a verdict on every request it sent.

Replicas of the image run behind HAProxy, health checked on /readyz, while clients classify
without a pause; one at a time, a replica serving a newer model starts and becomes ready, and an
old one is stopped with SIGTERM (scripts/rolling-update.sh).

    python -m classifier.testing.rolling_update OLD_IMAGE NEW_IMAGE --photo photo.jpg

It goes as deploy/kubernetes/deployment.yaml has a cluster do it: maxSurge 1 and maxUnavailable
0 (a new replica is ready before an old one stops), the old one leaves the load balancer (HAProxy's
drain state, as an endpoint leaves a Service), the preStop pause, then SIGTERM: the service
finishes what it has accepted and turns new connections away. `--no-warning` sends SIGTERM with
no drain and no pause, to show what those are for.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import csv
import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from classifier.testing.kube_play import Manifest, deployment, podman
from classifier.testing.server import free_port
from classifier.testing.traffic import Clock, http_client, percentile

REPLICAS = 2
CLIENTS = 4
STEADY_S = 15.0  # of traffic before the update starts and after it ends
READY_TIMEOUT_S = 600
COMPILE_CACHE = "/compile-cache"

HAPROXY = """\
global
    stats socket {socket} mode 600 level admin
    log stdout format raw local0

defaults
    mode http
    log global
    # status, termination state (why a request ended: see HAProxy's manual), server
    log-format "%ST %tsc %b/%s"
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check 2s
    # a connection a stopping replica refuses is tried again on another (the default retry-on
    # conn-failure); nothing else is retried
    retries 3
    option redispatch 1

frontend classifier
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    default-server check inter 1s fall 2 rise 2
{servers}
"""


@dataclass
class Replica:
    """One container of the image, published on a loopback port that HAProxy checks."""

    name: str
    image: str
    port: int
    grace_s: int  # before SIGKILL follows SIGTERM

    def start(self, cache: Path) -> None:
        podman(
            "run", "--detach", "--name", self.name, "--publish", f"127.0.0.1:{self.port}:3000",
            "--volume", f"{cache}:{COMPILE_CACHE}",
            "--env", f"CLASSIFIER_COMPILE_CACHE_DIR={COMPILE_CACHE}",
            self.image,
        )  # fmt: skip

    def stop(self) -> tuple[float, int]:
        """SIGTERM, then SIGKILL after the grace period: seconds it took, and the exit code."""
        started = time.monotonic()
        podman("stop", "--time", str(self.grace_s), self.name)
        seconds = time.monotonic() - started
        code = podman("inspect", self.name, "--format", "{{.State.ExitCode}}").stdout
        return seconds, int(code)

    def remove(self) -> None:
        podman("rm", "--force", "--ignore", self.name, check=False)


class LoadBalancer:
    """HAProxy from Debian, in front of a fixed set of server slots (ports)."""

    def __init__(self, ports: list[int], work: Path) -> None:
        self.port = free_port()
        self.socket = work / "haproxy.sock"
        servers = "\n".join(f"    server s{i} 127.0.0.1:{port}" for i, port in enumerate(ports))
        config = work / "haproxy.cfg"
        config.write_text(HAPROXY.format(socket=self.socket, port=self.port, servers=servers))
        self.log = work / "haproxy.log"
        with self.log.open("w") as log:
            command = ["haproxy", "-db", "-f", str(config)]
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(100):
            if self.socket.exists():
                return
            time.sleep(0.05)
        sys.exit(f"haproxy did not start: {self.log.read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, line: str) -> str:
        """One command of HAProxy's runtime API, and its answer."""
        with socket.socket(socket.AF_UNIX) as connection:
            connection.connect(str(self.socket))
            connection.sendall(line.encode() + b"\n")
            return b"".join(iter(lambda: connection.recv(65536), b"")).decode()

    def stats(self) -> dict[str, dict[str, str]]:
        """HAProxy's `show stat`, by server name (and BACKEND for the totals)."""
        rows = csv.DictReader(self.command("show stat").lstrip("# ").splitlines())
        return {row["svname"]: row for row in rows if row["pxname"] == "replicas"}

    def wait_until(self, server: str, status: str) -> float:
        started = time.monotonic()
        while self.stats()[server]["status"] != status:
            if time.monotonic() - started > READY_TIMEOUT_S:
                sys.exit(f"{server} not {status} in HAProxy after {READY_TIMEOUT_S} s")
            time.sleep(0.2)
        return time.monotonic() - started

    def unanswered(self) -> dict[str, int]:
        """Requests HAProxy did not answer 200, by status, termination state and server."""
        lines = self.log.read_text().splitlines()
        logged = [line for line in lines if re.fullmatch(r"-?\d+ \S{4} \S+/\S+", line)]
        return dict(collections.Counter(line for line in logged if not line.startswith("200 ")))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


@dataclass
class Answer:
    sent: float
    seconds: float
    status: str  # "200", "503", ..., or the httpx error's name
    model: str | None


async def stream(url: str, photo: bytes, clock: Clock, done: asyncio.Event) -> list[Answer]:
    """CLIENTS closed-loop clients classifying the photo until `done`: every answer recorded."""
    answers: list[Answer] = []

    async def client() -> None:
        async with http_client(url, 1) as http:
            while not done.is_set():
                sent, model = clock(), None
                try:
                    response = await http.post("/predict", files={"image": ("photo.jpg", photo)})
                    status = str(response.status_code)
                    model = response.json().get("model") if status == "200" else None
                except Exception as error:  # a dropped or refused request: what this counts
                    status = type(error).__name__
                answers.append(Answer(sent, clock() - sent, status, model))

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return answers


def roll(
    old: list[Replica],
    new: list[Replica],
    balancer: LoadBalancer,
    cache: Path,
    clock: Clock,
    prestop_s: float | None,
) -> list[dict]:
    """Replace each old replica with a new one, surge first; what happened, and when. With
    `prestop_s`, each old one is drained and pauses that long before SIGTERM."""
    steps = []
    for index, (leaving, coming) in enumerate(zip(old, new, strict=True)):
        server, replacement = f"s{index}", f"s{len(old) + index}"
        step = {"replica": index, "new_started_s": clock()}
        coming.start(cache)
        step["new_ready_s"] = balancer.wait_until(replacement, "UP")
        if prestop_s is not None:
            balancer.command(f"set server replicas/{server} state drain")
            time.sleep(prestop_s)
        step["sigterm_s"] = clock()
        step["old_stop_s"], step["old_exit_code"] = leaving.stop()
        step["old_down_in_haproxy_s"] = balancer.wait_until(server, "DOWN")
        steps.append(step)
        print(f"    replica {index}: {json.dumps(step)}")
    return steps


def summary(answers: list[Answer], steps: list[dict], old_tag: str, new_tag: str) -> dict:
    by_status = collections.Counter(answer.status for answer in answers)
    first_sigterm, last_sigterm = steps[0]["sigterm_s"], steps[-1]["sigterm_s"]
    last_stopped = last_sigterm + steps[-1]["old_stop_s"]

    def latency(begin: float, end: float) -> dict:
        ms = [a.seconds * 1000 for a in answers if begin <= a.sent < end and a.status == "200"]
        return {"answers": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99)}

    models = [(a.sent + a.seconds, a.model) for a in answers if a.model]
    return {
        "clients": CLIENTS,
        "replicas": REPLICAS,
        "requests": len(answers),
        "answered_200": by_status["200"],
        "failed": len(answers) - by_status["200"],
        "statuses": dict(by_status),
        "models": dict(collections.Counter(model for _, model in models)),
        "old_model": old_tag,
        "new_model": new_tag,
        "last_old_answer_s": max((t for t, m in models if m == old_tag), default=None),
        "first_new_answer_s": min((t for t, m in models if m == new_tag), default=None),
        "old_answers_after_last_stop": sum(
            1 for a in answers if a.sent > last_stopped and a.model == old_tag
        ),
        "before": latency(0, steps[0]["new_started_s"]),
        "during": latency(steps[0]["new_started_s"], last_stopped),
        "after": latency(last_stopped, float("inf")),
        "first_sigterm_s": first_sigterm,
        "steps": steps,
    }


def model_tag(url: str) -> str:
    return httpx.get(f"{url}/info", timeout=10).json()["model"]


async def run(
    old_image: str, new_image: str, photo: bytes, work: Path, manifest: Manifest, warn: bool
) -> dict:
    ports = [free_port() for _ in range(2 * REPLICAS)]
    old = [
        Replica(f"rolling-old-{i}", old_image, ports[i], manifest.grace_s) for i in range(REPLICAS)
    ]
    new = [
        Replica(f"rolling-new-{i}", new_image, ports[REPLICAS + i], manifest.grace_s)
        for i in range(REPLICAS)
    ]
    cache = work / "compile-cache"  # shared, as a ReadWriteMany volume would be on a cluster
    cache.mkdir()
    cache.chmod(0o777)
    balancer = LoadBalancer(ports, work)
    try:
        for index, replica in enumerate(old):  # one at a time: the second starts warm
            replica.start(cache)
            print(f"    {replica.name} ready in {balancer.wait_until(f's{index}', 'UP'):.1f} s")
        old_tag = model_tag(f"http://127.0.0.1:{old[0].port}")
        clock, done = Clock(), asyncio.Event()
        clients = asyncio.create_task(stream(balancer.url, photo, clock, done))
        await asyncio.sleep(STEADY_S)
        prestop_s = manifest.prestop_s if warn else None
        steps = await asyncio.to_thread(roll, old, new, balancer, cache, clock, prestop_s)
        await asyncio.sleep(STEADY_S)
        done.set()
        answers = await clients
        new_tag = model_tag(f"http://127.0.0.1:{new[0].port}")
        result = summary(answers, steps, old_tag, new_tag) | {"warned": warn}
        backend = balancer.stats()["BACKEND"]
        result["haproxy"] = {
            "retries": int(backend["wretr"]),
            "redispatches": int(backend["wredis"]),
            "unanswered": balancer.unanswered(),
        }
        return result
    finally:
        balancer.stop()
        for replica in old + new:
            replica.remove()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old_image")
    parser.add_argument("new_image")
    parser.add_argument("--photo", type=Path, required=True, help="the JPEG the clients send")
    parser.add_argument("--record", type=Path, help="write the figures to this JSON file")
    parser.add_argument(
        "--no-warning",
        action="store_true",
        help="SIGTERM with no drain and no preStop pause; failed requests are reported, not fatal",
    )
    args = parser.parse_args(argv)
    # stopped (Ctrl-C, kill): the containers and HAProxy are removed on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    manifest = Manifest.read(deployment())  # its grace period and preStop pause
    with tempfile.TemporaryDirectory() as work:
        photo = args.photo.read_bytes()
        result = asyncio.run(
            run(args.old_image, args.new_image, photo, Path(work), manifest, not args.no_warning)
        )
    if args.record:
        args.record.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "steps"}, indent=1))
    switched = (
        result["first_new_answer_s"] is not None and not result["old_answers_after_last_stop"]
    )
    grace_s = manifest.grace_s
    clean_stops = all(
        step["old_exit_code"] == 0 and step["old_stop_s"] < grace_s for step in result["steps"]
    )
    if not switched or not clean_stops or (result["failed"] and not args.no_warning):
        sys.exit(
            f"FAILED: {result['failed']} failed requests ({result['statuses']}); the model "
            f"switched: {switched}; old replicas exited 0 within {grace_s} s: {clean_stops}"
        )


if __name__ == "__main__":
    main()
