"""The sender's "sending" marks: written ahead in batches, and never after a packet's first chunk.

The sender runs against the real journal with a recording publish function (no broker): what
matters here is the order of journal writes and publishes, which a broker would not change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from agent.journal import Journal
from agent.journal.errors import JournalError
from agent.uplink.sender import MARK_BATCH, Sender
from agent.uplink.topics import Topics
from tests.test_uplink_support import journal_cfg, save_packets

STATION = "st-marks"
CHUNK = 64 * 1024


class CountingJournal(Journal):
    """The real journal, counting mark transactions and the packets in each."""

    batches: list[list[str]]

    def mark_sending_many(self, packet_ids: Sequence[str]) -> dict[str, JournalError]:
        self.batches.append(list(packet_ids))
        return super().mark_sending_many(packet_ids)


def drain(journal: CountingJournal, sender: Sender) -> tuple[list[str], dict[str, str]]:
    """Pump until every chunk is PUBACKed; return the queries and each first chunk's row state."""
    queries: list[str] = []
    state_at_first_chunk: dict[str, str] = {}
    pending: list[int] = []
    mids = iter(range(1, 1_000_000))

    def publish(_topic: str, _payload: bytes, _qos: int, _retain: bool,
                props: list[tuple[str, str]], _ct: str | None) -> int:
        fields = dict(props)
        pid = fields.get("packet_id", "")
        if not pid:
            pass  # an event (the journal's recovery report)
        elif "query" in fields:
            queries.append(pid)
        elif pid not in state_at_first_chunk:
            info = journal.packet(pid)
            assert info is not None
            state_at_first_chunk[pid] = info.state
        mid = next(mids)
        pending.append(mid)
        return mid

    quiet = 0
    for _ in range(10_000):
        sender.pump(publish)
        quiet = 0 if pending else quiet + 1
        if quiet == 3:  # nothing more to publish (the rest waits for head office)
            break
        for mid in pending:
            sender.on_puback(mid, True)
        pending.clear()
    return queries, state_at_first_chunk


def new_sender(journal: Journal) -> Sender:
    sender = Sender(journal, Topics(STATION), chunk_bytes=CHUNK, window=8, ack_timeout=600,
                    max_rejects=3, max_unacked_packets=10_000)
    sender.connected(max_packet_size=None, receive_maximum=None, overhead=1024)
    return sender


def test_marks_are_batched_and_written_before_each_first_chunk(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir(mode=0o700)
    journal = CountingJournal.open(tmp_path / "s", journal_cfg(chunk_bytes=CHUNK))
    journal.batches = []
    n = MARK_BATCH * 2 + 5
    packets = save_packets(journal, STATION, [CHUNK + 100] * n, seed=3)
    sender = new_sender(journal)
    try:
        queries, first = drain(journal, sender)
    finally:
        sender.close()
    try:
        assert set(first) == set(packets)
        # Every packet's row said "sending" when its first chunk left: a crash after it makes
        # the restarted station ask head office before resending.
        assert set(first.values()) == {"sending"}
        # Marked ahead in batches, and marks written ahead are not mistaken for resumes.
        assert queries == []
        marked = [pid for batch in journal.batches for pid in batch]
        assert sorted(marked) == sorted(packets)
        assert len(journal.batches) <= math.ceil(n / MARK_BATCH) + 2
        assert all(journal.packet(p).attempts == 1 for p in packets)  # type: ignore[union-attr]
    finally:
        journal.close()


def test_a_packet_sent_before_a_crash_is_resumed_with_a_query(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir(mode=0o700)
    journal = CountingJournal.open(tmp_path / "s", journal_cfg(chunk_bytes=CHUNK))
    journal.batches = []
    packets = save_packets(journal, STATION, [CHUNK * 3] * 4, seed=4)
    first_id = sorted(packets)[0]
    journal.mark_sending(first_id)  # an earlier process sent some of it, then died
    journal.close()
    journal = CountingJournal.open(tmp_path / "s", journal_cfg(chunk_bytes=CHUNK))
    journal.batches = []
    sender = new_sender(journal)
    try:
        queries, first = drain(journal, sender)
    finally:
        sender.close()
        journal.close()
    # The resumed packet is asked about first (head office has not answered here, so its
    # chunks wait for the ack timeout); the others, marked ahead by this process, are not.
    assert queries == [first_id]
    assert set(first) == set(packets) - {first_id}
