"""Crash safety: kill -9 a writer process at random instants, reopen, check every saved packet.

The writer prints a packet's id and its own SHA-256 of the bytes only after ``commit()``
returned ("saved" as the operator would see it). After each kill the journal is reopened
(start-up recovery runs) and every packet reported saved must be present and hash-correct,
every packet reported delivered must be a purged tombstone, and no chunk may belong to a
packet that is not journaled.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.config import JournalConfig
from agent.journal import Journal, db_path
from agent.journal.store import scan_packet

WRITER = r'''
import hashlib, os, random, sys
from pathlib import Path
from agent.config import JournalConfig
from agent.journal import Journal

state_dir, seed = Path(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
cfg = JournalConfig(chunk_bytes=16 * 1024, max_packet_bytes=1024 * 1024, max_bytes=1024**3,
                    free_disk_floor_bytes=0, reserve_bytes=0)
j = Journal.open(state_dir, cfg)
def report(*fields):
    # One write(2) per line: a pipe write under PIPE_BUF is atomic, so a kill never leaves
    # half a line (print() may issue several writes for one line).
    os.write(1, (" ".join(fields) + "\n").encode())

report("OPEN")
n = 0
saved = []
while True:
    n += 1
    pid = f"s{seed}-{n}"
    data = rng.randbytes(rng.randint(1, 300_000))
    with j.begin_packet(pid, station_id="st-1", created_at="2026-11-01T08:00:00Z") as sink:
        pos = 0
        while pos < len(data):
            step = rng.randint(1, 70_000)
            sink.write(data[pos:pos + step])
            pos += step
        sink.commit()
    report("SAVED", pid, hashlib.sha256(data).hexdigest())
    saved.append((pid, hashlib.sha256(data).hexdigest()))
    roll = rng.random()
    if roll < 0.3:
        j.mark_sending(saved[0][0])
    elif roll < 0.5:
        pid0, sha0 = saved.pop(0)
        report("DELIVERING", pid0)  # a kill from here on may or may not land
        j.mark_delivered(pid0, sha0)
        report("DELIVERED", pid0)
    elif roll < 0.6:
        j.add_event("crash_test", {"n": n})
'''


def verify(state_dir: Path, saved: dict[str, str], delivered: set[str],
           maybe: set[str]) -> None:
    cfg = JournalConfig(chunk_bytes=16 * 1024, max_packet_bytes=1024 * 1024, max_bytes=1024**3,
                        free_disk_floor_bytes=0, reserve_bytes=0)
    j = Journal.open(state_dir, cfg)  # integrity check + recovery
    try:
        for pid, sha in saved.items():
            info = j.packet(pid)
            assert info is not None, f"packet {pid} was reported saved but is gone"
            assert info.sha256 == sha
            if pid in delivered or (pid in maybe and info.state == "purged"):
                assert info.state == "purged"
                continue
            assert info.state == "queued"  # 'sending' reset by recovery
            data = j.read_range(pid, 0, info.size)
            assert hashlib.sha256(data).hexdigest() == sha
        with sqlite3.connect(db_path(state_dir)) as c:
            assert c.execute("SELECT count(*) FROM packets WHERE state IN ('writing','sending')"
                             ).fetchone()[0] == 0
            assert c.execute("SELECT count(*) FROM chunks WHERE packet_id NOT IN "
                             "(SELECT packet_id FROM packets)").fetchone()[0] == 0
            for (pid,) in c.execute("SELECT packet_id FROM packets WHERE state = 'queued'"):
                assert scan_packet(c, pid) == []
    finally:
        j.close()


@pytest.mark.slow
def test_kill_minus_nine_at_random_points(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    rng = random.Random(os.environ.get("HYPOTHESIS_SEED", "20261129"))
    saved: dict[str, str] = {}
    delivered: set[str] = set()
    maybe: set[str] = set()  # mark_delivered called, process killed before it reported back
    kills_after_save = 0
    for cycle in range(12):
        proc = subprocess.Popen([sys.executable, str(script), str(state_dir), str(cycle)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # wait until the journal is open before timing the kill
        assert first.strip() == "OPEN", proc.stderr.read() if proc.stderr else first
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err
        # Only newline-terminated lines are reports; anything after the last one is ignored.
        for line in out.split("\n")[:-1]:
            parts = line.split()
            if parts and parts[0] == "SAVED":
                saved[parts[1]] = parts[2]
                kills_after_save += 1
            elif parts and parts[0] == "DELIVERING":
                maybe.add(parts[1])
            elif parts and parts[0] == "DELIVERED":
                delivered.add(parts[1])
        try:
            verify(state_dir, saved, delivered, maybe)
        except Exception as exc:  # keep the writer's last words with any failure
            raise AssertionError(f"cycle {cycle}: {exc!r}\nwriter stdout tail: {out[-500:]}"
                                 f"\nwriter stderr tail: {err[-2000:]}") from exc
    # The test means something only if the writers got packets saved before dying.
    assert kills_after_save > 12 and delivered, (kills_after_save, len(delivered))
