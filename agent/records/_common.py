"""Pieces shared by the ISO/IEC 19794 (2011 editions) record codecs: big-endian fields, the
9-byte capture date-time, quality blocks and certification blocks (19794-1:2011 framework), and
the representation header and loop that parts 4, 5 and 6 have in common.

Layouts restated in ../shared/research/protocols.md §5.1 (from MOSIP bio-utils, an
implementation, not the ISO text): conformance here means "matches those published layouts",
not a certification tool's verdict.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sized
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

# 0xFF in every byte means "capture time unknown" (19794-1:2011 convention).
UNKNOWN_DATETIME = b"\xff" * 9
DATETIME = struct.Struct(">HBBBBBH")
QUALITY = struct.Struct(">BHH")
CERT = struct.Struct(">HB")
QUALITY_FAILED = 255  # "failed to compute" score value


class RecordError(ValueError):
    """A biometric record is malformed, or a field is out of range for encoding."""


@dataclass(frozen=True)
class QualityBlock:
    """One quality score: 0..100, or 255 when the algorithm failed."""

    score: int
    algorithm_vendor: int = 0
    algorithm_id: int = 0

    def __post_init__(self) -> None:
        """Check ranges before anything is encoded."""
        if not (0 <= self.score <= 100 or self.score == QUALITY_FAILED):
            raise RecordError(f"quality score {self.score} not in 0..100 or 255")
        _u16(self.algorithm_vendor, "algorithm_vendor")
        _u16(self.algorithm_id, "algorithm_id")


@dataclass(frozen=True)
class CaptureDevice:
    """Capture device identity as the record carries it (IBIA vendor id, vendor's type id)."""

    technology: int = 0
    vendor: int = 0
    type: int = 0

    def __post_init__(self) -> None:
        """Check ranges."""
        _u8(self.technology, "technology")
        _u16(self.vendor, "vendor")
        _u16(self.type, "type")


def _u8(v: int, name: str) -> int:
    if not 0 <= v <= 0xFF:
        raise RecordError(f"{name}={v} does not fit one byte")
    return v


def _u16(v: int, name: str) -> int:
    if not 0 <= v <= 0xFFFF:
        raise RecordError(f"{name}={v} does not fit two bytes")
    return v


def u8(v: int, name: str) -> int:
    """Check v fits an unsigned byte; return it."""
    return _u8(v, name)


def u16(v: int, name: str) -> int:
    """Check v fits an unsigned 16-bit field; return it."""
    return _u16(v, name)


def encode_datetime(dt: datetime | None) -> bytes:
    """9 bytes: year, month, day, hour, minute, second, millisecond (UTC); None -> unknown."""
    if dt is None:
        return UNKNOWN_DATETIME
    if dt.tzinfo is None:
        raise RecordError("capture time must be timezone-aware")
    u = dt.astimezone(UTC)
    return DATETIME.pack(u.year, u.month, u.day, u.hour, u.minute, u.second,
                         u.microsecond // 1000)


def decode_datetime(raw: bytes) -> datetime | None:
    """Inverse of encode_datetime."""
    if raw == UNKNOWN_DATETIME:
        return None
    y, mo, d, h, mi, s, ms = DATETIME.unpack(raw)
    try:
        return datetime(y, mo, d, h, mi, s, ms * 1000, tzinfo=UTC)
    except ValueError as exc:
        raise RecordError(f"invalid capture date-time: {exc}") from None


def encode_quality(blocks: tuple[QualityBlock, ...]) -> bytes:
    """Count byte then 5 bytes per block."""
    if len(blocks) > 255:
        raise RecordError("more than 255 quality blocks")
    return bytes([len(blocks)]) + b"".join(
        QUALITY.pack(q.score, q.algorithm_vendor, q.algorithm_id) for q in blocks)


def encode_certs(certs: tuple[tuple[int, int], ...]) -> bytes:
    """Count byte then 3 bytes (authority, scheme) per certification block."""
    if len(certs) > 255:
        raise RecordError("more than 255 certification blocks")
    return bytes([len(certs)]) + b"".join(
        CERT.pack(_u16(a, "cert authority"), _u8(s, "cert scheme")) for a, s in certs)


class Cursor:
    """Bounds-checked big-endian reader over one record."""

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        """Read data[start:end]."""
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def take(self, n: int, what: str) -> bytes:
        """Next n bytes, or RecordError naming the field."""
        if n < 0 or self.pos + n > self.end:
            raise RecordError(f"record ends inside {what}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, s: struct.Struct, what: str) -> tuple[Any, ...]:
        """Unpack a struct."""
        return s.unpack(self.take(s.size, what))

    def u8(self, what: str) -> int:
        """One byte."""
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        """Two bytes, big-endian."""
        return int.from_bytes(self.take(2, what), "big")

    def u32(self, what: str) -> int:
        """Four bytes, big-endian."""
        return int.from_bytes(self.take(4, what), "big")

    def expect_end(self, what: str) -> None:
        """RecordError unless every byte up to the end has been read."""
        if self.pos != self.end:
            raise RecordError(f"{what} has bytes after its image data")

    def datetime(self) -> datetime | None:
        """The 9-byte capture date-time."""
        return decode_datetime(self.take(9, "capture date-time"))

    def device(self) -> CaptureDevice:
        """Technology (1), vendor (2), type (2)."""
        return CaptureDevice(self.u8("device technology"), self.u16("device vendor"),
                             self.u16("device type"))

    def quality(self) -> tuple[QualityBlock, ...]:
        """Quality block count and blocks."""
        n = self.u8("quality block count")
        out = []
        for _ in range(n):
            score, vendor, algo = self.unpack(QUALITY, "quality block")
            out.append(QualityBlock(score, vendor, algo))
        return tuple(out)

    def certs(self) -> tuple[tuple[int, int], ...]:
        """Certification block count and blocks."""
        n = self.u8("certification block count")
        return tuple((a, s) for a, s in (self.unpack(CERT, "certification block")
                                         for _ in range(n)))


def general_header(magic: bytes, version: bytes, data: bytes, size: int) -> Cursor:
    """Check the magic and version of a record and that its length field matches."""
    if len(data) < size:
        raise RecordError("record shorter than its general header")
    if data[:4] != magic:
        raise RecordError(f"format identifier is {data[:4]!r}, expected {magic!r}")
    if data[4:8] != version:
        raise RecordError(f"version {data[4:8]!r} not supported (expected {version!r})")
    length = int.from_bytes(data[8:12], "big")
    if length != len(data):
        raise RecordError(f"record length field says {length}, record has {len(data)} bytes")
    return Cursor(data, 12)


class HasRepresentationHeader(Protocol):
    """What every part's representation carries in its common header."""

    @property
    def captured_at(self) -> datetime | None: ...
    @property
    def device(self) -> CaptureDevice: ...
    @property
    def quality(self) -> tuple[QualityBlock, ...]: ...
    @property
    def certifications(self) -> tuple[tuple[int, int], ...]: ...


# The fields every representation starts with, after its length, in this order: capture
# date-time, capture device, quality blocks, certification blocks. A plain tuple: decoders
# unpack it at once, and a NamedTuple per representation cost measurable time.
RepresentationHeader = tuple[
    datetime | None, CaptureDevice, tuple[QualityBlock, ...], tuple[tuple[int, int], ...]]


def check_representation_count(reps: Sized) -> None:
    """A record holds 1..65535 representations (the count field is two bytes)."""
    if not 1 <= len(reps) <= 0xFFFF:
        raise RecordError("a record holds 1..65535 representations")


def encode_representation_header(rep: HasRepresentationHeader, certification_flag: bool) -> bytes:
    """Capture date-time, device, quality blocks and (when flagged) certification blocks."""
    if rep.certifications and not certification_flag:
        raise RecordError("certification blocks need the record's certification flag")
    return (
        encode_datetime(rep.captured_at)
        + struct.pack(">BHH", rep.device.technology, rep.device.vendor, rep.device.type)
        + encode_quality(rep.quality)
        + (encode_certs(rep.certifications) if certification_flag else b"")
    )


def frame_representation(body: bytes) -> bytes:
    """Prefix a representation with its 4-byte length, which counts itself."""
    return struct.pack(">I", 4 + len(body)) + body


def read_count_and_flag(cur: Cursor) -> tuple[int, bool]:
    """The general header's representation count and certification flag (0 or 1)."""
    count = cur.u16("representation count")
    flag = cur.u8("certification flag")
    if flag not in (0, 1):
        raise RecordError(f"certification flag {flag} is not 0 or 1")
    return count, bool(flag)


def iter_representations(cur: Cursor, count: int,
                         certified: bool) -> Iterator[tuple[Cursor, RepresentationHeader]]:
    """Yield (cursor over the rest of the representation, its common header), count times.

    The caller reads its part-specific fields from the yielded cursor; the next representation
    starts where the length field says, whatever the caller left unread. After the last one the
    record must end, else RecordError.
    """
    data = cur.data
    for _ in range(count):
        start = cur.pos
        length = cur.u32("representation length")
        if length < 4 or start + length > len(data):
            raise RecordError("representation length out of range")
        rc = Cursor(data, cur.pos, start + length)
        when = rc.datetime()
        device = rc.device()
        quality = rc.quality()
        certs = rc.certs() if certified else ()
        yield rc, (when, device, quality, certs)
        cur.pos = start + length
    if cur.pos != len(data):
        raise RecordError("bytes after the last representation")
