"""The journal's value types (contract A) and small pure helpers they need."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Outbox states. 'writing' exists only inside the writer's open transaction, so another
# connection never sees it committed; start-up recovery still removes any it finds.
WRITING = "writing"
QUEUED = "queued"
SENDING = "sending"
DELIVERED = "delivered"
PURGED = "purged"
QUARANTINED = "quarantined"
STATES = (WRITING, QUEUED, SENDING, DELIVERED, PURGED, QUARANTINED)
# Packets whose bytes head office has not yet acknowledged: they are the backlog.
UNACKED = (QUEUED, SENDING, QUARANTINED)


@dataclass(frozen=True)
class PacketInfo:
    """One journaled packet's metadata and outbox state (never its bytes)."""

    packet_id: str
    station_id: str
    created_at: str
    size: int
    sha256: str
    state: str
    priority: int
    attempts: int
    rejects: int
    confirmed_chunks: frozenset[int]
    confirmed_chunk_size: int
    exported: bool
    # Additions beyond contract A (defaults keep the contract's constructor valid).
    chunk_bytes: int = 0
    last_error: str | None = None
    saved_at: str | None = None
    delivered_at: str | None = None
    purged_at: str | None = None


@dataclass(frozen=True)
class Headroom:
    """The answer to "can one more maximum-size packet fit?" with an operator message."""

    ok: bool
    message_id: str
    message_en: str
    backlog_packets: int
    oldest_created: str | None
    free_bytes: int
    used_bytes: int
    # Addition beyond contract A: the quota share is above the high watermark (and has not
    # yet fallen under the low one), so a storage warning event is active.
    warning: bool = False


@dataclass(frozen=True)
class EventRow:
    """One outgoing event waiting for the uplink."""

    id: int
    kind: str
    payload: dict[str, Any]
    created_at: str


def utc_now() -> datetime:
    """The current time, zone-aware UTC."""
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """Fixed-width ISO 8601 UTC text, so string order is time order in SQL."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    """Parse zone-aware ISO 8601 text; raise ValueError for naive or malformed times."""
    if not isinstance(text, str):
        raise ValueError(f"expected ISO 8601 text, got {type(text).__name__}")
    ts = datetime.fromisoformat(text)
    if ts.tzinfo is None:
        raise ValueError(f"time {text!r} has no zone; give UTC (…Z)")
    return ts


def bitmap_from(indices: Iterable[int]) -> bytes:
    """Pack chunk indices into a little-endian bitmap (bit i of byte i//8)."""
    out = bytearray()
    for i in indices:
        if i < 0:
            raise ValueError(f"chunk index {i} is negative")
        byte = i >> 3
        if byte >= len(out):
            out.extend(b"\0" * (byte + 1 - len(out)))
        out[byte] |= 1 << (i & 7)
    return bytes(out)


def bitmap_to(data: bytes | None) -> frozenset[int]:
    """Unpack a bitmap written by :func:`bitmap_from`."""
    if not data:
        return frozenset()
    return frozenset(
        (n << 3) + bit for n, byte in enumerate(data) if byte for bit in range(8) if byte >> bit & 1
    )


def chunk_count(size: int, chunk_size: int) -> int:
    """How many chunks of ``chunk_size`` cover ``size`` bytes."""
    return -(-size // chunk_size)
