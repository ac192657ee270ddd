"""The real `bentoml serve` in a subprocess on a free port, with a model in a private store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests import ROOT

BENTOML = str(Path(sys.executable).with_name("bentoml"))

# Small limits so that the limit tests stay fast; the defaults are exercised by unit tests.
SERVER_ENV = {
    "CLASSIFIER_MAX_REQUEST_BYTES": str(4 * 1024 * 1024),
    "CLASSIFIER_MAX_BATCH_IMAGES": "12",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """One `bentoml serve` process group; `url` once /readyz answers 200.

    `command` is what comes before bentoml serve's own options: by default `bentoml serve TARGET`.
    """

    def __init__(
        self, target: str, env: dict[str, str], log: Path, command: list[str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process = subprocess.Popen(
            [
                *(command or [BENTOML, "serve", target]),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so we can kill every worker
        )

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"server not ready in {timeout}s:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="session")
def server(stored_model, tmp_path_factory):
    env = {**SERVER_ENV, "CLASSIFIER_MODEL_TAG": str(stored_model.tag)}
    running = Server("service:ImageClassifier", env, tmp_path_factory.mktemp("logs") / "serve.log")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def url(server) -> str:
    return server.url


@pytest.fixture(scope="session")
def http(url):
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client
