"""The camera driver requests the configured frame rate (VIDIOC_S_PARM) and keeps what the
camera granted; the emulated camera honours it like uvcvideo does."""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator

import pytest

from drivers.camera import v4l2
from drivers.emulators.camera import FakeUvcCamera, PortraitSource
from tests.test_camera_driver import SMALL, make  # the driver tests' way to build the camera

LOGGER = "drivers.camera.driver"


class NoParmCamera(FakeUvcCamera):
    """A camera whose driver answers neither G_PARM nor S_PARM (ENOTTY)."""

    _vidioc_g_parm = None  # type: ignore[assignment]
    _vidioc_s_parm = None  # type: ignore[assignment]


class FixedRateCamera(FakeUvcCamera):
    """A camera that reports its interval but does not let it be set (no TIMEPERFRAME)."""

    def _vidioc_g_parm(self, arg: bytearray) -> None:
        super()._vidioc_g_parm(arg)
        v4l2.v4l2_streamparm.from_buffer(arg).parm.capture.capability = 0


@pytest.fixture
def hw() -> Iterator[FakeUvcCamera]:
    """A fast fake camera (200 fps nominal); fails the test if it is left open or mapped."""
    fake = FakeUvcCamera(PortraitSource(), fps=200.0, sizes=SMALL)
    yield fake
    assert not fake.open_fds and fake.mapped == 0, "camera left open"


def test_without_a_configured_rate_the_camera_keeps_its_own(hw: FakeUvcCamera) -> None:
    cam = make(hw)
    cam.open()
    try:
        assert cam.fps == 200.0
        assert "VIDIOC_G_PARM" in hw.ioctl_log and "VIDIOC_S_PARM" not in hw.ioctl_log
        assert hw.fps == 200.0
    finally:
        cam.close()


def test_the_configured_rate_is_requested_after_the_format_and_granted(
        hw: FakeUvcCamera) -> None:
    cam = make(hw, fps=25)
    cam.open()
    try:
        assert cam.fps == 25.0 and hw.fps == 25.0
        log = list(hw.ioctl_log)
        assert log.index("VIDIOC_S_FMT") < log.index("VIDIOC_S_PARM") < log.index("VIDIOC_REQBUFS")
        assert len(list(cam.frames(max_frames=2))) == 2  # streams at the granted rate
    finally:
        cam.close()


def test_ntsc_style_rate_round_trips_through_the_fraction(hw: FakeUvcCamera) -> None:
    cam = make(hw, fps=29.97)
    cam.open()
    try:
        assert cam.fps == pytest.approx(29.97)
    finally:
        cam.close()


def test_a_rate_the_camera_cannot_do_is_read_back_and_logged(
        hw: FakeUvcCamera, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    cam = make(hw, fps=500)
    cam.open()
    try:
        assert cam.fps == 200.0  # what the camera granted, not what was asked
        assert any("asked 500 fps, granted 200" in r.getMessage() for r in caplog.records)
        assert any("at 200 fps" in r.getMessage() for r in caplog.records)
    finally:
        cam.close()


def test_a_camera_without_parm_support_still_streams(
        caplog: pytest.LogCaptureFixture) -> None:
    hw = NoParmCamera(PortraitSource(), fps=200.0, sizes=SMALL)
    caplog.set_level(logging.INFO, logger=LOGGER)
    cam = make(hw, fps=30)
    cam.open()
    try:
        assert cam.fps is None
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "cannot read its frame rate" in warnings[0].getMessage()
        assert len(list(cam.frames(max_frames=1))) == 1
    finally:
        cam.close()
    assert not hw.open_fds


def test_a_camera_with_a_fixed_rate_is_not_asked_to_change_it(
        caplog: pytest.LogCaptureFixture) -> None:
    hw = FixedRateCamera(PortraitSource(), fps=200.0, sizes=SMALL)
    caplog.set_level(logging.INFO, logger=LOGGER)
    cam = make(hw, fps=30)
    cam.open()
    try:
        assert cam.fps == 200.0 and hw.fps == 200.0
        assert "VIDIOC_S_PARM" not in hw.ioctl_log
        assert any("cannot set its frame rate; streams at 200 fps" in r.getMessage()
                   for r in caplog.records)
    finally:
        cam.close()


@pytest.mark.parametrize("bad", [0, -5, 2e6, float("nan")])
def test_a_nonsense_rate_is_refused_before_anything_opens(
        hw: FakeUvcCamera, bad: float) -> None:
    with pytest.raises(ValueError, match="fps must be a number"):
        make(hw, fps=bad)
    assert not hw.ioctl_log


def _parm(numerator: int, denominator: int, kind: int = v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE
          ) -> v4l2.v4l2_streamparm:
    parm = v4l2.v4l2_streamparm()
    parm.type = kind
    parm.parm.capture.timeperframe.numerator = numerator
    parm.parm.capture.timeperframe.denominator = denominator
    return parm


def test_emulator_s_parm_like_uvcvideo(hw: FakeUvcCamera) -> None:
    fd = hw.open("/dev/video0")
    try:
        got = v4l2.call(hw, fd, v4l2.VIDIOC_S_PARM, _parm(1, 10)).parm.capture
        assert (got.timeperframe.numerator, got.timeperframe.denominator) == (1, 10)
        assert got.capability & v4l2.V4L2_CAP_TIMEPERFRAME
        # A zero interval asks for the nominal rate; a too-slow one is clamped to 1 fps.
        got = v4l2.call(hw, fd, v4l2.VIDIOC_S_PARM, _parm(0, 0)).parm.capture
        assert (got.timeperframe.numerator, got.timeperframe.denominator) == (1, 200)
        got = v4l2.call(hw, fd, v4l2.VIDIOC_S_PARM, _parm(3600, 1)).parm.capture
        assert (got.timeperframe.numerator, got.timeperframe.denominator) == (1, 1)
        with pytest.raises(OSError) as exc:
            v4l2.call(hw, fd, v4l2.VIDIOC_S_PARM, _parm(1, 30, kind=2))  # not capture
        assert exc.value.errno == errno.EINVAL
        g = v4l2.call(hw, fd, v4l2.VIDIOC_G_PARM, _parm(0, 0)).parm.capture
        assert (g.timeperframe.numerator, g.timeperframe.denominator) == (1, 1)
    finally:
        hw.close(fd)


def test_a_very_fast_emulated_camera_still_opens() -> None:
    # Benchmarks run the emulated camera unpaced (10000 fps): G_PARM must report it, not fail.
    fast = FakeUvcCamera(PortraitSource(), fps=10000.0, sizes=SMALL)
    cam = make(fast, fps=10000)
    cam.open()
    try:
        assert cam.fps == 10000.0
    finally:
        cam.close()


def test_emulator_refuses_s_parm_while_streaming(hw: FakeUvcCamera) -> None:
    cam = make(hw)
    cam.open()
    try:
        stream = cam.frames()
        next(stream)
        assert cam.fd is not None
        with pytest.raises(OSError) as exc:
            v4l2.call(hw, cam.fd, v4l2.VIDIOC_S_PARM, _parm(1, 30))
        assert exc.value.errno == errno.EBUSY
        stream.close()
    finally:
        cam.close()
