#!/usr/bin/env bash
# Everything the test suite needs on a fresh Debian/Ubuntu machine: Python packages and headless Chromium
# (Playwright drives the Debian build at /usr/bin/chromium; its own browser download is not used).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
python -m pip install -q -r requirements-dev.txt
