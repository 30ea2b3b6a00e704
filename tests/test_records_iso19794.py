"""ISO/IEC 19794-4/-5/-6:2011 records: byte-exact against layouts written out here, field by
field from research note protocols.md §5.1 (not from the encoder), round trips, bad input."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from struct import pack

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from agent.records import CaptureDevice, QualityBlock, RecordError, wsq
from agent.records import iso19794_4 as fir
from agent.records import iso19794_5 as fac
from agent.records import iso19794_6 as iir

WHEN = datetime(2026, 11, 29, 8, 15, 30, 250000, tzinfo=UTC)
# 2026-11-29 08:15:30.250 -> year 0x07EA, 11, 29, 8, 15, 30, ms 250
WHEN_BYTES = b"\x07\xea" + bytes([11, 29, 8, 15, 30]) + b"\x00\xfa"
IMG = b"\x89PNG-not-really" * 3


# --------------------------------------------------------------------------- finger


def expected_finger() -> bytes:
    rep = (
        WHEN_BYTES
        + b"\x08"              # capture device technology id
        + b"\x00\x33"          # vendor id 0x0033
        + b"\x01\x02"          # device type 0x0102
        + b"\x01"              # one quality block
        + b"\x50" + b"\x00\x0f" + b"\x00\x02"   # score 80, vendor 15, algorithm 2
        + b"\x02"              # finger position: right index
        + b"\x00"              # representation number
        + b"\x01"              # scale units: ppi
        + b"\x01\xf4" * 2      # capture sampling rate 500, 500
        + b"\x01\xf4" * 2      # image sampling rate 500, 500
        + b"\x08"              # bit depth
        + b"\x06"              # compression: PNG
        + b"\x00"              # impression: live-scan plain
        + b"\x01\x00"          # width 256
        + b"\x01\x20"          # height 288
        + len(IMG).to_bytes(4, "big") + IMG
    )
    rep = (4 + len(rep)).to_bytes(4, "big") + rep
    total = 16 + len(rep)
    return (b"FIR\x00" + b"020\x00" + total.to_bytes(4, "big") + b"\x00\x01" + b"\x00" + b"\x01"
            + rep)


def finger() -> fir.FingerImage:
    return fir.FingerImage(position=fir.Position.RIGHT_INDEX, image=IMG,
                           compression=fir.Compression.PNG, width=256, height=288,
                           captured_at=WHEN, device=CaptureDevice(8, 0x33, 0x102),
                           quality=(QualityBlock(80, 15, 2),))


def test_finger_byte_exact() -> None:
    data = fir.encode([finger()])
    assert data == expected_finger()
    assert len(data) == 16 + 41 + 5 + len(IMG)  # general header + fixed representation fields


def test_finger_decodes_independent_bytes() -> None:
    rec = fir.decode(expected_finger())
    assert rec.representations == (finger(),)
    assert rec.fingers_present == 1 and not rec.certification_flag


def test_finger_certification_blocks_and_several_fingers() -> None:
    reps = [finger(), fir.FingerImage(position=fir.Position.LEFT_THUMB, image=b"w" * 9,
                                      compression=fir.Compression.WSQ, width=1, height=1,
                                      certifications=((0x1234, 1),))]
    data = fir.encode(reps, certification_flag=True)
    assert data[14:16] == b"\x01\x02"  # certification flag set, two fingers present
    second = data[16 + int.from_bytes(data[16:20], "big"):]
    # after length, date-time, device and one empty quality block: the cert block
    assert second[4 + 9 + 5:4 + 9 + 5 + 5] == b"\x00" + b"\x01" + b"\x12\x34\x01"
    assert fir.decode(data).representations == tuple(reps)
    with pytest.raises(RecordError):
        fir.encode(reps)  # cert blocks without the flag


def test_unknown_capture_time_is_all_ff() -> None:
    data = fir.encode([fir.FingerImage(position=1, image=b"", compression=0, width=0, height=0)])
    assert data[20:29] == b"\xff" * 9
    assert fir.decode(data).representations[0].captured_at is None


# --------------------------------------------------------------------------- face


def expected_face() -> bytes:
    rep = (
        WHEN_BYTES
        + b"\x02" + b"\x00\x10" + b"\x00\x20"     # device technology, vendor, type
        + b"\x00"                                 # no quality blocks
        + b"\x00\x01"                             # one landmark
        + b"\x01"                                 # gender male
        + b"\x03"                                 # eye colour
        + b"\x01"                                 # hair colour
        + b"\xaa"                                 # subject height
        + b"\x00\x00\x03"                         # property mask
        + b"\x00\x01"                             # expression neutral
        + b"\x00\x00\x00" + b"\x00\x00\x00"       # pose and uncertainty
        + b"\x01" + b"\x0c" + b"\x01\x00" + b"\x00\x80" + b"\x00\x00"  # landmark
        + b"\x01"                                 # face image type full frontal
        + b"\x00"                                 # image data type JPEG
        + b"\x01\xe0" + b"\x02\x80"               # 480 x 640
        + b"\x00"                                 # spatial sampling rate level
        + b"\x00\x00"                             # post-acquisition processing
        + b"\x00"                                 # cross reference
        + b"\x01"                                 # colour space
        + len(IMG).to_bytes(4, "big") + IMG
    )
    rep = (4 + len(rep)).to_bytes(4, "big") + rep
    return (b"FAC\x00" + b"030\x00" + (17 + len(rep)).to_bytes(4, "big") + b"\x00\x01" + b"\x00"
            + b"\x00\x00" + rep)


def face() -> fac.FaceImage:
    return fac.FaceImage(image=IMG, data_type=fac.ImageDataType.JPEG, width=480, height=640,
                         captured_at=WHEN, device=CaptureDevice(2, 0x10, 0x20),
                         gender=fac.Gender.MALE, eye_colour=3, hair_colour=1,
                         subject_height=0xAA, property_mask=3, expression=1,
                         landmarks=(fac.Landmark(1, 12, 256, 128, 0),), colour_space=1)


def test_face_byte_exact_and_decode() -> None:
    assert fac.encode([face()]) == expected_face()
    assert fac.decode(expected_face()).representations == (face(),)
    assert len(expected_face()) == 17 + 4 + 9 + 5 + 1 + 17 + 8 + 11 + 4 + len(IMG)


# --------------------------------------------------------------------------- iris


def expected_iris() -> bytes:
    rep = (
        WHEN_BYTES
        + b"\x03" + b"\x00\x44" + b"\x00\x01"
        + b"\x01" + pack(">BHH", 90, 1, 1)        # one quality block: 90
        + b"\x00\x01"                             # representation number
        + b"\x02"                                 # eye: left
        + b"\x03"                                 # image type: cropped
        + b"\x0e"                                 # format: mono PNG
        + b"\x00"                                 # properties
        + b"\x02\x80" + b"\x01\xe0"               # 640 x 480
        + b"\x08"                                 # bit depth
        + b"\xff\xff" * 3                         # range, roll angle, roll uncertainty unknown
        + b"\xff\xff" * 4                         # iris centre unknown
        + b"\x00\x78" + b"\x00\x8c"               # diameter 120..140
        + len(IMG).to_bytes(4, "big") + IMG
    )
    rep = (4 + len(rep)).to_bytes(4, "big") + rep
    return (b"IIR\x00" + b"020\x00" + (16 + len(rep)).to_bytes(4, "big") + b"\x00\x01" + b"\x00"
            + b"\x01" + rep)


def iris() -> iir.IrisImage:
    return iir.IrisImage(eye=iir.EyeLabel.LEFT, image=IMG, image_format=iir.ImageFormat.MONO_PNG,
                         width=640, height=480, captured_at=WHEN, device=CaptureDevice(3, 0x44, 1),
                         quality=(QualityBlock(90, 1, 1),), diameter=(120, 140))


def test_iris_byte_exact_and_decode() -> None:
    assert iir.encode([iris()]) == expected_iris()
    assert iir.decode(expected_iris()).representations == (iris(),)
    assert len(expected_iris()) == 16 + 4 + 9 + 5 + 6 + 2 + 27 + 4 + len(IMG)


# --------------------------------------------------------------------------- bad input

CODECS = [(fir, expected_finger), (fac, expected_face), (iir, expected_iris)]


@pytest.mark.parametrize(("codec", "good"), CODECS)
def test_every_truncation_and_extension_is_refused(codec: object, good: object) -> None:
    data: bytes = good()  # type: ignore[operator]
    for cut in range(len(data)):
        with pytest.raises(RecordError):
            codec.decode(data[:cut])  # type: ignore[attr-defined]
    with pytest.raises(RecordError):
        codec.decode(data + b"\0")  # type: ignore[attr-defined]


@pytest.mark.parametrize(("codec", "good"), CODECS)
def test_bad_headers(codec: object, good: object) -> None:
    data = bytearray(good())  # type: ignore[operator]
    for pos, value in ((0, 0x58), (5, 0x39), (14, 2)):
        bad = bytearray(data)
        bad[pos] = value
        with pytest.raises(RecordError):
            codec.decode(bytes(bad))  # type: ignore[attr-defined]
    # The first representation's length field pointing past the end, or below its own size.
    hdr = 16 if codec is not fac else 17
    for rep_len in (len(data), 3, 20):
        bad = bytearray(data)
        bad[hdr:hdr + 4] = rep_len.to_bytes(4, "big")
        with pytest.raises(RecordError):
            codec.decode(bytes(bad))  # type: ignore[attr-defined]


def test_bad_field_values_are_refused_before_encoding() -> None:
    with pytest.raises(RecordError):
        QualityBlock(101)
    with pytest.raises(RecordError):
        fir.FingerImage(position=256, image=b"", compression=0, width=0, height=0)
    with pytest.raises(RecordError):
        fac.FaceImage(image=b"", data_type=0, width=70000, height=1)
    with pytest.raises(RecordError):
        iir.IrisImage(eye=1, image=b"", image_format=0x0E, width=1, height=1, roll_angle=-1)
    with pytest.raises(RecordError):
        fir.encode([])
    with pytest.raises(RecordError):
        fir.encode([fir.FingerImage(position=1, image=b"", compression=0, width=0, height=0,
                                    captured_at=datetime(2026, 1, 1))])  # naive time


def test_invalid_date_in_record() -> None:
    data = bytearray(expected_finger())
    data[22] = 13  # month 13
    with pytest.raises(RecordError):
        fir.decode(bytes(data))


# --------------------------------------------------------------------------- round trips

u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
times = st.none() | st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1),
                                 timezones=st.just(UTC)).map(lambda d: d.replace(
                                     microsecond=d.microsecond // 1000 * 1000))
devices = st.builds(CaptureDevice, u8, u16, u16)
qualities = st.lists(st.builds(QualityBlock, st.integers(0, 100) | st.just(255), u16, u16),
                     max_size=3).map(tuple)
certs = st.lists(st.tuples(u16, u8), max_size=2).map(tuple)


@given(st.lists(st.builds(fir.FingerImage, position=u8, image=st.binary(max_size=64),
                          compression=u8, width=u16, height=u16, captured_at=times,
                          device=devices, quality=qualities, certifications=certs,
                          capture_ppi=st.tuples(u16, u16), bit_depth=u8, impression=u8,
                          extended=st.binary(max_size=8)), min_size=1, max_size=3))
def test_finger_round_trip(reps: list[fir.FingerImage]) -> None:
    assert fir.decode(fir.encode(reps, certification_flag=True)).representations == tuple(reps)


@given(st.lists(st.builds(fac.FaceImage, image=st.binary(max_size=64), data_type=u8, width=u16,
                          height=u16, captured_at=times, device=devices, quality=qualities,
                          gender=u8, property_mask=st.integers(0, (1 << 24) - 1),
                          expression=u16, pose=st.tuples(u8, u8, u8),
                          landmarks=st.lists(st.builds(fac.Landmark, u8, u8, u16, u16, u16),
                                             max_size=3).map(tuple)),
                min_size=1, max_size=3), u16)
def test_face_round_trip(reps: list[fac.FaceImage], temporal: int) -> None:
    rec = fac.decode(fac.encode(reps, temporal_semantics=temporal))
    assert rec.representations == tuple(reps) and rec.temporal_semantics == temporal


@given(st.lists(st.builds(iir.IrisImage, eye=u8, image=st.binary(max_size=64), image_format=u8,
                          width=u16, height=u16, captured_at=times, device=devices,
                          quality=qualities, certifications=certs, roll_angle=u16,
                          centre_x=st.tuples(u16, u16), diameter=st.tuples(u16, u16)),
                min_size=1, max_size=3))
def test_iris_round_trip(reps: list[iir.IrisImage]) -> None:
    assert iir.decode(iir.encode(reps, certification_flag=True)).representations == tuple(reps)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_record_error(data: bytes) -> None:
    for codec in (fir, fac, iir):
        try:
            codec.decode(data)
        except RecordError:
            pass
        try:
            codec.decode(codec.MAGIC + codec.VERSION + (len(data) + 8).to_bytes(4, "big") + data)
        except RecordError:
            pass


# --------------------------------------------------------------------------- images inside


def ridge_image(w: int = 256, h: int = 288) -> Image.Image:
    """A synthetic, fingerprint-like ridge pattern (no real biometrics)."""
    y, x = np.mgrid[0:h, 0:w]
    r = np.hypot(x - w / 2, y - h / 2)
    return Image.fromarray((127 + 100 * np.sin(r / 3.0)).astype("uint8"), "L")


def test_wsq_finger_in_record_round_trip() -> None:
    assert wsq.wsq_available()  # installed in this environment (pyproject extra "wsq")
    img = ridge_image()
    data, code = wsq.compress_finger(img)
    assert code == fir.Compression.WSQ and data[:2] == b"\xff\xa0"  # WSQ start-of-image marker
    rec = fir.decode(fir.encode([fir.FingerImage(position=1, image=data, compression=code,
                                                 width=img.width, height=img.height)]))
    back = wsq.decompress_finger(rec.representations[0].image, rec.representations[0].compression)
    assert back.size == img.size
    err = np.abs(np.asarray(back, dtype=int) - np.asarray(img, dtype=int)).mean()
    assert err < 10  # lossy, but the same picture


def test_png_fallback_is_lossless_and_says_so() -> None:
    img = ridge_image(64, 64)
    data, code = wsq.compress_finger(img, prefer_wsq=False)
    assert code == fir.Compression.PNG and int(code) == 6 and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.asarray(wsq.decompress_finger(data, code)), np.asarray(img))


def test_decompress_refuses_mismatch_and_garbage() -> None:
    png, _ = wsq.compress_finger(ridge_image(32, 32), prefer_wsq=False)
    with pytest.raises(RecordError):
        wsq.decompress_finger(png, fir.Compression.WSQ)
    with pytest.raises(RecordError):
        wsq.decompress_finger(b"\xff\xa0garbage", fir.Compression.WSQ)
    with pytest.raises(RecordError):
        wsq.decompress_finger(png, 99)
    with pytest.raises(RecordError):
        wsq.decompress_finger(png, fir.Compression.NONE)


def test_face_jpeg_and_iris_png_payloads_decode() -> None:
    rgb = Image.merge("RGB", [ridge_image(48, 64)] * 3)
    jpg = io.BytesIO()
    rgb.save(jpg, "JPEG", quality=85)
    rec = fac.decode(fac.encode([fac.FaceImage(image=jpg.getvalue(), data_type=0, width=48,
                                               height=64)]))
    assert Image.open(io.BytesIO(rec.representations[0].image)).format == "JPEG"
    png = io.BytesIO()
    ridge_image(64, 48).save(png, "PNG")
    rec6 = iir.decode(iir.encode([iir.IrisImage(eye=1, image=png.getvalue(),
                                                image_format=iir.ImageFormat.MONO_PNG,
                                                width=64, height=48)]))
    assert Image.open(io.BytesIO(rec6.representations[0].image)).size == (64, 48)
