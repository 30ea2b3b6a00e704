"""The journal against contract A: write, read, outbox states, purge, events, quota, recovery."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config import JournalConfig
from agent.journal import (
    CorruptPacketError,
    DuplicatePacketError,
    HashMismatchError,
    InvalidTransitionError,
    Journal,
    JournalBusyError,
    JournalCorruptError,
    JournalError,
    JournalFullError,
    PacketTooLargeError,
    UnknownPacketError,
    db_path,
)

T0 = "2026-11-01T08:00:00Z"


def small_cfg(**over: object) -> JournalConfig:
    base: dict[str, object] = dict(
        chunk_bytes=1024, max_packet_bytes=64 * 1024, max_bytes=1024 * 1024,
        free_disk_floor_bytes=0, write_wait_seconds=2.0,
    )
    base.update(over)
    return JournalConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path, small_cfg())
    yield j
    j.close()


def save(j: Journal, pid: str, data: bytes, *, created: str = T0, priority: int = 0) -> None:
    with j.begin_packet(pid, station_id="st-1", created_at=created, priority=priority) as sink:
        sink.write(data)
        sink.commit()


def raw(j: Journal) -> sqlite3.Connection:
    return sqlite3.connect(j.path)


def test_packet_round_trip_across_chunk_boundaries(journal: Journal) -> None:
    data = os.urandom(5000)
    with journal.begin_packet("p1", station_id="st-1", created_at=T0) as sink:
        for piece in (data[:1], data[1:1024], data[1024:3000], data[3000:]):
            assert sink.write(piece) == len(piece)
        info = sink.commit()
    assert info.size == 5000 and info.state == "queued"
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert journal.packet("p1") == info
    assert journal.read_range("p1", 0, 10_000) == data
    for off, n in [(0, 1), (1023, 2), (1024, 1024), (4999, 5), (2500, 0), (5000, 10)]:
        assert journal.read_range("p1", off, n) == data[off:off + n]
    # Chunk rows: five of 1024 except the last, each with its own hash.
    with raw(journal) as c:
        rows = c.execute("SELECT idx, length(data), sha256 FROM chunks ORDER BY idx").fetchall()
    assert [r[1] for r in rows] == [1024, 1024, 1024, 1024, 904]
    assert rows[2][2] == hashlib.sha256(data[2048:3072]).digest()


def test_read_range_rejects_bad_arguments(journal: Journal) -> None:
    save(journal, "p1", b"x" * 10)
    with pytest.raises(JournalError):
        journal.read_range("p1", -1, 3)
    with pytest.raises(JournalError):
        journal.read_range("p1", 11, 3)
    with pytest.raises(UnknownPacketError):
        journal.read_range("nope", 0, 3)


def test_abort_and_context_exit_leave_nothing(journal: Journal) -> None:
    sink = journal.begin_packet("p1", station_id="st-1", created_at=T0)
    sink.write(os.urandom(3000))
    sink.abort()
    with pytest.raises(RuntimeError), journal.begin_packet("p2", station_id="st-1", created_at=T0) as s2:
        s2.write(os.urandom(3000))
        raise RuntimeError("capture failed")
    assert journal.packet("p1") is None and journal.packet("p2") is None
    with raw(journal) as c:
        assert c.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0
    with pytest.raises(JournalError):
        sink.write(b"more")
    # The writer is free again.
    save(journal, "p3", b"ok")


def test_empty_and_oversized_packets_are_refused(journal: Journal) -> None:
    with journal.begin_packet("p0", station_id="st-1", created_at=T0) as sink, pytest.raises(JournalError):
        sink.commit()
    with journal.begin_packet("big", station_id="st-1", created_at=T0) as sink:
        sink.write(b"a" * 60_000)
        with pytest.raises(PacketTooLargeError):
            sink.write(b"a" * 10_000)
    assert journal.packet("big") is None and journal.packet("p0") is None


def test_bad_arguments_to_begin_packet(journal: Journal) -> None:
    with pytest.raises(JournalError):
        journal.begin_packet("../etc", station_id="st-1", created_at=T0)
    with pytest.raises(JournalError):
        journal.begin_packet("p1", station_id="", created_at=T0)
    with pytest.raises(JournalError):
        journal.begin_packet("p1", station_id="st-1", created_at="2026-11-01T08:00:00")  # naive
    with pytest.raises(JournalError):
        journal.begin_packet("p1", station_id="st-1", created_at="yesterday")
    with pytest.raises(JournalError):
        journal.begin_packet("p1", station_id="st-1", created_at=T0, priority=True)


def test_duplicate_ids_refused_even_after_purge(journal: Journal) -> None:
    data = b"abc" * 100
    save(journal, "p1", data)
    with pytest.raises(DuplicatePacketError):
        journal.begin_packet("p1", station_id="st-1", created_at=T0)
    journal.mark_delivered("p1", hashlib.sha256(data).hexdigest())
    assert journal.packet("p1").state == "purged"  # type: ignore[union-attr]
    with pytest.raises(DuplicatePacketError):
        journal.begin_packet("p1", station_id="st-1", created_at=T0)


def test_outbox_order_priority_then_age(journal: Journal) -> None:
    save(journal, "old", b"1", created="2026-11-01T08:00:00Z")
    save(journal, "new", b"2", created="2026-11-02T08:00:00Z")
    save(journal, "urgent", b"3", created="2026-11-03T08:00:00+08:00", priority=5)
    save(journal, "mid", b"4", created="2026-11-01T09:00:00+00:00")
    assert [p.packet_id for p in journal.outbox(10)] == ["urgent", "old", "mid", "new"]
    assert [p.packet_id for p in journal.outbox(2)] == ["urgent", "old"]
    assert journal.packet("urgent").created_at == "2026-11-03T00:00:00.000000Z"  # type: ignore[union-attr]


def test_state_machine_happy_path_and_refusals(journal: Journal) -> None:
    data = os.urandom(4000)
    sha = hashlib.sha256(data).hexdigest()
    save(journal, "p1", data)
    journal.mark_sending("p1")
    journal.mark_sending("p1")
    info = journal.packet("p1")
    assert info is not None and info.state == "sending" and info.attempts == 2
    journal.mark_confirmed_chunks("p1", 1024, [0, 2])
    journal.mark_confirmed_chunks("p1", 1024, {1})
    assert journal.packet("p1").confirmed_chunks == {0, 1, 2}  # type: ignore[union-attr]
    # Head office changed its chunk size: the old set means nothing any more.
    journal.mark_confirmed_chunks("p1", 2048, [1])
    info = journal.packet("p1")
    assert info is not None and info.confirmed_chunks == {1} and info.confirmed_chunk_size == 2048
    with pytest.raises(JournalError):
        journal.mark_confirmed_chunks("p1", 2048, [2])  # only chunks 0..1 exist at 2048
    with pytest.raises(JournalError):
        journal.mark_confirmed_chunks("p1", 0, [0])
    with pytest.raises(HashMismatchError):
        journal.mark_delivered("p1", "0" * 64)
    assert journal.packet("p1").state == "sending"  # type: ignore[union-attr]
    journal.mark_delivered("p1", sha.upper())
    info = journal.packet("p1")
    assert info is not None and info.state == "purged" and info.sha256 == sha
    journal.mark_delivered("p1", sha)  # repeated ack is harmless
    with pytest.raises(InvalidTransitionError):
        journal.mark_sending("p1")
    with pytest.raises(InvalidTransitionError):
        journal.read_range("p1", 0, 10)
    with pytest.raises(UnknownPacketError):
        journal.mark_sending("ghost")
    with pytest.raises(UnknownPacketError):
        journal.mark_delivered("ghost", sha)
    assert journal.outbox(10) == []


def test_mark_sending_many_marks_the_sendable_and_lists_refusals(journal: Journal) -> None:
    for pid in ("a", "b", "done"):
        save(journal, pid, pid.encode() * 10)
    done = journal.packet("done")
    assert done is not None
    journal.mark_delivered("done", done.sha256)
    refused = journal.mark_sending_many(["a", "ghost", "b", "done", "a"])
    assert set(refused) == {"ghost", "done"}
    assert isinstance(refused["ghost"], UnknownPacketError)
    assert isinstance(refused["done"], InvalidTransitionError)
    a, b = journal.packet("a"), journal.packet("b")
    assert a is not None and b is not None
    assert (a.state, a.attempts, b.state, b.attempts) == ("sending", 2, "sending", 1)
    assert journal.packet("done").state == "purged"  # type: ignore[union-attr]
    assert journal.mark_sending_many([]) == {}


def test_rejects_then_quarantine_with_event(journal: Journal) -> None:
    save(journal, "p1", b"payload")
    journal.mark_sending("p1")
    assert journal.record_reject("p1", "bad signature", max_rejects=2) is False
    info = journal.packet("p1")
    assert info is not None and info.state == "queued" and info.rejects == 1
    assert journal.record_reject("p1", "bad signature", max_rejects=2) is True
    assert journal.packet("p1").state == "quarantined"  # type: ignore[union-attr]
    assert journal.record_reject("p1", "again", max_rejects=2) is True
    assert journal.outbox(10) == []
    kinds = [(e.kind, e.payload.get("packet_id")) for e in journal.pending_events(10)]
    assert ("packet_quarantined", "p1") in kinds
    # Quarantined packets still count as waiting (they are not acknowledged).
    assert journal.headroom().backlog_packets == 1


def test_purge_zeroes_bytes_and_returns_space(tmp_path: Path) -> None:
    j = Journal.open(tmp_path, small_cfg(max_packet_bytes=512 * 1024))
    marker = b"SECRET-MARKER-" * 20_000  # ~280 KB, easy to find in the raw file
    save(j, "p1", marker)
    sha = hashlib.sha256(marker).hexdigest()
    j.close()  # checkpoint: the bytes are now in the main database file
    assert b"SECRET-MARKER-" in db_path(tmp_path).read_bytes()
    size_before = db_path(tmp_path).stat().st_size
    j = Journal.open(tmp_path, small_cfg(max_packet_bytes=512 * 1024))
    j.mark_delivered("p1", sha)
    j.close()
    after = db_path(tmp_path).read_bytes()
    assert b"SECRET-MARKER-" not in after
    assert len(after) < size_before / 2  # incremental vacuum gave the pages back
    j = Journal.open(tmp_path, small_cfg())
    tomb = j.packet("p1")
    assert tomb is not None and tomb.state == "purged" and tomb.sha256 == sha
    assert tomb.purged_at is not None and tomb.delivered_at is not None
    j.close()


def test_retention_delays_purge(tmp_path: Path) -> None:
    now = [datetime(2026, 11, 1, 8, tzinfo=UTC)]
    j = Journal.open(tmp_path, small_cfg(retention_seconds=3600), clock=lambda: now[0])
    data = b"z" * 3000
    save(j, "p1", data)
    j.mark_delivered("p1", hashlib.sha256(data).hexdigest())
    assert j.packet("p1").state == "delivered"  # type: ignore[union-attr]
    assert j.read_range("p1", 0, 3) == b"zzz"  # still readable during retention
    assert j.purge_due() == 0
    now[0] += timedelta(seconds=3601)
    assert j.purge_due() == 1
    assert j.packet("p1").state == "purged"  # type: ignore[union-attr]
    j.close()


def test_events_kept_until_sent(tmp_path: Path) -> None:
    j = Journal.open(tmp_path, small_cfg())
    a = j.add_event("device_fault", {"device": "zfm", "code": 3})
    b = j.add_event("low_stock", {"blanks": 12})
    j.close()
    j = Journal.open(tmp_path, small_cfg())
    pending = j.pending_events(10)
    assert [(e.id, e.kind, e.payload) for e in pending] == [
        (a, "device_fault", {"code": 3, "device": "zfm"}), (b, "low_stock", {"blanks": 12})]
    j.mark_event_sent(a)
    assert [e.id for e in j.pending_events(10)] == [b]
    with pytest.raises(JournalError):
        j.mark_event_sent(9999)
    bad_events: list[tuple[str, dict[str, Any]]] = [
        ("Bad Kind", {}), ("ok", {"x": float("nan")}), ("ok", {"x": object()})]
    for bad_kind, payload in bad_events:
        with pytest.raises(JournalError):
            j.add_event(bad_kind, payload)
    with pytest.raises(JournalError):
        j.add_event("ok", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(JournalError):
        j.add_event("ok", {"blob": "x" * 70_000})
    j.close()


def test_register_schema_is_idempotent_and_guarded(journal: Journal) -> None:
    ddl = """
    -- print jobs (example of another module's table)
    CREATE TABLE IF NOT EXISTS print_jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS print_jobs_state ON print_jobs (state);
    """
    journal.register_schema("printing", ddl)
    journal.register_schema("printing", ddl)
    with journal.transaction() as db:
        db.execute("INSERT INTO print_jobs (id, state) VALUES ('job1', 'queued')")
    assert journal.db.execute("SELECT state FROM print_jobs").fetchall() == [("queued",)]
    for bad in ("DROP TABLE packets", "CREATE TABLE x (a)", "CREATE TABLE IF NOT EXISTS chunks (a)",
                "CREATE TABLE IF NOT EXISTS y (a); DELETE FROM packets", ""):
        with pytest.raises(JournalError):
            journal.register_schema("evil", bad)
    with pytest.raises(JournalError):
        journal.register_schema("Bad-Name", ddl)


def test_quota_refuses_and_keeps_everything(tmp_path: Path) -> None:
    cfg = small_cfg(max_bytes=1024 * 1024, max_packet_bytes=420 * 1024)
    j = Journal.open(tmp_path, cfg)
    first = os.urandom(420 * 1024)
    save(j, "p1", first)
    save(j, "p2", os.urandom(420 * 1024))
    room = j.headroom()
    assert not room.ok and room.backlog_packets == 2 and room.used_bytes == 840 * 1024
    assert "rekam export" in room.message_en and "rekam export" in room.message_id
    assert "2 packets" in room.message_en and "2 paket" in room.message_id
    assert room.oldest_created == "2026-11-01T08:00:00.000000Z"
    # Writing anyway: refused mid-packet, nothing partial, earlier packets intact.
    with j.begin_packet("p3", station_id="st-1", created_at=T0) as sink:
        with pytest.raises(JournalFullError):
            sink.write(os.urandom(300 * 1024))
        assert sink.closed
    assert j.packet("p3") is None
    assert j.read_range("p1", 0, len(first)) == first
    # Nothing journaled is dropped to make room: both packets still wait.
    assert [p.packet_id for p in j.outbox(10)] == ["p1", "p2"]
    # The storage warning (high watermark 0.8 of 1 MiB) was raised once, as an event.
    assert room.warning
    assert [e.kind for e in j.pending_events(50)].count("storage_high") == 1
    j.mark_delivered("p1", hashlib.sha256(first).hexdigest())
    j.mark_delivered("p2", j.packet("p2").sha256)  # type: ignore[union-attr]
    room = j.headroom()
    assert room.ok and not room.warning and room.message_en == "Storage OK."
    assert [e.kind for e in j.pending_events(50)].count("storage_ok") == 1
    j.close()


def test_disk_floor_refuses(tmp_path: Path) -> None:
    j = Journal.open(tmp_path, small_cfg(free_disk_floor_bytes=2**62))
    room = j.headroom()
    assert not room.ok and "disk" in room.message_en
    j.close()


def test_recovery_resets_sending_and_quarantines_corrupt_chunk(tmp_path: Path) -> None:
    j = Journal.open(tmp_path, small_cfg())
    save(j, "good", os.urandom(3000))
    save(j, "bad", os.urandom(3000))
    j.mark_sending("good")
    j.mark_sending("bad")
    j.close()
    with sqlite3.connect(db_path(tmp_path)) as c:
        # Flip one byte of chunk 1 behind the journal's back (bit rot, a bad sector).
        c.execute("UPDATE chunks SET data = zeroblob(1024) WHERE packet_id = 'bad' AND idx = 1")
    j = Journal.open(tmp_path, small_cfg())
    assert j.packet("good").state == "queued"  # type: ignore[union-attr]
    bad = j.packet("bad")
    assert bad is not None and bad.state == "quarantined" and "chunk 1" in (bad.last_error or "")
    events = {e.kind: e.payload for e in j.pending_events(20)}
    assert events["packet_quarantined"]["packet_id"] == "bad"
    assert events["journal_recovered"]["sending_reset"] == 2
    j.close()


def test_corrupt_chunk_found_on_read_when_not_verified_at_open(tmp_path: Path) -> None:
    cfg = small_cfg(verify_on_open_max_bytes=0)
    j = Journal.open(tmp_path, cfg)
    save(j, "p1", os.urandom(3000))
    j.close()
    with sqlite3.connect(db_path(tmp_path)) as c:
        c.execute("DELETE FROM chunks WHERE packet_id = 'p1' AND idx = 2")
    j = Journal.open(tmp_path, cfg)
    assert j.read_range("p1", 0, 1024) is not None  # chunk 0 is fine
    with pytest.raises(CorruptPacketError):
        j.read_range("p1", 1000, 2000)
    assert j.packet("p1").state == "quarantined"  # type: ignore[union-attr]
    j.close()


def test_recovery_removes_leftovers(tmp_path: Path) -> None:
    j = Journal.open(tmp_path, small_cfg())
    save(j, "p1", b"keep me")
    j.close()
    with sqlite3.connect(db_path(tmp_path)) as c:
        c.execute("INSERT INTO packets (packet_id, station_id, created_at, state, size, sha256,"
                  " chunk_bytes, chunk_count, saved_at) VALUES ('w', 's', 'x', 'writing', 5, '', 1024, 1, 'x')")
        c.execute("INSERT INTO chunks VALUES ('w', 0, x'00', x'0102')")
        c.execute("INSERT INTO chunks VALUES ('orphan', 0, x'00', x'0102')")
    j = Journal.open(tmp_path, small_cfg())
    assert j.packet("w") is None
    with raw(j) as c:
        assert c.execute("SELECT DISTINCT packet_id FROM chunks").fetchall() == [("p1",)]
    assert j.read_range("p1", 0, 100) == b"keep me"
    j.close()


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    db_path(tmp_path).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalCorruptError):
        Journal.open(tmp_path, small_cfg())


def test_damaged_database_page_fails_integrity_check(tmp_path: Path) -> None:
    j = Journal.open(tmp_path, small_cfg())
    for i in range(20):
        save(j, f"p{i}", os.urandom(3000))
    j.close()
    path = db_path(tmp_path)
    blob = bytearray(path.read_bytes())
    page = 16384
    # Scribble over the second page's b-tree header (a page that holds table structure).
    blob[page:page + 64] = b"\xff" * 64
    path.write_bytes(bytes(blob))
    with pytest.raises(JournalCorruptError):
        Journal.open(tmp_path, small_cfg())


def test_single_writer_waits_bounded_and_reads_go_on(tmp_path: Path) -> None:
    j = Journal.open(tmp_path, small_cfg(write_wait_seconds=0.3))
    save(j, "done", b"readable")
    sink = j.begin_packet("slow", station_id="st-1", created_at=T0)
    sink.write(os.urandom(2000))
    errors: list[BaseException] = []
    reads: list[bytes] = []

    def other() -> None:
        try:
            reads.append(j.read_range("done", 0, 100))  # reads never wait for the writer
            j.add_event("x_y", {})
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    assert reads == [b"readable"]
    assert len(errors) == 1 and isinstance(errors[0], JournalBusyError)
    # The owning thread may not start a second write in the middle of its packet.
    with pytest.raises(JournalError):
        j.add_event("x_y", {})
    sink.commit()
    j.add_event("x_y", {})
    j.close()


def test_writer_thread_dying_with_packet_open_frees_the_journal(tmp_path: Path) -> None:
    j = Journal.open(tmp_path, small_cfg())

    def leaky() -> None:
        s = j.begin_packet("leak", station_id="st-1", created_at=T0)
        s.write(os.urandom(2000))  # and never commits

    t = threading.Thread(target=leaky)
    t.start()
    t.join(10)
    save(j, "after", b"fine")
    assert j.packet("leak") is None and j.packet("after") is not None
    j.close()


def test_missing_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="does not exist"):
        Journal.open(tmp_path / "nope", small_cfg())


def test_threads_writing_marking_and_reading_at_once(tmp_path: Path) -> None:
    """A workflow thread writes packets while an uplink thread sends, acks and reads events."""
    j = Journal.open(tmp_path, small_cfg(write_wait_seconds=20.0))
    written: list[tuple[str, str]] = []
    lock = threading.Lock()
    done = threading.Event()
    errors: list[BaseException] = []

    def workflow() -> None:
        try:
            for i in range(40):
                data = os.urandom(1000 + 97 * i)
                with j.begin_packet(f"w{i}", station_id="st-1", created_at=T0) as sink:
                    for k in range(0, len(data), 700):
                        sink.write(data[k:k + 700])
                    sink.commit()
                with lock:
                    written.append((f"w{i}", hashlib.sha256(data).hexdigest()))
                j.add_event("enrolled", {"n": i})
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def uplink() -> None:
        try:
            while not done.is_set() or j.outbox(1):
                for info in j.outbox(5):
                    j.mark_sending(info.packet_id)
                    data = j.read_range(info.packet_id, 0, info.size)
                    j.mark_delivered(info.packet_id, hashlib.sha256(data).hexdigest())
                for ev in j.pending_events(10):
                    j.mark_event_sent(ev.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=workflow), threading.Thread(target=uplink)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(written) == 40
    for pid, sha in written:
        info = j.packet(pid)
        assert info is not None and info.state == "purged" and info.sha256 == sha
    with raw(j) as c:  # every event kept, sent or still pending: none lost to the race
        assert c.execute("SELECT count(*) FROM events WHERE kind = 'enrolled'").fetchone()[0] == 40
    j.close()


def test_short_lived_reader_threads_do_not_leak_connections(journal: Journal) -> None:
    save(journal, "p1", b"data")

    def open_db_files() -> int:
        fds = Path("/proc/self/fd")
        return sum(1 for fd in fds.iterdir()
                   if os.path.realpath(fd) == str(db_path(journal.path.parent)))

    def reader() -> None:
        assert journal.read_range("p1", 0, 4) == b"data"
        assert journal.outbox(5)[0].packet_id == "p1"

    before = open_db_files()
    for _ in range(30):  # like the station API: a new thread per request
        t = threading.Thread(target=reader)
        t.start()
        t.join(10)
    assert open_db_files() <= before + 4


def test_query_reads_other_tables_and_refuses_writes(journal: Journal) -> None:
    journal.register_schema("kpi", "CREATE TABLE IF NOT EXISTS service_times (day TEXT, secs INTEGER)")
    with journal.transaction() as db:
        db.execute("INSERT INTO service_times VALUES ('2026-11-29', 600)")
    assert journal.query("SELECT day, secs FROM service_times WHERE secs > ?", (10,)) == [("2026-11-29", 600)]
    with pytest.raises(JournalError):
        journal.query("DELETE FROM service_times")
    with pytest.raises(JournalError):
        journal.query("SELECT nonsense FROM nowhere")
    assert journal.query("SELECT count(*) FROM service_times") == [(1,)]
