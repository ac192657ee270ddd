"""The service as the benchmarks start it: with given settings, or serving the benchmark model."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from classifier.testing.server import Server

ROOT = Path(__file__).resolve().parents[1]
SERVE = [str(Path(sys.executable).with_name("bentoml")), "serve", "service:ImageClassifier"]


def serve_service(env: dict[str, str], log: Path) -> Server:
    """This project's service under `bentoml serve`, from the repository root."""
    return Server(SERVE, env, log, cwd=ROOT)


@contextlib.contextmanager
def benchmark_service(name: str) -> Iterator[Server]:
    """The service with its default settings serving the benchmark model from a private model
    store, ready; stopped afterwards."""
    from bench.__main__ import save_benchmark_model

    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    os.environ["BENTOML_HOME"] = str(workdir / "bentoml")
    stored = save_benchmark_model()
    server = serve_service({"CLASSIFIER_MODEL_TAG": str(stored.tag)}, workdir / "serve.log")
    try:
        server.wait_ready()
        server.wait_compiled()  # measured compiled, as served once it has compiled
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
