#!/usr/bin/env bash
# Quick start 2: install, then run the whole test suite (real mosquitto, emulated devices).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec .venv/bin/pytest "$@"
