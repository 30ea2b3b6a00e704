"""Operations faults: a taken port, a read-only state directory, SIGTERM during a capture."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.api.client import ApiError
from agent.config import parse_config
from agent.journal import Journal
from agent.keys import generate_headoffice_keys
from agent.testbed.station import SimulatedStation
from agent.workflow.synthetic import applicant

ROOT = Path(__file__).resolve().parents[1]


def run_daemon(cfg: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY", "NOTIFY_SOCKET")}
    return subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(cfg)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_station_api_port_taken_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cfg = tmp_path / "agent.toml"
        cfg.write_text(f'[station]\nstate_dir = "{tmp_path / "state"}"\n[uplink]\nenabled = false\n'
                       f'[api]\nport = {port}\n[diagnostics]\nenabled = false\n')
        out = run_daemon(cfg)
    assert out.returncode == 2, out.stderr
    assert f"[api] port {port}: cannot listen on 127.0.0.1" in out.stderr
    assert "Traceback" not in out.stderr


def test_read_only_state_directory_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only tmpfs")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m,mode=0700", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount tmpfs: {res.stderr}")
        pytest.skip(f"cannot mount tmpfs here: {res.stderr.strip()}")
    try:
        cfg = tmp_path / "agent.toml"
        cfg.write_text(f'[station]\nstate_dir = "{mnt}"\n[uplink]\nenabled = false\n')
        out = run_daemon(cfg)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
    assert out.returncode == 2
    assert "not writable" in out.stderr and "Traceback" not in out.stderr


def test_sigterm_during_a_capture_stops_cleanly_and_loses_nothing(tmp_path: Path) -> None:
    generate_headoffice_keys(tmp_path / "ho", now=datetime.now(UTC))
    st = SimulatedStation(tmp_path / "station", printer=False)
    st.prepare(headoffice_bundle=tmp_path / "ho" / "headoffice_bundle.json")
    st.enroll_operator()
    st.start()
    try:
        st.wait_devices_ready()
        st.sign_in()
        saved = st.client().enroll(applicant(5))["packet_id"]
        client = st.client()
        sid = client.call("POST", "/v1/sessions")["session_id"]
        client.call("PUT", f"/v1/sessions/{sid}/biodata", applicant(6))
        client.call("POST", f"/v1/sessions/{sid}/next")
        outcome: list[object] = []

        def capture() -> None:
            try:
                outcome.append(client.call("POST", f"/v1/sessions/{sid}/capture/face"))
            except (ApiError, OSError) as exc:
                outcome.append(exc)

        t = threading.Thread(target=capture)
        t.start()
        assert st.proc is not None
        st.proc.send_signal(signal.SIGTERM)
        st.proc.wait(timeout=30)
        t.join(30)
        assert st.proc.returncode == 0, st.log_tail()
        assert "Traceback" not in st.log_tail(100_000)
    finally:
        st.stop()
    with Journal.open(st.state_dir, parse_config({}).journal) as journal:
        info = journal.packet(saved)
        assert info is not None and info.state == "queued"
        assert journal.verify_backlog() == []
