"""The real camera driver against the in-process fake V4L2 hardware (and a real camera, if marked)."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator

import pytest
from PIL import Image

from drivers.base import Device
from drivers.camera import v4l2
from drivers.camera.driver import V4l2Camera
from drivers.camera.picker import BestFramePicker, Frame, sharpness
from drivers.emulators.camera import (
    FakeUvcCamera,
    Portrait,
    PortraitSource,
    encode_jpeg,
    render_portrait,
)
from drivers.errors import (
    DeviceFaultError,
    DeviceMissingError,
    DeviceProtocolError,
    DeviceTimeoutError,
    UserRetryError,
)

SMALL = ((320, 240), (640, 480))


def make(hw: FakeUvcCamera, **kwargs: object) -> V4l2Camera:
    opts: dict[str, object] = {"width": 640, "height": 480, "timeout_s": 1.0}
    opts.update(kwargs)
    return V4l2Camera("/dev/video0", syscalls=hw, emulated=True, **opts)  # type: ignore[arg-type]


@pytest.fixture
def hw() -> Iterator[FakeUvcCamera]:
    fake = FakeUvcCamera(PortraitSource(), fps=200.0, sizes=SMALL)
    yield fake
    # a test that leaves the device open or mapped fails here
    assert not fake.open_fds, "camera left open"
    assert fake.mapped == 0, "buffers left mapped"


def test_open_identify_and_formats(hw: FakeUvcCamera) -> None:
    cam = make(hw)
    assert isinstance(cam, Device)
    cam.open()
    try:
        ident = cam.identify()
        assert ident.kind == "camera" and ident.make == "uvcvideo" and ident.emulated
        assert ident.model == "Rekam Emulated UVC Camera"
        assert ident.evidence == "public protocol"
        assert [f.fourcc for f in cam.available_formats] == ["MJPG", "YUYV"]
        assert cam.available_formats[0].sizes == SMALL
        assert (cam.width, cam.height, v4l2.fourcc_str(cam.pixfmt)) == (640, 480, "MJPG")
        assert len(cam.frame_log) > 0
        assert all("frame" not in s or "bytes" in s for _, s in cam.frame_log)
    finally:
        cam.close()
        cam.close()  # twice is safe


def test_nearest_size_when_the_wanted_one_is_missing(hw: FakeUvcCamera) -> None:
    cam = make(hw, width=1920, height=1080)
    cam.open()
    assert (cam.width, cam.height) == (640, 480)
    cam.close()


def test_controls_range_checked(hw: FakeUvcCamera) -> None:
    cam = make(hw, controls={"brightness": 140})
    cam.open()
    try:
        assert cam.get_control("brightness") == 140
        ctrls = cam.controls()
        assert {"brightness", "white_balance_temperature", "exposure_time_absolute"} <= set(ctrls)
        assert "gain" not in ctrls  # this camera has no gain control
        cam.set_control("white_balance_temperature", 5000)
        assert cam.get_control("white_balance_temperature") == 5000
        with pytest.raises(DeviceFaultError) as err:
            cam.set_control("brightness", 999)
        assert err.value.code == "RANGE"
        with pytest.raises(DeviceFaultError):
            cam.set_control("gain", 1)
        with pytest.raises(ValueError):
            cam.query_control("zoom")
    finally:
        cam.close()


def test_capture_best_picks_the_sharp_frame(hw: FakeUvcCamera) -> None:
    hw.source = PortraitSource(blur_sequence=(6.0, 4.0, 0.0, 3.0, 8.0))
    cam = make(hw)
    try:
        cap = cam.capture_best(frames=5, keep=5)
    finally:
        cam.close()
    assert cap.frame.sequence % 5 == 2
    assert cap.considered == 5 and cap.rejected == 0
    assert cap.frame.to_image().size == (640, 480)


def test_frames_stream_and_stop_cleanly(hw: FakeUvcCamera) -> None:
    cam = make(hw)
    stop = threading.Event()
    seqs = []
    for frame in cam.frames(stop=stop):
        seqs.append(frame.sequence)
        assert frame.data[:2] == b"\xff\xd8"  # JPEG SOI
        if len(seqs) == 12:
            stop.set()
    assert seqs == list(range(12))
    # streaming stopped: the fake saw STREAMOFF, buffers can be requested again
    assert hw.ioctl_log[-1] == "VIDIOC_STREAMOFF"
    assert len(list(cam.preview(max_frames=2))) == 2
    cam.close()


def test_yuyv_stream(hw: FakeUvcCamera) -> None:
    cam = make(hw, formats=("YUYV",))
    try:
        cap = cam.capture_best(frames=3, keep=2)
    finally:
        cam.close()
    assert cap.frame.fourcc == "YUYV"
    assert len(cap.frame.data) == 640 * 480 * 2
    img = cap.frame.to_image()
    # the background of the synthetic portrait is blue: the corner decodes blue
    r, g, b = img.getpixel((5, 5))  # type: ignore[misc]
    assert b > 150 and r < 80
    previews = list(make_preview(cam))
    assert Image.open(io.BytesIO(previews[0])).size[0] <= 640
    cam.close()


def make_preview(cam: V4l2Camera) -> Iterator[bytes]:
    yield from cam.preview(max_frames=1, size=(160, 120))


def test_vanish_mid_stream_is_device_missing(hw: FakeUvcCamera) -> None:
    cam = make(hw)
    with pytest.raises(DeviceMissingError) as err:
        for n, _ in enumerate(cam.frames()):
            if n == 3:
                hw.vanish()
    assert err.value.hint_en
    cam.close()
    with pytest.raises(DeviceMissingError):
        make(hw).open()
    result = make(hw).self_test()
    assert not result.ok


def test_health_probe_notices_an_idle_unplug(hw: FakeUvcCamera) -> None:
    cam = make(hw)
    with pytest.raises(DeviceMissingError):
        cam.health()  # not open
    cam.open()
    cam.health()
    hw.vanish()
    with pytest.raises(DeviceMissingError):
        cam.health()
    cam.close()


def test_stall_is_a_bounded_timeout(hw: FakeUvcCamera) -> None:
    cam = make(hw, timeout_s=0.2)
    gen = cam.frames()
    next(gen)
    hw.stall()
    with pytest.raises(DeviceTimeoutError):
        next(gen)
    gen.close()
    cam.close()


def test_dark_frames_ask_the_user_to_retry(hw: FakeUvcCamera) -> None:
    cam = make(hw, controls={"brightness": 0})
    with pytest.raises(UserRetryError) as err:
        cam.capture_best(frames=2, keep=2)
    assert "lensa" in err.value.hint_id
    cam.close()


def test_blurred_frames_ask_the_user_to_retry(hw: FakeUvcCamera) -> None:
    hw.source = PortraitSource(Portrait(blur=10.0))
    cam = make(hw, min_sharpness=50.0)
    with pytest.raises(UserRetryError) as err:
        cam.capture_best(frames=3, keep=2)
    assert err.value.hint("id").startswith("Lihat ke kamera")
    cam.close()


def test_corrupt_frames_are_skipped_and_all_corrupt_is_a_protocol_error(hw: FakeUvcCamera) -> None:
    good = PortraitSource()

    def flaky(w: int, h: int, fmt: int, n: int, ctl: dict[int, int]) -> bytes:
        return good(w, h, fmt, n, ctl) if n % 2 else b"\xff\xd8garbage" * 10

    hw.source = flaky
    cam = make(hw)
    cap = cam.capture_best(frames=4, keep=4)
    assert cap.rejected == 2 and cap.frame.sequence % 2 == 1
    hw.source = lambda w, h, fmt, n, ctl: b"not a jpeg"
    with pytest.raises(DeviceProtocolError):
        cam.capture_best(frames=3, keep=3)
    cam.close()


def test_cancelled_capture_is_a_user_retry(hw: FakeUvcCamera) -> None:
    cam = make(hw)
    stop = threading.Event()
    stop.set()
    with pytest.raises(UserRetryError, match="cancelled"):
        cam.capture_best(frames=3, stop=stop)
    cam.close()


def test_busy_camera_is_a_fault_with_hint(hw: FakeUvcCamera) -> None:
    hw.busy = True
    with pytest.raises(DeviceFaultError) as err:
        make(hw).open()
    assert err.value.code == "EBUSY" and "aplikasi" in err.value.hint_id


def test_missing_path(hw: FakeUvcCamera) -> None:
    cam = V4l2Camera("/dev/video9", syscalls=hw)
    with pytest.raises(DeviceMissingError):
        cam.open()
    with pytest.raises(DeviceMissingError):
        cam.identify()


def test_self_test_returns_png(hw: FakeUvcCamera) -> None:
    cam = make(hw)
    result = cam.self_test()
    cam.close()
    assert result.ok, result.steps
    assert result.image_png is not None
    assert Image.open(io.BytesIO(result.image_png)).format == "PNG"


def test_buffers_bound() -> None:
    with pytest.raises(ValueError):
        V4l2Camera(buffers=8)


# ------------------------------------------------------------------ picker


def jpeg_frame(img: Image.Image, seq: int = 0) -> Frame:
    return Frame(encode_jpeg(img), v4l2.V4L2_PIX_FMT_MJPEG, img.width, img.height, seq, 0.0)


def test_picker_keeps_at_most_n_and_prefers_sharp() -> None:
    sharp = render_portrait(320, 240, Portrait())
    blurred = render_portrait(320, 240, Portrait(blur=8))
    picker = BestFramePicker(keep=3)
    for i in range(10):
        picker.offer(jpeg_frame(blurred, i))
        assert len(picker) <= 3
    picker.offer(jpeg_frame(sharp, 99))
    best = picker.best()
    assert best is not None and best[0].sequence == 99
    assert sharpness(jpeg_frame(sharp)) > 2 * sharpness(jpeg_frame(blurred))
    with pytest.raises(ValueError):
        BestFramePicker(keep=0)
    assert BestFramePicker().best() is None


def strip_dht(jpeg: bytes) -> bytes:
    """Remove every DHT (0xFFC4) segment, as many UVC cameras send MJPEG frames."""
    out = bytearray(jpeg[:2])
    i = 2
    while i < len(jpeg):
        marker = jpeg[i + 1]
        length = int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if marker == 0xDA:  # start of scan: the rest is entropy-coded data
            out += jpeg[i:]
            break
        if marker != 0xC4:
            out += jpeg[i : i + 2 + length]
        i += 2 + length
    return bytes(out)


def test_frame_repr_never_shows_image_bytes() -> None:
    frame = jpeg_frame(render_portrait(64, 48, Portrait()))
    text = repr(frame)
    assert "MJPG 64x48" in text and "\\x" not in text and "JFIF" not in text


def test_dht_less_mjpeg_frame_decodes() -> None:
    img = render_portrait(320, 240, Portrait())
    raw = strip_dht(encode_jpeg(img))
    assert b"\xff\xc4" not in raw.split(b"\xff\xda")[0]
    frame = Frame(raw, v4l2.V4L2_PIX_FMT_MJPEG, 320, 240, 0, 0.0)
    assert sharpness(frame) > 0
    assert frame.to_image().size == (320, 240)


@pytest.mark.hardware
def test_real_camera() -> None:
    path = os.environ.get("REKAM_CAMERA", "/dev/video0")
    cam = V4l2Camera(path, width=1280, height=720)
    try:
        cam.open()
        assert cam.identify().kind == "camera"
        cap = cam.capture_best(frames=10, keep=4)
        assert cap.frame.to_image().width > 0
    finally:
        cam.close()
