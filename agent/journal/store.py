"""The durable journal: packets in fixed-size chunk rows, their outbox state, events, quota.

One SQLite file in WAL mode in the state directory. One writer: every change goes through
one connection guarded by a condition variable, and each wait for it is bounded by
``journal.write_wait_seconds``. Readers (outbox, read_range, headroom) use their own
pooled read-only connections, so the uplink reads while a packet is being written.

A packet is written inside ONE write transaction that begin_packet opens and commit()
closes with ``synchronous=FULL`` (the WAL is fsynced before COMMIT returns). That is the
whole crash-safety argument: a kill -9, a power cut or ENOSPC in the middle leaves only
uncommitted WAL frames, which SQLite ignores, so nothing partial is ever visible and no
clean-up write is needed on a full disk. The price is that other writers wait while a
packet streams in; the packet writer produces bytes as fast as it encrypts, so that is a
fraction of a second for a normal enrollment (see docs/journal.md).

Raw ``sqlite3`` is used on the hot path (chunk inserts, range reads): sqlite-utils adds a
Python layer per row and would not let us bind a memoryview without copying.
``Journal.db`` hands other modules a sqlite-utils ``Database`` for their own tables.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from agent.config import JournalConfig
from agent.faults import crash_point
from agent.journal.errors import (
    CorruptPacketError,
    DuplicatePacketError,
    HashMismatchError,
    InvalidTransitionError,
    JournalBusyError,
    JournalCorruptError,
    JournalError,
    JournalFullError,
    PacketTooLargeError,
    UnknownPacketError,
)
from agent.journal.model import (
    DELIVERED,
    PURGED,
    QUARANTINED,
    QUEUED,
    SENDING,
    UNACKED,
    WRITING,
    EventRow,
    Headroom,
    PacketInfo,
    bitmap_from,
    bitmap_to,
    chunk_count,
    iso,
    parse_iso,
    utc_now,
)
from agent.journal.schema import DDL, PAGE_SIZE, SCHEMA_VERSION

log = logging.getLogger(__name__)

DB_NAME = "journal.sqlite3"
# Preallocated space given up when the disk fills (see _ensure_reserve).
RESERVE_NAME = "journal.reserve"
SQLITE_IOERR = 10
SQLITE_FULL = 13
_OWN_TABLES = frozenset({"packets", "chunks", "events", "schemas", "meta", "sqlite_sequence"})
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_SCHEMA_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_DDL_RE = re.compile(
    r"\s*CREATE\s+(?:UNIQUE\s+)?(TABLE|INDEX|VIEW)\s+IF\s+NOT\s+EXISTS\s+[\"`\[]?(\w+)",
    re.IGNORECASE,
)
_MAX_EVENT_BYTES = 64 * 1024
# The headroom check keeps this much free for the WAL's growth (disk_kept_back). Measured
# 1 MiB too: ack + purge of a 1 MB packet took 37 ms instead of 19 ms (a checkpoint with
# fsync after nearly every purge, whose zeroed pages alone are ~1 MB of frames).
_WAL_CHECKPOINT_BYTES = 4 * 1024 * 1024
_MAX_IDLE_READERS = 4
# Pages an incremental vacuum moves per step before the WAL is truncated again: a quarter
# of the free disk, within these bounds (a moved page costs up to 3 frames: 2 pages need
# ~100 KiB of WAL, within the smallest useful reserve; 4096 pages = 64 MiB).
_VACUUM_MIN_STEP_PAGES = 2
_VACUUM_MAX_STEP_PAGES = 4096
_T = TypeVar("_T")
_PACKET_COLS = (
    "packet_id, station_id, created_at, size, sha256, state, priority, attempts, rejects,"
    " confirmed_chunks, confirmed_chunk_size, exported_at, chunk_bytes, last_error, saved_at,"
    " delivered_at, purged_at"
)


def db_path(state_dir: Path) -> Path:
    """Where the journal lives inside the state directory."""
    return Path(state_dir) / DB_NAME


def files_bytes(state_dir: Path) -> int:
    """Bytes the journal's database and WAL files hold on disk now (what a check reads)."""
    path = db_path(state_dir)
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def _row_to_info(row: tuple[Any, ...]) -> PacketInfo:
    (pid, station, created, size, sha, state, prio, attempts, rejects, bitmap, csize,
     exported_at, chunk_bytes, last_error, saved_at, delivered_at, purged_at) = row
    return PacketInfo(
        packet_id=pid, station_id=station, created_at=created, size=size, sha256=sha,
        state=state, priority=prio, attempts=attempts, rejects=rejects,
        confirmed_chunks=bitmap_to(bitmap), confirmed_chunk_size=csize,
        exported=exported_at is not None, chunk_bytes=chunk_bytes, last_error=last_error,
        saved_at=saved_at, delivered_at=delivered_at, purged_at=purged_at,
    )


def _map_sqlite_error(exc: sqlite3.Error, what: str) -> JournalError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == SQLITE_FULL:
        return JournalFullError(f"{what}: the disk is full ({exc})")
    return JournalError(f"{what}: SQLite error: {exc}")


def _is_ioerr(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == SQLITE_IOERR


def scan_packet(conn: sqlite3.Connection, packet_id: str) -> list[str]:
    """Re-hash every chunk of one packet and the whole file; return problems (empty: fine).

    Reads one chunk row at a time, so memory stays at one chunk whatever the packet size.
    """
    row = conn.execute(
        "SELECT size, sha256, chunk_bytes, chunk_count FROM packets WHERE packet_id = ?",
        (packet_id,),
    ).fetchone()
    if row is None:
        return [f"packet {packet_id}: no metadata row"]
    size, sha, csize, count = row
    problems: list[str] = []
    whole = hashlib.sha256()
    expected_idx = 0
    total = 0
    for idx, digest, data in conn.execute(
        "SELECT idx, sha256, data FROM chunks WHERE packet_id = ? ORDER BY idx", (packet_id,)
    ):
        if idx != expected_idx:
            problems.append(f"packet {packet_id}: chunk {expected_idx} missing")
            expected_idx = idx
        if hashlib.sha256(data).digest() != digest:
            problems.append(f"packet {packet_id}: chunk {idx} does not match its SHA-256")
        if idx < count - 1 and len(data) != csize:
            problems.append(f"packet {packet_id}: chunk {idx} has {len(data)} bytes, expected {csize}")
        whole.update(data)
        total += len(data)
        expected_idx += 1
    if expected_idx != count:
        problems.append(f"packet {packet_id}: {expected_idx} chunks stored, expected {count}")
    if total != size:
        problems.append(f"packet {packet_id}: {total} bytes stored, expected {size}")
    if not problems and whole.hexdigest() != sha:
        problems.append(f"packet {packet_id}: packet SHA-256 does not match")
    return problems


def _check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise JournalError(f"{what} {value!r}: expected 1-128 characters of A-Z a-z 0-9 _ . : -")
    return value


# SQLite's on-disk arithmetic (https://www.sqlite.org/fileformat2.html), used to bound what a
# packet costs on disk before SQLite finds out the hard way (docs/journal.md "The real bound").
_WAL_FRAME_HEADER = 24
_MAX_ID_BYTES = 128
# A chunk record: header varints, packet id, idx, 32-byte digest, then the blob.
_RECORD_OVERHEAD = 8 + _MAX_ID_BYTES + 8 + 32
# Cell pointer, payload-size and rowid varints around a record in a table leaf.
_CELL_OVERHEAD = 2 + 3 + 9
# Index (packet_id, idx) entries, counted at half-full pages (random ids split leaves).
_INDEX_ENTRY_BYTES = 2 * (_MAX_ID_BYTES + 24)
# Pages a packet touches besides its chunks: the packets row and its index, b-tree interior
# pages of three trees, a pointer-map page, the header page, a freelist trunk.
_PACKET_FIXED_PAGES = 12
# The page cache (cache_size = -2048: 128 pages of 16 KiB) spills dirty pages into the WAL
# mid-transaction; the few b-tree pages still being filled are then written again.
_SPILL_EVERY_PAGES = 100
_SPILL_REWRITE_PAGES = 8


def _blob_bytes(conn: sqlite3.Connection, rowid: int) -> bytes:
    """One chunk row's bytes, read through SQLite's blob API.

    Measured on a 460 MB journal: 45 us of CPU per 256 KiB row, against 210 us for the same
    bytes as a SELECTed column (which costs the sending thread about a fifth of its time).
    """
    with conn.blobopen("chunks", "data", rowid, readonly=True) as blob:
        return blob.read()


def chunk_pages_bytes(length: int, page_size: int = PAGE_SIZE) -> int:
    """Upper bound of database bytes one chunk row of ``length`` bytes occupies (whole pages)."""
    usable = page_size
    max_local = usable - 35
    min_local = (usable - 12) * 32 // 255 - 23
    payload = length + _RECORD_OVERHEAD
    if payload <= max_local:
        overflow, local = 0, payload
    else:
        keep = min_local + (payload - min_local) % (usable - 4)
        local = keep if keep <= max_local else min_local
        overflow = -(-(payload - local) // (usable - 4))
        local += 4  # the first overflow page's number
    per_leaf = max(1, (usable - 8) // (local + _CELL_OVERHEAD))
    leaf_share = -(-usable // per_leaf)
    body = overflow * usable + leaf_share + _INDEX_ENTRY_BYTES
    # One pointer-map page per usable/5 pages (auto_vacuum) and one interior cell per page.
    return body + body // (usable // 5) + body // 1000


def packet_pages_bytes(size: int, chunk_bytes: int, page_size: int = PAGE_SIZE) -> int:
    """Upper bound of database bytes a packet of ``size`` bytes occupies, page cache spills included."""
    full, rest = divmod(size, chunk_bytes)
    chunks = full * chunk_pages_bytes(chunk_bytes, page_size)
    if rest:
        chunks += chunk_pages_bytes(rest, page_size)
    spills = chunks // (_SPILL_EVERY_PAGES * page_size) + 1
    return chunks + (_PACKET_FIXED_PAGES + spills * _SPILL_REWRITE_PAGES) * page_size


def packet_disk_bytes(size: int, chunk_bytes: int) -> int:
    """Disk a packet of ``size`` bytes takes until its checkpoint ends: its pages twice (WAL + file)."""
    pages = packet_pages_bytes(size, chunk_bytes)
    return pages + wal_bytes_for(pages)


def wal_bytes_for(db_bytes: int, page_size: int = PAGE_SIZE) -> int:
    """WAL bytes needed to log ``db_bytes`` of pages (each frame adds a 24-byte header)."""
    return db_bytes + -(-db_bytes // page_size) * _WAL_FRAME_HEADER


def wal_cap_bytes(page_size: int = PAGE_SIZE) -> int:
    """How large the WAL may grow between checkpoints from small writes (acks, events)."""
    # The automatic checkpoint runs after the commit that crossed the threshold: one small
    # transaction (at most a 64 KiB event, a few pages) past it, plus the WAL header.
    return wal_bytes_for(_WAL_CHECKPOINT_BYTES + 8 * page_size, page_size) + 32


def disk_needed_for_packet(cfg: JournalConfig, *, wal_bytes: int | None = None,
                        pending_bytes: int = 0, reserve_present: bool = True) -> int:
    """Free bytes the disk must have for one more ``max_packet_bytes`` packet (the real bound).

    A packet is written as WAL frames and then copied page by page into the database file
    by a checkpoint while the WAL still holds it: the disk carries it twice. Frames already
    committed but not yet checkpointed (``pending_bytes``) may grow the database by as much.
    Acks and events append to the WAL until the automatic checkpoint; ``journal_size_limit``
    keeps the file at that size afterwards, so only its growth beyond today's size
    (``wal_bytes``; None: unknown, assume none of it exists) is still to be found.
    """
    return packet_disk_bytes(cfg.max_packet_bytes, cfg.chunk_bytes) + disk_kept_back(
        cfg, wal_bytes=wal_bytes, pending_bytes=pending_bytes, reserve_present=reserve_present)


def disk_kept_back(cfg: JournalConfig, *, wal_bytes: int | None, pending_bytes: int,
                   reserve_present: bool) -> int:
    """Free bytes no packet may use: WAL growth still possible, pending checkpoint, floor, reserve."""
    wal_now = 0 if wal_bytes is None else wal_bytes
    need = max(0, wal_cap_bytes() - wal_now) + pending_bytes + cfg.free_disk_floor_bytes
    if not reserve_present:
        need += cfg.reserve_bytes  # the reserve was spent: win it back first
    return need


def compute_headroom(cfg: JournalConfig, *, used: int, waiting: int, oldest: str | None,
                     free: int, reserve_present: bool, warning: bool,
                     wal_bytes: int | None = None, pending_bytes: int = 0) -> Headroom:
    """Decide whether one more ``max_packet_bytes`` packet fits, and word it for the operator."""
    need_disk = disk_needed_for_packet(cfg, wal_bytes=wal_bytes, pending_bytes=pending_bytes,
                                    reserve_present=reserve_present)
    quota_ok = used + cfg.max_packet_bytes <= cfg.max_bytes
    disk_ok = free >= need_disk
    since, since_en = _since(oldest)
    if quota_ok and disk_ok:
        msg_id, msg_en = "Penyimpanan cukup.", "Storage OK."
        if warning:
            msg_id = (f"Penyimpanan hampir penuh: {waiting} paket menunggu dikirim{since}. "
                      "Periksa sambungan internet.")
            msg_en = (f"Storage nearly full: {waiting} packets waiting to be sent{since_en}. "
                      "Check the network link.")
    else:
        msg_id, msg_en = _refusal(quota_ok, waiting, oldest)
    return Headroom(ok=quota_ok and disk_ok, message_id=msg_id, message_en=msg_en,
                    backlog_packets=waiting, oldest_created=oldest, free_bytes=free,
                    used_bytes=used, warning=warning)


def _since(oldest: str | None) -> tuple[str, str]:
    when = oldest[:16].replace("T", " ") if oldest else None
    return (f" sejak {when} UTC", f" since {when} UTC") if when else ("", "")


def _refusal(quota_ok: bool, waiting: int, oldest: str | None) -> tuple[str, str]:
    """The operator's refusal, in Indonesian and English: why, what waits, what to do."""
    since, since_en = _since(oldest)
    where_id = "kuota penyimpanan" if not quota_ok else "disk"
    where_en = "the storage quota" if not quota_ok else "the disk"
    msg_id = (f"Perekaman ditolak: {where_id} penuh. {waiting} paket menunggu dikirim"
              f"{since}. Periksa sambungan internet, atau jalankan `rekam export` "
              "ke media lepas.")
    msg_en = (f"Enrollment refused: {where_en} is full. {waiting} packets are waiting to "
              f"be sent{since_en}. Check the network link, or run `rekam export` to "
              "removable media.")
    return msg_id, msg_en


class PacketSink:
    """A file-like target for one packet: ``write`` streams chunk rows, ``commit`` makes it durable.

    Holds at most one chunk in memory. Use as a context manager: leaving the block without
    ``commit()`` aborts, and nothing of the packet remains.
    """

    def __init__(self, journal: Journal, packet_id: str, station_id: str, created_at: str,
                 priority: int, chunk_bytes: int, quota_left: int,
                 disk_left: int | None = None) -> None:
        self._journal = journal
        self.packet_id = packet_id
        self._station_id = station_id
        self._created_at = created_at
        self._priority = priority
        self._chunk_bytes = chunk_bytes
        self._quota_left = quota_left
        self._disk_left = disk_left
        self._max_packet = journal.cfg.max_packet_bytes
        self._buf = bytearray()
        self._hash = hashlib.sha256()
        self._size = 0  # bytes accepted by write(), buffered or stored
        self._stored = 0  # bytes already inserted as chunk rows
        self._next_idx = 0
        self._open = True

    # -- file-like surface
    def writable(self) -> bool:
        """Always true while open (io protocol)."""
        return self._open

    @property
    def closed(self) -> bool:
        """True after commit or abort (io protocol)."""
        return not self._open

    def flush(self) -> None:
        """Nothing to do: chunks are stored as they fill; durability comes from commit()."""

    def write(self, b: bytes | bytearray | memoryview) -> int:
        """Append bytes; full chunks go to the journal at once. Returns ``len(b)``."""
        if not self._open:
            raise JournalError(f"packet {self.packet_id}: write after commit or abort")
        view = memoryview(b).cast("B")
        n = len(view)
        if self._size + n > self._max_packet:
            self.abort()
            raise PacketTooLargeError(
                f"packet {self.packet_id}: larger than journal.max_packet_bytes "
                f"({self._max_packet} bytes); nothing was kept"
            )
        pos = 0
        chunk = self._chunk_bytes
        while pos < n:
            if not self._buf and n - pos >= chunk:
                # A whole chunk straight from the caller's buffer: no copy.
                self._store(view[pos:pos + chunk])
                pos += chunk
                continue
            take = min(chunk - len(self._buf), n - pos)
            self._buf += view[pos:pos + take]
            pos += take
            if len(self._buf) == chunk:
                self._store(self._buf)
                self._buf.clear()
        self._size += n
        return n

    def _store(self, data: bytes | bytearray | memoryview) -> None:
        if self._stored + len(data) > self._quota_left:
            self.abort()
            raise JournalFullError(
                f"packet {self.packet_id}: journal quota (journal.max_bytes) reached; "
                "nothing of this packet was kept"
            )
        if self._disk_left is not None and \
                packet_disk_bytes(self._stored + len(data), self._chunk_bytes) > self._disk_left:
            # Refused before SQLite meets ENOSPC: the WAL, the checkpoint's copy and the
            # floor must all still fit (disk_needed_for_packet).
            self.abort()
            raise self._journal._disk_refusal(self.packet_id)
        # Both hashes inline: a helper thread for the whole-file hash was measured slower
        # (GIL hand-offs per chunk cost more than the overlap gained on 2 cores).
        self._hash.update(data)
        digest = hashlib.sha256(data).digest()
        self._journal._sink_insert(self, self._next_idx, digest, data)
        self._next_idx += 1
        self._stored += len(data)

    def commit(self) -> PacketInfo:
        """Store the last chunk, COMMIT with fsync, and only then return the packet's info."""
        if not self._open:
            raise JournalError(f"packet {self.packet_id}: commit after commit or abort")
        if self._buf:
            self._store(self._buf)
            self._buf.clear()
        if self._size == 0:
            self.abort()
            raise JournalError(f"packet {self.packet_id}: empty packet; nothing was kept")
        info = self._journal._sink_commit(
            self, size=self._size, sha256=self._hash.hexdigest(), count=self._next_idx,
            chunk_bytes=self._chunk_bytes,
        )
        self._open = False
        self._buf = bytearray()
        return info

    def abort(self) -> None:
        """Drop everything written so far; the journal is as if begin_packet never ran."""
        if not self._open:
            return
        self._open = False
        self._buf = bytearray()
        self._journal._sink_abort(self)

    def _closed_by_journal(self) -> None:
        self._open = False
        self._buf = bytearray()

    def __enter__(self) -> PacketSink:
        """Context manager: abort on leaving without commit."""
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Abort unless committed."""
        self.abort()

    # Expose descriptive info to callers (e.g. the writer) without reaching into privates.
    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def station_id(self) -> str:
        """The station this packet belongs to."""
        return self._station_id

    @property
    def created_at(self) -> str:
        """Creation time (normalised ISO 8601 UTC)."""
        return self._created_at

    @property
    def priority(self) -> int:
        """Outbox priority."""
        return self._priority


class Journal:
    """The durable journal (contract A in docs/journal.md). Thread-safe; one writer."""

    def __init__(self, path: Path, cfg: JournalConfig, *,
                 clock: Callable[[], datetime] = utc_now) -> None:
        """Use :meth:`open`; this only sets fields."""
        self.path = path
        self.cfg = cfg
        self._clock = clock
        self._wait = float(cfg.write_wait_seconds)
        self._cv = threading.Condition(threading.Lock())
        self._owner: threading.Thread | None = None
        self._sink: PacketSink | None = None
        # Idle read-only connections, reused by whichever thread reads next. A pool, not
        # thread-locals: the station API serves each request on a new thread.
        self._idle_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._db: Any = None
        self._warning = False
        self._conn: sqlite3.Connection | None = None
        self._reopen_needed = False
        # Committed WAL bytes the last checkpoint could not copy yet (they may still grow
        # the database file); the writer updates it, headroom() reads it without waiting.
        self._wal_pending = 0
        # Tombstones may still hold chunk rows (a purge cut short by a crash or a full disk):
        # true at open and after a purge that did not finish; the next purge looks for them.
        # Otherwise a purge cleans only what it purged, and an ack never scans the tombstones
        # of years (measured: 10 ms per ack at 28,000 of them).
        self._tombstones_unchecked = True

    # ------------------------------------------------------------------ open / close

    @classmethod
    def open(cls, state_dir: Path, cfg: JournalConfig, *, recover: bool = True,
             clock: Callable[[], datetime] = utc_now) -> Journal:
        """Open (creating if needed) the journal in ``state_dir`` and run start-up recovery.

        ``recover=False`` is for command-line tools that run beside a live daemon: they
        must not reset the daemon's 'sending' packets. They still get an integrity check.
        """
        path = db_path(state_dir)
        j = cls(path, cfg, clock=clock)
        j._connect()
        try:
            j._integrity_check()
            if recover:
                j._recover()
                j._ensure_reserve()
            j._warning = j._meta_get("storage_warning") == "1"
        except BaseException:
            j.close()
            raise
        return j

    def _connect(self) -> sqlite3.Connection:
        if not self.path.parent.is_dir():
            raise JournalError(f"{self.path.parent}: state directory does not exist "
                               "(the daemon creates it; see agent.statedir)")
        new = not self.path.exists() or self.path.stat().st_size == 0
        if new:
            # Private from the first byte: SQLite gives -wal and -shm the same mode.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=self._wait)
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot open the journal: {exc}") from exc
        self._conn = conn
        try:
            if new:
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise JournalError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            # FULL: the WAL is fsynced at every COMMIT, so "saved" survives a power cut
            # (NORMAL in WAL mode may lose the last commits; research note §1.2).
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA foreign_keys = ON")
            # A small page cache: memory must not grow with packet size (<= 8 MB budget).
            conn.execute("PRAGMA cache_size = -2048")
            # Checkpoint once ~4 MiB of committed frames sit in the WAL (SQLite's default in
            # bytes with 4 KiB pages; every byte the WAL may grow by is disk the headroom keeps
            # free). Committed data must not pile up in the WAL: on a full disk a checkpoint
            # would need room to grow the database file and never get it.
            conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_CHECKPOINT_BYTES // PAGE_SIZE}")
            # After a checkpoint the WAL file is cut back to this, returning disk space.
            conn.execute(f"PRAGMA journal_size_limit = {_WAL_CHECKPOINT_BYTES}")
            if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                log.warning("journal %s was created without auto_vacuum=INCREMENTAL; "
                            "purged space is reused but the file will not shrink", self.path)
            conn.executescript(DDL)
            conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            if _is_ioerr(exc):
                raise JournalError(f"{self.path}: I/O error opening the journal: {exc}") from exc
            raise JournalCorruptError(
                f"{self.path}: not a usable journal database ({exc}); run `rekam journal check`"
            ) from exc
        return conn

    def close(self) -> None:
        """Abort an open packet, checkpoint the WAL, close every connection."""
        with self._cv:
            if self._sink is not None:
                self._rollback_open_sink("journal closed")
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error as exc:
                log.warning("journal checkpoint at close failed: %s", exc)
            conn.close()
        with self._readers_lock:
            readers, self._idle_readers = self._idle_readers, []
        for r in readers:
            r.close()

    def __enter__(self) -> Journal:
        """Context manager closing the journal."""
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close."""
        self.close()

    # ------------------------------------------------------------------ connections

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection for this block (WAL: never waits for the writer)."""
        with self._readers_lock:
            conn = self._idle_readers.pop() if self._idle_readers else None
        if conn is None:
            if self._conn is None:
                raise JournalError("journal is closed")
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=self._wait)
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA cache_size = -1024")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            with self._readers_lock:
                keep = self._conn is not None and len(self._idle_readers) < _MAX_IDLE_READERS
                if keep:
                    self._idle_readers.append(conn)
            if not keep:
                conn.close()

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        with self._read() as conn:
            return conn.execute(sql, params).fetchone()

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._read() as conn:
            return conn.execute(sql, params).fetchall()

    def _acquire(self) -> None:
        if not self._cv.acquire(timeout=self._wait):
            raise JournalBusyError(
                f"journal writer busy for more than {self._wait:g} s (journal.write_wait_seconds)"
            )

    def _wait_owner_free(self) -> None:
        """With the lock held: wait (bounded) until no packet transaction is open."""
        deadline = time.monotonic() + self._wait
        while self._owner is not None:
            if self._owner is threading.current_thread():
                raise JournalError(
                    "this thread has a packet open in the journal; commit or abort it first"
                )
            if not self._owner.is_alive():
                log.warning("journal: a writer thread ended with packet %s open; aborting it",
                            self._sink.packet_id if self._sink else "?")
                self._rollback_open_sink("writer thread ended")
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JournalBusyError(
                    f"journal writer busy with a packet for more than {self._wait:g} s "
                    "(journal.write_wait_seconds)"
                )
            # Wake at least every second to notice an owner thread that died.
            self._cv.wait(min(remaining, 1.0))

    def _writer(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError("journal is closed")
        if self._reopen_needed:
            return self._reopen()
        return self._conn

    def _reopen(self) -> sqlite3.Connection:
        """With the lock held: after an I/O error, reconnect and quick_check before new work.

        Linux may drop dirty pages after a failed write-back and report success on a later
        fsync ("fsyncgate", reliability_security.md §1.3), so the old connection's view is
        not trusted; the failed packet was already reported as not saved.
        """
        log.warning("journal: reopening the database after an I/O error")
        old, self._conn, self._db = self._conn, None, None
        if old is not None:
            try:
                old.close()
            except sqlite3.Error:
                log.debug("journal: closing the failed connection raised")
        conn = self._connect()
        try:
            rows = conn.execute("PRAGMA quick_check(5)").fetchall()
        except sqlite3.DatabaseError as exc:
            raise JournalCorruptError(f"{self.path}: quick_check after an I/O error failed: {exc}") from exc
        if rows != [("ok",)]:
            raise JournalCorruptError(f"{self.path}: damage after an I/O error: {rows[0][0]}")
        self._reopen_needed = False
        return conn

    @contextmanager
    def _txn(self, what: str) -> Iterator[sqlite3.Connection]:
        """One short write transaction: wait for the writer, BEGIN IMMEDIATE ... COMMIT (fsync)."""
        self._acquire()
        try:
            self._wait_owner_free()
            conn = self._writer()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _map_sqlite_error(exc, what) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        log.warning("journal: rollback after failed %s also failed", what)
                if isinstance(exc, sqlite3.Error):
                    if _is_ioerr(exc):
                        self._reopen_needed = True
                    raise _map_sqlite_error(exc, what) from exc
                raise
        finally:
            self._cv.release()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Write to other modules' tables: yields the writer connection inside BEGIN IMMEDIATE ... COMMIT.

        Waits (bounded) for an open packet to finish. COMMIT is fsynced like every write.
        The plain ``sqlite3`` connection, not :attr:`db`: importing sqlite_utils costs the daemon
        about 16 MB of RSS (it imports numpy when numpy is installed), measured.
        """
        with self._txn("transaction"):
            yield self._writer()

    @property
    def db(self) -> Any:
        """The sqlite_utils ``Database`` over the writer connection, for tools and reports (not the daemon).

        Write only inside transaction(); the daemon's own paths use transaction()/query().
        """
        if self._db is None:
            from sqlite_utils import Database

            self._db = Database(self._writer())
        return self._db

    # ------------------------------------------------------------------ recovery

    def _integrity_check(self) -> None:
        conn = self._writer()
        size = files_bytes(self.path.parent)
        # integrity_check also cross-checks every index against its table; on a large
        # journal quick_check (same page-level checks, no index cross-check) keeps start-up fast.
        pragma = "integrity_check" if size <= self.cfg.integrity_full_max_bytes else "quick_check"
        try:
            rows = conn.execute(f"PRAGMA {pragma}(20)").fetchall()
        except sqlite3.DatabaseError as exc:
            raise JournalCorruptError(
                f"{self.path}: {pragma} failed ({exc}); run `rekam journal check`"
            ) from exc
        if rows != [("ok",)]:
            detail = "; ".join(str(r[0]) for r in rows[:5])
            raise JournalCorruptError(f"{self.path}: {pragma} found damage: {detail}")
        log.info("journal %s: %s ok (%d bytes)", self.path.name, pragma, size)

    def _recover(self) -> None:
        # Chunk rows of tombstones (a purge cut short) are left to purge_due below, which
        # deletes them in steps a full disk can take; this transaction stays small.
        todo = self._one(
            "SELECT (SELECT count(*) FROM packets WHERE state IN ('writing','sending')) + "
            "(SELECT count(*) FROM chunks WHERE packet_id NOT IN "
            " (SELECT packet_id FROM packets WHERE state != 'writing'))"
        )[0]
        def repair(conn: sqlite3.Connection) -> tuple[list[str], int, int]:
            leftovers = [r[0] for r in conn.execute(
                "SELECT packet_id FROM packets WHERE state = ?", (WRITING,))]
            for pid in leftovers:
                conn.execute("DELETE FROM packets WHERE packet_id = ?", (pid,))
            orphans = conn.execute(
                "DELETE FROM chunks WHERE packet_id NOT IN (SELECT packet_id FROM packets)"
            ).rowcount
            reset = conn.execute(
                "UPDATE packets SET state = 'queued' WHERE state = 'sending'").rowcount
            self._add_event_in(conn, "journal_recovered", {
                "writing_removed": len(leftovers), "orphan_chunks_removed": orphans,
                "sending_reset": reset,
            })
            return leftovers, orphans, reset

        if todo:
            # Only write when there is something to repair: a clean start on a full disk
            # must not fail for want of WAL space.
            try:
                leftovers, orphans, reset = self._write("start-up recovery", repair)
            except JournalFullError as exc:
                log.warning("journal recovery postponed: %s", exc)
            else:
                log.info("journal recovery: %d unfinished packets removed, %d orphan chunks, "
                         "%d sending reset to queued", len(leftovers), orphans, reset)
        # Verify chunk hashes of the backlog now when it is small enough to be quick;
        # otherwise every chunk is still verified when read (read_range) and by `journal check`.
        backlog = self._one(
            "SELECT coalesce(sum(size), 0) FROM packets WHERE state IN ('queued','sending')")[0]
        try:
            if backlog <= self.cfg.verify_on_open_max_bytes:
                self.verify_backlog()
            self.purge_due()
        except JournalFullError as exc:
            # A full disk must not stop the station from starting: sending (and so
            # freeing space) needs the journal open. Purge is retried on the next ack.
            log.warning("journal recovery: %s; continuing", exc)

    def verify_backlog(self) -> list[str]:
        """Re-hash every queued packet; quarantine (and report) each corrupt one. Returns their ids."""
        ids = [r[0] for r in self._all(
            "SELECT packet_id FROM packets WHERE state IN ('queued','sending')")]
        bad: list[str] = []
        for pid in ids:
            with self._read() as reader:
                problems = scan_packet(reader, pid)
            if problems:
                self._quarantine(pid, problems[0])
                bad.append(pid)
        return bad

    def _quarantine(self, packet_id: str, reason: str) -> None:
        log.error("journal: packet %s quarantined: %s", packet_id, reason)
        def change(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE packets SET state = 'quarantined', quarantined_at = ?, last_error = ? "
                "WHERE packet_id = ? AND state IN ('queued','sending')",
                (self._now(), reason, packet_id))
            self._add_event_in(conn, "packet_quarantined",
                               {"packet_id": packet_id, "reason": reason})
        self._write("quarantine", change)

    # ------------------------------------------------------------------ packets: write

    def begin_packet(self, packet_id: str, *, station_id: str, created_at: str,
                     priority: int = 0) -> PacketSink:
        """Open one packet for streaming; the journal's writer is held until commit/abort."""
        _check_id(packet_id, "packet id")
        _check_id(station_id, "station id")
        if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > 1000:
            raise JournalError(f"priority {priority!r}: expected an integer -1000..1000")
        try:
            created = iso(parse_iso(created_at))
        except ValueError as exc:
            raise JournalError(f"created_at {created_at!r}: {exc}") from None
        self._acquire()
        try:
            self._wait_owner_free()
            conn = self._writer()
            if conn.execute("SELECT 1 FROM packets WHERE packet_id = ?", (packet_id,)).fetchone():
                raise DuplicatePacketError(f"packet {packet_id} is already in the journal")
            used = self._used_bytes(conn)
            quota_left = self.cfg.max_bytes - used
            if quota_left <= 0:
                raise JournalFullError(
                    f"journal quota reached ({used} of {self.cfg.max_bytes} bytes)")
            disk_left = self._disk_left(conn)
            if disk_left < packet_disk_bytes(1, self.cfg.chunk_bytes):
                raise self._disk_refusal(packet_id)
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _map_sqlite_error(exc, f"packet {packet_id}") from exc
            sink = PacketSink(self, packet_id, station_id, created, priority,
                              self.cfg.chunk_bytes, quota_left, disk_left)
            self._owner = threading.current_thread()
            self._sink = sink
            return sink
        finally:
            self._cv.release()

    def _sink_insert(self, sink: PacketSink, idx: int, digest: bytes,
                     data: bytes | bytearray | memoryview) -> None:
        self._acquire()
        try:
            if self._sink is not sink:
                raise JournalError(f"packet {sink.packet_id} was aborted")
            try:
                self._writer().execute(
                    "INSERT INTO chunks (packet_id, idx, sha256, data) VALUES (?, ?, ?, ?)",
                    (sink.packet_id, idx, digest, data))
            except sqlite3.Error as exc:
                err = _map_sqlite_error(exc, f"packet {sink.packet_id}")
                self._rollback_open_sink(f"chunk insert failed: {exc}",
                                         disk_full=isinstance(err, JournalFullError),
                                         io_error=_is_ioerr(exc))
                raise type(err)(f"{err}; nothing of this packet was kept") from exc
        finally:
            self._cv.release()

    def _sink_commit(self, sink: PacketSink, *, size: int, sha256: str, count: int,
                     chunk_bytes: int) -> PacketInfo:
        now = self._now()
        self._acquire()
        try:
            if self._sink is not sink:
                raise JournalError(f"packet {sink.packet_id} was aborted")
            conn = self._writer()
            try:
                conn.execute(
                    "INSERT INTO packets (packet_id, station_id, created_at, priority, state, size,"
                    " sha256, chunk_bytes, chunk_count, saved_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (sink.packet_id, sink.station_id, sink.created_at, sink.priority, QUEUED,
                     size, sha256, chunk_bytes, count, now))
                conn.execute("COMMIT")  # synchronous=FULL: returns after the WAL fsync
            except sqlite3.Error as exc:
                err = _map_sqlite_error(exc, f"packet {sink.packet_id}")
                self._rollback_open_sink(f"commit failed: {exc}",
                                         disk_full=isinstance(err, JournalFullError),
                                         io_error=_is_ioerr(exc))
                raise type(err)(f"{err}; the packet was NOT saved") from exc
            self._owner = None
            self._sink = None
            self._checkpoint()
            # The packet's chunk pages filled the page cache (up to cache_size, 2 MiB) and are
            # not read again by this connection: give that memory back now rather than holding
            # it until the next packet (measured: 1.5 MB of the daemon's RSS between packets;
            # the next packet re-reads a few b-tree pages from the OS cache).
            conn.execute("PRAGMA shrink_memory")
            self._cv.notify_all()
        finally:
            self._cv.release()
        log.info("journal: packet %s saved (%d bytes, %d chunks)", sink.packet_id, size, count)
        self._update_watermark()
        return PacketInfo(
            packet_id=sink.packet_id, station_id=sink.station_id, created_at=sink.created_at,
            size=size, sha256=sha256, state=QUEUED, priority=sink.priority, attempts=0,
            rejects=0, confirmed_chunks=frozenset(), confirmed_chunk_size=0, exported=False,
            chunk_bytes=chunk_bytes, saved_at=now,
        )

    def _sink_abort(self, sink: PacketSink) -> None:
        self._acquire()
        try:
            if self._sink is sink:
                self._rollback_open_sink("aborted by caller")
        finally:
            self._cv.release()

    def _disk_left(self, conn: sqlite3.Connection) -> int:
        """With the lock held: free bytes a new packet may use without SQLite meeting ENOSPC."""
        try:
            self._wal_pending = self._checkpoint_on(conn, "PASSIVE")
        except sqlite3.Error as exc:
            if _is_ioerr(exc):
                self._reopen_needed = True
                raise JournalError(f"checkpoint before a packet: SQLite I/O error: {exc}") from exc
            # The checkpoint could not grow the database file: the disk is already too full.
            log.warning("journal: checkpoint before a packet failed: %s", exc)
            return -1
        free = shutil.disk_usage(self.path.parent).free
        return free - disk_kept_back(self.cfg, wal_bytes=self._wal_size(),
                                     pending_bytes=self._wal_pending,
                                     reserve_present=self._reserve_ok())

    def _disk_refusal(self, packet_id: str) -> JournalFullError:
        """The refusal when the disk cannot take the packet, worded as headroom() words it."""
        with self._read() as conn:
            waiting, oldest = conn.execute(
                "SELECT count(*), min(created_at) FROM packets "
                "WHERE state IN ('queued','sending','quarantined')").fetchone()
        msg_id, msg_en = _refusal(True, int(waiting), oldest)
        return JournalFullError(f"packet {packet_id}: {msg_en} Nothing of this packet was kept.",
                                message_id=msg_id)

    def _checkpoint_on(self, conn: sqlite3.Connection, mode: str) -> int:
        """Run one checkpoint; return the bytes of committed frames it could not copy yet."""
        row = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        if row is None or row[1] < 0:
            return 0
        return max(0, int(row[1]) - int(row[2])) * PAGE_SIZE

    def _wal_size(self) -> int:
        try:
            return self.path.with_name(self.path.name + "-wal").stat().st_size
        except FileNotFoundError:
            return 0

    def truncate_wal(self) -> bool:
        """Copy every committed frame into the database and cut the WAL file to zero bytes.

        For a module that has just rewritten sensitive rows: their old pages must leave the
        disk now, not at the next automatic checkpoint. False when a packet is streaming in,
        a reader held the checkpoint back, or SQLite refused (then the next checkpoint does it).
        """
        self._acquire()
        try:
            if self._owner is not None:
                return False
            try:
                self._wal_pending = self._checkpoint_on(self._writer(), "TRUNCATE")
            except sqlite3.Error as exc:
                log.warning("journal: truncating checkpoint failed: %s", exc)
                return False
            return self._wal_size() == 0
        finally:
            self._cv.release()

    def _reserve_ok(self) -> bool:
        return self.cfg.reserve_bytes == 0 or self._reserve_path.exists()

    def _checkpoint(self) -> None:
        """With the lock held: copy committed WAL frames into the database file now.

        After every packet, so committed data never waits in the WAL: when a later packet
        hits ENOSPC, the WAL then holds only that packet's uncommitted frames and a
        TRUNCATE checkpoint can give their space back without growing the database file
        (measured: without it, acks fail on a full disk unless the reserve exceeds the
        WAL's backlog). SQLite's automatic checkpoint would do the same I/O a little later.
        """
        conn = self._conn
        if conn is None:
            return
        try:
            self._wal_pending = self._checkpoint_on(conn, "PASSIVE")
        except sqlite3.Error as exc:
            log.warning("journal: checkpoint failed: %s", exc)

    @property
    def _reserve_path(self) -> Path:
        return self.path.with_name(RESERVE_NAME)

    def _ensure_reserve(self, free: int | None = None) -> None:
        """Keep the reserve file allocated while the disk has room for it and one more packet."""
        size = self.cfg.reserve_bytes
        path = self._reserve_path
        if size == 0 or path.exists():
            return
        if free is None:
            free = shutil.disk_usage(self.path.parent).free
        if free < size + disk_needed_for_packet(self.cfg, wal_bytes=self._wal_size(),
                                             pending_bytes=self._wal_pending):
            return
        try:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)  # real blocks, not a sparse file
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            path.unlink(missing_ok=True)
            log.warning("journal: cannot allocate the %d-byte reserve file: %s", size, exc.strerror)

    def _release_reserve(self) -> bool:
        """Give the reserve's space back to the disk (after ENOSPC). True when it was there."""
        try:
            self._reserve_path.unlink()
        except FileNotFoundError:
            return False
        log.warning("journal: disk full; released the %d-byte reserve so acknowledgements and "
                    "purges can still be written", self.cfg.reserve_bytes)
        return True

    def _rollback_open_sink(self, why: str, *, disk_full: bool = False,
                            io_error: bool = False) -> None:
        """With the lock held: roll back the open packet transaction and free the writer."""
        if io_error:
            self._reopen_needed = True
        sink = self._sink
        conn = self._conn
        if conn is not None and conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.warning("journal: rollback failed: %s", exc)
        if conn is not None:
            if disk_full:
                self._release_reserve()
            # After ENOSPC the WAL may be long; give its space back if a checkpoint can run.
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error:
                log.debug("journal: checkpoint after rollback failed")
        if sink is not None:
            sink._closed_by_journal()
            log.warning("journal: packet %s not saved (%s)", sink.packet_id, why)
        self._owner = None
        self._sink = None
        self._cv.notify_all()

    # ------------------------------------------------------------------ packets: read

    def packet(self, packet_id: str) -> PacketInfo | None:
        """The packet's info, or None. Purged packets remain as tombstones (state 'purged')."""
        row = self._one(f"SELECT {_PACKET_COLS} FROM packets WHERE packet_id = ?", (packet_id,))
        return _row_to_info(row) if row else None

    def _require(self, conn: sqlite3.Connection, packet_id: str) -> PacketInfo:
        row = conn.execute(
            f"SELECT {_PACKET_COLS} FROM packets WHERE packet_id = ?", (packet_id,)).fetchone()
        if row is None:
            raise UnknownPacketError(f"no packet {packet_id} in the journal")
        return _row_to_info(row)

    def outbox(self, limit: int) -> list[PacketInfo]:
        """Packets to send (queued or sending): priority high first, then oldest first."""
        if limit < 0:
            raise JournalError("limit must be >= 0")
        rows = self._all(
            f"SELECT {_PACKET_COLS} FROM packets WHERE state IN ('queued','sending') "
            "ORDER BY priority DESC, created_at ASC, packet_id LIMIT ?", (limit,))
        return [_row_to_info(r) for r in rows]

    def packets(self, states: Iterable[str] = UNACKED, limit: int = 1000) -> list[PacketInfo]:
        """Packets in the given states, oldest first (export, status screens)."""
        states = tuple(states)
        marks = ",".join("?" * len(states))
        rows = self._all(
            f"SELECT {_PACKET_COLS} FROM packets WHERE state IN ({marks}) "
            "ORDER BY created_at, packet_id LIMIT ?", (*states, limit))
        return [_row_to_info(r) for r in rows]

    def read_range(self, packet_id: str, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset+length)`` of a stored packet (clipped at its end).

        Every chunk touched is checked against its SHA-256; a mismatch quarantines the
        packet, records an event and raises :class:`CorruptPacketError`.
        """
        if offset < 0 or length < 0:
            raise JournalError(f"read_range: offset {offset} and length {length} must be >= 0")
        with self._read() as conn:
            conn.execute("BEGIN")  # one snapshot for the metadata and every chunk read
            try:
                info = self._require(conn, packet_id)
                if info.state in (PURGED, WRITING):
                    raise InvalidTransitionError(
                        f"packet {packet_id} is {info.state}; its bytes are not in the journal")
                if offset > info.size:
                    raise JournalError(f"read_range: offset {offset} is past the end ({info.size})")
                end = min(info.size, offset + length)
                if end <= offset:
                    return b""
                csize = info.chunk_bytes
                first, last = offset // csize, (end - 1) // csize
                parts: list[bytes | memoryview] = []
                bad: str | None = None
                expected = first
                for idx, digest, rowid in conn.execute(
                    "SELECT idx, sha256, rowid FROM chunks WHERE packet_id = ? AND idx BETWEEN ? AND ? "
                    "ORDER BY idx", (packet_id, first, last)).fetchall():
                    data = _blob_bytes(conn, rowid)
                    if idx != expected or hashlib.sha256(data).digest() != digest:
                        bad = f"chunk {expected} missing or not matching its SHA-256"
                        break
                    base = idx * csize
                    lo, hi = max(offset - base, 0), min(end - base, len(data))
                    # A whole chunk (the uplink's usual request) is returned without a copy.
                    parts.append(data if (lo, hi) == (0, len(data)) else memoryview(data)[lo:hi])
                    expected += 1
                if bad is None and expected != last + 1:
                    bad = f"chunk {expected} missing"
            finally:
                conn.execute("COMMIT")
        if bad is not None:
            self._quarantine(packet_id, bad)
            raise CorruptPacketError(f"packet {packet_id}: {bad}; quarantined")
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0]
        return b"".join(parts)

    def read_chunk_rows(self, packet_id: str, first: int,
                        count: int) -> list[tuple[int, bytes, bytes]]:
        """Stored chunk rows ``first .. first+count-1`` as (index, stored SHA-256, bytes).

        Not re-hashed: for a reader whose receiver verifies the stored digest end to end (the
        uplink; head office checks each chunk against it). Everyone else uses
        :meth:`read_range`. Rows of ``chunk_bytes`` (see :class:`PacketInfo`); a missing row
        quarantines the packet and raises :class:`CorruptPacketError`.
        """
        if first < 0 or count < 1:
            raise JournalError(f"read_chunk_rows: first {first} must be >= 0, count {count} >= 1")
        with self._read() as conn:
            conn.execute("BEGIN")  # one snapshot for the metadata and the rows
            try:
                info = self._require(conn, packet_id)
                if info.state in (PURGED, WRITING):
                    raise InvalidTransitionError(
                        f"packet {packet_id} is {info.state}; its bytes are not in the journal")
                if info.chunk_bytes <= 0:
                    raise JournalError(f"packet {packet_id}: no chunk size recorded")
                total = chunk_count(info.size, info.chunk_bytes)
                if first + count > total:
                    raise JournalError(f"read_chunk_rows: chunks {first}..{first + count - 1} "
                                       f"past the last chunk ({total - 1})")
                rows = [(idx, digest, _blob_bytes(conn, rowid)) for idx, digest, rowid in conn.execute(
                    "SELECT idx, sha256, rowid FROM chunks WHERE packet_id = ? AND idx BETWEEN ? AND ? "
                    "ORDER BY idx", (packet_id, first, first + count - 1)).fetchall()]
            finally:
                conn.execute("COMMIT")
        got = [r[0] for r in rows]
        if got != list(range(first, first + count)):
            bad = f"chunk rows {first}..{first + count - 1} incomplete (found {got[:5]})"
            self._quarantine(packet_id, bad)
            raise CorruptPacketError(f"packet {packet_id}: {bad}; quarantined")
        return rows

    # ------------------------------------------------------------------ packets: state

    def mark_sending(self, packet_id: str) -> None:
        """queued|sending -> sending; counts one more attempt."""
        refused = self.mark_sending_many([packet_id])
        if packet_id in refused:
            raise refused[packet_id]

    def mark_sending_many(self, packet_ids: Sequence[str]) -> dict[str, JournalError]:
        """:meth:`mark_sending` for several packets in one transaction (one fsync).

        Returns the packets left unchanged, each with its error (unknown, or not queued or
        sending); a failure of the transaction itself (full disk, I/O) raises for all.
        """
        refused: dict[str, JournalError] = {}

        def change(conn: sqlite3.Connection) -> None:
            refused.clear()  # a second-chance write runs this again
            now = self._now()
            for pid in packet_ids:
                cur = conn.execute(
                    "UPDATE packets SET state = 'sending', attempts = attempts + 1, sending_at = ? "
                    "WHERE packet_id = ? AND state IN (?, ?)", (now, pid, QUEUED, SENDING))
                if cur.rowcount == 1:
                    continue
                row = conn.execute("SELECT state FROM packets WHERE packet_id = ?", (pid,)).fetchone()
                refused[pid] = (UnknownPacketError(f"no packet {pid} in the journal") if row is None
                                else InvalidTransitionError(f"packet {pid}: cannot send from {row[0]}"))
        self._write("mark_sending", change)
        return dict(refused)

    def mark_confirmed_chunks(self, packet_id: str, chunk_size: int,
                              indices: Iterable[int]) -> None:
        """Add chunks head office holds; a different chunk_size replaces the old set."""
        idx = frozenset(indices)
        if chunk_size <= 0:
            raise JournalError(f"chunk_size {chunk_size} must be > 0")

        def change(conn: sqlite3.Connection) -> None:
            info = self._require(conn, packet_id)
            if info.state in (DELIVERED, PURGED):
                return  # late news about a packet already acknowledged whole
            total = chunk_count(info.size, chunk_size)
            outside = [i for i in idx if not 0 <= i < total]
            if outside:
                raise JournalError(
                    f"packet {packet_id}: chunk indices {sorted(outside)[:5]} outside 0..{total - 1}")
            merged = idx | info.confirmed_chunks if chunk_size == info.confirmed_chunk_size else idx
            conn.execute("UPDATE packets SET confirmed_chunks = ?, confirmed_chunk_size = ? "
                         "WHERE packet_id = ?", (bitmap_from(sorted(merged)), chunk_size, packet_id))
        self._write("mark_confirmed_chunks", change)

    def mark_delivered(self, packet_id: str, sha256: str) -> None:
        """Head office verified the whole packet: delivered, then purged per retention."""
        def change(conn: sqlite3.Connection) -> bool:
            info = self._require(conn, packet_id)
            if sha256.lower() != info.sha256:
                raise HashMismatchError(
                    f"packet {packet_id}: acknowledged hash does not match the journaled packet")
            if info.state in (DELIVERED, PURGED):
                return False  # a repeated ack: at-least-once on the wire
            conn.execute("UPDATE packets SET state = 'delivered', delivered_at = ? "
                         "WHERE packet_id = ?", (self._now(), packet_id))
            return True
        if self._write("mark_delivered", change):
            log.info("journal: packet %s delivered", packet_id)
        if self.cfg.retention_seconds == 0:
            try:
                self.purge_due()
            except JournalError as exc:
                # The delivery is recorded; the purge is retried by the daemon's maintenance
                # timer. Raising here would make the uplink handle the same ack forever.
                log.warning("journal: purge after delivery postponed: %s", exc)

    def mark_exported(self, packet_id: str) -> None:
        """Record that the packet was copied to removable media (it stays until acknowledged)."""
        with self._txn("mark_exported") as conn:
            self._require(conn, packet_id)
            conn.execute("UPDATE packets SET exported_at = ? WHERE packet_id = ?",
                         (self._now(), packet_id))

    def record_reject(self, packet_id: str, reason: str, max_rejects: int) -> bool:
        """Head office rejected the packet: count it; quarantine at ``max_rejects``. True if now quarantined."""
        reason = str(reason)[:500]

        def change(conn: sqlite3.Connection) -> bool:
            info = self._require(conn, packet_id)
            if info.state == QUARANTINED:
                return True
            if info.state not in (QUEUED, SENDING):
                raise InvalidTransitionError(
                    f"packet {packet_id}: cannot record a reject in state {info.state}")
            rejects = info.rejects + 1
            quarantine = rejects >= max_rejects
            conn.execute(
                "UPDATE packets SET rejects = ?, last_error = ?, state = ?, quarantined_at = ? "
                "WHERE packet_id = ?",
                (rejects, reason, QUARANTINED if quarantine else QUEUED,
                 self._now() if quarantine else None, packet_id))
            if quarantine:
                self._add_event_in(conn, "packet_quarantined",
                                   {"packet_id": packet_id, "reason": reason, "rejects": rejects})
            return quarantine
        return self._write("record_reject", change)

    def purge_due(self) -> int:
        """Purge delivered packets past retention (secure delete, tombstone kept); count them.

        The tombstone comes first; the chunk rows then go in transactions sized to the free
        disk, each followed by a checkpoint (truncating the WAL when the disk is tight), and
        an incremental vacuum in steps returns the pages to the file system. So a purge on a
        full disk needs room for a few pages of zeros, not for the whole packet
        (docs/journal.md "Purge").
        """
        cutoff = iso(self._clock() - timedelta(seconds=self.cfg.retention_seconds))
        ids = [r[0] for r in self._all(
            "SELECT packet_id FROM packets WHERE state = 'delivered' AND delivered_at <= ? "
            "ORDER BY delivered_at, packet_id", (cutoff,))]
        scan = self._tombstones_unchecked
        self._tombstones_unchecked = True  # until this purge has finished
        done = [pid for pid in ids
                if self._write("purge", functools.partial(self._purge_one, packet_id=pid))]
        purged = len(done)
        # Chunk rows of tombstones: this purge's, or one cut short by a crash or a full disk.
        if scan:
            left = [r[0] for r in self._all(
                "SELECT packet_id FROM packets WHERE state = 'purged' AND EXISTS "
                "(SELECT 1 FROM chunks WHERE chunks.packet_id = packets.packet_id)")]
        else:
            left = [pid for pid in done if self._one(
                "SELECT EXISTS (SELECT 1 FROM chunks WHERE packet_id = ?)", (pid,))[0]]
        for pid in left:
            while self._write("purge", functools.partial(self._delete_chunks, packet_id=pid)):
                self._give_back(vacuum=False)
        self._tombstones_unchecked = False
        events_cutoff = iso(self._clock() - timedelta(seconds=self.cfg.events_keep_seconds))
        try:
            self._write("purge sent events", lambda conn: conn.execute(
                "DELETE FROM events WHERE sent_at IS NOT NULL AND sent_at <= ?", (events_cutoff,)))
        except JournalError as exc:
            # Housekeeping only: the packets are purged; the next purge tries again.
            log.info("journal: deleting old sent events postponed: %s", exc)
        self._give_back(vacuum=True)
        if purged:
            self._update_watermark()
        return purged

    def _purge_one(self, conn: sqlite3.Connection, packet_id: str) -> bool:
        state = conn.execute("SELECT state FROM packets WHERE packet_id = ?",
                             (packet_id,)).fetchone()
        if state is None or state[0] != DELIVERED:
            return False  # purged meanwhile by another caller
        self._delete_chunks(conn, packet_id)
        crash_point("mid-purge")
        # From here the packet is a tombstone: its remaining chunk rows are no longer part
        # of any stored packet and are deleted by the following steps (or the next purge).
        conn.execute("UPDATE packets SET state = 'purged', purged_at = ?, "
                     "confirmed_chunks = NULL WHERE packet_id = ?", (self._now(), packet_id))
        return True

    def _delete_chunks(self, conn: sqlite3.Connection, packet_id: str) -> bool:
        """Delete one batch of a packet's chunk rows, sized to the free disk; True if any went."""
        # secure_delete=ON zeroes every freed page, and each zeroed page is a WAL frame:
        # on a nearly full disk take a few rows at a time, on a roomy one the whole packet.
        free = shutil.disk_usage(self.path.parent).free
        per_row = chunk_pages_bytes(self.cfg.chunk_bytes)
        rows = max(1, min(1 << 30, free // 4 // per_row))
        return conn.execute(
            "DELETE FROM chunks WHERE rowid IN (SELECT rowid FROM chunks WHERE packet_id = ? "
            "ORDER BY idx LIMIT ?)", (packet_id, rows)).rowcount > 0

    def _give_back(self, *, vacuum: bool) -> None:
        """Return purged pages to the file system: settle the WAL, vacuum in steps."""
        self._acquire()
        try:
            if self._owner is not None:
                return  # a packet is streaming in; the freed pages are reused by it anyway
            conn = self._writer()
            try:
                self._settle(conn)  # first hand back the WAL the deletes just grew
                for _ in range(100_000 if vacuum else 0):
                    if conn.execute("PRAGMA freelist_count").fetchone()[0] == 0:
                        break
                    # Each moved page costs WAL frames (the page, its parent, a pointer-map
                    # page), given back by the checkpoint before the next step.
                    free = shutil.disk_usage(self.path.parent).free
                    step = max(_VACUUM_MIN_STEP_PAGES, min(_VACUUM_MAX_STEP_PAGES,
                                                           free // 4 // PAGE_SIZE))
                    # executescript steps the pragma to completion; execute() would free one page.
                    conn.executescript(f"PRAGMA incremental_vacuum({step});")
                    self._settle(conn)
            except sqlite3.Error as exc:
                # Expected on a full disk; the next purge or acknowledgement continues.
                log.info("journal: giving purged space back postponed: %s", exc)
        finally:
            self._cv.release()

    def _settle(self, conn: sqlite3.Connection) -> None:
        """After a purge step on a tight disk: checkpoint and truncate the WAL at once.

        The checkpoint cuts the database file to its vacuumed size and the truncation hands
        the WAL file back. On a roomy disk the automatic checkpoint does the same a little
        later; doing it per acknowledgement costs an fsync per acknowledgement.
        """
        if self._tight():
            self._wal_pending = self._checkpoint_on(conn, "TRUNCATE")

    def _tight(self) -> bool:
        """Is the disk close enough to full that every WAL byte should go back at once?"""
        free = shutil.disk_usage(self.path.parent).free
        return free < 4 * wal_cap_bytes() + self.cfg.reserve_bytes + self.cfg.free_disk_floor_bytes

    def _write(self, what: str, change: Callable[[sqlite3.Connection], _T]) -> _T:
        """One write transaction that frees or records delivery: it must work on a full disk.

        On SQLITE_FULL the reserve file is released and the WAL truncated, then the write is
        tried once more (acks, purges and events are what gives the space back).
        """
        try:
            with self._txn(what) as conn:
                return change(conn)
        except JournalFullError as exc:
            if not self._make_room():
                raise
            log.info("journal: %s retried after making room: %s", what, exc)
        with self._txn(what) as conn:
            return change(conn)

    def _make_room(self) -> bool:
        """Release the reserve and truncate the WAL; True when either gave space back."""
        released = self._release_reserve()
        self._acquire()
        try:
            conn = self._conn
            if self._owner is not None or conn is None:
                return released
            before = self._wal_size()
            try:
                self._wal_pending = self._checkpoint_on(conn, "TRUNCATE")
            except sqlite3.Error as exc:
                log.debug("journal: truncating checkpoint failed: %s", exc)
            return released or self._wal_size() < before
        finally:
            self._cv.release()

    # ------------------------------------------------------------------ events

    def add_event(self, kind: str, payload: dict[str, Any]) -> int:
        """Journal one outgoing event (kept until mark_event_sent); return its id."""
        return self._write("add_event", lambda conn: self._add_event_in(conn, kind, payload))

    def _add_event_in(self, conn: sqlite3.Connection, kind: str, payload: dict[str, Any]) -> int:
        if not isinstance(kind, str) or not _SCHEMA_NAME_RE.fullmatch(kind):
            raise JournalError(f"event kind {kind!r}: expected lower_snake_case, up to 64 characters")
        if not isinstance(payload, dict):
            raise JournalError("event payload must be a dict")
        try:
            text = json.dumps(payload, allow_nan=False, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise JournalError(f"event payload is not plain JSON: {exc}") from None
        if len(text) > _MAX_EVENT_BYTES:
            raise JournalError(f"event payload is {len(text)} bytes, limit {_MAX_EVENT_BYTES}")
        cur = conn.execute("INSERT INTO events (kind, payload, created_at) VALUES (?, ?, ?)",
                           (kind, text, self._now()))
        return int(cur.lastrowid or 0)

    def pending_events(self, limit: int) -> list[EventRow]:
        """Events not yet marked sent, oldest first."""
        rows = self._all(
            "SELECT id, kind, payload, created_at FROM events WHERE sent_at IS NULL "
            "ORDER BY id LIMIT ?", (limit,))
        return [EventRow(id=r[0], kind=r[1], payload=json.loads(r[2]), created_at=r[3])
                for r in rows]

    def mark_event_sent(self, event_id: int) -> None:
        """The uplink delivered this event."""
        def change(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone() is None:
                raise JournalError(f"no event {event_id} in the journal")
            conn.execute("UPDATE events SET sent_at = ? WHERE id = ? AND sent_at IS NULL",
                         (self._now(), event_id))
        self._write("mark_event_sent", change)

    # ------------------------------------------------------------------ other modules' tables

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement on a pooled reader (other modules' tables; never waits).

        Writes through here fail (``PRAGMA query_only``): use :meth:`transaction` for those.
        """
        try:
            with self._read() as conn:
                return [tuple(r) for r in conn.execute(sql, tuple(params)).fetchall()]
        except sqlite3.Error as exc:
            raise _map_sqlite_error(exc, "query") from exc

    def register_schema(self, name: str, ddl_sql: str) -> None:
        """Create another module's tables: only ``CREATE TABLE|INDEX|VIEW IF NOT EXISTS`` statements."""
        if not isinstance(name, str) or not _SCHEMA_NAME_RE.fullmatch(name):
            raise JournalError(f"schema name {name!r}: expected lower_snake_case")
        statements = [s for s in (part.strip() for part in ddl_sql.split(";")) if s]
        if not statements:
            raise JournalError(f"schema {name}: no statements")
        for stmt in statements:
            body = "\n".join(ln for ln in stmt.splitlines() if not ln.strip().startswith("--"))
            m = _DDL_RE.match(body)
            if m is None:
                raise JournalError(
                    f"schema {name}: only CREATE TABLE/INDEX/VIEW IF NOT EXISTS is allowed, "
                    f"got: {body[:60]!r}")
            if m.group(1).upper() == "TABLE" and m.group(2).lower() in _OWN_TABLES:
                raise JournalError(f"schema {name}: table {m.group(2)} belongs to the journal")
        with self._txn(f"register_schema {name}") as conn:
            for stmt in statements:
                conn.execute(stmt)
            conn.execute("INSERT INTO schemas (name, ddl, registered_at) VALUES (?, ?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET ddl = excluded.ddl",
                         (name, ddl_sql, self._now()))

    # ------------------------------------------------------------------ quota

    def _used_bytes(self, conn: sqlite3.Connection) -> int:
        # Every packet whose bytes are still stored counts, acknowledged or not.
        return int(conn.execute(
            "SELECT coalesce(sum(size), 0) FROM packets WHERE state != 'purged'").fetchone()[0])

    def headroom(self) -> Headroom:
        """Can one more ``max_packet_bytes`` packet fit (quota and free-disk floor)? With a message."""
        with self._read() as conn:
            used = self._used_bytes(conn)
            waiting, oldest = conn.execute(
                "SELECT count(*), min(created_at) FROM packets "
                "WHERE state IN ('queued','sending','quarantined')").fetchone()
        free = shutil.disk_usage(self.path.parent).free
        if not self._reserve_path.exists():
            self._ensure_reserve(free)
            free = shutil.disk_usage(self.path.parent).free
        warning = self._update_watermark(used)
        return compute_headroom(self.cfg, used=used, waiting=int(waiting), oldest=oldest,
                                free=free, reserve_present=self._reserve_ok(),
                                warning=warning, wal_bytes=self._wal_size(),
                                pending_bytes=self._wal_pending)

    def _update_watermark(self, used: int | None = None) -> bool:
        """Raise or clear the storage warning with hysteresis; journal an event on each change."""
        owner = self._owner
        if owner is not None:
            # A packet is streaming in: do not make a status call wait for it; the next
            # call (after commit) records the change.
            return self._warning
        if used is None:
            with self._read() as conn:
                used = self._used_bytes(conn)
        share = used / self.cfg.max_bytes
        if not self._warning and share >= self.cfg.high_watermark:
            new = True
        elif self._warning and share < self.cfg.low_watermark:
            new = False
        else:
            return self._warning
        try:
            with self._txn("storage watermark") as conn:
                self._add_event_in(conn, "storage_high" if new else "storage_ok",
                                   {"used_bytes": used, "max_bytes": self.cfg.max_bytes,
                                    "share": round(share, 4)})
                conn.execute("INSERT INTO meta (key, value) VALUES ('storage_warning', ?) "
                             "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                             ("1" if new else "0",))
        except JournalError as exc:
            # Busy writer or full disk: the next headroom() call tries again.
            log.warning("journal: storage watermark event not recorded yet: %s", exc)
            return self._warning
        self._warning = new
        return new

    def _meta_get(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def _now(self) -> str:
        return iso(self._clock())
