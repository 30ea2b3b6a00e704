"""Chunked, windowed, resumable transfer of journal packets and events (docs/protocol.md).

The :class:`Sender` decides what to publish next; the uplink thread (client.py) owns it, feeds it
broker PUBACKs and head-office acks, and calls :meth:`Sender.pump` whenever the window may have
room. It never holds more than ``window`` chunks in memory: each chunk is read from the journal
just before it is published, and the backlog stays in the journal.

Integrity: when the chunk size equals the journal's row size (the usual case), a chunk is sent as
its journal row with the SHA-256 stored when the packet was written, without hashing it again:
head office verifies that digest against the bytes it receives, so damage on the station's disk
is caught end to end. A chunk head office asks for again ("missing") is re-read through
``read_range``, which checks it locally and quarantines a damaged packet, so a bad row is never
resent forever. Other chunk sizes (a broker's small maximum packet size) use ``read_range`` and
hash the chunk here.

Delivery rules (research note G2-G8):

- A PUBACK only frees a window slot. A packet leaves the journal only on head office's signed
  "complete" ack whose ``packet_sha256`` matches the journal's.
- "missing" resends just the listed chunks; no ack within ``ack_timeout`` sends an ack query
  (idempotent; head office answers with the packet's current state).
- A packet that was already being sent by an earlier process (kill -9, power cut) is resumed by
  asking head office first (ack query) and sending only what it lacks; if head office does not
  answer in time, every chunk head office has not confirmed is sent. The chunks head office
  says it holds (every index not in a "missing" list) are recorded with
  ``mark_confirmed_chunks``; a PUBACK is never recorded (the broker is not head office).
- "rejected" counts against ``max_rejects``; then the packet is quarantined and an event raised.
- Events are published ahead of chunks and marked sent on PUBACK, so they never wait behind a
  packet backlog.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from agent.faults import crash_point
from agent.journal.errors import JournalError, JournalFullError
from agent.uplink.incoming import Ack
from agent.uplink.ratelimit import TokenBucket
from agent.uplink.topics import CONTENT_TYPE_CHUNK, Topics

log = logging.getLogger(__name__)

# Events in flight at once; they bypass the chunk window.
EVENT_WINDOW = 4
# How many outbox rows to look at when choosing the next packet (today's first).
OUTBOX_SCAN = 256
OUTBOX_REFRESH_SECONDS = 2.0
# How often the journal is polled for new events and packets when nothing woke the sender; keeps
# SQLite queries off the per-chunk path during a fast drain.
POLL_SECONDS = 0.2
DEADLINE_SCAN_SECONDS = 0.25
# Packets are started this many windows of chunks before their first chunk is due, so the
# hashed reads of the next packets (reader thread) are done by then even on a loaded machine.
PLAN_AHEAD = 2
# Packets are marked "sending" ahead, up to MARK_BATCH at a time (the one starting and the next in
# the outbox), in one transaction (one fsync): one transaction per packet cost about a sixth of
# the station's CPU in a loopback drain. Only the packets due to start within about
# MARK_AHEAD_SECONDS at the current drain rate (at least a window of chunks) are marked ahead,
# because the mark's time is the packet's "sent" stamp in the service-time KPIs: on a slow link a
# batch of 64 would stamp packets minutes before they leave. A packet's first chunk waits for its
# mark (so a restart after a crash asks head office before resending it), at most
# MARK_WAIT_SECONDS: the mark is advisory and a stalled disk must not stop delivery.
MARK_BATCH = 64
MARK_AHEAD_SECONDS = 1.0
MARK_WAIT_SECONDS = 5.0
# Rows read in one journal call (one snapshot) when they are the next ones to send: saves the
# per-call SQLite work (about a quarter of a row's read) and holds at most 1 MiB extra.
ROWS_PER_READ = 4


class PacketInfoLike(Protocol):
    """The fields of agent.journal.PacketInfo that the sender reads (read-only, as frozen)."""

    @property
    def packet_id(self) -> str: ...
    @property
    def created_at(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def attempts(self) -> int: ...
    @property
    def confirmed_chunks(self) -> frozenset[int]: ...
    @property
    def confirmed_chunk_size(self) -> int: ...
    @property
    def chunk_bytes(self) -> int: ...


class EventLike(Protocol):
    """The fields of agent.journal.EventRow that the sender reads."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def created_at(self) -> str: ...


class JournalLike(Protocol):
    """The part of the journal (contract A) the uplink uses."""

    def outbox(self, limit: int) -> Sequence[PacketInfoLike]: ...
    def packet(self, packet_id: str) -> PacketInfoLike | None: ...
    def read_range(self, packet_id: str, offset: int, length: int) -> bytes: ...
    def read_chunk_rows(self, packet_id: str, first: int,
                        count: int) -> Sequence[tuple[int, bytes, bytes]]: ...
    def mark_sending_many(self, packet_ids: Sequence[str]) -> dict[str, JournalError]: ...
    def mark_confirmed_chunks(self, packet_id: str, chunk_size: int,
                              indices: Iterable[int]) -> None: ...
    def mark_delivered(self, packet_id: str, sha256: str) -> None: ...
    def record_reject(self, packet_id: str, reason: str, max_rejects: int) -> bool: ...
    def add_event(self, kind: str, payload: dict[str, Any]) -> int: ...
    def pending_events(self, limit: int) -> Sequence[EventLike]: ...
    def mark_event_sent(self, event_id: int) -> None: ...


# publish(topic, payload, qos, retain, user_properties, content_type) -> mid, or None when the
# client refused it (not connected, queue full): the sender then tries again later.
PublishFn = Callable[[str, bytes, int, bool, list[tuple[str, str]], str | None], int | None]


@dataclass
class OutboxSource:
    """Another owner's durable outbox (for example print results): small JSON messages."""

    topic: str
    pending: Callable[[int], Sequence[tuple[int, bytes]]]
    mark_sent: Callable[[int], None]
    inflight: set[int] = field(default_factory=set)


@dataclass
class _Packet:
    """A packet being transferred in this process."""

    packet_id: str
    size: int
    sha256: str
    chunk_size: int
    chunks: int
    # Chunks are the journal's rows: send each with its stored digest (see the module doc).
    rows: bool = False
    todo: deque[int] = field(default_factory=deque)
    # Chunks head office asked for again: re-read with the journal's local hash check.
    check: set[int] = field(default_factory=set)
    # Rows read together with an earlier one, not yet sent: index -> (bytes, hex digest).
    rows_read: dict[int, tuple[bytes, str]] = field(default_factory=dict)
    inflight: set[int] = field(default_factory=set)
    fallback: list[int] = field(default_factory=list)
    # Its mark_sending batch, until taken in (the first chunk waits for it).
    mark: Future[dict[str, JournalError]] | None = None
    ack_deadline: float | None = None
    queries: int = 0


@dataclass
class SenderStats:
    """Counters for diagnostics."""

    chunks_sent: int = 0
    bytes_acked: int = 0
    packets_delivered: int = 0
    packets_quarantined: int = 0
    resent_chunks: int = 0
    ack_queries: int = 0
    events_sent: int = 0
    puback_failures: int = 0
    bad_acks: int = 0
    last_ack_at: str | None = None


def chunk_properties(packet: _Packet, index: int, offset: int, digest: str) -> list[tuple[str, str]]:
    """MQTT v5 user properties of one chunk (contract C)."""
    props = [
        ("v", "1"),
        ("packet_id", packet.packet_id),
        ("chunk", str(index)),
        ("chunks", str(packet.chunks)),
        ("chunk_size", str(packet.chunk_size)),
        ("offset", str(offset)),
        ("chunk_sha256", digest),
    ]
    if index == packet.chunks - 1:
        props += [("packet_size", str(packet.size)), ("packet_sha256", packet.sha256)]
    return props


def query_properties(packet: _Packet) -> list[tuple[str, str]]:
    """MQTT v5 user properties of an ack query (contract C)."""
    return [
        ("v", "1"),
        ("packet_id", packet.packet_id),
        ("query", "1"),
        ("packet_sha256", packet.sha256),
        ("packet_size", str(packet.size)),
        ("chunks", str(packet.chunks)),
        ("chunk_size", str(packet.chunk_size)),
    ]


class Sender:
    """What to publish next, and what broker and head-office acks mean for the journal."""

    def __init__(
        self,
        journal: JournalLike,
        topics: Topics,
        *,
        chunk_bytes: int,
        window: int,
        ack_timeout: float,
        max_rejects: int,
        max_unacked_packets: int,
        bandwidth_limit_bps: float = 0.0,
        today_first: bool = True,
        office_tz: tzinfo | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.journal = journal
        self.topics = topics
        self.configured_chunk_bytes = chunk_bytes
        self.chunk_bytes = chunk_bytes
        self.configured_window = window
        self.window = window
        self.ack_timeout = ack_timeout
        self.max_rejects = max_rejects
        self.max_unacked_packets = max_unacked_packets
        self.today_first = today_first
        self.office_tz = office_tz
        self.clock = clock
        self.wall_clock = wall_clock
        self.bucket = TokenBucket(bandwidth_limit_bps, now=clock())
        self.stats = SenderStats()
        self.packets: dict[str, _Packet] = {}  # in transfer or awaiting head office's ack
        self.inflight: dict[int, tuple[str, str, int]] = {}  # mid -> (kind, id, n)
        self._chunks_inflight = 0  # entries of kind "chunk" in inflight (asked once per chunk)
        self.events_inflight: set[int] = set()
        self._candidates: deque[PacketInfoLike] = deque()
        self._candidates_at = -1e9
        self._empty_until = -1e9  # outbox found empty: do not ask again before this
        self._events_due = -1e9
        self._deadlines_due = -1e9
        self.sources: list[OutboxSource] = []
        # Packets that may have chunks to send, in the order they started (dict as ordered set).
        self._sending: dict[str, None] = {}
        # One reader thread reads and hashes the next chunks while this thread publishes (both
        # SQLite and SHA-256 release the GIL). At most ``window`` chunks are read ahead, so
        # memory stays bounded by about 2 x window x chunk whatever the backlog.
        self._pool: ThreadPoolExecutor | None = None  # started on first use, again after close
        self._mark_pool: ThreadPoolExecutor | None = None
        self._prefetched: dict[tuple[str, int], Future[tuple[bytes, str]]] = {}
        # Batches of marks submitted and not yet taken in (marker order); the batch of each
        # packet id in them; the ids this process marked that have not started; whether each
        # id marked ahead was a resume before our mark changed its row; the ids whose mark the
        # journal refused (state changed) since the outbox was last read.
        self._mark_batches: deque[tuple[list[str], Future[dict[str, JournalError]]]] = deque()
        self._mark_pending: dict[str, Future[dict[str, JournalError]]] = {}
        self._marked_here: set[str] = set()
        self._resumed_before_mark: dict[str, bool] = {}
        self._mark_refused: set[str] = set()
        self._journal_full = False  # one log line per full-disk episode, not one per packet
        self._drain: deque[tuple[float, int]] = deque()  # (time, bytes) for the drain rate

    # ------------------------------------------------------------------ connection
    def connected(self, *, max_packet_size: int | None, receive_maximum: int | None,
                  overhead: int) -> None:
        """A new connection: fit chunk size and window to what the broker announced."""
        chunk = self.configured_chunk_bytes
        if max_packet_size is not None:
            chunk = min(chunk, max_packet_size - overhead)
        if chunk < 1024:
            raise ValueError(f"broker maximum packet size {max_packet_size} is too small to send chunks")
        self.chunk_bytes = chunk
        window = self.configured_window
        if receive_maximum is not None:
            # Keep slots free for events, status and ack queries.
            window = max(1, min(window, receive_maximum - EVENT_WINDOW - 2))
        self.window = window
        # The client library resends its in-flight messages itself on reconnect (same mids),
        # so only our plan needs no change; a query per awaiting packet catches anything lost.
        now = self.clock()
        for packet in self.packets.values():
            if packet.ack_deadline is not None:
                packet.ack_deadline = min(packet.ack_deadline, now)

    def forget_inflight(self) -> None:
        """The client dropped its in-flight messages: put their chunks back in the plan."""
        for kind, ident, index in self.inflight.values():
            packet = self.packets.get(ident)
            if kind == "chunk" and packet is not None and index in packet.inflight:
                packet.inflight.discard(index)
                packet.todo.appendleft(index)
                self._want(packet)
        self.inflight.clear()
        self._chunks_inflight = 0
        self.events_inflight.clear()
        for source in self.sources:
            source.inflight.clear()

    # ------------------------------------------------------------------ pumping
    def wake(self) -> None:
        """New packets or events were journaled: look at once instead of at the next poll."""
        self._empty_until = -1e9
        self._events_due = -1e9

    def close(self) -> None:
        """Stop the reader and marker threads (waits for the read or mark under way, if any)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._mark_pool is not None:
            self._mark_pool.shutdown(wait=True, cancel_futures=True)
            self._mark_pool = None
        self._prefetched.clear()
        self._mark_batches.clear()
        self._mark_pending.clear()
        self._marked_here.clear()
        self._resumed_before_mark.clear()
        self._mark_refused.clear()

    def _want(self, packet: _Packet) -> None:
        """``packet`` has chunks in ``todo``: let the chunk pump find it."""
        self._sending[packet.packet_id] = None

    def _next_sending(self) -> _Packet | None:
        for pid in list(self._sending):
            packet = self.packets.get(pid)
            if packet is not None and packet.todo:
                return packet
            del self._sending[pid]
        return None

    def _read_chunk(self, packet_id: str, offset: int, length: int) -> tuple[bytes, str]:
        data = self.journal.read_range(packet_id, offset, length)
        return data, hashlib.sha256(data).hexdigest()

    def _next_row(self, packet: _Packet, index: int) -> tuple[bytes, str]:
        """Row ``index`` (the packet's next to send), read with the rows that follow it in todo."""
        held = packet.rows_read.pop(index, None)
        if held is not None:
            return held
        packet.rows_read.clear()
        todo = packet.todo
        count = 1
        while (count < ROWS_PER_READ and count < len(todo) and todo[count] == index + count
               and index + count not in packet.check):
            count += 1
        rows = self.journal.read_chunk_rows(packet.packet_id, index, count)
        for idx, digest, data in rows[1:]:
            packet.rows_read[idx] = (data, digest.hex())
        _, digest, data = rows[0]
        return data, digest.hex()

    def _submit(self, packet: _Packet, index: int) -> Future[tuple[bytes, str]]:
        offset = index * packet.chunk_size
        length = min(packet.chunk_size, packet.size - offset)
        return self._reader().submit(self._read_chunk, packet.packet_id, offset, length)

    def _reader(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uplink-read")
        return self._pool

    def _marker(self) -> ThreadPoolExecutor:
        if self._mark_pool is None:
            self._mark_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uplink-mark")
        return self._mark_pool

    def _read_ahead(self) -> int:
        """Plan up to ``PLAN_AHEAD`` windows of chunks; the first window's hashed reads start.

        Stored-digest rows are read on this thread when they are sent: a read is a SQLite copy
        (about 0.05 ms per chunk), cheaper than handing it to another thread (measured: the
        sending thread's CPU did not drop, and both threads then contend for the GIL). Only
        reads that need a hash go to the reader thread, at most ``window`` ahead (memory).
        Returns how many more chunks could be planned (0: the plan is full).
        """
        horizon = self.window * PLAN_AHEAD
        for key in [k for k in self._prefetched if k[0] not in self.packets]:
            self._prefetched.pop(key).cancel()
        planned = 0
        for pid in self._sending:
            packet = self.packets.get(pid)
            if packet is None:
                continue
            for index in packet.todo:
                if planned >= horizon:
                    return 0
                planned += 1
                if planned > self.window or (packet.rows and index not in packet.check):
                    continue
                key = (pid, index)
                if key not in self._prefetched:
                    self._prefetched[key] = self._submit(packet, index)
        return horizon - planned

    def _fill_pipeline(self, publish: PublishFn) -> None:
        """Read ahead, starting the next packets early so a packet's start is no bubble.

        Packets are small (a few chunks); without this the sender would wait at packet
        boundaries for the next packet's first reads, so packets are started ``PLAN_AHEAD``
        windows ahead of their first chunk.
        """
        while self._read_ahead() > 0 and len(self.packets) < self.max_unacked_packets:
            info = self._next_candidate()
            if info is None:
                return
            self._start_packet(info, publish)

    def add_source(self, source: OutboxSource) -> None:
        """Publish another owner's pending messages (QoS 1) and mark them sent on PUBACK."""
        self.sources.append(source)

    def chunks_inflight(self) -> int:
        """Chunks published and not yet PUBACKed."""
        return self._chunks_inflight

    def pump(self, publish: PublishFn) -> float:
        """Publish what fits now; return seconds until pump should be called again at latest."""
        now = self.clock()
        self._settle_marks()
        self._pump_events(publish)
        if now >= self._deadlines_due:
            # Ack deadlines are seconds long: scanning every packet in transfer a few times a
            # second is enough and keeps the scan off the per-chunk path.
            self._deadlines_due = now + DEADLINE_SCAN_SECONDS
            self._check_ack_deadlines(publish, now)
        wait = self._pump_chunks(publish)
        return max(0.0, min(wait, DEADLINE_SCAN_SECONDS))

    def _pump_events(self, publish: PublishFn) -> None:
        now = self.clock()
        if now < self._events_due:
            return
        self._events_due = now + POLL_SECONDS
        for n, source in enumerate(self.sources):
            room = EVENT_WINDOW - len(source.inflight)
            for ident, payload in source.pending(EVENT_WINDOW * 2):
                if room <= 0:
                    break
                if ident in source.inflight:
                    continue
                mid = publish(source.topic, payload, 1, False, [("v", "1")], "application/json")
                if mid is None:
                    return
                self.inflight[mid] = ("source", str(n), ident)
                source.inflight.add(ident)
                room -= 1
        room = EVENT_WINDOW - len(self.events_inflight)
        if room <= 0:
            return
        for event in self.journal.pending_events(EVENT_WINDOW * 2):
            if event.id in self.events_inflight:
                continue
            if room <= 0:
                break
            payload = event_payload(event)
            mid = publish(self.topics.event, payload, 1, False, [("v", "1")], "application/json")
            if mid is None:
                return
            self.inflight[mid] = ("event", str(event.id), event.id)
            self.events_inflight.add(event.id)
            room -= 1

    def _next_candidate(self) -> PacketInfoLike | None:
        now = self.clock()
        if not self._candidates and now < self._empty_until:
            return None
        if not self._candidates or now - self._candidates_at > OUTBOX_REFRESH_SECONDS:
            # The packets already in transfer are in the outbox too: look past them.
            rows = [p for p in self.journal.outbox(len(self.packets) + OUTBOX_SCAN)
                    if p.packet_id not in self.packets]
            if self.today_first:
                today = self._today_start()
                # Priority first, then today's before older, then oldest first. created_at is
                # fixed-width UTC text, so string order is time order.
                rows.sort(key=lambda p: (-p.priority, p.created_at < today, p.created_at))
            self._candidates = deque(rows)
            self._candidates_at = now
            self._mark_refused.clear()  # the outbox just read no longer lists them
            listed = {p.packet_id for p in rows}
            for pid in [p for p in self._resumed_before_mark if p not in listed]:
                # Delivered or gone; one that merely fell past the scan is later treated as
                # a resume (a query first): slower, never wrong.
                self._resumed_before_mark.pop(pid)
                self._marked_here.discard(pid)
        while self._candidates:
            info = self._candidates.popleft()
            if info.packet_id not in self.packets and info.packet_id not in self._mark_refused:
                return info
        self._empty_until = now + POLL_SECONDS
        return None

    def _today_start(self) -> str:
        """Local midnight of the office's today, as UTC text comparable with created_at."""
        wall = self.wall_clock() if self.wall_clock else datetime.now(UTC)
        local = wall.astimezone(self.office_tz or UTC)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")

    def _start_packet(self, info: PacketInfoLike, publish: PublishFn) -> None:
        chunk_size = self.chunk_bytes
        confirmed: frozenset[int] = frozenset()
        if info.confirmed_chunk_size == chunk_size:
            confirmed = info.confirmed_chunks
        chunks = max(1, -(-info.size // chunk_size))
        packet = _Packet(info.packet_id, info.size, info.sha256, chunk_size, chunks,
                         rows=info.size > 0 and info.chunk_bytes == chunk_size)
        todo = [i for i in range(chunks) if i not in confirmed]
        # A mark this process wrote ahead of the packet's start does not make it a resume.
        pid = info.packet_id
        resumed = self._resumed_before_mark.pop(pid, None)
        if resumed is None:
            resumed = _resumed(info)
        if pid in self._marked_here:
            self._marked_here.discard(pid)
        else:
            packet.mark = self._mark_pending.get(pid) or self._mark_ahead(info)
        self.packets[pid] = packet
        if resumed:
            # Ask head office what it already has before sending anything again.
            packet.fallback = todo
            self._query(packet, publish)
        elif not todo:
            self._query(packet, publish)
        else:
            packet.todo.extend(todo)
            self._want(packet)

    def _pump_chunks(self, publish: PublishFn) -> float:
        while True:
            if self.chunks_inflight() >= self.window:
                self._fill_pipeline(publish)
                return 1.0
            packet = self._next_sending()
            if packet is None:
                if len(self.packets) >= self.max_unacked_packets:
                    return 1.0
                info = self._next_candidate()
                if info is None:
                    return 1.0
                self._start_packet(info, publish)
                continue
            delay = self.bucket.delay(self.clock())
            if delay > 0:
                return delay
            index = packet.todo[0]
            offset = index * packet.chunk_size
            length = min(packet.chunk_size, packet.size - offset)
            if packet.mark is not None and not self._await_mark(packet):
                continue
            inline = packet.rows and index not in packet.check
            future = None if inline else self._prefetched.pop((packet.packet_id, index), None)
            if not inline:
                if future is None:
                    future = self._submit(packet, index)
                # Hashed reads run ahead on the reader thread; stored rows need no lead (and
                # the plan is refilled whenever the window fills, below).
                self._fill_pipeline(publish)
            try:
                if future is None:
                    data, digest = self._next_row(packet, index)
                else:
                    data, digest = future.result(timeout=60)
            except JournalError as exc:
                # The journal quarantines a packet whose chunk fails its hash (and raises the
                # event); a damaged packet is never published.
                self._drop_packet(packet, f"journal read failed: {type(exc).__name__}")
                continue
            except FutureTimeout:
                assert future is not None  # only futures time out
                self._prefetched[(packet.packet_id, index)] = future
                log.warning("journal read of packet %s chunk %d is slow", packet.packet_id, index)
                return 0.1
            if len(data) != length:
                if packet.rows and index not in packet.check:
                    # A row of the wrong length is damage: read_range checks it and quarantines.
                    log.warning("packet %s chunk %d: stored row has %d of %d bytes; re-reading "
                                "it with the hash check", packet.packet_id, index, len(data), length)
                    packet.check.add(index)
                    continue
                self._drop_packet(packet, f"chunk {index} read {len(data)} of {length} bytes")
                continue
            mid = publish(self.topics.packet, data, 1, False,
                          chunk_properties(packet, index, offset, digest), CONTENT_TYPE_CHUNK)
            if mid is None:
                if future is not None:
                    self._prefetched[(packet.packet_id, index)] = future  # keep it for the retry
                return 0.05
            packet.todo.popleft()
            packet.inflight.add(index)
            self.inflight[mid] = ("chunk", packet.packet_id, index)
            self._chunks_inflight += 1
            crash_point("mid-chunk")
            self.bucket.consume(length, self.clock())
            self.stats.chunks_sent += 1

    def _mark_ahead(self, first: PacketInfoLike) -> Future[dict[str, JournalError]]:
        """Mark ``first`` and the next packets of the outbox sending, in one batch on the marker."""
        batch = [first.packet_id]
        ahead = first.size
        budget = max(self.window * self.chunk_bytes, self.drain_rate() * MARK_AHEAD_SECONDS)
        for info in self._candidates:
            if len(batch) >= MARK_BATCH or ahead >= budget:
                break
            ahead += info.size
            other = info.packet_id
            if (other not in self.packets and other not in self._mark_pending
                    and other not in self._marked_here and other not in self._mark_refused):
                batch.append(other)
                self._resumed_before_mark[other] = _resumed(info)
        future = self._marker().submit(self.journal.mark_sending_many, batch)
        self._mark_batches.append((batch, future))
        for other in batch:
            self._mark_pending[other] = future
        return future

    def _await_mark(self, packet: _Packet) -> bool:
        """Before a packet's first chunk: wait (bounded) for its mark; False if it was dropped."""
        future = packet.mark
        assert future is not None  # the caller checks
        try:
            future.exception(timeout=MARK_WAIT_SECONDS)
        except FutureTimeout:
            log.warning("marking packet %s sending takes over %.0f s; sending without the "
                        "(advisory) mark", packet.packet_id, MARK_WAIT_SECONDS)
        packet.mark = None
        self._settle_marks()
        return packet.packet_id in self.packets

    def _settle_marks(self) -> None:
        """Take in the finished batches of marks (in order) without waiting for the others.

        The mark is advisory (a packet whose mark is lost is sent again whole and head office
        keeps one copy). A packet whose state changed meanwhile (quarantined, delivered) is
        dropped, or not started. A full disk does not stop sending: delivery is what frees
        the space, and acks are written from the journal's reserve.
        """
        while self._mark_batches and self._mark_batches[0][1].done():
            batch, future = self._mark_batches.popleft()
            for pid in batch:
                self._mark_pending.pop(pid, None)
            exc = None if future.cancelled() else future.exception()
            if isinstance(exc, JournalFullError):
                if not self._journal_full:
                    log.warning("journal full: packets are sent without their 'sending' mark "
                                "(advisory) until it has room")
                    self._journal_full = True
                continue
            if exc is not None and not isinstance(exc, JournalError):
                raise exc
            if exc is not None or future.cancelled():
                log.warning("packets not marked sending (advisory): %s",
                            type(exc).__name__ if exc else "cancelled")
                continue
            if self._journal_full:
                log.info("journal writable again: packets are marked sending again")
                self._journal_full = False
            refused = future.result()
            for pid in batch:
                error = refused.get(pid)
                packet = self.packets.get(pid)
                if error is None:
                    if packet is None and pid in self._resumed_before_mark:
                        self._marked_here.add(pid)  # marked ahead of its start
                elif packet is not None:
                    # Changed state since the outbox was read (quarantined, delivered).
                    self._drop_packet(packet, f"cannot mark it sending: {type(error).__name__}")
                else:
                    self._resumed_before_mark.pop(pid, None)
                    self._mark_refused.add(pid)

    def _drop_packet(self, packet: _Packet, why: str) -> None:
        """Stop transferring a packet the journal cannot give back intact."""
        log.error("packet %s not sent: %s", packet.packet_id, why)
        self.stats.packets_quarantined += 1
        self.packets.pop(packet.packet_id, None)

    def _query(self, packet: _Packet, publish: PublishFn) -> None:
        mid = publish(self.topics.packet, b"", 1, False, query_properties(packet), None)
        now = self.clock()
        # Ask again later even when the query could not be queued now.
        packet.ack_deadline = now + self.ack_timeout * min(2 ** packet.queries, 8)
        if mid is not None:
            packet.queries += 1
            self.stats.ack_queries += 1
            self.inflight[mid] = ("query", packet.packet_id, 0)

    def _check_ack_deadlines(self, publish: PublishFn, now: float) -> None:
        for packet in list(self.packets.values()):
            if packet.ack_deadline is None or packet.ack_deadline > now:
                continue
            if packet.todo or packet.inflight:
                packet.ack_deadline = None
                continue
            if packet.fallback:
                # Head office did not answer the resume query: send what we cannot prove it has.
                packet.todo.extend(packet.fallback)
                self._want(packet)
                packet.fallback = []
                packet.ack_deadline = None
                continue
            self._query(packet, publish)

    # ------------------------------------------------------------------ acks
    def on_puback(self, mid: int, ok: bool) -> None:
        """The broker answered one of our QoS 1 publishes."""
        crash_point("after-puback")
        entry = self.inflight.pop(mid, None)
        if entry is None:
            return
        kind, ident, index = entry
        if kind == "source":
            source = self.sources[int(ident)]
            source.inflight.discard(index)
            if ok:
                source.mark_sent(index)
            return
        if kind == "event":
            self.events_inflight.discard(index)
            if ok:
                self.journal.mark_event_sent(index)
                self.stats.events_sent += 1
            return
        if kind != "chunk":
            return
        self._chunks_inflight -= 1
        packet = self.packets.get(ident)
        if packet is None:
            return
        packet.inflight.discard(index)
        if not ok:
            self.stats.puback_failures += 1
            packet.todo.appendleft(index)
            self._want(packet)
            return
        length = min(packet.chunk_size, packet.size - index * packet.chunk_size)
        self.stats.bytes_acked += length
        now = self.clock()
        self._drain.append((now, length))
        while now - self._drain[0][0] > 10.0:
            self._drain.popleft()
        if not packet.todo and not packet.inflight:
            # Whole packet accepted by the broker; head office acks when it has verified it.
            packet.ack_deadline = now + self.ack_timeout

    def on_ack(self, ack: Ack, now_iso: str) -> None:
        """A validated head-office ack."""
        self.stats.last_ack_at = now_iso
        info = self.journal.packet(ack.packet_id)
        packet = self.packets.get(ack.packet_id)
        if info is None or info.state in ("delivered", "purged", "quarantined"):
            self.packets.pop(ack.packet_id, None)
            return  # a duplicate or late ack: nothing left to do
        if ack.status == "complete":
            if ack.packet_sha256 != info.sha256:
                self.stats.bad_acks += 1
                log.warning("ack for packet %s names another sha256; asking again", ack.packet_id)
                if packet is not None:
                    packet.ack_deadline = self.clock()
                return
            crash_point("mid-ack")
            self.journal.mark_delivered(ack.packet_id, info.sha256)
            self.packets.pop(ack.packet_id, None)
            self.stats.packets_delivered += 1
            return
        if ack.status == "rejected":
            quarantined = self.journal.record_reject(ack.packet_id, ack.reason[:200],
                                                     self.max_rejects)
            if quarantined:
                # The journal records the packet_quarantined event in the same transaction.
                self.packets.pop(ack.packet_id, None)
                self.stats.packets_quarantined += 1
                log.error("packet %s quarantined after %d rejections by head office",
                          ack.packet_id, self.max_rejects)
            elif packet is not None and not packet.todo and not packet.inflight:
                packet.todo.extend(range(packet.chunks))
                packet.check.update(range(packet.chunks))
                self._want(packet)
                packet.ack_deadline = None
            return
        # "missing": resend just those chunks (in head office's chunk size).
        if packet is None:
            return  # not in transfer here (for example quarantined meanwhile); ignore
        if ack.chunk_size != packet.chunk_size:
            # Head office holds chunks of another size (our broker limit changed): start over.
            packet.todo = deque(i for i in range(packet.chunks) if i not in packet.inflight)
        else:
            missing = [i for i in ack.missing if i < packet.chunks]
            held = set(range(packet.chunks)).difference(missing)
            if held:
                self.journal.mark_confirmed_chunks(packet.packet_id, packet.chunk_size, held)
            wanted = [i for i in missing if i not in packet.inflight and i not in packet.todo]
            packet.todo.extend(wanted)
            packet.check.update(wanted)
            self.stats.resent_chunks += len(wanted)
        packet.fallback = []
        if packet.todo:
            self._want(packet)
            packet.ack_deadline = None
        else:
            packet.ack_deadline = self.clock() + self.ack_timeout

    # ------------------------------------------------------------------ diagnostics
    def drain_rate(self) -> float:
        """Bytes per second accepted by the broker over the last 10 seconds."""
        now = self.clock()
        while self._drain and now - self._drain[0][0] > 10.0:
            self._drain.popleft()
        if not self._drain:
            return 0.0
        span = max(now - self._drain[0][0], 1.0)
        return sum(n for _, n in self._drain) / span


def _resumed(info: PacketInfoLike) -> bool:
    """Whether an earlier connection or process sent some of the packet (its row as read).

    attempts > 0 counts too: the journal turns "sending" back into "queued" at start-up, so
    the state alone cannot tell.
    """
    return info.state == "sending" or info.attempts > 0


def event_payload(event: EventLike) -> bytes:
    """The JSON of one journal event on ``.../event`` (contract C)."""
    import json

    return json.dumps(
        {"v": 1, "id": event.id, "kind": event.kind, "at": event.created_at,
         "data": event.payload},
        separators=(",", ":"), sort_keys=True, allow_nan=False,
    ).encode()
