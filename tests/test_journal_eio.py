"""An fsync that fails (EIO, injected with strace) is never reported as saved.

After the failure the journal reopens its database and runs quick_check before new work
(reliability_security.md §1.3, "fsyncgate"); the writer goes on saving later packets.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import JournalConfig
from agent.journal import Journal

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CFG = dict(chunk_bytes=4096, max_packet_bytes=1024 * 1024, max_bytes=1024**3,
           free_disk_floor_bytes=0, reserve_bytes=0, verify_on_open_max_bytes=0)

WRITER = r'''
import hashlib, os, sys
from pathlib import Path
from agent.config import JournalConfig
from agent.journal import Journal, JournalError
j = Journal.open(Path(sys.argv[1]), JournalConfig(**eval(sys.argv[2])))
for i in range(8):
    data = os.urandom(20000 + i)
    try:
        with j.begin_packet(f"p{i}", station_id="st-1", created_at="2026-11-01T08:00:00Z") as s:
            s.write(data)
            s.commit()
        print("SAVED", f"p{i}", hashlib.sha256(data).hexdigest(), flush=True)
    except JournalError as exc:
        print("ERR", f"p{i}", str(exc).replace(" ", "_"), flush=True)
j.close()
'''


def test_failed_fsync_is_not_saved_and_the_journal_recovers(tmp_path: Path) -> None:
    strace = shutil.which("strace")
    if strace is None:
        if IN_CI:
            pytest.fail("strace is needed in CI for the fsync fault test")
        pytest.skip("strace is not installed (apt-get install strace)")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    Journal.open(state, JournalConfig(**CFG)).close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    # Each packet costs four fdatasync calls here (WAL commit, then the checkpoint's WAL
    # and database syncs); the 7th is the second packet's commit.
    proc = subprocess.run(
        [strace, "-f", "-o", str(tmp_path / "strace.out"), "-e", "trace=fdatasync",
         "-e", "inject=fdatasync:error=EIO:when=7",
         sys.executable, str(script), str(state), repr(CFG)],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "INJECTED" in (tmp_path / "strace.out").read_text()
    lines = [ln.split() for ln in proc.stdout.splitlines()]
    errors = [ln for ln in lines if ln[0] == "ERR"]
    saved = {ln[1]: ln[2] for ln in lines if ln[0] == "SAVED"}
    assert len(errors) == 1 and "NOT_saved" in errors[0][2], proc.stdout
    assert "reopening the database after an I/O error" in proc.stderr
    # Packets after the failure were saved through the reopened connection.
    failed_at = int(errors[0][1][1:])
    assert any(int(pid[1:]) > failed_at for pid in saved)
    with Journal.open(state, JournalConfig(**CFG)) as j:
        for pid, sha in saved.items():
            info = j.packet(pid)
            assert info is not None and info.sha256 == sha
            assert hashlib.sha256(j.read_range(pid, 0, info.size)).hexdigest() == sha
