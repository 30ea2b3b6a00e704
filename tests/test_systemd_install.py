"""The systemd unit (verify clean, exposure <= 2.0) and the installer against a temporary root."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "rekam.service"
INSTALL = ROOT / "systemd" / "install.sh"

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def unit_with_real_binary(tmp_path: Path) -> Path:
    # verify checks that ExecStart exists; point it at this checkout's rekam so every other
    # finding of verify is still reported.
    rekam = Path(sys.executable).parent / "rekam"
    text = UNIT.read_text().replace("/opt/rekam/venv/bin/rekam", str(rekam))
    out = tmp_path / "rekam.service"
    out.write_text(text)
    return out


@needs_systemd_analyze
def test_unit_verifies_clean(tmp_path: Path) -> None:
    unit = unit_with_real_binary(tmp_path)
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # systemd-analyze verify exits 0 even on parse errors, so any output at all is a failure.
    assert res.stderr.strip() == "" and res.stdout.strip() == "", res.stderr + res.stdout
    assert res.returncode == 0


@needs_systemd_analyze
def test_unit_exposure_at_most_2(tmp_path: Path) -> None:
    res = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(UNIT)],
                         capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for rekam.service: (\d+\.\d+)", res.stdout + res.stderr)
    assert match, res.stdout[-2000:]
    assert float(match.group(1)) <= 2.0


def test_unit_has_the_required_settings() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "StartLimitBurst=", "UMask=0077",
                 "StateDirectory=rekam", "ConfigurationDirectory=rekam", "ProtectSystem=strict",
                 "PrivateTmp=yes", "NoNewPrivileges=yes", "DevicePolicy=closed", "CapabilityBoundingSet=\n",
                 "SystemCallFilter=@system-service", "RestrictAddressFamilies=", "TimeoutStopSec="):
        assert line in text, line


def run_install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(INSTALL), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=600)


def test_install_layout_and_keeps_existing_config(tmp_path: Path) -> None:
    root = tmp_path / "root"
    res = run_install(root, "--skip-venv")
    assert res.returncode == 0, res.stderr
    unit = root / "etc/systemd/system/rekam.service"
    assert unit.read_text() == UNIT.read_text()
    assert (root / "etc/udev/rules.d/99-rekam.rules").exists()
    assert "u rekam" in (root / "usr/lib/sysusers.d/rekam.conf").read_text()
    assert (root / "var/lib/rekam").stat().st_mode & 0o777 == 0o700
    cfg = root / "etc/rekam/agent.toml"
    assert cfg.read_text() == (ROOT / "systemd/agent.toml.example").read_text()
    assert (root / "opt/rekam/src/agent/cli.py").exists()

    cfg.write_text("# edited by the technician\n")
    keys = root / "var/lib/rekam/keys"
    keys.mkdir(mode=0o700)
    (keys / "station_ed25519.key").write_text("secret")
    res = run_install(root, "--skip-venv")
    assert res.returncode == 0 and "kept existing /etc/rekam/agent.toml" in res.stdout
    assert cfg.read_text() == "# edited by the technician\n"
    assert (keys / "station_ed25519.key").read_text() == "secret"

    res = run_install(root, "--uninstall")
    assert res.returncode == 0
    assert not unit.exists() and not (root / "opt/rekam").exists()
    assert cfg.exists() and (keys / "station_ed25519.key").exists()
    res = run_install(root, "--uninstall", "--purge")
    assert not (root / "etc/rekam").exists() and not (root / "var/lib/rekam").exists()


def test_install_rejects_unknown_option(tmp_path: Path) -> None:
    res = run_install(tmp_path, "--frobnicate")
    assert res.returncode == 2 and "unknown option" in res.stderr


@pytest.mark.slow
def test_install_with_venv_runs_the_agent(tmp_path: Path) -> None:
    root = tmp_path / "root"
    res = run_install(root)
    assert res.returncode == 0, res.stderr[-2000:]
    rekam = root / "opt/rekam/venv/bin/rekam"
    out = subprocess.run([str(rekam), "config", "check", "--config", str(root / "etc/rekam/agent.toml")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
