"""The embedded default backend: a folder plus an SQLite index.

Layout under ``root``::

    index.sqlite                  the index (WAL; every write transaction is BEGIN IMMEDIATE)
    chunks/<packet_id>/<idx>.chunk  received chunks (write temp, fsync, rename, fsync dir)
    packets/<station_id>/<packet_id>.rkp   stored packet bodies
    tmp/                          assembly files (same file system, so the final rename is atomic)

Any number of receiver processes on one machine may share ``root``: SQLite's writer lock
serialises the index, and chunk files are only ever renamed into place whole. For receivers on
several machines use the PostgreSQL backend (SQLite over a network file system is not safe).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.headoffice.storage import ChunkMeta, StorageError, fsync_dir
from agent.headoffice.storage_sql import SCHEMA, Cursor, SqlStorage

# Chunk bytes live in files; the index only records which ones are complete on disk.
SQLITE_SCHEMA = [
    *SCHEMA,
    """CREATE TABLE IF NOT EXISTS ho_chunks (
        packet_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        PRIMARY KEY (packet_id, idx)
    ) WITHOUT ROWID""",
]

BUSY_TIMEOUT_MS = 30_000


class SqliteStorage(SqlStorage):
    """Folder + SQLite index (one machine)."""

    def __init__(self, root: Path) -> None:
        """Open (creating) the store under ``root``."""
        root = Path(root)
        super().__init__(root)
        self.root = root
        self.chunks_dir = root / "chunks"
        self.chunks_dir.mkdir(parents=True, exist_ok=True)
        try:
            # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE, so the
            # writer lock is taken up front and no read-then-upgrade deadlock can happen.
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
        except sqlite3.Error as exc:
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

    def _chunk_path(self, packet_id: str, idx: int) -> Path:
        return self.chunks_dir / packet_id / f"{idx}.chunk"

    def _stage_chunk(self, meta: ChunkMeta, data: bytes) -> object:
        folder = self.chunks_dir / meta.packet_id
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".{meta.index}.{uuid.uuid4().hex}.tmp"
        try:
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StorageError(f"cannot write chunk: {exc.strerror}") from exc
        return temp

    def _insert_chunk(self, cur: Cursor, meta: ChunkMeta, data: bytes, staged: object) -> None:
        if not isinstance(staged, Path):
            raise StorageError("chunk was not staged")
        final = self._chunk_path(meta.packet_id, meta.index)
        os.replace(staged, final)
        fsync_dir(final.parent)
        cur.execute(
            "INSERT INTO ho_chunks (packet_id, idx) VALUES (?, ?)"
            " ON CONFLICT (packet_id, idx) DO NOTHING",
            (meta.packet_id, meta.index),
        )

    def _discard_staged(self, staged: object) -> None:
        if isinstance(staged, Path):
            staged.unlink(missing_ok=True)
            try:
                # Leaves no empty folder behind a duplicate of a stored packet; a folder still in
                # use is not empty and stays.
                staged.parent.rmdir()
            except OSError:
                pass

    def _drop_chunk_bytes(self, packet_id: str) -> None:
        shutil.rmtree(self.chunks_dir / packet_id, ignore_errors=True)

    def _read_chunk(self, packet_id: str, idx: int) -> bytes:
        try:
            return self._chunk_path(packet_id, idx).read_bytes()
        except OSError as exc:
            raise StorageError(f"chunk {idx} of {packet_id} unreadable: {exc.strerror}") from exc

    def close(self) -> None:
        """Close the index connection."""
        with self._lock:
            self._conn.close()
