"""Errors of the durable journal, split by who must act.

::

    JournalError                     base: something the journal could not do
    +-- JournalFullError             no room (quota or the disk itself); nothing partial kept
    |   +-- PacketTooLargeError      one packet exceeds journal.max_packet_bytes
    +-- JournalBusyError             the single writer stayed busy past journal.write_wait_seconds
    +-- DuplicatePacketError         a packet id that the journal already holds (or held)
    +-- UnknownPacketError           no such packet id
    +-- InvalidTransitionError       a state change the outbox does not allow
    +-- HashMismatchError            an ack's packet_sha256 does not match the journaled packet
    +-- CorruptPacketError           a stored chunk no longer matches its SHA-256 (now quarantined)
    +-- JournalCorruptError          the database itself failed its integrity check

Each carries ``message_id`` (Indonesian, for the operator) next to the English ``str()``.
"""

from __future__ import annotations


class JournalError(Exception):
    """Base of every journal error."""

    message_id: str = "Penyimpanan lokal gagal; hubungi teknisi."

    def __init__(self, message: str, *, message_id: str | None = None) -> None:
        super().__init__(message)
        if message_id is not None:
            self.message_id = message_id


class JournalFullError(JournalError):
    """No room for this packet: quota reached or the disk is full. Nothing partial was kept."""

    message_id = (
        "Penyimpanan penuh; data belum tersimpan. Periksa sambungan internet atau jalankan "
        "`rekam export` ke media lepas."
    )


class PacketTooLargeError(JournalFullError):
    """One packet grew past ``journal.max_packet_bytes``."""

    message_id = "Paket terlalu besar untuk disimpan; hubungi teknisi."


class JournalBusyError(JournalError):
    """The journal's writer stayed busy past the configured wait."""

    message_id = "Penyimpanan sedang sibuk; coba lagi sebentar."


class DuplicatePacketError(JournalError):
    """The packet id is already in the journal (possibly as a purged tombstone)."""


class UnknownPacketError(JournalError, KeyError):
    """No packet with that id."""

    def __str__(self) -> str:
        """Plain message (KeyError would quote it)."""
        return str(self.args[0]) if self.args else ""


class InvalidTransitionError(JournalError):
    """The requested outbox state change is not allowed from the packet's current state."""


class HashMismatchError(JournalError):
    """An acknowledgement names a different packet hash than the one journaled."""


class CorruptPacketError(JournalError):
    """A stored chunk failed its hash check; the packet has been quarantined and reported."""

    message_id = "Data paket rusak dan dikarantina; hubungi teknisi."


class JournalCorruptError(JournalError):
    """The SQLite file failed its integrity check at open."""

    message_id = (
        "Basis data penyimpanan rusak; jangan matikan komputer, hubungi teknisi "
        "(jalankan `rekam journal check`)."
    )
