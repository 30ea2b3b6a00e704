"""What the SQLite and PostgreSQL backends share: the index schema and its transactions.

Both backends keep the same tables (prefixed ``ho_``; chunk bytes in ``ho_chunks.data``) and run
the same statements; they differ in how a transaction takes its locks
(SQLite ``BEGIN IMMEDIATE`` takes the database's single writer lock; PostgreSQL uses
``SELECT ... FOR UPDATE`` on the packet's row) and in the placeholder style, which the cursor
wrapper below translates (statements are written with ``?``).
"""

from __future__ import annotations

import abc
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from agent.headoffice.storage import (
    ASSEMBLING,
    RECEIVING,
    REJECTED,
    STORED,
    ChunkMeta,
    ChunkRefused,
    PacketRecord,
    StationRecord,
    Storage,
    StorageError,
    fsync_dir,
    now,
    packet_relpath,
)

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS ho_packets (
        packet_id TEXT PRIMARY KEY,
        station_id TEXT NOT NULL,
        state TEXT NOT NULL,
        chunks INTEGER NOT NULL,
        chunk_size INTEGER NOT NULL,
        packet_size BIGINT,
        packet_sha256 TEXT,
        owner TEXT,
        lease_until DOUBLE PRECISION,
        reason TEXT,
        rejects INTEGER NOT NULL DEFAULT 0,
        first_seen DOUBLE PRECISION NOT NULL,
        stored_at DOUBLE PRECISION,
        path TEXT,
        source TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS ho_packets_state ON ho_packets (state)",
    "CREATE INDEX IF NOT EXISTS ho_packets_station ON ho_packets (station_id)",
    """CREATE TABLE IF NOT EXISTS ho_stations (
        station_id TEXT PRIMARY KEY,
        online INTEGER,
        version TEXT,
        started_at TEXT,
        last_seen DOUBLE PRECISION,
        telemetry TEXT,
        telemetry_at DOUBLE PRECISION
    )""",
    """CREATE TABLE IF NOT EXISTS ho_events (
        station_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        at TEXT NOT NULL,
        payload TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (station_id, event_id)
    )""",
]

_PACKET_COLS = (
    "packet_id, station_id, state, chunks, chunk_size, packet_size, packet_sha256, reason,"
    " stored_at, path"
)


class Cursor:
    """A thin wrapper so one set of ``?`` statements runs on sqlite3 and psycopg cursors."""

    def __init__(self, raw: Any, *, pyformat: bool) -> None:
        """Wrap a DB-API cursor; ``pyformat`` turns ``?`` into ``%s`` (psycopg)."""
        self.raw = raw
        self.pyformat = pyformat

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the affected row count."""
        if self.pyformat:
            sql = sql.replace("?", "%s")
        self.raw.execute(sql, tuple(params))
        return int(self.raw.rowcount)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query; return every row."""
        self.execute(sql, params)
        return list(self.raw.fetchall())

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Run a query; return its first row or None."""
        self.execute(sql, params)
        row = self.raw.fetchone()
        return tuple(row) if row is not None else None


class SqlStorage(Storage):
    """The shared index logic; subclasses supply the connection, transactions and chunk reads."""

    #: appended to the SELECT that reads a packet row inside a write transaction
    lock_clause = ""

    def __init__(self, bodies: Path) -> None:
        """``bodies`` is the folder for packet bodies (``packets/``) and temp files (``tmp/``)."""
        self.bodies = Path(bodies)
        self.packets_dir = self.bodies / "packets"
        self.tmp_dir = self.bodies / "tmp"
        for d in (self.packets_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ backend hooks

    @abc.abstractmethod
    def _tx(self) -> AbstractContextManager[Cursor]:
        """One write transaction (commit on success, roll back on any exception)."""

    def _insert_chunk(self, cur: Cursor, meta: ChunkMeta, data: bytes) -> None:
        cur.execute(
            "INSERT INTO ho_chunks (packet_id, idx, data) VALUES (?, ?, ?)"
            " ON CONFLICT (packet_id, idx) DO NOTHING",
            (meta.packet_id, meta.index, data),
        )

    # ------------------------------------------------------------------ packets

    def put_chunk(self, meta: ChunkMeta, data: bytes) -> PacketRecord:
        """Durably record one chunk (idempotent); return the packet's state afterwards."""
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO ho_packets (packet_id, station_id, state, chunks, chunk_size,"
                " first_seen) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (packet_id) DO NOTHING",
                (meta.packet_id, meta.station_id, RECEIVING, meta.chunks, meta.chunk_size,
                 now()),
            )
            row = cur.one(
                "SELECT station_id, state, chunks, chunk_size, packet_size, packet_sha256"
                " FROM ho_packets WHERE packet_id = ?" + self.lock_clause,
                (meta.packet_id,),
            )
            if row is None:
                raise StorageError(f"packet {meta.packet_id} vanished from the index")
            station_id, state, chunks, chunk_size, size, sha = row
            if station_id != meta.station_id:
                raise ChunkRefused("packet id already used by another station")
            if state == STORED:
                if meta.packet_sha256 is not None and meta.packet_sha256 != sha:
                    raise ChunkRefused("packet id already stored with different content")
            else:
                if state == REJECTED:
                    # The station's next attempt after a rejection starts afresh.
                    cur.execute(
                        "UPDATE ho_packets SET state = ?, chunks = ?, chunk_size = ?,"
                        " packet_size = NULL, packet_sha256 = NULL, owner = NULL"
                        " WHERE packet_id = ?",
                        (RECEIVING, meta.chunks, meta.chunk_size, meta.packet_id),
                    )
                    size = sha = None
                elif (chunks, chunk_size) != (meta.chunks, meta.chunk_size) and state == ASSEMBLING:
                    # All chunks of the old size are in and being verified; the ack that follows
                    # tells the station. Nothing to store, nothing to refuse.
                    return self._checked(self._record(cur, meta.packet_id, indices=False), meta)
                elif (chunks, chunk_size) != (meta.chunks, meta.chunk_size):
                    if (meta.packet_sha256 is not None and sha is not None
                            and meta.packet_sha256 != sha):
                        raise ChunkRefused(
                            f"chunk says {meta.chunks} chunks of {meta.chunk_size} bytes,"
                            f" earlier chunks said {chunks} of {chunk_size}"
                        )
                    # The station re-chunked the packet (its broker's maximum packet size
                    # changed) and sends it all again: start over in the new chunk size.
                    cur.execute("DELETE FROM ho_chunks WHERE packet_id = ?", (meta.packet_id,))
                    cur.execute(
                        "UPDATE ho_packets SET chunks = ?, chunk_size = ?, packet_size = NULL,"
                        " packet_sha256 = NULL WHERE packet_id = ?",
                        (meta.chunks, meta.chunk_size, meta.packet_id),
                    )
                    size = sha = None
                if meta.packet_size is not None:
                    if size is not None and (size, sha) != (meta.packet_size, meta.packet_sha256):
                        raise ChunkRefused("packet size or sha256 differs from an earlier copy")
                    cur.execute(
                        "UPDATE ho_packets SET packet_size = ?, packet_sha256 = ?"
                        " WHERE packet_id = ?",
                        (meta.packet_size, meta.packet_sha256, meta.packet_id),
                    )
                self._insert_chunk(cur, meta, data)
            record = self._record(cur, meta.packet_id, indices=False)
        return self._checked(record, meta)

    @staticmethod
    def _checked(record: PacketRecord | None, meta: ChunkMeta) -> PacketRecord:
        if record is None:
            raise StorageError(f"packet {meta.packet_id} vanished from the index")
        return record

    def _record(self, cur: Cursor, packet_id: str, *, indices: bool = True
                ) -> PacketRecord | None:
        row = cur.one(f"SELECT {_PACKET_COLS} FROM ho_packets WHERE packet_id = ?", (packet_id,))
        if row is None:
            return None
        received: frozenset[int] | None = frozenset()
        count = 0
        if row[2] in (RECEIVING, ASSEMBLING):
            if indices:
                received = frozenset(
                    int(r[0]) for r in cur.all("SELECT idx FROM ho_chunks WHERE packet_id = ?",
                                               (packet_id,))
                )
                count = len(received)
            else:
                received = None
                counted = cur.one("SELECT count(*) FROM ho_chunks WHERE packet_id = ?",
                                  (packet_id,))
                count = int(counted[0]) if counted else 0
        return PacketRecord(
            packet_id=row[0], station_id=row[1], state=row[2], chunks=int(row[3]),
            chunk_size=int(row[4]), packet_size=None if row[5] is None else int(row[5]),
            packet_sha256=row[6], received=received, received_count=count, reason=row[7],
            stored_at=row[8], path=row[9],
        )

    def packet(self, packet_id: str) -> PacketRecord | None:
        """The packet's record, or None when head office never heard of it."""
        with self._tx() as cur:
            return self._record(cur, packet_id)

    def claim(self, packet_id: str, owner: str, lease_seconds: float) -> bool:
        """Take the assembly lease: free, expired, or already ours."""
        t = now()
        with self._tx() as cur:
            n = cur.execute(
                "UPDATE ho_packets SET state = ?, owner = ?, lease_until = ? WHERE packet_id = ?"
                " AND (state = ? OR (state = ? AND (lease_until < ? OR owner = ?)))",
                (ASSEMBLING, owner, t + lease_seconds, packet_id, RECEIVING, ASSEMBLING, t, owner),
            )
        return n == 1

    def temp_path(self, packet_id: str, owner: str) -> Path:
        """A fresh temporary file next to the bodies (same file system, so rename is atomic)."""
        return self.tmp_dir / f"{packet_id}.{uuid.uuid4().hex}.part"

    def packet_path(self, record: PacketRecord) -> Path:
        """Where a stored packet's body lives."""
        return self.packets_dir / (record.path or packet_relpath(record.station_id,
                                                                 record.packet_id))

    def _place(self, station_id: str, packet_id: str, temp: Path) -> str:
        rel = packet_relpath(station_id, packet_id)
        final = self.packets_dir / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        fsync_dir(final.parent)
        return rel

    def commit(self, packet_id: str, owner: str, temp: Path, sha256: str, size: int) -> PacketRecord:
        """Rename the verified file into place, then mark it stored and drop its chunks."""
        with self._tx() as cur:
            row = cur.one(
                "SELECT station_id, state, owner FROM ho_packets WHERE packet_id = ?"
                + self.lock_clause,
                (packet_id,),
            )
            if row is None:
                raise StorageError(f"packet {packet_id} vanished from the index")
            station_id, state, holder = row
            if state == STORED:
                # Our lease ran out and another receiver stored the same verified bytes.
                record = self._record(cur, packet_id)
            else:
                if (state, holder) != (ASSEMBLING, owner):
                    raise StorageError(f"packet {packet_id}: assembly lease lost to {holder}")
                # Renamed while holding the row (or database) lock, so a competing assembler
                # cannot interleave its own rename with our index update.
                rel = self._place(station_id, packet_id, temp)
                cur.execute(
                    "UPDATE ho_packets SET state = ?, owner = NULL, lease_until = NULL,"
                    " packet_size = ?, packet_sha256 = ?, stored_at = ?, path = ?, reason = NULL"
                    " WHERE packet_id = ?",
                    (STORED, size, sha256, now(), rel, packet_id),
                )
                cur.execute("DELETE FROM ho_chunks WHERE packet_id = ?", (packet_id,))
                self._touch(cur, station_id)
                record = self._record(cur, packet_id)
        if record is None:
            raise StorageError(f"packet {packet_id} vanished from the index")
        return record

    def reject(self, packet_id: str, owner: str, reason: str) -> PacketRecord:
        """Mark the packet rejected with ``reason`` and drop its chunks."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE ho_packets SET state = ?, owner = NULL, lease_until = NULL, reason = ?,"
                " rejects = rejects + 1 WHERE packet_id = ? AND state = ? AND owner = ?",
                (REJECTED, reason, packet_id, ASSEMBLING, owner),
            )
            cur.execute("DELETE FROM ho_chunks WHERE packet_id = ?", (packet_id,))
            record = self._record(cur, packet_id)
        if record is None:
            raise StorageError(f"packet {packet_id} vanished from the index")
        return record

    def import_packet(self, station_id: str, packet_id: str, source: Path, sha256: str,
                      size: int) -> bool:
        """Copy a verified packet file into place unless the packet is already stored."""
        existing = self.packet(packet_id)
        if existing is not None and existing.state == STORED:
            return False
        temp = self.temp_path(packet_id, "import")
        try:
            shutil.copyfile(source, temp)
            with open(temp, "rb") as f:
                os.fsync(f.fileno())
            with self._tx() as cur:
                cur.execute(
                    "INSERT INTO ho_packets (packet_id, station_id, state, chunks, chunk_size,"
                    " first_seen) VALUES (?, ?, ?, 0, 0, ?) ON CONFLICT (packet_id) DO NOTHING",
                    (packet_id, station_id, RECEIVING, now()),
                )
                row = cur.one(
                    "SELECT station_id, state FROM ho_packets WHERE packet_id = ?"
                    + self.lock_clause,
                    (packet_id,),
                )
                if row is None:
                    raise StorageError(f"packet {packet_id} vanished from the index")
                if row[0] != station_id:
                    raise StorageError(f"packet {packet_id} belongs to another station")
                if row[1] == STORED:
                    return False
                rel = self._place(station_id, packet_id, temp)
                cur.execute(
                    "UPDATE ho_packets SET state = ?, owner = NULL, lease_until = NULL,"
                    " packet_size = ?, packet_sha256 = ?, stored_at = ?, path = ?, reason = NULL,"
                    " source = ? WHERE packet_id = ?",
                    (STORED, size, sha256, now(), rel, "export", packet_id),
                )
                cur.execute("DELETE FROM ho_chunks WHERE packet_id = ?", (packet_id,))
                self._touch(cur, station_id)
        finally:
            temp.unlink(missing_ok=True)
        return True

    def incomplete(self, limit: int) -> list[PacketRecord]:
        """Packets whose every chunk is in but which are not stored yet."""
        with self._tx() as cur:
            ids = [
                r[0]
                for r in cur.all(
                    "SELECT packet_id FROM ho_packets WHERE state IN (?, ?)"
                    " AND packet_size IS NOT NULL ORDER BY first_seen LIMIT ?",
                    (RECEIVING, ASSEMBLING, limit),
                )
            ]
            records = [self._record(cur, pid) for pid in ids]
        return [r for r in records if r is not None and r.complete]

    def stored_count(self) -> int:
        """How many packets are stored (for tests, benchmarks and the CLI)."""
        with self._tx() as cur:
            row = cur.one("SELECT count(*) FROM ho_packets WHERE state = ?", (STORED,))
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ stations

    def _touch(self, cur: Cursor, station_id: str) -> None:
        cur.execute(
            "INSERT INTO ho_stations (station_id, last_seen) VALUES (?, ?) ON CONFLICT (station_id)"
            " DO UPDATE SET last_seen = EXCLUDED.last_seen",
            (station_id, now()),
        )

    def record_status(self, station_id: str, online: bool, version: str | None,
                      started_at: str | None) -> None:
        """Remember a station's latest status message."""
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO ho_stations (station_id, online, version, started_at, last_seen)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (station_id) DO UPDATE SET"
                " online = EXCLUDED.online, version = COALESCE(EXCLUDED.version, ho_stations.version),"
                " started_at = COALESCE(EXCLUDED.started_at, ho_stations.started_at),"
                " last_seen = EXCLUDED.last_seen",
                (station_id, int(online), version, started_at, now()),
            )

    def record_telemetry(self, station_id: str, telemetry: dict[str, Any]) -> None:
        """Keep a station's latest telemetry."""
        t = now()
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO ho_stations (station_id, telemetry, telemetry_at, last_seen)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (station_id) DO UPDATE SET"
                " telemetry = EXCLUDED.telemetry, telemetry_at = EXCLUDED.telemetry_at,"
                " last_seen = EXCLUDED.last_seen",
                (station_id, json.dumps(telemetry, sort_keys=True), t, t),
            )

    def record_event(self, station_id: str, event_id: str, kind: str, at: str,
                     payload: dict[str, Any]) -> bool:
        """Append one station event; False when this id was already recorded."""
        with self._tx() as cur:
            n = cur.execute(
                "INSERT INTO ho_events (station_id, event_id, kind, at, payload, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (station_id, event_id) DO NOTHING",
                (station_id, event_id, kind, at, json.dumps(payload, sort_keys=True), now()),
            )
            self._touch(cur, station_id)
        return n == 1

    def stations(self) -> list[StationRecord]:
        """Every station head office has heard from, by id."""
        with self._tx() as cur:
            rows = cur.all(
                "SELECT s.station_id, s.online, s.version, s.started_at, s.last_seen, s.telemetry,"
                " s.telemetry_at,"
                " (SELECT count(*) FROM ho_events e WHERE e.station_id = s.station_id),"
                " (SELECT count(*) FROM ho_packets p WHERE p.station_id = s.station_id"
                "  AND p.state = ?)"
                " FROM ho_stations s ORDER BY s.station_id",
                (STORED,),
            )
        return [
            StationRecord(
                station_id=r[0], online=None if r[1] is None else bool(r[1]), version=r[2],
                started_at=r[3], last_seen=r[4],
                telemetry=json.loads(r[5]) if r[5] else None, telemetry_at=r[6],
                events=int(r[7]), packets_stored=int(r[8]),
            )
            for r in rows
        ]

    def events(self, station_id: str, limit: int) -> list[dict[str, Any]]:
        """A station's latest events, newest first."""
        with self._tx() as cur:
            rows = cur.all(
                "SELECT event_id, kind, at, payload FROM ho_events WHERE station_id = ?"
                " ORDER BY received_at DESC LIMIT ?",
                (station_id, limit),
            )
        return [{"id": r[0], "kind": r[1], "at": r[2], "payload": json.loads(r[3])} for r in rows]

    def iter_chunk_indices(self, packet_id: str) -> list[int]:
        """The received chunk indices in order (a short read transaction)."""
        with self._tx() as cur:
            return [
                int(r[0])
                for r in cur.all(
                    "SELECT idx FROM ho_chunks WHERE packet_id = ? ORDER BY idx", (packet_id,)
                )
            ]

    def iter_chunks(self, packet_id: str) -> Iterator[bytes]:
        """The packet's chunks in order, one at a time (backends override the reading)."""
        for idx in self.iter_chunk_indices(packet_id):
            yield self._read_chunk(packet_id, idx)

    @abc.abstractmethod
    def _read_chunk(self, packet_id: str, idx: int) -> bytes:
        """One chunk's bytes."""
