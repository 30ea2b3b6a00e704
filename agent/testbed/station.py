"""A whole simulated station on this machine: keys, config with emulated devices, the daemon.

Used by ``rekam demo`` and the end-to-end tests, so both run the same real parts: the daemon
process (``rekam run``) with every device emulated behind its real driver, the station API on
127.0.0.1, and optionally the uplink to a local broker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.testbed.mosquitto import free_port


def emulated_devices(*, printer: bool = True, printer_output: Path | None = None,
                     zfm_flash: Path | None = None) -> dict[str, dict[str, Any]]:
    """[devices.*] tables for a station whose every device is emulated.

    The ZFM module (operator sign-in) has the simulated operator's finger on its glass, and
    keeps its template library in ``zfm_flash`` so an enrolment made by `rekam operators enroll`
    is still there when the daemon opens the module.
    """
    flash = f"&flash={zfm_flash}" if zfm_flash else ""
    devices: dict[str, dict[str, Any]] = {
        "fingerprint": {"driver": "zfm", "url": f"emu://zfm?name=station&finger=operator-demo{flash}",
                        "role": "fingerprint"},
        "tenprint": {"driver": "tenprint-emulator", "url": "emu://tenprint?name=station", "role": "tenprint"},
        "camera": {"driver": "v4l2", "url": "emu://camera?name=station", "role": "camera"},
        "iris": {"driver": "iris-emulator", "url": "emu://iris?name=station", "role": "iris"},
        "signature": {"driver": "evdev", "url": "emu://signature?name=station&autosign=1", "role": "signature",
                      "options": {"idle_end_s": 0.5}},
    }
    if printer:
        devices["printer"] = {"driver": "evolis", "url": "emulator", "role": "printer",
                              "options": {"output_dir": str(printer_output)} if printer_output else {}}
    return devices


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_toml(path: Path, doc: dict[str, Any]) -> None:
    """Write a two-level TOML document (sections and [devices.NAME] sub-tables)."""
    lines: list[str] = []
    for section, body in doc.items():
        if section == "devices":
            for name, dev in body.items():
                lines.append(f"[devices.{name}]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in dev.items()]
                lines.append("")
            continue
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in body.items()]
        lines.append("")
    path.write_text("\n".join(lines))


@dataclass
class SimulatedStation:
    """One station daemon in a subprocess, with its state directory under ``workdir``."""

    workdir: Path
    station_id: str = "demo-station-01"
    broker_port: int | None = None
    uplink_enabled: bool = False
    printer: bool = True
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    api_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def state_dir(self) -> Path:
        """The station's state directory."""
        return self.workdir / "state"

    @property
    def config_path(self) -> Path:
        """The generated agent.toml."""
        return self.workdir / "agent.toml"

    @property
    def log_path(self) -> Path:
        """The daemon's stderr."""
        return self.workdir / "daemon.log"

    def prepare(self, headoffice_bundle: Path | None = None) -> None:
        """Create keys (station; trust head office's bundle) and write the config."""
        from agent.keys import init_station_keys, keys_dir, trust_headoffice
        from agent.statedir import prepare_state_dir

        self.workdir.mkdir(parents=True, exist_ok=True)
        prepare_state_dir(self.state_dir)
        kdir = keys_dir(self.state_dir)
        if not (kdir / "station_ed25519.key").exists():
            init_station_keys(kdir)
        if headoffice_bundle is not None:
            trust_headoffice(kdir, headoffice_bundle.read_bytes(), force=True)
        self.api_port = self.api_port or free_port()
        doc: dict[str, Any] = {
            "station": {"id": self.station_id, "district_code": "647201", "language": "en",
                        "state_dir": str(self.state_dir)},
            "logging": {"level": "INFO"},
            "uplink": {"enabled": self.uplink_enabled, "host": "127.0.0.1",
                       "port": self.broker_port or 1883, "transport": "tcp",
                       "keepalive_seconds": 5, "reconnect_min_seconds": 0.2,
                       "reconnect_max_seconds": 2.0, "ack_timeout_seconds": 5,
                       "telemetry_seconds": 5},
            "api": {"port": self.api_port},
            # The emulated camera shows one backdrop colour; an office swaps red/blue per applicant.
            "quality": {"photo_background": "any"},
            "diagnostics": {"enabled": True, "port": free_port()},
            "printer": {"enabled": self.printer},
            "devices": emulated_devices(printer=self.printer, printer_output=self.workdir / "cards",
                                        zfm_flash=self.workdir / "zfm-flash.json"),
        }
        for section, values in self.extra.items():
            doc.setdefault(section, {}).update(values)
        write_toml(self.config_path, doc)

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run one `rekam` command against this station's config."""
        env = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY", "NOTIFY_SOCKET")}
        return subprocess.run([sys.executable, "-m", "agent", *args, "--config", str(self.config_path)],
                              capture_output=True, text=True, env=env, input=stdin, timeout=120)

    def enroll_operator(self, staff_id: str = "OP-001", name: str = "Demo Operator",
                        role: str = "supervisor") -> None:
        """Enrol the simulated operator on the emulated ZFM module (before the daemon starts)."""
        res = self.cli("operators", "enroll", staff_id, "--name", name, "--role", role, "--no-lift")
        if res.returncode != 0:
            raise RuntimeError(f"rekam operators enroll failed: {res.stderr.strip()}")

    def sign_in(self) -> dict[str, Any]:
        """Sign the simulated operator in at the station API by fingerprint."""
        return dict(self.client().call("POST", "/v1/operators/sign-in", {"method": "fingerprint"}))

    def start(self, timeout: float = 60.0) -> None:
        """Start ``rekam run`` and wait until the station API answers."""
        from agent.api.client import StationClient

        env = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY", "NOTIFY_SOCKET")}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"station daemon exited ({self.proc.returncode}): {self.log_tail()}")
            token_file = self.state_dir / "api.token"
            if token_file.exists():
                try:
                    StationClient(self.api_port, self.token(), timeout=2).call("GET", "/v1/health")
                    return
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"station daemon not ready within {timeout} s: {self.log_tail()}")

    def token(self) -> str:
        """The station API token."""
        return (self.state_dir / "api.token").read_text().strip()

    def client(self) -> Any:
        """A StationClient for this station's API."""
        from agent.api.client import StationClient

        return StationClient(self.api_port, self.token())

    def wait_devices_ready(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait until every configured device reports ready; return the device list."""
        deadline = time.monotonic() + timeout
        devices: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            devices = self.client().call("GET", "/v1/devices")["devices"]
            if devices and all(d["state"] == "ready" for d in devices):
                return devices
            time.sleep(0.2)
        raise RuntimeError(f"devices not ready: {[(d['name'], d['state']) for d in devices]}")

    def stop(self, *, kill: bool = False, timeout: float = 30.0) -> int | None:
        """SIGTERM (or SIGKILL) the daemon and wait; return its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        code = self.proc.returncode
        self.proc = None
        return code

    def log_tail(self, n: int = 3000) -> str:
        """The end of the daemon's log."""
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def utc_now() -> str:
    """Now as ISO 8601 UTC."""
    return datetime.now(UTC).isoformat(timespec="seconds")
