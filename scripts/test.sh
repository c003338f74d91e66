#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine, then run lint, types and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: ffmpeg decodes M4A/AAC (and makes the M4A test fixtures);
# chromium + chromium-driver run the web app's real-browser test.
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[test]'

.venv/bin/ruff check src tests scripts benchmarks experiments
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
