#!/usr/bin/env bash
# Create .venv and install requirements-dev.txt (the service's requirements.txt, plus tests and
# benchmarks) into it; quick when nothing changed.
# Sourced by serve.sh and test.sh; leaves the venv activated.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "==> installing requirements-dev.txt (torch is large: a minute or more the first time)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$wanted" > "$stamp"
fi
# shellcheck disable=SC1091
source .venv/bin/activate
export BENTOML_DO_NOT_TRACK=${BENTOML_DO_NOT_TRACK:-True}
