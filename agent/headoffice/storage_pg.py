"""The scale-out backend: index and chunk assembly in PostgreSQL, packet bodies in a shared folder.

Why this split: chunks are small (256 KiB by default), short-lived and written by whichever
receiver the broker hands them to, so they go into PostgreSQL (``ho_chunks.data bytea``) where
every receiver machine sees them at once, with row locks deciding who assembles. A finished packet
is large and written once, so it goes to a folder all receiver machines mount (NFS or similar),
by write-to-temp + fsync + rename; the index row names it. PostgreSQL is never asked to hold
multi-megabyte packet bodies, and the bodies folder can be backed up or handed to the
enrollment back end as plain files.

Every write transaction locks the packet's row (``SELECT ... FOR UPDATE``), so a chunk, a claim,
a commit and a rejection of one packet are serialised, while different packets proceed in
parallel on different receivers.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.headoffice.storage import StorageError
from agent.headoffice.storage_sql import SCHEMA, Cursor, SqlStorage

log = logging.getLogger(__name__)

PG_SCHEMA = [
    *SCHEMA,
    """CREATE TABLE IF NOT EXISTS ho_chunks (
        packet_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (packet_id, idx)
    )""",
]
# Any constant works; it only has to be the same for every receiver creating the schema at once.
_SCHEMA_LOCK_KEY = 0x52454B41


class PostgresStorage(SqlStorage):
    """PostgreSQL index + chunks; bodies in a folder shared by all receiver machines."""

    lock_clause = " FOR UPDATE"

    def __init__(self, dsn: str, bodies: Path, *, connect_timeout: int = 10) -> None:
        """Connect with libpq ``dsn`` and make sure the schema exists."""
        super().__init__(bodies)
        import psycopg

        self._psycopg = psycopg
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._conn: Any = None
        self._connect()
        with self._tx() as cur:
            # Two receivers starting together would otherwise race on CREATE TABLE IF NOT EXISTS.
            cur.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK_KEY,))
            for ddl in PG_SCHEMA:
                cur.execute(ddl)

    def _connect(self) -> None:
        try:
            self._conn = self._psycopg.connect(self._dsn, autocommit=True,
                                               connect_timeout=self._connect_timeout)
        except self._psycopg.Error as exc:
            # The DSN may hold a password: report only the error class.
            raise StorageError(f"cannot connect to PostgreSQL: {type(exc).__name__}") from None

    def _usable(self) -> None:
        """Reconnect after the server went away (restart, failover); one try, bounded."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                log.warning("PostgreSQL connection lost; reconnecting")
                self._conn.close()
            self._connect()

    @contextmanager
    def _tx(self) -> Iterator[Cursor]:
        with self._lock:
            self._usable()
            try:
                with self._conn.transaction(), self._conn.cursor() as raw:
                    yield Cursor(raw, pyformat=True)
            except self._psycopg.Error as exc:
                # The message is the server's; statements carry no chunk bytes in their text.
                raise StorageError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc

    def iter_chunks(self, packet_id: str) -> Iterator[bytes]:
        """The chunks in order through one server-side cursor, one row per fetch."""
        # One query instead of a transaction per chunk (a round trip each: measured as most of
        # the assembly time); itersize 1 keeps a single chunk in memory at a time.
        with self._lock:
            self._usable()
            try:
                with self._conn.transaction(), self._conn.cursor(
                        name=f"chunks_{uuid.uuid4().hex}") as cur:
                    cur.itersize = 1
                    cur.execute("SELECT data FROM ho_chunks WHERE packet_id = %s ORDER BY idx",
                                (packet_id,))
                    for (data,) in cur:
                        yield bytes(data)
            except self._psycopg.Error as exc:
                raise StorageError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc

    def _read_chunk(self, packet_id: str, idx: int) -> bytes:
        with self._tx() as cur:
            row = cur.one(
                "SELECT data FROM ho_chunks WHERE packet_id = ? AND idx = ?", (packet_id, idx)
            )
        if row is None:
            raise StorageError(f"chunk {idx} of {packet_id} vanished")
        return bytes(row[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
