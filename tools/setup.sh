#!/usr/bin/env bash
# Install what Rekam needs on a fresh Debian / Raspberry Pi OS machine, idempotently:
# system packages (mosquitto and the tools the tests use) and a virtual environment in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
export DEBIAN_FRONTEND=noninteractive

# System packages: the broker; a C compiler and kernel headers (V4L2 and evdev layout checks);
# PostgreSQL (head-office backend); openssl (TLS tests); strace and libfiu (I/O fault injection);
# Network UPS Tools (power tests against a real upsd); Chromium and its driver (diagnostics page);
# iproute2 and nftables (link faults in a network namespace of the tests' own).
PACKAGES=(mosquitto mosquitto-clients python3-venv python3-dev gcc linux-libc-dev openssl iproute2
          nftables postgresql strace fiu-utils libfiu0 nut-server chromium chromium-driver)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "[setup] installing system packages: ${missing[*]}"
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian enables the packaged broker as a service; the agent's tests and demo start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
    "${SUDO[@]}" systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi

PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "Rekam needs Python >= 3.11"'
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv"
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
echo "[setup] installing rekam and its development tools into .venv"
.venv/bin/python -m pip install -q -e '.[dev,wsq,headoffice,bench]' 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/rekam version
