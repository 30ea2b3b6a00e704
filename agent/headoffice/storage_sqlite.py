"""The embedded default backend: a folder of packet bodies plus an SQLite index.

Layout under ``root``::

    index.sqlite                   the index and the chunks being assembled (WAL,
                                   synchronous=FULL; every write transaction is BEGIN IMMEDIATE)
    index.open.lock                held (flock) while a receiver sets up the index
    packets/<station_id>/<packet_id>.rkp   stored packet bodies
    tmp/                           assembly files (same file system, so the final rename is atomic)

Chunks are ``ho_chunks.data`` blobs rather than files: one WAL commit makes a chunk durable,
where a file needs fsync of the file, a rename and fsync of its folder (measured: chunk files cost
about three times as many fsyncs per packet, see docs/performance.md), and deleting rows is far
cheaper than unlinking files. Any number of receiver processes on one machine may share
``root``: SQLite's writer lock serialises the index. For receivers on several machines use the
PostgreSQL backend (SQLite over a network file system is not safe).
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.headoffice.storage import StorageError
from agent.headoffice.storage_sql import SCHEMA, Cursor, SqlStorage

BUSY_TIMEOUT_MS = 30_000

SQLITE_SCHEMA = [
    *SCHEMA,
    """CREATE TABLE IF NOT EXISTS ho_chunks (
        packet_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (packet_id, idx)
    )""",
]


class SqliteStorage(SqlStorage):
    """Folder + SQLite index (one machine)."""

    def __init__(self, root: Path) -> None:
        """Open (creating) the store under ``root``."""
        root = Path(root)
        super().__init__(root)
        self.root = root
        try:
            # Receivers of a group starting together would race on a new index: switching it
            # to WAL needs an exclusive lock, and SQLite answers "database is locked" at once
            # rather than wait (measured: 9 of 30 rounds of four processes opening a fresh
            # folder). One at a time sets it up; the lock goes with the file's close.
            with open(root / "index.open.lock", "ab") as setup:
                fcntl.flock(setup, fcntl.LOCK_EX)
                # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE, so
                # the writer lock is taken up front and no read-then-upgrade deadlock can happen.
                self._conn = sqlite3.connect(
                    root / "index.sqlite", isolation_level=None, check_same_thread=False,
                    timeout=BUSY_TIMEOUT_MS / 1000,
                )
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=FULL")
                self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                with self._tx() as cur:
                    for ddl in SQLITE_SCHEMA:
                        cur.execute(ddl)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open the index in {root}: {exc}") from exc

    @contextmanager
    def _tx(self) -> Iterator[Cursor]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(f"index busy or broken: {exc}") from exc
            try:
                yield Cursor(self._conn.cursor(), pyformat=False)
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise StorageError(f"index: {exc}") from exc
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"index commit failed: {exc}") from exc

    def _read_chunk(self, packet_id: str, idx: int) -> bytes:
        # A plain autocommit read: no need to take the writer lock that _tx takes.
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT data FROM ho_chunks WHERE packet_id = ? AND idx = ?", (packet_id, idx)
                ).fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"index: {exc}") from exc
        if row is None:
            raise StorageError(f"chunk {idx} of {packet_id} vanished")
        return bytes(row[0])

    def close(self) -> None:
        """Close the index connection."""
        with self._lock:
            self._conn.close()
