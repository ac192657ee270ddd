"""The real `bentoml serve` in a subprocess on a free port, with a model in a private store."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest

from classifier.artifact import save_model
from classifier.testing.models import random_model
from classifier.testing.server import Server
from tests import ROOT

BENTOML = str(Path(sys.executable).with_name("bentoml"))

# Small limits so that the limit tests stay fast; the defaults are exercised by unit tests.
SERVER_ENV = {
    "CLASSIFIER_MAX_REQUEST_BYTES": str(4 * 1024 * 1024),
    "CLASSIFIER_MAX_BATCH_IMAGES": "12",
    # batches of up to 8 batch all the same, and a start warms the model up at 8 rather than 16:
    # 2 to 4 s less a server where the CPU has no bf16
    "CLASSIFIER_MAX_BATCH_SIZE": "8",
}


def slow_upload(data: bytes, chunks: int = 16, seconds_per_chunk: float = 0.5) -> dict:
    """httpx arguments for a multipart /predict body sent slowly, like a phone on a weak network
    would: by default it takes 8 s."""
    boundary = "slowupload"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    size = -(-len(body) // chunks)

    def pieces():
        for start in range(0, len(body), size):
            time.sleep(seconds_per_chunk)
            yield body[start : start + size]

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    return {"content": pieces(), "headers": headers}


def model_images(url: str) -> float:
    """Images the model has classified since the server started (the batch-size histogram's sum)."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("classifier_batch_size_sum"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def serve(target: str, env: dict[str, str], log: Path, command: list[str] | None = None) -> Server:
    """`bentoml serve TARGET` (or `command`) on a free port, from the repository root.

    The eager model unless `env` says otherwise: compiling takes a minute, and only
    test_compiled.py is about it.
    """
    env = {"CLASSIFIER_COMPILE": "off", **env}
    return Server(command or [BENTOML, "serve", target], env, log, cwd=ROOT)


def serve_until_exit(tag: str, log: Path, **settings: str) -> tuple[int, str]:
    """`bentoml serve` of the service with model `tag`, expected to refuse to start: its exit
    code and output."""
    server = serve("service:ImageClassifier", {"CLASSIFIER_MODEL_TAG": tag, **settings}, log)
    try:
        code = server.process.wait(timeout=120)  # a crash loop would never exit
    finally:
        server.stop()
    return code, log.read_text()


API_KEY = "k3y-for-tests-0123456789abcdef"


def start(tag: str, logs: Path, **settings: str) -> Server:
    """The service serving model `tag` with the tests' limits and `settings`, ready."""
    env = {**SERVER_ENV, "CLASSIFIER_MODEL_TAG": tag, **settings}
    running = serve("service:ImageClassifier", env, logs / "serve.log")
    try:
        running.wait_ready()
    except BaseException:
        running.stop()
        raise
    return running


@pytest.fixture(scope="session")
def server(stored_model, tmp_path_factory):
    running = start(str(stored_model.tag), tmp_path_factory.mktemp("logs"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory):
    """A server with an API key from the environment, /metrics left open and one CORS origin,
    serving a model that is not the demo; and that model's tag. Shared by the access-control and
    the web page's tests."""
    model, card = random_model(seed=5, source="file")
    tag = str(save_model(model, card).tag)
    running = start(
        tag,
        tmp_path_factory.mktemp("logs"),
        CLASSIFIER_API_KEY=API_KEY,
        CLASSIFIER_CORS_ORIGINS="https://app.example",
    )
    yield running, tag
    running.stop()


LIMITED_CONCURRENCY = 4


@pytest.fixture(scope="session")
def limited_server(stored_model, tmp_path_factory):
    """A server that admits LIMITED_CONCURRENCY requests at a time and refuses more with 503:
    shared by the overload and the bulk client's tests."""
    running = start(
        str(stored_model.tag),
        tmp_path_factory.mktemp("logs"),
        CLASSIFIER_MAX_CONCURRENCY=str(LIMITED_CONCURRENCY),
    )
    yield running
    running.stop()


@pytest.fixture(scope="session")
def model_service_server(stored_model, tmp_path_factory):
    """A server whose APIs call the ImageModel service (batching=bentoml), with the API key in a
    file (a mounted secret) and /metrics behind the key too: those inner calls must not need the
    key. Shared by the batching and the access-control tests."""
    secret = tmp_path_factory.mktemp("secret") / "api-key"
    secret.write_text(API_KEY + "\n")
    running = start(
        str(stored_model.tag),
        tmp_path_factory.mktemp("logs"),
        CLASSIFIER_API_KEY_FILE=str(secret),
        CLASSIFIER_METRICS_REQUIRE_KEY="true",
        CLASSIFIER_BATCHING="bentoml",
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def make_server(stored_model, tmp_path_factory):
    """Start extra servers with other settings; each is stopped when its test module ends."""
    started: list[Server] = []

    def start_one(**settings: str) -> Server:
        running = start(str(stored_model.tag), tmp_path_factory.mktemp("logs"), **settings)
        started.append(running)
        return running

    yield start_one
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def url(server) -> str:
    return server.url


@pytest.fixture(scope="session")
def http(url):
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client
