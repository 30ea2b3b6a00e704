"""Property tests: any packet, split any way, reads back exactly; the outbox follows its table."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import JournalConfig
from agent.journal import (
    HashMismatchError,
    InvalidTransitionError,
    Journal,
)
from agent.journal.model import bitmap_from, bitmap_to

CFG = JournalConfig(chunk_bytes=1024, max_packet_bytes=64 * 1024, max_bytes=1024**3,
                    free_disk_floor_bytes=0, reserve_bytes=0)
_ids = itertools.count()


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journal]:
    j = Journal.open(tmp_path_factory.mktemp("props"), CFG)
    yield j
    j.close()


@given(data=st.binary(min_size=1, max_size=6000),
       cuts=st.lists(st.integers(min_value=0, max_value=6000), max_size=8),
       reads=st.lists(st.tuples(st.integers(0, 6100), st.integers(0, 6100)), max_size=6))
def test_any_split_round_trips(journal: Journal, data: bytes, cuts: list[int],
                               reads: list[tuple[int, int]]) -> None:
    pid = f"h{next(_ids)}"
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    with journal.begin_packet(pid, station_id="st-1", created_at="2026-11-01T08:00:00Z") as sink:
        for a, b in itertools.pairwise(bounds):
            sink.write(memoryview(data)[a:b])
        info = sink.commit()
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert journal.read_range(pid, 0, len(data)) == data
    for off, n in reads:
        if off > len(data):
            continue
        assert journal.read_range(pid, off, n) == data[off:off + n]


@given(st.frozensets(st.integers(min_value=0, max_value=5000), max_size=300))
def test_chunk_bitmap_round_trips(indices: frozenset[int]) -> None:
    assert bitmap_to(bitmap_from(indices)) == indices


OPS = ("sending", "reject", "deliver", "deliver_wrong_hash", "confirm")


@given(st.lists(st.sampled_from(OPS), max_size=12))
def test_outbox_transitions_follow_the_table(journal: Journal, ops: list[str]) -> None:
    pid = f"m{next(_ids)}"
    data = pid.encode() * 50
    sha = hashlib.sha256(data).hexdigest()
    with journal.begin_packet(pid, station_id="st-1", created_at="2026-11-01T08:00:00Z") as sink:
        sink.write(data)
        sink.commit()
    state, rejects = "queued", 0
    for op in ops:
        if op == "sending":
            if state in ("queued", "sending"):
                journal.mark_sending(pid)
                state = "sending"
            else:
                with pytest.raises(InvalidTransitionError):
                    journal.mark_sending(pid)
        elif op == "reject":
            if state in ("queued", "sending"):
                rejects += 1
                quarantined = journal.record_reject(pid, "bad", max_rejects=3)
                state = "quarantined" if rejects >= 3 else "queued"
                assert quarantined == (state == "quarantined")
            elif state == "quarantined":
                assert journal.record_reject(pid, "bad", max_rejects=3) is True
            else:
                with pytest.raises(InvalidTransitionError):
                    journal.record_reject(pid, "bad", max_rejects=3)
        elif op == "deliver":
            journal.mark_delivered(pid, sha)
            state = "purged"  # retention 0: purged at once
        elif op == "deliver_wrong_hash":
            with pytest.raises(HashMismatchError):
                journal.mark_delivered(pid, "f" * 64)
        elif op == "confirm":
            journal.mark_confirmed_chunks(pid, 1024, [0])
        info = journal.packet(pid)
        assert info is not None and info.state == state
        in_outbox = pid in {p.packet_id for p in journal.outbox(100_000)}
        assert in_outbox == (state in ("queued", "sending"))


@given(data=st.binary(min_size=1, max_size=5000), where=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_flipped_stored_byte_is_detected(journal: Journal, data: bytes, where: int, bit: int) -> None:
    import sqlite3

    from agent.journal import CorruptPacketError
    from agent.journal.store import scan_packet

    pid = f"f{next(_ids)}"
    with journal.begin_packet(pid, station_id="st-1", created_at="2026-11-01T08:00:00Z") as sink:
        sink.write(data)
        sink.commit()
    pos = where % len(data)
    idx, off = divmod(pos, CFG.chunk_bytes)
    with sqlite3.connect(journal.path) as c:
        (chunk,) = c.execute("SELECT data FROM chunks WHERE packet_id = ? AND idx = ?", (pid, idx)).fetchone()
        flipped = bytearray(chunk)
        flipped[off] ^= 1 << bit
        c.execute("UPDATE chunks SET data = ? WHERE packet_id = ? AND idx = ?", (bytes(flipped), pid, idx))
        assert scan_packet(c, pid) != []
    with pytest.raises(CorruptPacketError):
        journal.read_range(pid, 0, len(data))
    assert journal.packet(pid).state == "quarantined"  # type: ignore[union-attr]
