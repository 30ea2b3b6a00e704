"""The sender's "sending" marks: written ahead in batches, and never after a packet's first chunk.

The sender runs against the real journal with a recording publish function (no broker): what
matters here is the order of journal writes and publishes, which a broker would not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agent.journal import Journal
from agent.journal.errors import JournalError
from agent.uplink.sender import MARK_AHEAD_SECONDS, MARK_BATCH, Sender
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


def drain(journal: CountingJournal, sender: Sender, clock: FakeClock | None = None,
          rate: float = 0.0) -> tuple[list[str], dict[str, str]]:
    """Pump until every chunk is PUBACKed; return the queries and each first chunk's row state.

    With ``clock`` and ``rate``, the clock advances as if the link carried ``rate`` bytes/s.
    """
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
        if clock is not None and pid and "query" not in fields:
            clock.now += len(_payload) / rate
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


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def new_sender(journal: Journal, clock: FakeClock | None = None) -> Sender:
    sender = Sender(journal, Topics(STATION), chunk_bytes=CHUNK, window=8, ack_timeout=600,
                    max_rejects=3, max_unacked_packets=10_000,
                    **({"clock": clock} if clock is not None else {}))
    sender.connected(max_packet_size=None, receive_maximum=None, overhead=1024)
    return sender


def test_marks_are_batched_and_written_before_each_first_chunk(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir(mode=0o700)
    journal = CountingJournal.open(tmp_path / "s", journal_cfg(chunk_bytes=CHUNK))
    journal.batches = []
    n = MARK_BATCH * 2 + 5
    packets = save_packets(journal, STATION, [CHUNK + 100] * n, seed=3)
    clock = FakeClock()  # a fast link (1 GB/s), whatever the machine's load
    sender = new_sender(journal, clock)
    try:
        queries, first = drain(journal, sender, clock, 1e9)
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
        assert len(journal.batches) <= n // 4
        assert max(len(b) for b in journal.batches) > MARK_BATCH // 2  # a fast drain marks many
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


def test_a_slow_link_marks_only_the_packets_about_to_leave(tmp_path: Path) -> None:
    """The mark's time is the KPI "sent" stamp: ahead by about a second of the link, not minutes."""
    (tmp_path / "s").mkdir(mode=0o700)
    journal = CountingJournal.open(tmp_path / "s", journal_cfg(chunk_bytes=CHUNK))
    journal.batches = []
    size = 3 * CHUNK
    packets = save_packets(journal, STATION, [size] * 40, seed=5)
    clock = FakeClock()
    rate = 4 * size  # four packets a second
    sender = new_sender(journal, clock)
    try:
        queries, first = drain(journal, sender, clock, rate)
    finally:
        sender.close()
        journal.close()
    assert queries == [] and set(first) == set(packets) and set(first.values()) == {"sending"}
    # A batch covers what the link carries in about a second (at least a window of chunks,
    # plus the packet that crosses that line), never the 64 a fast drain marks at once.
    budget = max(8 * CHUNK, rate * MARK_AHEAD_SECONDS)
    assert all(len(b) * size <= budget + 2 * size for b in journal.batches)
    assert len(journal.batches) >= 40 * size // (budget + 2 * size)
