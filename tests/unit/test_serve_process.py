"""`bentoml serve`'s own process imports the service and checks the model without torch."""

from __future__ import annotations

import os
import subprocess
import sys

from tests import ROOT

# That process imports service.py to find the services and runs the model's integrity check,
# and never runs the model: importing torch and torchvision there took 7 s of every start on a Zen 3
WITHOUT_TORCH = """
import sys
sys.modules["torch"] = sys.modules["torchvision"] = None  # importing either now fails
import service
from _bentoml_impl.server.serving import server_on_deployment
server_on_deployment(service.ImageClassifier)  # what `bentoml serve` runs: the model's check
print("checked", service.model_tag(service.ImageClassifier))
"""


def test_the_serve_process_imports_the_service_and_checks_the_model_without_torch(stored_model):
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH],
        cwd=ROOT,
        env={**os.environ, "CLASSIFIER_MODEL_TAG": str(stored_model.tag)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"checked {stored_model.tag}" in result.stdout
