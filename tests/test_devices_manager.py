"""The device manager with the ten-print emulator: states, hotplug, busy, faults, self-test."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import Config, DeviceConfig
from agent.devices import (
    TRANSITIONS,
    DeviceBusyError,
    DeviceEvent,
    DeviceLostError,
    DeviceManager,
    DeviceState,
    DeviceUnavailableError,
    InvalidTransitionError,
    device_component,
    next_state,
)
from agent.logs import TRACE
from drivers.base import Device
from drivers.emulators.tenprint import TenPrintHardware, forget, hardware
from drivers.errors import DeviceFaultError, DeviceMissingError
from drivers.fingerprint.base import (
    CaptureCancelledError,
    CaptureNotSupportedError,
    FingerPosition,
    FingerQualityError,
    NoFingerError,
    Slap,
)

LOGGER = "agent.devices"


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait (bounded) for a condition the owner thread will reach; fail the test otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.005)


def tenprint_config(name: str, **extra: object) -> DeviceConfig:
    return DeviceConfig(
        driver="tenprint-emulator",
        url=f"emu://tenprint?name={name}",
        role="tenprint",
        retry_min_seconds=0.01,
        retry_max_seconds=0.05,
        probe_seconds=0.02,
        capture_timeout_seconds=30.0,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def rig() -> Iterator[tuple[DeviceManager, TenPrintHardware]]:
    name = f"m-{uuid.uuid4().hex[:8]}"
    hw = hardware(name, person_seed=8)
    manager = DeviceManager({"tenprint": tenprint_config(name)})
    manager.start()
    try:
        assert manager.wait_ready("tenprint", 20)
        yield manager, hw
    finally:
        manager.stop()
        forget(name)
    assert not manager.devices["tenprint"]._thread.is_alive()


def lines(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and r.levelno >= logging.INFO and word in r.getMessage()
    ]


def run_in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the test to assert on
            errors.append(exc)

    t = threading.Thread(target=body)
    t.start()
    return t, errors


# --------------------------------------------------------------------------- state table


@given(st.sampled_from(DeviceState), st.sampled_from(DeviceEvent))
def test_every_state_event_pair_is_listed_or_refused(
    state: DeviceState, event: DeviceEvent
) -> None:
    if (state, event) in TRANSITIONS:
        assert next_state(state, event) is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(InvalidTransitionError):
            next_state(state, event)


@given(st.lists(st.sampled_from(DeviceEvent), max_size=30))
def test_any_event_sequence_stays_in_the_table_and_can_always_recover(
    events: list[DeviceEvent],
) -> None:
    state = DeviceState.ABSENT
    for event in events:
        try:
            state = next_state(state, event)
        except InvalidTransitionError:
            continue
    # From wherever it ended, the device can get back to ready (no dead ends).
    recovery = {
        DeviceState.ABSENT: [DeviceEvent.OPEN, DeviceEvent.OPENED],
        DeviceState.FAULTED: [DeviceEvent.OPEN, DeviceEvent.OPENED],
        DeviceState.INITIALISING: [DeviceEvent.OPENED],
        DeviceState.BUSY: [DeviceEvent.DONE],
        DeviceState.READY: [],
    }
    for event in recovery[state]:
        state = next_state(state, event)
    assert state is DeviceState.READY


# --------------------------------------------------------------------------- manager


def test_captures_through_the_manager(rig: tuple[DeviceManager, TenPrintHardware]) -> None:
    manager, _ = rig
    finger = manager.capture_finger("tenprint", FingerPosition.RIGHT_INDEX)
    assert finger.position == FingerPosition.RIGHT_INDEX and finger.quality >= 60
    slap = manager.capture_slap("tenprint", Slap.RIGHT_FOUR, skip=[FingerPosition.RIGHT_LITTLE])
    assert [f.position for f in slap.fingers] == [2, 3, 4]
    assert manager.devices["tenprint"].state is DeviceState.READY
    assert manager.by_role("tenprint") == ["tenprint"] and manager.by_role("camera") == []
    assert manager.status() == "devices 1/1 ready" and manager.healthy()


def test_user_retry_passes_through_and_the_device_stays_ready(
    rig: tuple[DeviceManager, TenPrintHardware],
) -> None:
    manager, hw = rig
    hw.queue("no_finger", "moved")
    with pytest.raises(NoFingerError):
        manager.capture_finger("tenprint", FingerPosition.LEFT_INDEX, timeout=0.05)
    with pytest.raises(FingerQualityError):
        manager.capture_finger("tenprint", FingerPosition.LEFT_INDEX)
    dev = manager.devices["tenprint"]
    assert dev.state is DeviceState.READY
    assert dev.counters["user_retries"] == 2 and dev.counters["faults"] == 0


def test_second_caller_gets_busy(rig: tuple[DeviceManager, TenPrintHardware]) -> None:
    manager, hw = rig
    hw.queue("no_finger")
    hw.capture_started.clear()
    t, errors = run_in_thread(
        lambda: manager.capture_finger("tenprint", FingerPosition.RIGHT_THUMB, timeout=60)
    )
    assert hw.capture_started.wait(20)
    assert manager.devices["tenprint"].state is DeviceState.BUSY
    with pytest.raises(DeviceBusyError) as info:
        manager.capture_finger("tenprint", FingerPosition.LEFT_THUMB)
    assert "Tunggu" in info.value.hint_id
    busy_test = manager.self_test("tenprint")  # reported as a failed result, not raised
    assert not busy_test.ok and "busy" in busy_test.steps[0][2]
    with pytest.raises(DeviceBusyError):
        manager.call("tenprint", lambda d, c: None, timeout=1, label="x")
    manager.stop()  # stopping cancels the capture in progress
    t.join(20)
    assert not t.is_alive() and len(errors) == 1 and isinstance(errors[0], CaptureCancelledError)


def test_unplug_idle_goes_absent_once_retries_quietly_and_comes_back_once(
    rig: tuple[DeviceManager, TenPrintHardware], caplog: pytest.LogCaptureFixture
) -> None:
    manager, hw = rig
    dev = manager.devices["tenprint"]
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    opens_before = hw.opens
    hw.unplug()
    wait_for(lambda: dev.state is DeviceState.ABSENT)
    # Several quiet re-open attempts happen while it is away.
    wait_for(lambda: dev.counters["open_failures"] >= 4)
    with pytest.raises(DeviceUnavailableError) as info:
        manager.capture_finger("tenprint", FingerPosition.RIGHT_INDEX)
    assert isinstance(info.value, DeviceMissingError) and "kabel" in info.value.hint_id
    snap = dev.snapshot()
    assert snap["state"] == "absent"
    assert snap["last_error"]["type"] == "DeviceMissingError"  # type: ignore[index]
    hw.plug()
    assert manager.wait_ready("tenprint", 20)
    assert hw.opens == opens_before + 1
    assert len(lines(caplog, "absent")) == 1
    assert len(lines(caplog, "back")) == 1
    assert dev.counters["lost"] == 1
    # The device works again.
    assert manager.capture_finger("tenprint", FingerPosition.RIGHT_INDEX).quality > 0


def test_unplug_during_capture_fails_it_cleanly(
    rig: tuple[DeviceManager, TenPrintHardware], caplog: pytest.LogCaptureFixture
) -> None:
    manager, hw = rig
    caplog.set_level(logging.INFO, logger=LOGGER)
    hw.queue("no_finger")
    hw.capture_started.clear()
    t, errors = run_in_thread(lambda: manager.capture_slap("tenprint", Slap.LEFT_FOUR, timeout=60))
    assert hw.capture_started.wait(20)
    hw.unplug()
    t.join(20)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], DeviceLostError)
    assert "ulangi" in errors[0].hint_id and "capture again" in errors[0].hint_en
    assert isinstance(errors[0].__cause__, DeviceMissingError)
    dev = manager.devices["tenprint"]
    wait_for(lambda: dev.state is DeviceState.ABSENT)
    hw.plug()
    assert manager.wait_ready("tenprint", 20)
    assert len(lines(caplog, "absent")) == 1 and len(lines(caplog, "back")) == 1


def test_fault_dumps_frames_at_trace_and_recovers(
    rig: tuple[DeviceManager, TenPrintHardware], caplog: pytest.LogCaptureFixture
) -> None:
    manager, hw = rig
    caplog.set_level(TRACE, logger=LOGGER)
    manager.capture_slap("tenprint", Slap.TWO_THUMBS)  # puts an image frame in the log
    hw.queue("fault")
    with pytest.raises(DeviceFaultError) as info:
        manager.capture_finger("tenprint", FingerPosition.RIGHT_INDEX)
    assert info.value.code is not None
    dev = manager.devices["tenprint"]
    # The manager re-opens a faulted device after its back-off.
    assert manager.wait_ready("tenprint", 20)
    trace = [r.getMessage() for r in caplog.records if r.levelno == TRACE]
    assert any("op tx capture_finger RIGHT_INDEX" in m for m in trace)
    assert any("frame rx image" in m and "bytes elided" in m for m in trace)
    assert all(len(m) < 300 for m in trace)  # summaries, never pixel data
    assert len(lines(caplog, "faulted")) == 1 and len(lines(caplog, "back")) == 1
    assert dev.counters["faults"] == 1
    assert dev.snapshot()["last_error"]["code"] == str(info.value.code)  # type: ignore[index]


def test_snapshot_is_json_and_carries_no_biometrics(
    rig: tuple[DeviceManager, TenPrintHardware],
) -> None:
    manager, _ = rig
    manager.capture_finger("tenprint", FingerPosition.RIGHT_INDEX)
    snap = manager.snapshot()
    text = json.dumps(snap)
    assert len(text) < 3000  # ids, states and counters only
    entries: Any = snap["devices"]
    (entry,) = entries
    assert entry["identity"]["evidence"] == "emulator only"
    assert entry["capabilities"]["slaps"] == ["left_four", "right_four", "two_thumbs"]
    assert entry["state"] == "ready"


def test_self_test_runs_on_the_owner_and_reports_absence(
    rig: tuple[DeviceManager, TenPrintHardware],
) -> None:
    manager, hw = rig
    result = manager.self_test("tenprint")
    assert result.ok
    hw.unplug()
    wait_for(lambda: manager.devices["tenprint"].state is DeviceState.ABSENT)
    result = manager.self_test("tenprint")
    assert not result.ok and "absent" in result.steps[0][0]
    with pytest.raises(KeyError, match="configured: tenprint"):
        manager.self_test("nope")


def test_a_device_that_is_not_a_scanner_is_refused_for_captures() -> None:
    class Plain:
        def open(self) -> None: ...
        def identify(self):  # type: ignore[no-untyped-def]
            from drivers.base import DeviceIdentity

            return DeviceIdentity("printer", "X", "Y", "1", "f", "emulator only", True)

        def self_test(self):  # type: ignore[no-untyped-def]
            from drivers.base import SelfTestResult

            return SelfTestResult(True, ())

        def close(self) -> None: ...

    manager = DeviceManager(
        {"p": DeviceConfig(driver="x", role="printer", retry_min_seconds=0.01)},
        factory=lambda cfg: Plain(),
    )
    manager.start()
    try:
        assert manager.wait_ready("p", 20)
        with pytest.raises(CaptureNotSupportedError, match="not a fingerprint scanner"):
            manager.capture_finger("p", FingerPosition.RIGHT_INDEX)
        # Asking the wrong device is the caller's mistake: the device stays ready, no fault.
        assert manager.devices["p"].state is DeviceState.READY
        assert manager.devices["p"].counters["faults"] == 0
        assert manager.self_test("p").ok
    finally:
        manager.stop()


def test_broken_driver_and_unknown_driver_fault_without_killing_the_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = {"n": 0}

    class Crashing:
        def open(self) -> None:
            calls["n"] += 1
            raise RuntimeError("driver bug")

        def identify(self) -> None: ...
        def self_test(self) -> None: ...
        def close(self) -> None: ...

    def factory(cfg: DeviceConfig) -> Device:
        if cfg.driver == "crash":
            return Crashing()  # type: ignore[return-value]
        from drivers import registry

        return registry.build(cfg)

    manager = DeviceManager(
        {
            "a": DeviceConfig(driver="crash", retry_min_seconds=0.01, retry_max_seconds=0.02),
            "b": DeviceConfig(driver="no-such", retry_min_seconds=0.01, retry_max_seconds=0.02),
        },
        factory=factory,
    )
    caplog.set_level(logging.INFO, logger=LOGGER)
    manager.start()
    try:
        wait_for(lambda: calls["n"] >= 3)
        wait_for(lambda: manager.devices["b"].counters["open_failures"] >= 3)
        assert manager.devices["a"].state in (DeviceState.FAULTED, DeviceState.INITIALISING)
        assert manager.devices["b"].state in (DeviceState.FAULTED, DeviceState.INITIALISING)
        assert manager.healthy()
        snap = manager.devices["b"].snapshot()
        assert snap["last_error"]["type"] == "UnknownDriverError"  # type: ignore[index]
        assert manager.status() == "devices 0/2 ready"
    finally:
        manager.stop()
    assert len(lines(caplog, "device b faulted")) == 1
    # The crashing driver's traceback is logged once, not at every retry.
    assert len(lines(caplog, "device a: driver crash failed to open")) == 1


def test_component_factory() -> None:
    from agent.daemon import ComponentFactory

    # Type-checked by mypy: the factory fits the daemon's component factory type.
    factory: ComponentFactory = device_component
    assert callable(factory)
    assert device_component(Config(), object()) is None  # type: ignore[arg-type]
    printer_only = Config(
        devices={"p": DeviceConfig(driver="evolis", url="emulator", role="printer")}
    )
    # The printer has its own owner thread in agent/printing: the manager must not open it too.
    assert device_component(printer_only, object()) is None  # type: ignore[arg-type]
    cfg = Config(devices={"tp": tenprint_config("x")})
    component = device_component(cfg, object())  # type: ignore[arg-type]
    assert component is not None and component.name == "devices"
    assert component.status() == "devices 0/1 ready"  # not started yet
    assert not component.healthy()  # no owner thread running: the watchdog must not be petted
    component.stop()  # stopping an unstarted manager is harmless
    assert component.healthy()  # a stopping manager is not "stuck"


def test_diagnostics_checks_read_config_and_paths_without_opening() -> None:
    from agent.devices import device_checks

    cfg = Config(
        devices={
            "a-unknown": DeviceConfig(driver="nope"),
            "b-emu": tenprint_config("diag"),
            "c-gone": DeviceConfig(driver="zfm", url="/dev/rekam-test-no-such-node"),
            "d-null": DeviceConfig(driver="zfm", url="/dev/null", role="fingerprint"),
            "e-sdk": DeviceConfig(
                driver="tenprint-sdk", role="tenprint", options={"sdk_library": "/no/such/shim.so"}
            ),
            "f-printer": DeviceConfig(driver="evolis", url="emulator", role="printer"),
        }
    )
    checks = {c.name: c for c in device_checks(cfg)}
    assert "device f-printer" not in checks  # checked by the printing diagnostics instead
    assert (
        checks["device a-unknown"].status == "fail"
        and "tenprint-emulator" in checks["device a-unknown"].hint_en
    )
    assert checks["device b-emu"].status == "warn"
    assert (
        checks["device c-gone"].status == "fail" and "not present" in checks["device c-gone"].detail
    )
    assert checks["device d-null"].status == "ok"
    assert checks["device e-sdk"].status == "fail" and "SDK" in checks["device e-sdk"].hint_id
    assert "fingerprint scanner" not in checks
    only_camera = Config(
        devices={"cam": DeviceConfig(driver="v4l2", url="emu://camera", role="camera")}
    )
    names = [c.name for c in device_checks(only_camera)]
    assert "fingerprint scanner" in names


def test_rescan_retries_at_once_instead_of_after_the_back_off() -> None:
    name = f"r-{uuid.uuid4().hex[:8]}"
    hw = hardware(name)
    hw.unplug()
    cfg = DeviceConfig(
        driver="tenprint-emulator",
        url=f"emu://tenprint?name={name}",
        role="tenprint",
        retry_min_seconds=300.0,  # far longer than the test waits: only rescan() can help
        retry_max_seconds=600.0,
    )
    manager = DeviceManager({"tp": cfg})
    manager.start()
    try:
        dev = manager.devices["tp"]
        wait_for(lambda: dev.counters["open_failures"] == 1)
        hw.plug()
        dev.rescan()  # what a udev "add" event handler would call
        assert manager.wait_ready("tp", 20)
    finally:
        manager.stop()
        forget(name)


def test_discovery_reports_nodes_once_and_matches_them_to_the_config(tmp_path: Path) -> None:
    from agent.devices import device_checks, discover

    dev = tmp_path / "dev"
    (dev / "rekam").mkdir(parents=True)
    (dev / "serial" / "by-id").mkdir(parents=True)
    (dev / "ttyUSB0").write_text("")
    (dev / "video0").write_text("")
    (dev / "rekam" / "fingerprint").symlink_to(dev / "ttyUSB0")
    (dev / "serial" / "by-id" / "usb-Silicon_Labs_CP2102-if00-port0").symlink_to(dev / "ttyUSB0")
    (dev / "rekam" / "camera").symlink_to(dev / "video0")
    (dev / "rekam" / "printer").write_text("")
    cfg = Config(devices={"fp": DeviceConfig(driver="zfm", url=str(dev / "rekam" / "fingerprint"))})
    found = {d.path: d for d in discover(cfg, dev_root=dev)}
    # The fingerprint bridge appears under two names but is one device, and it is configured.
    assert str(dev / "serial" / "by-id" / "usb-Silicon_Labs_CP2102-if00-port0") not in found
    assert found[str(dev / "rekam" / "fingerprint")].configured_as == "fp"
    camera = found[str(dev / "rekam" / "camera")]
    assert (camera.suggested_driver, camera.role, camera.configured_as) == ("v4l2", "camera", None)
    assert json.dumps([d.as_dict() for d in found.values()])
    warnings = [c for c in device_checks(cfg, dev_root=dev) if c.name.startswith("found ")]
    # The unconfigured camera is flagged; the printer belongs to agent/printing's checks.
    assert [c.name for c in warnings] == [f"found {dev / 'rekam' / 'camera'}"]
    assert warnings[0].status == "warn" and "v4l2" in warnings[0].detail
    assert discover(Config(), dev_root=tmp_path / "empty") == []
