"""ISO/IEC 19794-5:2011 face image records (2D, JPEG or PNG inside): writer and reader.

General header (17 bytes): "FAC\\0", version "030\\0", record length (4), number of
representations (2), certification flag (1), temporal semantics (2).

Representation: length (4) · capture date-time (9) · device technology (1), vendor (2), type (2)
· quality blocks (1 + 5n) · certification blocks (1 + 3n, only when the flag is set) · facial
information (17): landmark count (2), gender (1), eye colour (1), hair colour (1), subject height
(1), property mask (3), expression (2), pose yaw, pitch, roll (1 each), pose uncertainty yaw,
pitch, roll (1 each) · landmarks, 8 bytes each: type (1), code (1), x (2), y (2), z (2) · image
information (11): face image type (1), image data type (1), width (2), height (2), spatial
sampling rate level (1), post-acquisition processing (2), cross reference (1), colour space (1)
· image data length (4) + image data.

The certification blocks follow the 19794-1:2011 framework as in parts 4 and 6; research note
§5.1 does not list them for part 5, so the records we write keep the flag at 0.
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

MAGIC = b"FAC\0"
VERSION = b"030\0"
HEADER = struct.Struct(">4s4sIHBH")
FACIAL_INFO = struct.Struct(">HBBBB3sHBBBBBB")
LANDMARK = struct.Struct(">BBHHH")
IMAGE_INFO = struct.Struct(">BBHHBHBB")


class ImageDataType(enum.IntEnum):
    """Face image data type codes."""

    JPEG = 0
    JPEG2000_LOSSY = 1
    JPEG2000_LOSSLESS = 2
    PNG = 3


class FaceImageType(enum.IntEnum):
    """Face image type codes (2D)."""

    BASIC = 0
    FULL_FRONTAL = 1
    TOKEN_FRONTAL = 2


class Gender(enum.IntEnum):
    """Gender codes."""

    UNSPECIFIED = 0
    MALE = 1
    FEMALE = 2
    UNKNOWN = 255


@dataclass(frozen=True)
class Landmark:
    """A facial landmark point."""

    type: int
    code: int
    x: int
    y: int
    z: int = 0


@dataclass(frozen=True)
class FaceImage:
    """One face representation."""

    image: bytes
    data_type: int
    width: int
    height: int
    captured_at: datetime | None = None
    device: CaptureDevice = CaptureDevice()
    quality: tuple[QualityBlock, ...] = ()
    certifications: tuple[tuple[int, int], ...] = ()
    gender: int = Gender.UNSPECIFIED
    eye_colour: int = 0
    hair_colour: int = 0
    subject_height: int = 0
    property_mask: int = 0
    expression: int = 0
    pose: tuple[int, int, int] = (0, 0, 0)
    pose_uncertainty: tuple[int, int, int] = (0, 0, 0)
    landmarks: tuple[Landmark, ...] = ()
    face_image_type: int = FaceImageType.FULL_FRONTAL
    spatial_sampling_level: int = 0
    post_acquisition: int = 0
    cross_reference: int = 0
    colour_space: int = 0

    def __post_init__(self) -> None:
        """Check every field fits its width."""
        u8(self.data_type, "data_type")
        u16(self.width, "width")
        u16(self.height, "height")
        for name in ("gender", "eye_colour", "hair_colour", "subject_height", "face_image_type",
                     "spatial_sampling_level", "cross_reference", "colour_space"):
            u8(getattr(self, name), name)
        if not 0 <= self.property_mask < 1 << 24:
            raise RecordError("property_mask does not fit three bytes")
        u16(self.expression, "expression")
        u16(self.post_acquisition, "post_acquisition")
        for v in (*self.pose, *self.pose_uncertainty):
            u8(v, "pose")
        for lm in self.landmarks:
            u8(lm.type, "landmark type")
            u8(lm.code, "landmark code")
            for c in (lm.x, lm.y, lm.z):
                u16(c, "landmark coordinate")


@dataclass(frozen=True)
class FaceRecord:
    """A decoded record."""

    representations: tuple[FaceImage, ...]
    certification_flag: bool = False
    temporal_semantics: int = 0


def encode_representation(rep: FaceImage, certification_flag: bool) -> bytes:
    """One representation, its length field included."""
    header = encode_representation_header(rep, certification_flag)
    if len(rep.landmarks) > 0xFFFF:
        raise RecordError("too many landmarks")
    body = (
        header
        + FACIAL_INFO.pack(len(rep.landmarks), rep.gender, rep.eye_colour, rep.hair_colour,
                           rep.subject_height, rep.property_mask.to_bytes(3, "big"),
                           rep.expression, *rep.pose, *rep.pose_uncertainty)
        + b"".join(LANDMARK.pack(lm.type, lm.code, lm.x, lm.y, lm.z) for lm in rep.landmarks)
        + IMAGE_INFO.pack(rep.face_image_type, rep.data_type, rep.width, rep.height,
                          rep.spatial_sampling_level, rep.post_acquisition, rep.cross_reference,
                          rep.colour_space)
        + struct.pack(">I", len(rep.image)) + rep.image
    )
    return frame_representation(body)


def encode(representations: tuple[FaceImage, ...] | list[FaceImage], *,
           certification_flag: bool = False, temporal_semantics: int = 0) -> bytes:
    """A whole 19794-5:2011 record."""
    reps = tuple(representations)
    check_representation_count(reps)
    u16(temporal_semantics, "temporal_semantics")
    body = b"".join(encode_representation(r, certification_flag) for r in reps)
    return HEADER.pack(MAGIC, VERSION, HEADER.size + len(body), len(reps),
                       int(certification_flag), temporal_semantics) + body


def decode(data: bytes) -> FaceRecord:
    """Parse a record; RecordError on any inconsistency."""
    cur = general_header(MAGIC, VERSION, data, HEADER.size)
    count, flag = read_count_and_flag(cur)
    temporal = cur.u16("temporal semantics")
    reps = []
    for rc, (when, device, quality, certs) in iter_representations(cur, count, flag):
        (n_lm, gender, eye, hair, height, mask, expr, yaw, pitch, roll, uy, up, ur) = rc.unpack(
            FACIAL_INFO, "facial information")
        landmarks = tuple(Landmark(*rc.unpack(LANDMARK, "landmark")) for _ in range(n_lm))
        (ftype, dtype, w, h, ssl, pap, xref, cs) = rc.unpack(IMAGE_INFO, "image information")
        n = rc.u32("image data length")
        image = rc.take(n, "image data")
        rc.expect_end("representation")
        reps.append(FaceImage(image, dtype, w, h, when, device, quality, certs, gender, eye, hair,
                              height, int.from_bytes(mask, "big"), expr, (yaw, pitch, roll),
                              (uy, up, ur), landmarks, ftype, ssl, pap, xref, cs))
    return FaceRecord(tuple(reps), flag, temporal)
