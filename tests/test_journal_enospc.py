"""A full disk for real: the journal on a size-limited tmpfs (tests run as root).

Three promises: the journal refuses a packet (with the operator's message) before SQLite itself
runs out of space; when something else fills the disk mid-packet, the packet is rolled back and
nothing saved is touched; and on a disk that is really full, the writes that free space (mark
sending, confirm chunks, events, deliver, purge) still work and the space returns to the file
system.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import random
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.config import JournalConfig
from agent.journal import Journal, JournalFullError, db_path
from agent.journal.store import disk_needed_for_packet, packet_disk_bytes

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
T0 = "2026-11-01T08:00:00Z"
MiB = 1024 * 1024
REFUSED_EN = "Enrollment refused: the disk is full."
REFUSED_ID = "Perekaman ditolak: disk penuh."
# What the journal logs when SQLite itself met ENOSPC (never expected while the budget holds).
SQLITE_FULL_SIGNS = ("disk is full", "checkpoint failed", "released the")

Mount = Callable[[str], Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """Mount size-limited tmpfs file systems on demand; unmount them afterwards."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        mnt = tmp_path / f"fs{len(mounted)}"
        mnt.mkdir()
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                              str(mnt)], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            if IN_CI:
                pytest.fail(f"CI must run the ENOSPC tests, but mount failed: {res.stderr.strip()}")
            pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()}")
        mounted.append(mnt)
        return mnt

    try:
        yield mount
    finally:
        for mnt in mounted:
            # Lazy: a failed test may still hold the journal open; the mount must go anyway.
            subprocess.run(["umount", "-l", str(mnt)], check=True)


def cfg(**over: object) -> JournalConfig:
    base: dict[str, object] = dict(
        chunk_bytes=64 * 1024, max_packet_bytes=MiB, max_bytes=1024**3,
        free_disk_floor_bytes=0, reserve_bytes=2 * MiB,
    )
    base.update(over)
    return JournalConfig(**base)  # type: ignore[arg-type]


def save(j: Journal, pid: str, data: bytes) -> None:
    with j.begin_packet(pid, station_id="st-1", created_at=T0) as sink:
        # Written in uneven pieces, as the packet writer would.
        for k in range(0, len(data), 100_000):
            sink.write(data[k:k + 100_000])
        sink.commit()


def fill(j: Journal, size: Callable[[int], int]) -> tuple[dict[str, bytes], JournalFullError]:
    """Save packets until the journal refuses one; return the saved ones and the refusal."""
    saved: dict[str, bytes] = {}
    for i in range(400):
        data = os.urandom(size(i))
        try:
            save(j, f"p{i:03d}", data)
        except JournalFullError as exc:
            return saved, exc
        saved[f"p{i:03d}"] = data
    raise AssertionError("the file system never filled up")


def ballast(mnt: Path) -> Path:
    """Something else (logs, a download) takes every free byte of the file system."""
    path = mnt / "ballast"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    try:
        for size in (64 * 1024, 4096, 512, 1):
            block = b"\xa5" * size
            while True:
                try:
                    if os.write(fd, block) < size:
                        break
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return path


def chunk_rows(path: Path, pid: str) -> int:
    with sqlite3.connect(path) as c:
        return int(c.execute("SELECT count(*) FROM chunks WHERE packet_id = ?", (pid,)).fetchone()[0])


def journal_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "agent.journal.store" and r.levelno >= logging.WARNING]


@pytest.mark.parametrize(("chunk", "floor"), [
    (1024, 0), (8 * 1024, 0), (8 * 1024, 3 * MiB), (64 * 1024, 0), (256 * 1024, MiB),
])
def test_refused_before_sqlite_runs_out_of_space(tmpfs: Mount, caplog: pytest.LogCaptureFixture,
                                                 chunk: int, floor: int) -> None:
    """Finding 1: the budget (WAL, checkpoint copy, WAL growth, floor) refuses first."""
    mnt = tmpfs("16m")
    c = cfg(chunk_bytes=chunk, max_packet_bytes=MiB, reserve_bytes=MiB, free_disk_floor_bytes=floor)
    caplog.set_level(logging.WARNING, logger="agent.journal.store")
    rng = random.Random(chunk + floor)
    j = Journal.open(mnt, c)
    saved, refusal = fill(j, lambda i: rng.randint(1, MiB))
    # The last attempts ask for less and less: each one is saved or refused, never failed by SQLite.
    for size in (MiB // 2, MiB // 8, 4096, 1):
        pid = f"small{size}"
        try:
            save(j, pid, data := os.urandom(size))
            saved[pid] = data
        except JournalFullError as exc:
            assert REFUSED_EN in str(exc), exc
    free = shutil.disk_usage(mnt).free
    print(f"chunk {chunk}, floor {floor}: {len(saved)} packets "
          f"({sum(map(len, saved.values())) / MiB:.1f} MiB) saved on 16 MiB; refused with "
          f"{free / MiB:.2f} MiB free; database {db_path(mnt).stat().st_size / MiB:.2f} MiB")
    assert len(saved) >= 2
    assert REFUSED_EN in str(refusal) and "Nothing of this packet was kept" in str(refusal)
    assert refusal.message_id.startswith(REFUSED_ID)
    assert [m for m in journal_warnings(caplog) if any(s in m for s in SQLITE_FULL_SIGNS)] == []
    assert (mnt / "journal.reserve").stat().st_size == MiB  # never needed
    assert free >= floor
    room = j.headroom()
    assert not room.ok and room.message_en.startswith(REFUSED_EN)
    assert room.backlog_packets == len(saved)
    for pid, data in saved.items():
        assert j.read_range(pid, 0, len(data)) == data
    j.close()
    with sqlite3.connect(db_path(mnt)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_the_headroom_bound_covers_what_a_packet_really_takes(tmpfs: Mount) -> None:
    """Measured: a maximum-size packet's peak disk use stays inside disk_needed_for_packet."""
    for chunk in (1024, 8 * 1024, 64 * 1024, 256 * 1024):
        mnt = tmpfs("64m")
        c = cfg(chunk_bytes=chunk, max_packet_bytes=4 * MiB, reserve_bytes=0)
        j = Journal.open(mnt, c)
        save(j, "warm", os.urandom(1000))
        before = shutil.disk_usage(mnt).used
        peak = 0
        data = os.urandom(c.max_packet_bytes)
        with j.begin_packet("max", station_id="st-1", created_at=T0) as sink:
            for k in range(0, len(data), 256 * 1024):
                sink.write(data[k:k + 256 * 1024])
                peak = max(peak, shutil.disk_usage(mnt).used - before)
            sink.commit()  # commit, then the checkpoint copies the pages into the file
        peak = max(peak, shutil.disk_usage(mnt).used - before)
        # The packet's own share of the bound (the rest keeps room for the WAL's small writes).
        bound = packet_disk_bytes(c.max_packet_bytes, chunk)
        print(f"chunk {chunk}: 4 MiB packet took {peak / MiB:.2f} MiB at most; its bound "
              f"{bound / MiB:.2f} MiB, whole headroom {disk_needed_for_packet(c) / MiB:.2f} MiB")
        assert peak <= bound
        j.close()


def test_enospc_mid_packet_when_something_else_fills_the_disk(tmpfs: Mount) -> None:
    """A real ENOSPC inside a packet: rolled back, nothing partial, earlier packets intact."""
    mnt = tmpfs("12m")
    j = Journal.open(mnt, cfg())
    assert (mnt / "journal.reserve").stat().st_size == 2 * MiB
    saved = {f"p{i}": os.urandom(600_000) for i in range(2)}
    for pid, data in saved.items():
        save(j, pid, data)
    big = os.urandom(MiB)
    with pytest.raises(JournalFullError, match="disk is full|nothing of this packet|NOT saved"):
        with j.begin_packet("victim", station_id="st-1", created_at=T0) as sink:
            sink.write(big[:100_000])
            ballast(mnt)
            for k in range(100_000, len(big), 100_000):
                sink.write(big[k:k + 100_000])
            sink.commit()
    assert j.packet("victim") is None
    assert chunk_rows(db_path(mnt), "victim") == 0
    assert not (mnt / "journal.reserve").exists()  # given up for the writes that free space
    for pid, data in saved.items():
        assert j.read_range(pid, 0, len(data)) == data
    assert not j.headroom().ok
    # The reserve lets the uplink record an ack, purge and journal an event on the full disk.
    j.mark_delivered("p0", hashlib.sha256(saved.pop("p0")).hexdigest())
    assert j.packet("p0").state == "purged"  # type: ignore[union-attr]
    j.add_event("storage_full", {"note": "still writable"})
    (mnt / "ballast").unlink()
    assert j.headroom().ok  # the reserve is back
    assert (mnt / "journal.reserve").stat().st_size == 2 * MiB
    save(j, "after", after := os.urandom(500_000))
    j.close()
    j = Journal.open(mnt, cfg())
    assert j.read_range("after", 0, len(after)) == after
    for pid, data in saved.items():
        assert j.read_range(pid, 0, len(data)) == data
    assert {p.packet_id for p in j.outbox(100)} == {*saved, "after"}
    j.close()


def test_delivery_frees_space_on_a_really_full_disk(tmpfs: Mount, caplog: pytest.LogCaptureFixture) -> None:
    """Finding 2: with every byte of the disk taken, delivery still runs and gives space back."""
    mnt = tmpfs("16m")
    c = cfg(chunk_bytes=8 * 1024, max_packet_bytes=512 * 1024, reserve_bytes=512 * 1024)
    caplog.set_level(logging.INFO, logger="agent.journal.store")
    rng = random.Random(7)
    j = Journal.open(mnt, c)
    saved, _ = fill(j, lambda i: rng.randint(100_000, 512 * 1024))
    # A restart leaves the WAL at 0 bytes, so even the first small write needs new disk space.
    j.close()
    j = Journal.open(mnt, c)
    ballast(mnt)
    assert shutil.disk_usage(mnt).free < 16 * 1024
    db_before = db_path(mnt).stat().st_size
    for n, (pid, data) in enumerate(saved.items()):
        j.mark_sending(pid)
        j.mark_confirmed_chunks(pid, 8192, range(-(-len(data) // 8192)))
        j.add_event("packet_sent", {"packet_id": pid})
        j.mark_delivered(pid, hashlib.sha256(data).hexdigest())
        assert j.packet(pid).state == "purged", n  # type: ignore[union-attr]
    for event in j.pending_events(1000):
        j.mark_event_sent(event.id)
    logs = [r.getMessage() for r in caplog.records]
    assert any("retried after making room" in m for m in logs), logs[-10:]
    free = shutil.disk_usage(mnt).free
    print(f"really full disk: {len(saved)} packets ({sum(map(len, saved.values())) / MiB:.1f} MiB) "
          f"delivered and purged; database {db_before / MiB:.2f} -> "
          f"{db_path(mnt).stat().st_size / MiB:.2f} MiB; free {free / MiB:.2f} MiB")
    # The space really went back to the file system (WAL truncated, database shrunk).
    assert free >= sum(map(len, saved.values())) * 0.9
    assert db_path(mnt).stat().st_size < db_before / 4
    with sqlite3.connect(db_path(mnt)) as conn:
        secret = next(iter(saved.values()))[:4096]
        assert secret not in db_path(mnt).read_bytes()
        assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0
    # With the ballast gone the station saves again; the reserve is re-created first.
    (mnt / "ballast").unlink()
    assert j.headroom().ok
    assert (mnt / "journal.reserve").stat().st_size == 512 * 1024
    save(j, "again", again := os.urandom(300_000))
    j.close()
    j = Journal.open(mnt, c)
    assert j.read_range("again", 0, len(again)) == again
    assert {p.packet_id for p in j.packets(("purged",))} == set(saved)
    j.close()


def test_enospc_without_reserve_still_keeps_committed_packets(tmpfs: Mount) -> None:
    mnt = tmpfs("8m")
    j = Journal.open(mnt, cfg(reserve_bytes=0))
    saved, _ = fill(j, lambda i: 700_000)
    ballast(mnt)
    with pytest.raises(JournalFullError):
        save(j, "late", os.urandom(10_000))
    assert j.packet("late") is None
    j.close()
    j = Journal.open(mnt, cfg(reserve_bytes=0))  # start-up on a full disk works
    assert chunk_rows(db_path(mnt), "late") == 0
    for pid, data in saved.items():
        assert j.read_range(pid, 0, len(data)) == data
    j.close()


def test_a_purge_cut_short_is_finished_on_a_really_full_disk(tmpfs: Mount) -> None:
    """A tombstone whose chunk rows were not all deleted (crash, full disk) is cleaned at start-up."""
    from agent.journal.inspect import check_journal

    mnt = tmpfs("16m")
    c = cfg(chunk_bytes=8 * 1024, max_packet_bytes=512 * 1024, reserve_bytes=512 * 1024)
    j = Journal.open(mnt, c)
    saved, _ = fill(j, lambda i: 500_000)
    j.close()
    cut = list(saved)[:3]
    with sqlite3.connect(db_path(mnt)) as conn:
        # What a kill between the tombstone and the last batch leaves (or a full disk between them).
        conn.executemany("UPDATE packets SET state = 'purged', purged_at = ? WHERE packet_id = ?",
                         [(T0, pid) for pid in cut])
    assert not check_journal(mnt).ok  # the rows belong to no stored packet
    ballast(mnt)
    j = Journal.open(mnt, c)
    assert all(chunk_rows(db_path(mnt), pid) == 0 for pid in cut)
    assert shutil.disk_usage(mnt).free > 3 * 500_000 * 0.9  # and the space is back
    for pid in list(saved)[3:]:
        assert j.read_range(pid, 0, len(saved[pid])) == saved[pid]
    j.close()
    assert check_journal(mnt).ok
