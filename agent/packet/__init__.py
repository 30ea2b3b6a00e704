"""Enrollment packets: one signed, encrypted, streamable file per applicant (docs/packet-format.md).

    from agent.packet import PacketWriter, read_packet, new_packet_id
"""

from agent.packet.format import (
    FORMAT_VERSION,
    MAGIC,
    BadSignatureError,
    NotAPacketError,
    PacketError,
    PacketHeader,
    SourceChangedError,
    TamperedError,
    TruncatedError,
    UnknownStationError,
    UnknownVersionError,
    WrongKeyError,
)
from agent.packet.ids import is_packet_id, new_packet_id, packet_id_time
from agent.packet.reader import PacketItem, read_header, read_packet, verify_packet
from agent.packet.writer import PacketSummary, PacketWriter

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "BadSignatureError",
    "NotAPacketError",
    "PacketError",
    "PacketHeader",
    "PacketItem",
    "PacketSummary",
    "PacketWriter",
    "SourceChangedError",
    "TamperedError",
    "TruncatedError",
    "UnknownStationError",
    "UnknownVersionError",
    "WrongKeyError",
    "is_packet_id",
    "new_packet_id",
    "packet_id_time",
    "read_header",
    "read_packet",
    "verify_packet",
]
