"""The FingerprintScanner interface, exercised on TenPrintScanner over the ten-print emulator."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from drivers import registry
from drivers.base import Device
from drivers.emulators.tenprint import (
    FAULT_CODE,
    EmulatedTenPrintBackend,
    TenPrintHardware,
    forget,
    hardware,
)
from drivers.errors import (
    DeviceError,
    DeviceFaultError,
    DeviceMissingError,
    DeviceProtocolError,
    DeviceTimeoutError,
    UserRetryError,
)
from drivers.fingerprint.base import (
    CaptureArgumentError,
    CaptureCancelledError,
    CaptureNotSupportedError,
    FingerCapture,
    FingerPosition,
    FingerprintScanner,
    FingerQualityError,
    Impression,
    NoFingerError,
    Slap,
    SlapCapture,
)
from drivers.fingerprint.tenprint import TenPrintScanner, VendorLibraryBackend


@pytest.fixture
def hw() -> Iterator[TenPrintHardware]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield hardware(name, person_seed=21)
    forget(name)


@pytest.fixture
def scanner(hw: TenPrintHardware) -> Iterator[TenPrintScanner]:
    s = TenPrintScanner(EmulatedTenPrintBackend(hw), poll_interval=0.005)
    s.open()
    yield s
    s.close()


def test_it_is_a_fingerprint_scanner_and_says_emulator_only(scanner: TenPrintScanner) -> None:
    assert isinstance(scanner, FingerprintScanner)
    assert isinstance(scanner, Device)
    ident = scanner.identify()
    assert ident.evidence == "emulator only" and ident.emulated and ident.kind == "tenprint"
    caps = scanner.capabilities()
    assert caps.single_finger and caps.rolled and caps.ppi == 500 and caps.bit_depth == 8
    assert caps.slaps == frozenset(Slap)


def test_iso_codes_and_slap_layout() -> None:
    assert [int(f) for f in FingerPosition] == list(range(1, 11))
    assert int(FingerPosition.RIGHT_THUMB) == 1 and int(FingerPosition.LEFT_LITTLE) == 10
    assert (Slap.RIGHT_FOUR, Slap.LEFT_FOUR, Slap.TWO_THUMBS) == (13, 14, 15)
    all_fingers = [f for s in Slap for f in s.fingers]
    assert sorted(all_fingers) == list(FingerPosition)  # 4-4-2 covers all ten exactly once


def test_single_finger_capture(scanner: TenPrintScanner) -> None:
    cap = scanner.capture_finger(FingerPosition.LEFT_THUMB, timeout=5)
    assert isinstance(cap, FingerCapture)
    assert cap.position == FingerPosition.LEFT_THUMB and cap.impression == Impression.LIVE_PLAIN
    assert cap.image.mode == "L" and cap.ppi == 500 and cap.bbox is None
    assert 80 <= cap.quality <= 100
    assert "image" not in cap.describe()


def test_rolled_capture_is_wider(scanner: TenPrintScanner) -> None:
    plain = scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=5)
    rolled = scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=5, rolled=True)
    assert rolled.impression == Impression.LIVE_ROLLED
    assert rolled.image.width > plain.image.width


def test_slap_is_segmented_in_glass_order_with_per_finger_quality(scanner: TenPrintScanner) -> None:
    cap = scanner.capture_slap(Slap.LEFT_FOUR, timeout=5)
    assert isinstance(cap, SlapCapture)
    assert [f.position for f in cap.fingers] == list(Slap.LEFT_FOUR.fingers)
    full = np.asarray(cap.image)
    for finger in cap.fingers:
        assert finger.bbox is not None
        left, top, right, bottom = finger.bbox
        # The finger image is exactly the slap's pixels inside its box.
        assert np.array_equal(np.asarray(finger.image), full[top:bottom, left:right])
        assert finger.quality >= 60
    assert cap.finger(FingerPosition.LEFT_RING).position == FingerPosition.LEFT_RING


def test_slap_skips_absent_fingers(scanner: TenPrintScanner) -> None:
    cap = scanner.capture_slap(Slap.TWO_THUMBS, timeout=5, skip=[FingerPosition.RIGHT_THUMB])
    assert [f.position for f in cap.fingers] == [FingerPosition.LEFT_THUMB]
    assert cap.skipped == {FingerPosition.RIGHT_THUMB}
    with pytest.raises(KeyError):
        cap.finger(FingerPosition.RIGHT_THUMB)


def test_misuse_is_refused_before_the_device_is_touched(
    scanner: TenPrintScanner, hw: TenPrintHardware
) -> None:
    hw.capture_started.clear()
    with pytest.raises(CaptureArgumentError, match="outside slap"):
        scanner.capture_slap(Slap.RIGHT_FOUR, timeout=5, skip=[FingerPosition.LEFT_INDEX])
    with pytest.raises(CaptureArgumentError, match="nothing to capture"):
        scanner.capture_slap(Slap.TWO_THUMBS, timeout=5, skip=list(Slap.TWO_THUMBS.fingers))
    with pytest.raises(CaptureArgumentError, match="timeout"):
        scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=0)
    with pytest.raises(CaptureArgumentError):
        scanner.capture_finger(11, timeout=1)  # type: ignore[arg-type]
    with pytest.raises(CaptureArgumentError):
        scanner.capture_slap(12, timeout=1)  # type: ignore[arg-type]
    # Misuse is a DeviceError (drivers raise nothing else) and a ValueError.
    assert issubclass(CaptureArgumentError, DeviceError) and issubclass(
        CaptureArgumentError, ValueError
    )
    assert not hw.capture_started.is_set()


def test_no_finger_is_a_user_retry_with_hints(
    scanner: TenPrintScanner, hw: TenPrintHardware
) -> None:
    hw.queue("no_finger")
    with pytest.raises(NoFingerError) as info:
        scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=0.05)
    assert isinstance(info.value, UserRetryError)
    assert "Letakkan jari" in info.value.hint("id") and "Place the finger" in info.value.hint("en")
    # The device is fine afterwards.
    assert scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=5).quality > 0


def test_cancel_ends_a_waiting_capture(scanner: TenPrintScanner, hw: TenPrintHardware) -> None:
    hw.queue("no_finger")
    hw.capture_started.clear()
    cancel = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=60, cancel=cancel)
        except DeviceError as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    assert hw.capture_started.wait(10)
    cancel.set()
    t.join(10)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], CaptureCancelledError)


def test_second_concurrent_capture_is_refused(
    scanner: TenPrintScanner, hw: TenPrintHardware
) -> None:
    hw.queue("no_finger")
    hw.capture_started.clear()
    cancel = threading.Event()
    t = threading.Thread(
        target=lambda: pytest.raises(
            CaptureCancelledError,
            scanner.capture_finger,
            FingerPosition.RIGHT_INDEX,
            timeout=60,
            cancel=cancel,
        )
    )
    t.start()
    try:
        assert hw.capture_started.wait(10)
        with pytest.raises(DeviceFaultError) as info:
            scanner.capture_finger(FingerPosition.LEFT_INDEX, timeout=1)
        assert info.value.code == "busy"
    finally:
        cancel.set()
        t.join(10)


@pytest.mark.parametrize(
    ("scenario", "error", "check"),
    [
        ("moved", FingerQualityError, lambda e: e.reason == "smudge"),
        ("fault", DeviceFaultError, lambda e: e.code == FAULT_CODE and "teknisi" in e.hint_id),
        ("hang", DeviceTimeoutError, lambda e: isinstance(e, TimeoutError)),
        ("corrupt", DeviceProtocolError, lambda e: e.response is not None),
    ],
)
def test_device_reported_problems_map_to_the_error_tree(
    scanner: TenPrintScanner,
    hw: TenPrintHardware,
    scenario: str,
    error: type[DeviceError],
    check: object,
) -> None:
    hw.queue(scenario)
    with pytest.raises(error) as info:
        scanner.capture_finger(FingerPosition.RIGHT_MIDDLE, timeout=0.1)
    assert callable(check) and check(info.value)


def test_corrupt_slap_is_refused(scanner: TenPrintScanner, hw: TenPrintHardware) -> None:
    hw.queue("corrupt")
    with pytest.raises(DeviceProtocolError):
        scanner.capture_slap(Slap.RIGHT_FOUR, timeout=5)


def test_quality_gate_names_the_problem(hw: TenPrintHardware) -> None:
    s = TenPrintScanner(EmulatedTenPrintBackend(hw), poll_interval=0.005, reject_below=40)
    s.open()
    try:
        for problem in ("dry", "wet", "partial"):
            hw.queue(problem)
            with pytest.raises(FingerQualityError) as info:
                s.capture_finger(FingerPosition.RIGHT_INDEX, timeout=5)
            assert info.value.reason == problem
            assert info.value.quality is not None and info.value.quality < 40
        hw.queue("wet")
        with pytest.raises(FingerQualityError):
            s.capture_slap(Slap.RIGHT_FOUR, timeout=5)
        assert s.capture_finger(FingerPosition.RIGHT_INDEX, timeout=5).quality >= 40
    finally:
        s.close()


def test_unplugged_scanner_is_missing(scanner: TenPrintScanner, hw: TenPrintHardware) -> None:
    hw.unplug()
    with pytest.raises(DeviceMissingError):
        scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=1)
    with pytest.raises(DeviceMissingError):
        scanner.health()
    hw.plug()
    scanner.health()


def test_unplug_during_capture_fails_that_capture(
    scanner: TenPrintScanner, hw: TenPrintHardware
) -> None:
    hw.queue("no_finger")
    hw.capture_started.clear()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=60)
        except DeviceError as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    assert hw.capture_started.wait(10)
    hw.unplug()
    t.join(10)
    assert not t.is_alive() and len(errors) == 1 and isinstance(errors[0], DeviceMissingError)


def test_frame_log_elides_image_payloads(scanner: TenPrintScanner) -> None:
    scanner.capture_slap(Slap.RIGHT_FOUR, timeout=5)
    lines = [summary for _, summary in scanner.frame_log]
    assert any("bytes elided" in line for line in lines)
    assert all(len(line) < 200 for line in lines)


def test_unopened_scanner_is_missing(hw: TenPrintHardware) -> None:
    s = TenPrintScanner(EmulatedTenPrintBackend(hw))
    with pytest.raises(DeviceMissingError):
        s.capture_finger(FingerPosition.RIGHT_INDEX, timeout=1)
    with pytest.raises(DeviceMissingError):
        s.identify()
    s.close()
    s.close()  # twice is fine


def test_self_test_passes_on_a_good_scanner_and_fails_on_a_faulty_one(
    scanner: TenPrintScanner, hw: TenPrintHardware
) -> None:
    result = scanner.self_test()
    assert result.ok and [s[0] for s in result.steps] == ["identify", "geometry", "capture"]
    assert result.image_png is None  # never a print in diagnostics
    hw.queue("no_finger")  # nobody at the scanner: the sensor still answered, so it passes
    result = scanner.self_test()
    assert result.ok and "no finger" in result.steps[-1][2]
    hw.queue("fault")
    result = scanner.self_test()
    assert not result.ok and result.steps[-1][1] is False


@dataclass
class _ScriptedBackend:
    """A backend that returns whatever the test says (for SDK answers the emulator never gives)."""

    raw: object
    info_value: object = None
    calls: list[str] = field(default_factory=list)
    poll_value: int = 2

    def open(self) -> None:
        self.calls.append("open")

    def info(self) -> object:
        from drivers.fingerprint.tenprint import BackendInfo

        return self.info_value or BackendInfo("X", "Y", "1", "f", 500, (1600, 1000), True, False)

    def start(self, iso_code: int, *, rolled: bool, missing: frozenset[int] = frozenset()) -> None:
        self.calls.append(f"start {iso_code}")

    def poll(self) -> int:
        return self.poll_value

    def result(self) -> object:
        return self.raw

    def abort(self) -> None:
        self.calls.append("abort")

    def close(self) -> None:
        self.calls.append("close")


def test_bad_sdk_answers_are_protocol_errors() -> None:
    from drivers.fingerprint.tenprint import BackendInfo, RawCapture, Segment

    img = bytes(100 * 100)
    bad = [
        (RawCapture(0, 100, 500, b""), 1),  # impossible size
        (RawCapture(100, 100, 500, img[:-1]), 1),  # short pixel data
        (RawCapture(100, 100, 50, img), 1),  # impossible resolution
        (RawCapture(100, 100, 500, img, (Segment(2, (0, 0, 50, 50)),)), 13),  # 1 of 4 segments
        (
            RawCapture(
                100, 100, 500, img, (Segment(15, (0, 0, 50, 50)), Segment(6, (0, 0, 50, 50)))
            ),
            15,
        ),  # wrong positions
        (
            RawCapture(
                100, 100, 500, img, (Segment(6, (0, 0, 50, 50)), Segment(1, (40, 0, 140, 50)))
            ),
            15,
        ),  # box outside
    ]
    for raw, code in bad:
        backend = _ScriptedBackend(raw)
        s = TenPrintScanner(backend)  # type: ignore[arg-type]
        s.open()
        with pytest.raises(DeviceProtocolError):
            if code == 1:
                s.capture_finger(FingerPosition.RIGHT_THUMB, timeout=1)
            else:
                s.capture_slap(Slap(code), timeout=1)
    babbling = _ScriptedBackend(None, poll_value=7)  # a status no backend may answer
    s = TenPrintScanner(babbling)  # type: ignore[arg-type]
    s.open()
    with pytest.raises(DeviceProtocolError):
        s.capture_finger(FingerPosition.RIGHT_THUMB, timeout=1)
    assert babbling.calls[-1] == "abort"  # the armed capture was disarmed on the way out
    odd = _ScriptedBackend(None, BackendInfo("X", "Y", "1", "f", 0, (0, 0), False, False))
    with pytest.raises(DeviceProtocolError):
        TenPrintScanner(odd).open()  # type: ignore[arg-type]
    no_slaps = _ScriptedBackend(
        None, BackendInfo("X", "Y", "1", "f", 500, (800, 750), False, False)
    )
    s = TenPrintScanner(no_slaps)  # type: ignore[arg-type]
    s.open()
    with pytest.raises(CaptureNotSupportedError):
        s.capture_slap(Slap.RIGHT_FOUR, timeout=1)
    with pytest.raises(CaptureNotSupportedError):
        s.capture_finger(FingerPosition.RIGHT_INDEX, timeout=1, rolled=True)


SCENARIO_OUTCOME: dict[str, type[BaseException] | None] = {
    "good": None,
    "dry": None,
    "wet": None,
    "smudge": None,
    "partial": None,
    "no_finger": NoFingerError,
    "moved": FingerQualityError,
    "fault": DeviceFaultError,
    "hang": DeviceTimeoutError,
    "corrupt": DeviceProtocolError,
}


@settings(max_examples=25)
@given(st.lists(st.sampled_from(sorted(SCENARIO_OUTCOME)), min_size=1, max_size=4), st.data())
def test_any_sequence_of_scenarios_gives_the_right_outcome_in_order(
    scenarios: list[str], data: st.DataObject
) -> None:
    name = f"h-{uuid.uuid4().hex[:8]}"
    hw = hardware(name, person_seed=3)
    try:
        s = TenPrintScanner(EmulatedTenPrintBackend(hw), poll_interval=0.002)
        s.open()
        hw.queue(*scenarios)
        for scenario in scenarios:
            position = data.draw(st.sampled_from(list(FingerPosition)))
            expected = SCENARIO_OUTCOME[scenario]
            if expected is None:
                cap = s.capture_finger(position, timeout=0.05)
                assert cap.position == position and 0 <= cap.quality <= 100
            else:
                with pytest.raises(expected):
                    s.capture_finger(position, timeout=0.05)
        # Whatever happened, the scanner still works afterwards (nothing stays armed).
        assert s.capture_finger(FingerPosition.RIGHT_INDEX, timeout=1).quality > 0
        s.close()
    finally:
        forget(name)


# --------------------------------------------------------------------------- vendor seam + registry


def test_vendor_backend_without_its_library_is_missing(tmp_path: Path) -> None:
    backend = VendorLibraryBackend(tmp_path / "libvendor_shim.so")
    with pytest.raises(DeviceMissingError) as info:
        backend.open()
    assert "SDK" in info.value.hint_en
    not_a_library = tmp_path / "broken.so"
    not_a_library.write_bytes(b"not an ELF file")
    with pytest.raises(DeviceMissingError, match="cannot load"):
        VendorLibraryBackend(not_a_library).open()
    backend.close()


def test_vendor_backend_rejects_a_library_without_the_shim_abi() -> None:
    # Any real shared library that is not the shim: the C maths library is everywhere.
    found = sorted(Path("/").glob("usr/lib/*/libm.so.6")) + sorted(Path("/").glob("lib*/libm.so.6"))
    if not found:
        pytest.skip("no libm.so.6 on this machine to stand in for a wrong library")
    with pytest.raises(DeviceMissingError, match="lacks rk_tp_open"):
        VendorLibraryBackend(found[0]).open()


@dataclass(frozen=True)
class Spec:
    driver: str
    url: str = ""
    options: dict[str, str | int | float | bool] = field(default_factory=dict)


def test_registry_builds_the_emulator_and_refuses_bad_specs(hw: TenPrintHardware) -> None:
    dev = registry.build(
        Spec("tenprint-emulator", f"emu://tenprint?name={hw.name}", {"person_seed": 3})
    )
    assert isinstance(dev, FingerprintScanner)
    dev.open()
    assert dev.identify().serial == hw.serial
    dev.close()
    assert {"tenprint-emulator", "tenprint-sdk", "zfm"} <= set(registry.known())
    with pytest.raises(registry.UnknownDriverError, match="known:"):
        registry.build(Spec("no-such-driver"))
    with pytest.raises(registry.BadDeviceSpecError, match="emu://tenprint"):
        registry.build(Spec("tenprint-emulator", "/dev/ttyUSB0"))
    with pytest.raises(registry.BadDeviceSpecError, match="person_seed"):
        registry.build(Spec("tenprint-emulator", "emu://tenprint?name=x", {"person_seed": "three"}))
    with pytest.raises(registry.BadDeviceSpecError, match="sdk_library"):
        registry.build(Spec("tenprint-sdk"))
    sdk = registry.build(Spec("tenprint-sdk", options={"sdk_library": "/nonexistent/libshim.so"}))
    with pytest.raises(DeviceMissingError):
        sdk.open()


def test_finger_capture_validates_its_fields() -> None:
    img = Image.new("L", (20, 20))
    with pytest.raises(ValueError, match="mode L"):
        FingerCapture(FingerPosition.RIGHT_INDEX, Image.new("RGB", (20, 20)), 500, 50, "m")
    with pytest.raises(ValueError, match="0-100"):
        FingerCapture(FingerPosition.RIGHT_INDEX, img, 500, 101, "m")
    with pytest.raises(ValueError, match="ppi"):
        FingerCapture(FingerPosition.RIGHT_INDEX, img, 0, 50, "m")
    with pytest.raises(ValueError, match="expects fingers"):
        SlapCapture(
            Slap.TWO_THUMBS,
            img,
            500,
            (FingerCapture(FingerPosition.RIGHT_INDEX, img, 500, 5, "m"),),
        )


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


@pytest.mark.parametrize("slap", list(Slap))
def test_fallback_segmentation_finds_the_fingers_when_the_sdk_gives_no_boxes(
    scanner: TenPrintScanner, hw: TenPrintHardware, slap: Slap
) -> None:
    hw.sdk_segments = False
    cap = scanner.capture_slap(slap, timeout=5)
    truth = {s.position: s.bbox for s in hw.last_placed}
    assert [f.position for f in cap.fingers] == list(slap.fingers)
    for finger in cap.fingers:
        assert finger.bbox is not None
        # The synthesiser's box includes empty margin around the print, so boxes agree loosely.
        assert _iou(finger.bbox, truth[int(finger.position)]) > 0.5
    assert any("segmented here" in summary for _, summary in scanner.frame_log)


def test_fallback_segmentation_asks_for_a_retry_when_fingers_are_not_separate() -> None:
    from drivers.emulators.fingerprint_synth import synth_finger
    from drivers.fingerprint.tenprint import segment_slap

    canvas = np.full((1000, 1600), 255, np.uint8)
    canvas[300:748, 600:952] = synth_finger(3, 2)  # one print where two fingers were expected
    with pytest.raises(FingerQualityError) as info:
        segment_slap(Image.fromarray(canvas), [2, 3])
    assert info.value.reason == "partial"
    with pytest.raises(FingerQualityError):
        segment_slap(Image.fromarray(np.full((1000, 1600), 255, np.uint8)), [6])
    (only,) = segment_slap(Image.fromarray(canvas), [1])
    assert _iou(only.bbox, (600, 300, 952, 748)) > 0.5
