"""ISO/IEC 19794-4:2011 finger image records: writer and reader.

General header (16 bytes): "FIR\\0", version "020\\0", record length (4), number of
representations (2), certification flag (1), number of fingers/palms present (1).

Representation: length (4) · capture date-time (9) · device technology (1), vendor (2), type (2)
· quality blocks (1 + 5n) · certification blocks (1 + 3n, only when the flag is set) · finger
position (1) · representation number (1) · scale units (1) · capture sampling rate H, V (2 + 2)
· image sampling rate H, V (2 + 2) · bit depth (1) · compression (1) · impression type (1) ·
horizontal line length (2) · vertical line length (2) · image data length (4) + image data ·
extended data (kept as opaque bytes; this writer emits none).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from datetime import datetime

from agent.records._common import (
    CaptureDevice,
    QualityBlock,
    RecordError,
    check_representation_count,
    encode_representation_header,
    frame_representation,
    general_header,
    iter_representations,
    read_count_and_flag,
    u8,
    u16,
)

MAGIC = b"FIR\0"
VERSION = b"020\0"
HEADER = struct.Struct(">4s4sIHBB")
IMAGE_FIELDS = struct.Struct(">BBBHHHHBBBHH")  # position .. vertical line length
SCALE_PPI = 1  # scale units: 1 = pixels per inch, 2 = pixels per centimetre


class Compression(enum.IntEnum):
    """Image compression algorithm codes."""

    NONE = 0
    NONE_PACKED = 1
    WSQ = 2
    JPEG = 3
    JPEG2000_LOSSY = 4
    JPEG2000_LOSSLESS = 5
    PNG = 6


class Position(enum.IntEnum):
    """Finger position codes (single fingers and the common multi-finger slaps)."""

    UNKNOWN = 0
    RIGHT_THUMB = 1
    RIGHT_INDEX = 2
    RIGHT_MIDDLE = 3
    RIGHT_RING = 4
    RIGHT_LITTLE = 5
    LEFT_THUMB = 6
    LEFT_INDEX = 7
    LEFT_MIDDLE = 8
    LEFT_RING = 9
    LEFT_LITTLE = 10
    PLAIN_RIGHT_FOUR = 13
    PLAIN_LEFT_FOUR = 14
    PLAIN_THUMBS = 15


class Impression(enum.IntEnum):
    """Impression types used at a recording station."""

    LIVE_PLAIN = 0
    LIVE_ROLLED = 1
    NONLIVE_PLAIN = 2
    NONLIVE_ROLLED = 3


@dataclass(frozen=True)
class FingerImage:
    """One finger representation."""

    position: int
    image: bytes
    compression: int
    width: int
    height: int
    captured_at: datetime | None = None
    device: CaptureDevice = CaptureDevice()
    quality: tuple[QualityBlock, ...] = ()
    certifications: tuple[tuple[int, int], ...] = ()
    representation_number: int = 0
    scale_units: int = SCALE_PPI
    capture_ppi: tuple[int, int] = (500, 500)
    image_ppi: tuple[int, int] = (500, 500)
    bit_depth: int = 8
    impression: int = Impression.LIVE_PLAIN
    extended: bytes = b""

    def __post_init__(self) -> None:
        """Check every field fits its width."""
        u8(self.position, "position")
        u8(self.compression, "compression")
        u16(self.width, "width")
        u16(self.height, "height")
        u8(self.representation_number, "representation_number")
        u8(self.scale_units, "scale_units")
        for v in (*self.capture_ppi, *self.image_ppi):
            u16(v, "sampling rate")
        u8(self.bit_depth, "bit_depth")
        u8(self.impression, "impression")


@dataclass(frozen=True)
class FingerRecord:
    """A decoded record."""

    representations: tuple[FingerImage, ...]
    certification_flag: bool = False
    fingers_present: int = 0


def encode_representation(rep: FingerImage, certification_flag: bool) -> bytes:
    """One representation, its length field included."""
    body = (
        encode_representation_header(rep, certification_flag)
        + IMAGE_FIELDS.pack(rep.position, rep.representation_number, rep.scale_units,
                            *rep.capture_ppi, *rep.image_ppi, rep.bit_depth, rep.compression,
                            rep.impression, rep.width, rep.height)
        + struct.pack(">I", len(rep.image)) + rep.image + rep.extended
    )
    return frame_representation(body)


def encode(representations: tuple[FingerImage, ...] | list[FingerImage], *,
           certification_flag: bool = False) -> bytes:
    """A whole 19794-4:2011 record."""
    reps = tuple(representations)
    check_representation_count(reps)
    body = b"".join(encode_representation(r, certification_flag) for r in reps)
    fingers = len({r.position for r in reps})
    if fingers > 255:
        raise RecordError("too many finger positions")
    return HEADER.pack(MAGIC, VERSION, HEADER.size + len(body), len(reps),
                       int(certification_flag), fingers) + body


def decode(data: bytes) -> FingerRecord:
    """Parse a record; RecordError on any inconsistency."""
    cur = general_header(MAGIC, VERSION, data, HEADER.size)
    count, flag = read_count_and_flag(cur)
    present = cur.u8("fingers present")
    reps = []
    for rc, (when, device, quality, certs) in iter_representations(cur, count, flag):
        (pos, num, scale, cph, cpv, iph, ipv, depth, comp, impr, w, h) = rc.unpack(
            IMAGE_FIELDS, "image fields")
        n = rc.u32("image data length")
        image = rc.take(n, "image data")
        extended = rc.take(rc.end - rc.pos, "extended data")
        reps.append(FingerImage(pos, image, comp, w, h, when, device, quality, certs, num, scale,
                                (cph, cpv), (iph, ipv), depth, impr, extended))
    return FingerRecord(tuple(reps), flag, present)
