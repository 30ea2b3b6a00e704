"""The daemon: READY=1 over sd_notify, one daemon per state directory, clean SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agent.logs import TRACE, JournaldFormatter

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
