#!/usr/bin/env bash
# A small random-weights model for the container scripts: saved in $BENTOML_HOME's store, its tag
# printed last. Run with the project's .venv active (scripts/setup.sh):
#   CLASSIFIER_MODEL_TAG=$(bash scripts/random-model.sh [SEED])
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${BENTOML_HOME:?set BENTOML_HOME to the store the model goes to}"
python -c "
from classifier.artifact import save_model
from classifier.testing.models import random_model
print(save_model(*random_model(seed=${1:-0})).tag)" | tail -n 1
