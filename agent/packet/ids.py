"""Packet ids: UUIDv7 (RFC 9562), unique and time-ordered, monotonic within one process."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime

_lock = threading.Lock()
_last_ms = 0
_last_seq = 0


def uuid7_from(unix_ms: int, rand_a: int, rand_b: int) -> uuid.UUID:
    """Assemble a UUIDv7 from its fields (48-bit ms, 12-bit rand_a, 62-bit rand_b)."""
    if not 0 <= unix_ms < 1 << 48 or not 0 <= rand_a < 1 << 12 or not 0 <= rand_b < 1 << 62:
        raise ValueError("UUIDv7 field out of range")
    value = (unix_ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)


def new_packet_id() -> str:
    """A new UUIDv7 as text; ids from this process sort in creation order.

    rand_a is used as a sequence within one millisecond (RFC 9562 method 1), so two ids made in
    the same millisecond still sort; if the sequence overflows the timestamp is advanced by 1 ms.
    """
    global _last_ms, _last_seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            seq = _last_seq + 1
            if seq >= 1 << 12:
                ms, seq = ms + 1, 0
        else:
            seq = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count upward
        _last_ms, _last_seq = ms, seq
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return str(uuid7_from(ms, seq, rand_b))


def is_packet_id(text: str) -> bool:
    """True when ``text`` is a canonical lower-case UUIDv7."""
    try:
        u = uuid.UUID(text)
    except ValueError:
        return False
    return u.version == 7 and u.variant == uuid.RFC_4122 and str(u) == text


def packet_id_time(text: str) -> datetime:
    """The creation time embedded in a UUIDv7 packet id."""
    u = uuid.UUID(text)
    if u.version != 7:
        raise ValueError("not a UUIDv7")
    return datetime.fromtimestamp((u.int >> 80) / 1000, tz=UTC)
