"""The durable local journal of packets, outgoing events and other modules' tables.

``from agent.journal import Journal, JournalError, JournalFullError, PacketInfo, Headroom``.
See docs/journal.md.
"""

from __future__ import annotations

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
from agent.journal.model import STATES, EventRow, Headroom, PacketInfo
from agent.journal.store import DB_NAME, Journal, PacketSink, db_path, files_bytes

__all__ = [
    "DB_NAME",
    "STATES",
    "CorruptPacketError",
    "DuplicatePacketError",
    "EventRow",
    "HashMismatchError",
    "Headroom",
    "InvalidTransitionError",
    "Journal",
    "JournalBusyError",
    "JournalCorruptError",
    "JournalError",
    "JournalFullError",
    "PacketInfo",
    "PacketSink",
    "PacketTooLargeError",
    "UnknownPacketError",
    "db_path",
    "files_bytes",
]
