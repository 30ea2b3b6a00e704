"""Stateful test: any sequence of camera operations and faults leaves no fd or mapping behind.

Also runs the real system-call path (``RealSyscalls``) against a file that is not a camera.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from drivers.camera import v4l2
from drivers.camera.driver import V4l2Camera
from drivers.emulators.camera import FakeUvcCamera, Portrait, PortraitSource
from drivers.errors import DeviceError, DeviceMissingError, DeviceProtocolError


class CameraMachine(RuleBasedStateMachine):
    """Driver vs fake hardware: open, capture, controls, unplug, replug, stall, close."""

    def __init__(self) -> None:
        super().__init__()
        self.hw = FakeUvcCamera(PortraitSource(Portrait(), blur_sequence=(0.0, 3.0)), fps=500.0,
                                sizes=((160, 120), (320, 240)))
        self.cam = V4l2Camera("/dev/video0", width=320, height=240, syscalls=self.hw, timeout_s=0.05)

    def _run(self, fn: object) -> None:
        try:
            fn()  # type: ignore[operator]
        except DeviceError:
            pass  # every failure must be a DeviceError; anything else fails the test

    @rule()
    def open(self) -> None:
        self._run(self.cam.open)

    @rule(frames=st.integers(1, 4))
    def capture(self, frames: int) -> None:
        def go() -> None:
            cap = self.cam.capture_best(frames=frames, keep=2)
            assert cap.considered == frames

        self._run(go)

    @rule(value=st.integers(-10, 300))
    def brightness(self, value: int) -> None:
        self._run(lambda: self.cam.set_control("brightness", value))

    @rule()
    def health(self) -> None:
        self._run(self.cam.health)

    @rule()
    def unplug(self) -> None:
        self.hw.vanish()

    @precondition(lambda self: self.hw.vanished)
    @rule()
    def replug(self) -> None:
        # A real replug makes a new device node: the old handle stays dead until reopened.
        self.cam.close()
        self.hw.replug()

    @rule(on=st.booleans())
    def stall(self, on: bool) -> None:
        self.hw.stall(on)

    @rule()
    def close(self) -> None:
        self.cam.close()
        assert not self.hw.open_fds
        assert self.hw.mapped == 0

    @invariant()
    def at_most_one_open_handle(self) -> None:
        assert len(self.hw.open_fds) <= 1
        assert self.hw.mapped <= 4

    def teardown(self) -> None:
        self.cam.close()
        assert not self.hw.open_fds and self.hw.mapped == 0


CameraMachine.TestCase.settings = settings(stateful_step_count=12)
TestCameraMachine = CameraMachine.TestCase


def test_real_syscalls_on_a_file_that_is_not_a_camera() -> None:
    cam = V4l2Camera("/dev/null")  # real open(2) and ioctl(2): ENOTTY for VIDIOC_QUERYCAP
    with pytest.raises(DeviceProtocolError):
        cam.open()
    assert cam.fd is None  # a failed open closes again
    with pytest.raises(DeviceMissingError):
        V4l2Camera("/dev/video-none-here").open()


def test_real_wait_readable_times_out_on_an_idle_pipe() -> None:
    import os

    r, w = os.pipe()
    try:
        sys = v4l2.RealSyscalls()
        assert sys.wait_readable(r, 0.01) is False
        os.write(w, b"x")
        assert sys.wait_readable(r, 0.01) is True
    finally:
        os.close(r)
        os.close(w)
