"""ENOSPC for real: the journal on a size-limited tmpfs (tests run as root)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import JournalConfig
from agent.journal import Journal, JournalFullError, db_path

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
T0 = "2026-11-01T08:00:00Z"


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs, unmounted afterwards."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mnt)],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        if IN_CI:
            pytest.fail(f"CI must run the ENOSPC test, but mount failed: {res.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        # Lazy: a failed test may still hold the journal open; the mount must go anyway.
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def cfg(**over: object) -> JournalConfig:
    base: dict[str, object] = dict(
        chunk_bytes=64 * 1024, max_packet_bytes=1024 * 1024, max_bytes=1024**3,
        free_disk_floor_bytes=0, reserve_bytes=2 * 1024 * 1024,
    )
    base.update(over)
    return JournalConfig(**base)  # type: ignore[arg-type]


def fill(j: Journal, size: int) -> tuple[dict[str, bytes], str]:
    saved: dict[str, bytes] = {}
    for i in range(40):
        data = os.urandom(size)
        pid = f"p{i:02d}"
        try:
            with j.begin_packet(pid, station_id="st-1", created_at=T0) as sink:
                # Written in uneven pieces, as the packet writer would.
                for k in range(0, size, 100_000):
                    sink.write(data[k:k + 100_000])
                sink.commit()
        except JournalFullError:
            return saved, pid
        saved[pid] = data
    raise AssertionError("the 8 MiB file system never filled up")


def chunk_rows(path: Path, pid: str) -> int:
    with sqlite3.connect(path) as c:
        return int(c.execute("SELECT count(*) FROM chunks WHERE packet_id = ?", (pid,)).fetchone()[0])


def test_enospc_mid_packet(tiny_fs: Path) -> None:
    j = Journal.open(tiny_fs, cfg())
    assert (tiny_fs / "journal.reserve").stat().st_size == 2 * 1024 * 1024
    saved, failed = fill(j, 900_000)
    assert len(saved) >= 2
    # Nothing partial: no metadata, no chunk rows of the packet that did not fit.
    assert j.packet(failed) is None
    assert chunk_rows(db_path(tiny_fs), failed) == 0
    # Earlier packets intact, byte for byte.
    for pid, data in saved.items():
        assert j.read_range(pid, 0, len(data)) == data
    assert not j.headroom().ok
    # The reserve was given up, so the uplink can still record an ack and purge.
    first = next(iter(saved))
    j.mark_delivered(first, hashlib.sha256(saved.pop(first)).hexdigest())
    assert j.packet(first).state == "purged"  # type: ignore[union-attr]
    j.add_event("storage_full", {"note": "still writable"})
    # The purged packet's space takes a new, smaller enrollment.
    with j.begin_packet("after", station_id="st-1", created_at=T0) as sink:
        sink.write(os.urandom(500_000))
        sink.commit()
    j.close()
    j = Journal.open(tiny_fs, cfg())
    for pid, data in saved.items():
        assert j.read_range(pid, 0, len(data)) == data
    assert {p.packet_id for p in j.outbox(100)} == {*saved, "after"}
    j.close()


def test_enospc_without_reserve_still_keeps_committed_packets(tiny_fs: Path) -> None:
    j = Journal.open(tiny_fs, cfg(reserve_bytes=0))
    saved, failed = fill(j, 700_000)
    assert j.packet(failed) is None
    j.close()
    j = Journal.open(tiny_fs, cfg(reserve_bytes=0))  # start-up on a full disk works
    assert chunk_rows(db_path(tiny_fs), failed) == 0
    for pid, data in saved.items():
        assert j.read_range(pid, 0, len(data)) == data
    j.close()
