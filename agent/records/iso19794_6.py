"""ISO/IEC 19794-6:2011 iris image records (PNG or JPEG 2000 inside): writer and reader.

General header (16 bytes): "IIR\\0", version "020\\0", record length (4), number of
representations (2), certification flag (1), number of eyes present (1).

Representation: length (4) · capture date-time (9) · device technology (1), vendor (2), type (2)
· quality blocks (1 + 5n) · certification blocks (1 + 3n, only when the flag is set) ·
representation number (2) · image information (27): eye label (1), image type (1), image format
(1), properties (1), width (2), height (2), bit depth (1), range (2), roll angle (2), roll angle
uncertainty (2), iris centre smallest X, largest X, smallest Y, largest Y (2 each), iris diameter
smallest, largest (2 each) · image data length (4) + image data.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from datetime import datetime

from agent.records._common import (
    CaptureDevice,
    QualityBlock,
    check_representation_count,
    encode_representation_header,
    frame_representation,
    general_header,
    iter_representations,
    read_count_and_flag,
    u8,
    u16,
)

MAGIC = b"IIR\0"
VERSION = b"020\0"
HEADER = struct.Struct(">4s4sIHBB")
IMAGE_INFO = struct.Struct(">BBBBHHBHHHHHHHHH")
UNDEFINED = 0xFFFF  # roll angle / uncertainty / centre / diameter not computed


class EyeLabel(enum.IntEnum):
    """Which eye."""

    UNDEFINED = 0
    RIGHT = 1
    LEFT = 2


class ImageType(enum.IntEnum):
    """Iris image type codes."""

    UNCROPPED = 1
    VGA = 2
    CROPPED = 3
    CROPPED_AND_MASKED = 7


class ImageFormat(enum.IntEnum):
    """Iris image format codes."""

    MONO_RAW = 0x02
    RGB_RAW = 0x04
    MONO_JPEG = 0x06
    RGB_JPEG = 0x08
    MONO_JPEG2000 = 0x0A
    RGB_JPEG2000 = 0x0C
    MONO_PNG = 0x0E
    RGB_PNG = 0x10


@dataclass(frozen=True)
class IrisImage:
    """One iris representation."""

    eye: int
    image: bytes
    image_format: int
    width: int
    height: int
    captured_at: datetime | None = None
    device: CaptureDevice = CaptureDevice()
    quality: tuple[QualityBlock, ...] = ()
    certifications: tuple[tuple[int, int], ...] = ()
    representation_number: int = 1
    image_type: int = ImageType.CROPPED
    properties: int = 0  # orientation bits 0-3, compression history bits 6-7
    bit_depth: int = 8
    range: int = UNDEFINED
    roll_angle: int = UNDEFINED
    roll_uncertainty: int = UNDEFINED
    centre_x: tuple[int, int] = (UNDEFINED, UNDEFINED)  # smallest, largest
    centre_y: tuple[int, int] = (UNDEFINED, UNDEFINED)
    diameter: tuple[int, int] = (UNDEFINED, UNDEFINED)

    def __post_init__(self) -> None:
        """Check every field fits its width."""
        for name in ("eye", "image_format", "image_type", "properties", "bit_depth"):
            u8(getattr(self, name), name)
        for name in ("width", "height", "representation_number", "range", "roll_angle",
                     "roll_uncertainty"):
            u16(getattr(self, name), name)
        for v in (*self.centre_x, *self.centre_y, *self.diameter):
            u16(v, "iris geometry")


@dataclass(frozen=True)
class IrisRecord:
    """A decoded record."""

    representations: tuple[IrisImage, ...]
    certification_flag: bool = False
    eyes_present: int = 0


def encode_representation(rep: IrisImage, certification_flag: bool) -> bytes:
    """One representation, its length field included."""
    body = (
        encode_representation_header(rep, certification_flag)
        + struct.pack(">H", rep.representation_number)
        + IMAGE_INFO.pack(rep.eye, rep.image_type, rep.image_format, rep.properties, rep.width,
                          rep.height, rep.bit_depth, rep.range, rep.roll_angle,
                          rep.roll_uncertainty, *rep.centre_x, *rep.centre_y, *rep.diameter)
        + struct.pack(">I", len(rep.image)) + rep.image
    )
    return frame_representation(body)


def encode(representations: tuple[IrisImage, ...] | list[IrisImage], *,
           certification_flag: bool = False) -> bytes:
    """A whole 19794-6:2011 record."""
    reps = tuple(representations)
    check_representation_count(reps)
    body = b"".join(encode_representation(r, certification_flag) for r in reps)
    eyes = len({r.eye for r in reps if r.eye != EyeLabel.UNDEFINED})
    return HEADER.pack(MAGIC, VERSION, HEADER.size + len(body), len(reps),
                       int(certification_flag), eyes) + body


def decode(data: bytes) -> IrisRecord:
    """Parse a record; RecordError on any inconsistency."""
    cur = general_header(MAGIC, VERSION, data, HEADER.size)
    count, flag = read_count_and_flag(cur)
    eyes = cur.u8("eyes present")
    reps = []
    for rc, (when, device, quality, certs) in iter_representations(cur, count, flag):
        number = rc.u16("representation number")
        (eye, itype, fmt, props, w, h, depth, rng, roll, roll_u, cx0, cx1, cy0, cy1, d0,
         d1) = rc.unpack(IMAGE_INFO, "image information")
        n = rc.u32("image data length")
        image = rc.take(n, "image data")
        rc.expect_end("representation")
        reps.append(IrisImage(eye, image, fmt, w, h, when, device, quality, certs, number, itype,
                              props, depth, rng, roll, roll_u, (cx0, cx1), (cy0, cy1), (d0, d1)))
    return IrisRecord(tuple(reps), flag, eyes)
