"""The journal's own tables. Other modules add theirs with ``Journal.register_schema``."""

from __future__ import annotations

# Page size and auto_vacuum can only be chosen before the first table exists.
# 16 KiB pages: 256 KiB chunk blobs then span 16 overflow pages instead of 64, which is
# measurably faster to write and read (bench/bench_journal.py); small rows waste a little.
PAGE_SIZE = 16384

SCHEMA_VERSION = 1

# Packet metadata and state live apart from the chunk blobs: SQLite rewrites a whole record,
# overflow pages included, when one column changes, so a state change on a blob row would
# rewrite the blob (research note store_forward.md §5.1, measured 199 updates/s on 3 MiB rows).
DDL = """
CREATE TABLE IF NOT EXISTS packets (
    packet_id            TEXT PRIMARY KEY,
    station_id           TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    priority             INTEGER NOT NULL DEFAULT 0,
    state                TEXT NOT NULL CHECK (state IN
                           ('writing','queued','sending','delivered','purged','quarantined')),
    size                 INTEGER NOT NULL,
    sha256               TEXT NOT NULL,
    chunk_bytes          INTEGER NOT NULL,
    chunk_count          INTEGER NOT NULL,
    attempts             INTEGER NOT NULL DEFAULT 0,
    rejects              INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    confirmed_chunks     BLOB,
    confirmed_chunk_size INTEGER NOT NULL DEFAULT 0,
    exported_at          TEXT,
    saved_at             TEXT NOT NULL,
    sending_at           TEXT,
    delivered_at         TEXT,
    purged_at            TEXT,
    quarantined_at       TEXT
);
CREATE INDEX IF NOT EXISTS packets_by_state ON packets (state, priority DESC, created_at);

-- One row per fixed-size chunk; the last chunk of a packet may be shorter. A rowid table
-- (not WITHOUT ROWID): large blobs store faster there (store_forward.md addendum).
CREATE TABLE IF NOT EXISTS chunks (
    packet_id TEXT NOT NULL,
    idx       INTEGER NOT NULL,
    sha256    BLOB NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (packet_id, idx)
);

CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at    TEXT
);
CREATE INDEX IF NOT EXISTS events_unsent ON events (sent_at, id);

CREATE TABLE IF NOT EXISTS schemas (
    name          TEXT PRIMARY KEY,
    ddl           TEXT NOT NULL,
    registered_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
