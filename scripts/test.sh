#!/usr/bin/env bash
# Set up .venv and run every test: bash scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
python -m pytest "$@"
