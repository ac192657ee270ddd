#!/usr/bin/env bash
# Set up .venv with the development packages (requirements-dev.txt) and run every test:
#   bash scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# the web page's tests drive Debian's Chromium (Playwright's own browser download is not used),
# installed while pip installs the Python packages: each mostly waits on its own disk and network
if ! command -v chromium > /dev/null; then
  echo "==> installing chromium (for tests/e2e/test_ui.py)"
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  (
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -q > /dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core > /dev/null
  ) &
  chromium_install=$!
fi
source scripts/setup.sh requirements-dev.txt
if [ -n "${chromium_install:-}" ]; then
  wait "$chromium_install" || { echo "error: installing chromium failed" >&2; exit 1; }
fi
python -m pytest "$@"
