#!/usr/bin/env bash
# Create .venv and install a requirements file into it, quick when it is already installed:
#   source scripts/setup.sh requirements.txt         serving and training
#   source scripts/setup.sh requirements-dev.txt     and the tests' and benchmarks' packages
# Sourced by serve.sh (the first), test.sh and the container scripts (the second); leaves the venv
# activated.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

requirements=$1  # sourced: name it, or the caller's own arguments would be taken
UV_VERSION=0.13.10
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# one stamp per file: requirements-dev.txt includes requirements.txt, so installing it leaves both
# stamps, and serve.sh after test.sh installs nothing
stamp() { echo ".venv/.installed-${1%.txt}.sha256"; }
wanted() { cat requirements.txt "$1" $(sed -n "s/^-r //p" "$1") | sha256sum | cut -d' ' -f1; }
if [ "$(cat "$(stamp "$requirements")" 2>/dev/null)" != "$(wanted "$requirements")" ]; then
  echo "==> installing $requirements (torch is large: a minute or more the first time)"
  # uv installs torch's CUDA wheels (about 6 GB unpacked) three to four times as fast as pip (49 s
  # against 175 s from an empty cache, the venv and uv included); pip where uv cannot, say behind
  # an index that only pip.conf names
  pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
  if ! { "${pip[@]}" "uv==$UV_VERSION" && .venv/bin/uv pip install --quiet --python .venv/bin/python -r "$requirements"; }; then
    echo "==> uv could not install $requirements: installing with pip"
    "${pip[@]}" -r "$requirements"
  fi
  wanted "$requirements" > "$(stamp "$requirements")"
  if [ "$requirements" = requirements-dev.txt ]; then wanted requirements.txt > "$(stamp requirements.txt)"; fi
fi
# shellcheck disable=SC1091
source .venv/bin/activate
export BENTOML_DO_NOT_TRACK=${BENTOML_DO_NOT_TRACK:-True}
