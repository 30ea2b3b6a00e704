"""The head office's storage interface, shared by every receiver of a group.

A receiver never holds a packet in memory: each chunk goes straight into shared storage
(:meth:`Storage.put_chunk`), and whichever receiver sees the last missing chunk arrive *claims*
the packet (:meth:`Storage.claim`, a lease, so a receiver killed while assembling is replaced
when the lease runs out), streams the chunks in order into a temporary file, verifies it and
either commits it (:meth:`Storage.commit`, an atomic rename plus one index update) or rejects it.

Two backends implement this interface:

* :class:`agent.headoffice.storage_sqlite.SqliteStorage` — a folder of packet bodies plus an
  SQLite index that also holds the chunks being assembled. One machine (any number of receiver
  processes on it: SQLite's writer lock serialises the index).
* :class:`agent.headoffice.storage_pg.PostgresStorage` — index and chunks in PostgreSQL (row locks),
  packet bodies in a folder that every receiver machine mounts. Head office's real scale.

Packet states in the index::

    receiving --all chunks, claimed--> assembling --verified--> stored
        ^                                  |
        |                                  +--bad hash/signature--> rejected
        +--------- a new chunk after a rejection (the station's next attempt) -+

Errors: :class:`StorageError` (the backend failed; the chunk is not acknowledged and the broker
redelivers it) and :class:`ChunkRefused` (the chunk contradicts what is known about its packet;
the station is told).
"""

from __future__ import annotations

import abc
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Packet states, as stored in the index.
RECEIVING = "receiving"
ASSEMBLING = "assembling"
STORED = "stored"
REJECTED = "rejected"


class StorageError(Exception):
    """The storage backend failed (disk, database); the operation may be retried."""


class ChunkRefused(Exception):
    """A chunk that contradicts its packet's known shape, station or content."""


class PacketInvalid(Exception):
    """The assembled packet failed verification; ``reason`` goes back to the station."""

    def __init__(self, reason: str) -> None:
        """Keep the reason short and free of any packet content."""
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ChunkMeta:
    """What a chunk message says about itself (MQTT v5 user properties, contract C)."""

    station_id: str
    packet_id: str
    index: int
    chunks: int
    chunk_size: int
    offset: int
    chunk_sha256: str
    packet_size: int | None = None
    packet_sha256: str | None = None


@dataclass(frozen=True)
class PacketRecord:
    """One packet as the index knows it."""

    packet_id: str
    station_id: str
    state: str
    chunks: int
    chunk_size: int
    packet_size: int | None
    packet_sha256: str | None
    #: indices of the chunks held; None when only their number was read (put_chunk's answer,
    #: which must not cost O(chunks) per chunk for a packet of thousands of chunks)
    received: frozenset[int] | None
    received_count: int
    reason: str | None = None
    stored_at: float | None = None
    path: str | None = None

    @property
    def missing(self) -> list[int]:
        """Chunk indices not yet received (needs a record read with its indices)."""
        if self.received is None:
            raise ValueError("record was read without chunk indices; use Storage.packet()")
        return [i for i in range(self.chunks) if i not in self.received]

    @property
    def complete(self) -> bool:
        """Every chunk and the packet's size and hash are known."""
        return (
            self.packet_size is not None
            and self.packet_sha256 is not None
            and self.received_count == self.chunks
        )


@dataclass(frozen=True)
class StationRecord:
    """What head office last heard from a station."""

    station_id: str
    online: bool | None
    version: str | None
    started_at: str | None
    last_seen: float | None
    telemetry: dict[str, Any] | None
    telemetry_at: float | None
    events: int
    packets_stored: int


class Storage(abc.ABC):
    """Index + chunk store + packet bodies, shared by every receiver of one group."""

    @abc.abstractmethod
    def put_chunk(self, meta: ChunkMeta, data: bytes) -> PacketRecord:
        """Durably record one chunk (idempotent); return the packet's state afterwards.

        The returned record has ``received_count`` but not the indices (``received`` is None).
        A chunk of an already stored packet is not written again. Raises ChunkRefused when the
        chunk contradicts the packet (other station, other chunk count/size, other packet hash).
        """

    @abc.abstractmethod
    def packet(self, packet_id: str) -> PacketRecord | None:
        """The packet's record, or None when head office never heard of it."""

    @abc.abstractmethod
    def claim(self, packet_id: str, owner: str, lease_seconds: float) -> bool:
        """Take the right to assemble a complete packet; False if another receiver holds it."""

    @abc.abstractmethod
    def iter_chunks(self, packet_id: str) -> Iterator[bytes]:
        """The packet's chunks in index order, one at a time."""

    @abc.abstractmethod
    def temp_path(self, packet_id: str, owner: str) -> Path:
        """A fresh temporary file path on the same file system as the packet bodies."""

    @abc.abstractmethod
    def commit(self, packet_id: str, owner: str, temp: Path, sha256: str, size: int) -> PacketRecord:
        """Move the verified temporary file into place, mark the packet stored, drop its chunks."""

    @abc.abstractmethod
    def reject(self, packet_id: str, owner: str, reason: str) -> PacketRecord:
        """Mark the packet rejected with ``reason`` and drop its chunks."""

    @abc.abstractmethod
    def import_packet(self, station_id: str, packet_id: str, source: Path, sha256: str,
                      size: int) -> bool:
        """Store a verified packet file that came another way (export folder); False if known."""

    @abc.abstractmethod
    def packet_path(self, record: PacketRecord) -> Path:
        """Where a stored packet's body lives."""

    @abc.abstractmethod
    def incomplete(self, limit: int) -> list[PacketRecord]:
        """Packets with every chunk received but not yet stored (for recovery after a crash)."""

    # ------------------------------------------------------------------ station registry

    @abc.abstractmethod
    def record_status(self, station_id: str, online: bool, version: str | None,
                      started_at: str | None) -> None:
        """Remember a station's latest (retained) status message."""

    @abc.abstractmethod
    def record_telemetry(self, station_id: str, telemetry: dict[str, Any]) -> None:
        """Keep a station's latest telemetry (older ones are not kept)."""

    @abc.abstractmethod
    def record_event(self, station_id: str, event_id: str, kind: str, at: str,
                     payload: dict[str, Any]) -> bool:
        """Append one station event; False when this event id was already recorded."""

    @abc.abstractmethod
    def stations(self) -> list[StationRecord]:
        """Every station head office has heard from, by id."""

    @abc.abstractmethod
    def events(self, station_id: str, limit: int) -> list[dict[str, Any]]:
        """A station's latest events, newest first."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""


Verifier = Callable[[Path, PacketRecord], None]
"""Checks an assembled packet file (signature, decryption); raises PacketInvalid."""


def assemble(storage: Storage, record: PacketRecord, owner: str, verify: Verifier,
             lease_seconds: float) -> PacketRecord | None:
    """Assemble, verify and store a complete packet if this receiver wins the claim.

    Returns the packet's final record (stored or rejected), or None when another receiver holds
    the claim. Streams: at most one chunk is in memory at a time.
    """
    if not record.complete or record.state not in (RECEIVING, ASSEMBLING):
        return None
    if not storage.claim(record.packet_id, owner, lease_seconds):
        return None
    temp = storage.temp_path(record.packet_id, owner)
    try:
        digest = hashlib.sha256()
        size = 0
        with open(temp, "wb") as out:
            for data in storage.iter_chunks(record.packet_id):
                out.write(data)
                digest.update(data)
                size += len(data)
            out.flush()
            os.fsync(out.fileno())
        sha = digest.hexdigest()
        if size != record.packet_size:
            raise PacketInvalid(f"packet size {size} does not match announced {record.packet_size}")
        if sha != record.packet_sha256:
            raise PacketInvalid("packet sha256 does not match the announced packet_sha256")
        verify(temp, record)
        return storage.commit(record.packet_id, owner, temp, sha, size)
    except PacketInvalid as exc:
        return storage.reject(record.packet_id, owner, exc.reason)
    finally:
        temp.unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename into it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def now() -> float:
    """Wall-clock seconds; leases and last-seen times are compared across machines."""
    return time.time()


def packet_relpath(station_id: str, packet_id: str) -> str:
    """Where a packet body lives under the bodies folder (ids are validated by the receiver)."""
    return f"{station_id}/{packet_id}.rkp"
