"""Camera, iris scanner and signature pad under the real device manager, built from configuration.

The emulated devices run the real drivers; the manager builds them through ``drivers.registry``,
owns them on their threads, probes them while idle and notices an unplug and a replug.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from PIL import Image

from agent.config import DeviceConfig
from agent.devices import DeviceManager, DeviceState
from agent.quality.face import check_face_jpeg
from agent.quality.iris import check_iris
from drivers.emulators import camera as camera_emu
from drivers.emulators import iris as iris_emu
from drivers.emulators import signature as signature_emu


def cfg(driver: str, url: str, role: str, **options: str | int | float | bool) -> DeviceConfig:
    return DeviceConfig(driver=driver, url=url, role=role, options=options, retry_min_seconds=0.02,
                        retry_max_seconds=0.05, probe_seconds=0.02, capture_timeout_seconds=10.0)


@pytest.fixture
def rig() -> Iterator[tuple[DeviceManager, str]]:
    tag = uuid.uuid4().hex[:8]
    manager = DeviceManager({
        "cam": cfg("v4l2", f"emu://camera?name={tag}", "camera", width=640, height=480, fps=200.0),
        "iris": cfg("iris-emulator", f"emu://iris?name={tag}", "iris", timeout_s=5.0),
        "pad": cfg("evdev", f"emu://signature?name={tag}", "signature", idle_end_s=0.2),
    })
    manager.start()
    try:
        for name in ("cam", "iris", "pad"):
            assert manager.wait_ready(name, 20), manager.snapshot()
        yield manager, tag
    finally:
        manager.stop()
        camera_emu.forget(tag)
        iris_emu.forget(tag)
        signature_emu.forget(tag)


def wait_state(manager: DeviceManager, name: str, state: DeviceState, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while manager.device(name).state is not state:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_captures_through_the_manager(rig: tuple[DeviceManager, str]) -> None:
    manager, tag = rig
    shot = manager.call("cam", lambda d, cancel: d.capture_best(stop=cancel),  # type: ignore[attr-defined]
                        timeout=10, label="capture_best")
    assert check_face_jpeg(shot.frame.data, rule="blue").passed
    (eye,) = manager.call("iris", lambda d, cancel: d.capture("left", timeout_s=5),  # type: ignore[attr-defined]
                          timeout=10, label="capture_iris")
    assert check_iris(eye.to_image()).passed
    threading.Timer(0.1, signature_emu.hardware(tag).sign).start()
    sig = manager.call("pad", lambda d, cancel: d.capture(timeout_s=5, stop=cancel),  # type: ignore[attr-defined]
                       timeout=10, label="capture_signature")
    assert Image.open(io.BytesIO(sig.png)).format == "PNG"
    for name in ("cam", "iris", "pad"):
        assert manager.self_test(name).ok, name


def test_idle_unplug_and_replug_are_noticed(rig: tuple[DeviceManager, str]) -> None:
    manager, tag = rig
    camera_emu.hardware(tag).vanish()
    iris_emu.hardware(tag).disconnected = True
    signature_emu.hardware(tag).unplug()
    for name in ("cam", "iris", "pad"):
        assert wait_state(manager, name, DeviceState.ABSENT), (name, manager.snapshot())
    camera_emu.hardware(tag).replug()
    iris_emu.hardware(tag).disconnected = False
    signature_emu.hardware(tag).replug()
    for name in ("cam", "iris", "pad"):
        assert manager.wait_ready(name, 10), (name, manager.snapshot())
