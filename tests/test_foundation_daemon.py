"""The daemon: READY=1 over sd_notify (start timeout extended while the journal is checked), one
daemon per state directory, clean SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.logs import TRACE, JournaldFormatter
from agent.sdnotify import extending_start

ROOT = Path(__file__).resolve().parents[1]


def write_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[station]\nstate_dir = "{tmp_path / "state"}"\n'
        "[uplink]\nenabled = false\ntransport = \"tcp\"\n"
        "[api]\nenabled = false\n[diagnostics]\nenabled = false\n"
    )
    return cfg


def start_daemon(cfg: Path, notify_path: Path | None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY", "JOURNAL_STREAM")}
    if notify_path is not None:
        env["NOTIFY_SOCKET"] = str(notify_path)
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )


def test_ready_lock_and_sigterm(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(30)
    proc = start_daemon(cfg, notify_path)
    try:
        messages = []
        while "READY=1" not in messages:
            messages.append(sock.recv(4096).decode())
        # The journal's start-up check asked systemd for more time before READY=1.
        assert any(m.startswith("EXTEND_TIMEOUT_USEC=") and "STATUS=checking the journal" in m
                   for m in messages[:messages.index("READY=1")])
        state = tmp_path / "state"
        assert (state.stat().st_mode & 0o777) == 0o700

        second = start_daemon(cfg, None)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 2
        assert "another rekam daemon is already running" in err
        assert "Traceback" not in err

        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in err
        while "STOPPING=1" not in messages:
            messages.append(sock.recv(4096).decode())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        sock.close()


def _notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> socket.socket:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    return sock


def _received(sock: socket.socket) -> list[str]:
    sock.setblocking(False)
    got = []
    try:
        while True:
            got.append(sock.recv(4096).decode())
    except BlockingIOError:
        return got


def test_a_long_start_step_extends_the_start_timeout_until_it_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = _notify_socket(tmp_path, monkeypatch)
    with extending_start(budget=60, status="checking the journal (9 MB)", every=0.05):
        time.sleep(0.3)
    after = len(_received(sock))
    time.sleep(0.2)
    assert _received(sock) == []  # nothing once the step is over
    assert after >= 2
    sock.close()


def test_extensions_stop_after_the_budget_so_a_hung_start_is_still_killed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = _notify_socket(tmp_path, monkeypatch)
    with extending_start(budget=0.1, status="checking", every=0.05):
        time.sleep(0.6)  # a step that overruns its budget
    got = _received(sock)
    sock.close()
    # Without the budget there would be about 12 (every 0.05 s for 0.6 s).
    assert 1 <= len(got) <= 4
    assert got[0] == "EXTEND_TIMEOUT_USEC=150000\nSTATUS=checking"


def test_no_extension_thread_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    before = threading.active_count()
    with extending_start(budget=60, status="x", every=0.01):
        assert threading.active_count() == before


def test_journald_formatter_keeps_levels() -> None:
    fmt = JournaldFormatter("%(name)s: %(message)s")
    rec = logging.LogRecord("rekam.x", logging.WARNING, __file__, 1, "disk low", None, None)
    assert fmt.format(rec) == "<4>rekam.x: disk low"
    rec = logging.LogRecord("rekam.x", TRACE, __file__, 1, "tx ef01", None, None)
    assert fmt.format(rec).startswith("<7>")
    assert logging.getLevelName(TRACE) == "TRACE"


def test_journald_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.logs import under_journald

    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert not under_journald()
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    assert not under_journald()  # our stderr is not that inode
