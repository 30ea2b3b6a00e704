#!/usr/bin/env bash
# Quick start 1: install, then run the simulated station end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec .venv/bin/rekam demo "$@"
