#!/usr/bin/env bash
# Set up .venv with the development packages (requirements-dev.txt) and run every test:
#   bash scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh requirements-dev.txt
# the web page's tests drive Debian's Chromium (Playwright's own browser download is not used)
if ! command -v chromium > /dev/null; then
  echo "==> installing chromium (for tests/e2e/test_ui.py)"
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -q > /dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core > /dev/null
fi
python -m pytest "$@"
