"""The device manager driving the ZFM driver over its emu:// serial URL (the real wire codec)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from agent.config import DeviceConfig
from agent.devices import DeviceLostError, DeviceManager, DeviceState
from agent.logs import TRACE
from drivers.emulators import protocol_emu
from drivers.emulators.zfm import Fault, ZfmEmulator
from drivers.errors import DeviceTimeoutError
from drivers.fingerprint.base import (
    CaptureNotSupportedError,
    FingerPosition,
    NoFingerError,
    Slap,
)

LOGGER = "agent.devices"


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Bounded wait for a state the owner thread will reach."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.005)


@pytest.fixture
def rig() -> Iterator[tuple[DeviceManager, ZfmEmulator]]:
    emu = ZfmEmulator("r307", seed=3)
    name = f"dm-{uuid.uuid4().hex[:8]}"
    protocol_emu.attach("zfm", name, emu)
    cfg = DeviceConfig(
        driver="zfm",
        url=f"emu://zfm?name={name}",
        role="fingerprint",
        options={"reply_timeout": 0.2, "poll_interval": 0.01, "retry_delay": 0.01},
        retry_min_seconds=0.01,
        retry_max_seconds=0.05,
        probe_seconds=0.05,
        capture_timeout_seconds=5.0,
    )
    manager = DeviceManager({"fp": cfg})
    manager.start()
    try:
        assert manager.wait_ready("fp", 20)
        yield manager, emu
    finally:
        manager.stop()
        protocol_emu.detach("zfm", name)


def count(caplog: pytest.LogCaptureFixture, word: str) -> int:
    return sum(
        1
        for r in caplog.records
        if r.name == LOGGER and r.levelno >= logging.INFO and word in r.getMessage()
    )


def test_zfm_through_the_manager(rig: tuple[DeviceManager, ZfmEmulator]) -> None:
    manager, emu = rig
    snap = manager.devices["fp"].snapshot()
    identity = snap["identity"]
    assert isinstance(identity, dict) and identity["evidence"] == "public protocol"
    assert snap["capabilities"] == {
        "single_finger": True,
        "slaps": [],
        "rolled": False,
        "ppi": 500,
        "bit_depth": 8,
    }
    emu.place_finger("person-1/right-index")
    cap = manager.capture_finger("fp", FingerPosition.RIGHT_INDEX)
    assert cap.position == FingerPosition.RIGHT_INDEX and cap.image.mode == "L"
    emu.lift_finger()
    with pytest.raises(NoFingerError):
        manager.capture_finger("fp", FingerPosition.RIGHT_INDEX, timeout=0.1)
    assert manager.devices["fp"].state is DeviceState.READY
    with pytest.raises(CaptureNotSupportedError):
        manager.capture_slap("fp", Slap.RIGHT_FOUR)  # one finger at a time on this module
    assert manager.devices["fp"].state is DeviceState.READY
    assert manager.devices["fp"].counters["faults"] == 0
    emu.place_finger("person-1/right-index")
    result = manager.self_test("fp")  # handshake, parameters, one image, on the owner thread
    assert result.ok, result.steps


def test_zfm_unplugged_mid_upload_goes_absent_and_comes_back(
    rig: tuple[DeviceManager, ZfmEmulator], caplog: pytest.LogCaptureFixture
) -> None:
    manager, emu = rig
    caplog.set_level(TRACE, logger=LOGGER)
    emu.place_finger("person-2/left-thumb")
    emu.inject(Fault.UNPLUG_MID_UPLOAD)
    with pytest.raises(DeviceLostError) as info:
        manager.capture_finger("fp", FingerPosition.LEFT_THUMB)
    assert "ulangi" in info.value.hint_id
    dev = manager.devices["fp"]
    wait_for(lambda: dev.state is DeviceState.ABSENT)
    wait_for(lambda: dev.counters["open_failures"] >= 3)  # quiet retries while unplugged
    emu.replug()
    assert manager.wait_ready("fp", 20)
    assert count(caplog, "absent") == 1 and count(caplog, "back") == 1
    emu.place_finger("person-2/left-thumb")
    assert manager.capture_finger("fp", FingerPosition.LEFT_THUMB).quality >= 0


def test_zfm_unplugged_while_idle_is_noticed_by_the_health_probe(
    rig: tuple[DeviceManager, ZfmEmulator], caplog: pytest.LogCaptureFixture
) -> None:
    manager, emu = rig
    caplog.set_level(logging.INFO, logger=LOGGER)
    dev = manager.devices["fp"]
    emu.unplug()
    # No capture is asked for: only the idle probe (the driver's health()) can notice this.
    wait_for(lambda: dev.state is DeviceState.ABSENT)
    emu.replug()
    assert manager.wait_ready("fp", 20)
    assert count(caplog, "absent") == 1 and count(caplog, "back") == 1


def test_zfm_silent_module_faults_dumps_its_frames_and_recovers(
    rig: tuple[DeviceManager, ZfmEmulator], caplog: pytest.LogCaptureFixture
) -> None:
    manager, emu = rig
    caplog.set_level(TRACE, logger=LOGGER)
    emu.place_finger("person-3/right-thumb")
    for _ in range(4):  # more silences than the driver's retries: the request times out
        emu.inject(Fault.SILENCE)
    with pytest.raises(DeviceTimeoutError):
        manager.capture_finger("fp", FingerPosition.RIGHT_THUMB)
    emu.clear_faults()
    assert manager.wait_ready("fp", 20)
    trace = [r.getMessage() for r in caplog.records if r.levelno == TRACE]
    # The ZFM driver's own ring buffer ("frames") is dumped, decoded, next to the manager's ops.
    assert any("op tx capture_finger RIGHT_THUMB" in m for m in trace)
    assert any(" frame tx " in m for m in trace)
    assert count(caplog, "faulted") == 1 and count(caplog, "back") == 1
