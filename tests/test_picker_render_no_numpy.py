"""The camera picker and the signature renderer without numpy: same values as array arithmetic.

The daemon scores frames (drivers/camera/picker.py) and measures signatures
(drivers/signature/render.py) in Pillow's C operations so that it never imports numpy (issue 7).
These tests compare each value with the numpy arithmetic the modules used before, on emulator
frames and pen traces and on random images, test the bad-input paths, and check in a fresh
interpreter that numpy stays out of sys.modules.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from drivers.camera import v4l2
from drivers.camera.picker import (
    BestFramePicker,
    Frame,
    GreyImage,
    laplacian_variance,
    reduced_grey,
    sharpness,
    yuyv_to_image,
)
from drivers.emulators.camera import Portrait, encode_jpeg, encode_yuyv, render_portrait
from drivers.emulators.signature import (
    TabletSpec,
    pack_events,
    pen_strokes_events,
    signature_strokes,
)
from drivers.signature.render import ink_extent, ink_share, render_strokes
from firmware_protocols.evdev import AbsRange, EvdevDecoder, Stroke, StrokeAssembler

ROOT = Path(__file__).resolve().parents[1]
MJPG, YUYV = v4l2.V4L2_PIX_FMT_MJPEG, v4l2.V4L2_PIX_FMT_YUYV


def ref_laplacian_variance(a: np.ndarray) -> float:
    """The Laplacian variance in float64 (the old float32 code, without its rounding)."""
    a = a.astype(np.float64)
    if a.shape[0] < 3 or a.shape[1] < 3:
        return 0.0
    lap = 4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]
    return float(lap.var())


def ref_yuyv_to_rgb(data: bytes, width: int, height: int) -> np.ndarray:
    """The old numpy YUYV -> RGB conversion."""
    raw = np.frombuffer(data, dtype=np.uint8, count=width * height * 2).reshape(height, width * 2)
    ycc = np.empty((height, width, 3), dtype=np.uint8)
    ycc[:, :, 0] = raw[:, 0::2]
    ycc[:, :, 1] = np.repeat(raw[:, 1::4], 2, axis=1)
    ycc[:, :, 2] = np.repeat(raw[:, 3::4], 2, axis=1)
    return np.asarray(Image.fromarray(ycc, "YCbCr").convert("RGB"))


def frame(data: bytes, pixfmt: int, w: int, h: int) -> Frame:
    return Frame(data, pixfmt, w, h, 0, 0.0)


@pytest.mark.parametrize("size", [(3, 3), (4, 7), (37, 23), (320, 240)])
def test_laplacian_variance_is_exact_on_random_images(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(size[0] * 1000 + size[1])
    for a in (rng.integers(0, 256, size[::-1], dtype=np.uint8),  # full range: values +-1020
              rng.integers(100, 110, size[::-1], dtype=np.uint8),
              np.full(size[::-1], 77, dtype=np.uint8)):
        got = laplacian_variance(Image.fromarray(a))
        assert got == pytest.approx(ref_laplacian_variance(a), rel=1e-12, abs=1e-9)


@st.composite
def grey_arrays(draw: st.DrawFn) -> np.ndarray:
    """Small 8-bit images: any size from 0x0, pixels either anywhere or in a narrow band."""
    w, h = draw(st.integers(0, 12)), draw(st.integers(0, 12))
    lo = draw(st.integers(0, 255))
    hi = draw(st.integers(lo, 255))
    pixels = draw(st.lists(st.integers(lo, hi), min_size=w * h, max_size=w * h))
    return np.array(pixels, dtype=np.uint8).reshape(h, w)


@given(grey_arrays())
def test_laplacian_variance_and_ink_equal_the_array_arithmetic(a: np.ndarray) -> None:
    img = Image.fromarray(a, "L") if a.size else Image.new("L", a.shape[::-1])
    assert laplacian_variance(img) == pytest.approx(ref_laplacian_variance(a), rel=1e-12, abs=1e-9)
    share, extent = _ref_ink(img)
    assert ink_share(img) == share and ink_extent(img) == extent


def test_laplacian_variance_of_tiny_images_is_zero() -> None:
    for size in [(2, 10), (10, 2), (0, 0), (1, 1)]:
        assert laplacian_variance(Image.new("L", size, 9)) == 0.0


def test_laplacian_variance_accepts_grey_image_and_other_modes() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    img = Image.fromarray(a)
    want = laplacian_variance(img)
    assert laplacian_variance(GreyImage(img)) == want
    assert laplacian_variance(img.convert("I")) == want
    assert laplacian_variance(Image.merge("RGB", (img, img, img))) == want
    wide = rng.integers(0, 65536, (30, 20)).astype(np.int32)  # 16-bit: a Laplacian of +-262140
    got = laplacian_variance(Image.fromarray(wide).convert("I"))
    assert got == pytest.approx(ref_laplacian_variance(wide), rel=1e-12)
    with pytest.raises(ValueError, match=r"pixel values -1\.\.65535 outside 0\.\.65535"):
        laplacian_variance(Image.fromarray(np.array([[-1] * 3, [0] * 3, [65535] * 3], dtype=np.int32)))


@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (1920, 1080)])
def test_emulator_frames_score_as_the_arrays_did(size: tuple[int, int]) -> None:
    w, h = size
    for blur in (0.0, 2.0):
        img = render_portrait(w, h, Portrait(blur=blur, seed=3))
        jpeg, yuyv = encode_jpeg(img), encode_yuyv(img)
        # MJPEG: the same draft decode, so the same pixels.
        grey = reduced_grey(frame(jpeg, MJPG, w, h))
        ref = Image.open(io.BytesIO(jpeg))
        ref.draft("L", (320, 240))
        ref_a = np.asarray(ref.convert("L"))
        assert np.array_equal(np.asarray(grey.image), ref_a) and grey.shape == ref_a.shape
        assert grey.mean() == pytest.approx(float(ref_a.mean()), rel=1e-12)
        assert sharpness(frame(jpeg, MJPG, w, h)) == pytest.approx(ref_laplacian_variance(ref_a), rel=1e-12)
        # YUYV: the strided luma sample of the old array slicing.
        step = max(1, min(w // 320, h // 240))
        raw = np.frombuffer(yuyv, dtype=np.uint8).reshape(h, -1)
        ref_y = raw[::step, 0 :: 2 * step]
        grey = reduced_grey(frame(yuyv, YUYV, w, h))
        assert np.array_equal(np.asarray(grey.image), ref_y) and grey.shape == ref_y.shape
        assert grey.mean() == pytest.approx(float(ref_y.mean()), rel=1e-12)
        assert sharpness(frame(yuyv, YUYV, w, h)) == pytest.approx(ref_laplacian_variance(ref_y), rel=1e-12)


def test_yuyv_to_image_equals_the_array_conversion() -> None:
    rng = np.random.default_rng(11)
    for w, h in [(640, 480), (38, 7), (2, 1)]:
        data = rng.integers(0, 256, w * h * 2, dtype=np.uint8).tobytes()
        got = yuyv_to_image(data, w, h)
        assert got.mode == "RGB" and got.size == (w, h)
        assert np.array_equal(np.asarray(got), ref_yuyv_to_rgb(data, w, h))
    f = frame(encode_yuyv(render_portrait(640, 480)), YUYV, 640, 480)
    assert np.array_equal(np.asarray(f.to_image()), ref_yuyv_to_rgb(f.data, 640, 480))


def test_bad_frames_are_clear_errors_and_the_picker_keeps_the_good_ones() -> None:
    good = frame(encode_jpeg(render_portrait(640, 480)), MJPG, 640, 480)
    short = frame(b"\x80" * (640 * 480 * 2 - 1), YUYV, 640, 480)
    garbage = frame(b"\xff\xd8 not a jpeg", MJPG, 640, 480)
    other = frame(b"\0" * 16, v4l2.fourcc("GREY"), 4, 4)
    with pytest.raises(ValueError, match="short YUYV frame"):
        reduced_grey(short)
    with pytest.raises(ValueError, match="short YUYV frame"):
        yuyv_to_image(short.data, 640, 480)
    with pytest.raises(ValueError, match="undecodable MJPEG frame"):
        reduced_grey(garbage)
    with pytest.raises(ValueError, match="unsupported pixel format"):
        reduced_grey(other)
    picker = BestFramePicker(keep=4)
    assert picker.offer(good) is not None
    for bad in (short, garbage, other):
        assert picker.offer(bad) is None
    assert picker.rejected == 3 and len(picker) == 1
    best = picker.best()
    assert best is not None and best[0] is good


def test_grey_image_of_nothing() -> None:
    empty = GreyImage(Image.new("L", (0, 0)))
    assert empty.mean() == 0.0 and empty.shape == (0, 0)
    assert "0x0" in repr(empty)


def _emulator_strokes(scale: float, points: int, spec: TabletSpec) -> list[Stroke]:
    """Pen traces from the emulated tablet, decoded as the pad decodes them."""
    events = EvdevDecoder("64").feed(pack_events(pen_strokes_events(signature_strokes(scale, points), spec)))
    assembler = StrokeAssembler()
    assembler.feed(events)
    assembler.finish()
    return list(assembler.strokes)


def _ref_ink(img: Image.Image) -> tuple[float, tuple[float, float]]:
    a = np.asarray(img.convert("L"))
    share = float((a < 128).mean()) if a.size else 0.0
    ink = a < 128
    if not ink.any():
        return share, (0.0, 0.0)
    cols = np.nonzero(ink.any(axis=0))[0]
    rows = np.nonzero(ink.any(axis=1))[0]
    return share, (float((cols[-1] - cols[0] + 1) / ink.shape[1]), float((rows[-1] - rows[0] + 1) / ink.shape[0]))


@pytest.mark.parametrize("scale,points,box", [(0.8, 120, (600, 200)), (0.3, 60, (600, 200)),
                                              (1.0, 400, (300, 100)), (0.05, 20, (600, 200))])
def test_ink_measures_equal_the_array_arithmetic(scale: float, points: int, box: tuple[int, int]) -> None:
    spec = TabletSpec()
    strokes = _emulator_strokes(scale, points, spec)
    img = render_strokes(strokes, AbsRange(0, spec.x_max), AbsRange(0, spec.y_max), box,
                         AbsRange(0, spec.pressure_max))
    share, extent = _ref_ink(img)
    assert ink_share(img) == share and ink_extent(img) == extent
    assert share > 0


def test_ink_measures_of_blank_empty_and_colour_images() -> None:
    for img in (Image.new("L", (60, 20), 255), Image.new("L", (0, 0)), Image.new("L", (5, 0))):
        assert ink_share(img) == 0.0 and ink_extent(img) == (0.0, 0.0)
    rgb = Image.new("RGB", (10, 10), (255, 255, 255))
    rgb.putpixel((2, 3), (0, 0, 0))
    rgb.putpixel((6, 8), (120, 120, 120))  # grey 120 < 128: ink
    assert ink_share(rgb) == _ref_ink(rgb)[0] == 0.02
    assert ink_extent(rgb) == _ref_ink(rgb)[1] == (0.5, 0.6)


def test_scoring_and_ink_run_without_numpy(tmp_path: Path) -> None:
    """A fresh interpreter scores MJPEG and YUYV frames and measures a signature; no numpy."""
    img = render_portrait(640, 480, Portrait(blur=1.0))
    (tmp_path / "f.jpg").write_bytes(encode_jpeg(img))
    (tmp_path / "f.yuyv").write_bytes(encode_yuyv(img))
    want = [sharpness(frame(encode_jpeg(img), MJPG, 640, 480)),
            sharpness(frame(encode_yuyv(img), YUYV, 640, 480))]
    spec = TabletSpec()
    sig = render_strokes(_emulator_strokes(0.8, 120, spec), AbsRange(0, spec.x_max), AbsRange(0, spec.y_max),
                         (600, 200), AbsRange(0, spec.pressure_max))
    code = f"""
import sys
from pathlib import Path
from drivers.camera import v4l2
from drivers.camera.picker import BestFramePicker, Frame, reduced_grey
from drivers.emulators.signature import TabletSpec, pack_events, pen_strokes_events, signature_strokes
from drivers.signature.render import ink_extent, ink_share, render_strokes, to_png
from firmware_protocols.evdev import AbsRange, EvdevDecoder, StrokeAssembler
d = Path({str(tmp_path)!r})
picker = BestFramePicker()
scores = [picker.offer(Frame(d.joinpath("f.jpg").read_bytes(), v4l2.V4L2_PIX_FMT_MJPEG, 640, 480, 0, 0.0)),
          picker.offer(Frame(d.joinpath("f.yuyv").read_bytes(), v4l2.V4L2_PIX_FMT_YUYV, 640, 480, 1, 0.0))]
best = picker.best()
assert best is not None
reduced_grey(best[0]).mean()
best[0].to_image()
spec = TabletSpec()
events = EvdevDecoder("64").feed(pack_events(pen_strokes_events(signature_strokes(0.8, 120), spec)))
asm = StrokeAssembler()
asm.feed(events)
asm.finish()
img = render_strokes(asm.strokes, AbsRange(0, spec.x_max), AbsRange(0, spec.y_max), (600, 200),
                     AbsRange(0, spec.pressure_max))
to_png(img)
print(repr((scores, ink_share(img), ink_extent(img))))
assert "numpy" not in sys.modules, sorted(m for m in sys.modules if m.startswith("numpy"))[:5]
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == repr((want, ink_share(sig), ink_extent(sig)))
