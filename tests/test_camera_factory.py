"""``driver = "v4l2"`` from configuration: options checked, emulated url runs the real driver."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import pytest

from drivers.camera.factory import from_spec
from drivers.emulators.camera import forget, hardware
from drivers.errors import DeviceMissingError
from drivers.registry import BadDeviceSpecError


@dataclass
class Spec:
    driver: str = "v4l2"
    url: str = ""
    options: Mapping[str, str | int | float | bool] = field(default_factory=dict)


@pytest.fixture
def name() -> Iterator[str]:
    forget("t")
    yield "t"
    forget("t")


def test_emulated_camera_from_config(name: str) -> None:
    cam = from_spec(Spec(url=f"emu://camera?name={name}", options={
        "width": 640, "height": 480, "fps": 200.0, "brightness": 120, "background": "red"}))
    try:
        cap = cam.capture_best(frames=3, keep=2)
        assert cap.frame.width == 640
        assert cam.get_control("brightness") == 120
        assert cam.identify().emulated
        r, g, b = cap.frame.to_image().getpixel((3, 3))  # type: ignore[misc]
        assert r > 150 and b < 80
    finally:
        cam.close()
    hardware(name).vanish()
    with pytest.raises(DeviceMissingError):
        from_spec(Spec(url=f"emu://camera?name={name}")).open()
    hardware(name).replug()
    cam = from_spec(Spec(url=f"emu://camera?name={name}", options={"width": 640, "height": 480}))
    cam.open()
    cam.close()


@pytest.mark.parametrize(
    "options",
    [
        {"blur": 1.0},  # emulator-only option on a real camera
        {"fps": 0},
        {"fps": 5000},
        {"widht": 640},
        {"buffers": 8},
        {"formats": "MJPEG"},
        {"width": "640"},
    ],
)
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(BadDeviceSpecError):
        from_spec(Spec(url="/dev/video0", options=options))  # type: ignore[arg-type]


def test_real_path_is_not_opened_by_the_factory() -> None:
    cam = from_spec(Spec(url="/dev/video-does-not-exist"))
    assert cam.fd is None
    with pytest.raises(DeviceMissingError):
        cam.open()


def test_fps_is_asked_of_a_real_camera_and_granted_by_the_emulator(name: str) -> None:
    assert from_spec(Spec(url="/dev/video9", options={"fps": 15})).want_fps == 15.0
    assert from_spec(Spec(url="/dev/video9")).want_fps is None  # the camera keeps its own rate
    cam = from_spec(Spec(url=f"emu://camera?name={name}", options={"width": 640, "height": 480, "fps": 25}))
    try:
        cam.open()
        assert cam.fps == pytest.approx(25.0)
    finally:
        cam.close()
