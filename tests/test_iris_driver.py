"""The SDK-seam iris driver against the emulated SDK: captures, the error split, bounded waits."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from agent.quality.iris import check_iris
from drivers.base import Device
from drivers.emulators.iris import EmulatedIrisSdk, IrisScene
from drivers.errors import (
    DeviceFaultError,
    DeviceMissingError,
    DeviceProtocolError,
    DeviceTimeoutError,
    UserRetryError,
)
from drivers.iris import IrisImage, IrisScanner, SdkCapture, SdkIrisScanner, SdkStatus
from drivers.iris.base import eyes_of


def scanner(sdk: EmulatedIrisSdk, **kwargs: float) -> SdkIrisScanner:
    dev = SdkIrisScanner(sdk, emulated=True, **kwargs)  # type: ignore[arg-type]
    dev.open()
    return dev


def test_interface_identity_and_both_eyes() -> None:
    sdk = EmulatedIrisSdk()
    dev = scanner(sdk)
    assert isinstance(dev, Device) and isinstance(dev, IrisScanner)
    ident = dev.identify()
    assert ident.kind == "iris" and ident.evidence == "emulator only" and ident.emulated
    images = dev.capture("both")
    assert [i.eye for i in images] == ["left", "right"]
    assert all((i.width, i.height, len(i.pixels)) == (640, 480, 640 * 480) for i in images)
    assert images[0].pixels != images[1].pixels
    assert "pixels" not in repr(images[0]).replace("pixels elided", "")
    assert [i.eye for i in dev.capture("right")] == ["right"]
    # the frame log names what happened, never pixel bytes
    assert all(len(s) < 200 for _, s in dev.frame_log)
    dev.close()
    dev.close()
    assert not sdk.is_open


def test_good_capture_passes_quality_and_blurred_does_not() -> None:
    sdk = EmulatedIrisSdk()
    dev = scanner(sdk)
    (img,) = dev.capture("left")
    assert check_iris(img.to_image()).passed
    sdk.scene = IrisScene(blur=4)
    (img,) = dev.capture("left")
    result = check_iris(img.to_image())
    assert not result.passed and "focus" in {c.name for c in result.failed()}
    dev.close()


@pytest.mark.parametrize(
    ("status", "word"),
    [
        (SdkStatus.NO_EYE, "Lihat"),
        (SdkStatus.EYES_CLOSED, "Buka mata"),
        (SdkStatus.TOO_FAR, "Dekatkan"),
        (SdkStatus.TOO_CLOSE, "Jauhkan"),
        (SdkStatus.MOTION, "bergerak"),
        (SdkStatus.TIMEOUT, "ulangi"),
    ],
)
def test_sdk_statuses_are_user_retries_with_hints(status: SdkStatus, word: str) -> None:
    dev = scanner(EmulatedIrisSdk(status=status))
    with pytest.raises(UserRetryError) as err:
        dev.capture("both")
    assert word in err.value.hint_id and err.value.hint_en
    dev.close()


def test_closed_and_absent_eyes_from_the_scene() -> None:
    sdk = EmulatedIrisSdk(scene=IrisScene(eye_open=False))
    dev = scanner(sdk)
    with pytest.raises(UserRetryError, match="eyes closed"):
        dev.capture("left")
    sdk.scene = IrisScene(present=False)
    with pytest.raises(UserRetryError, match="no eye"):
        dev.capture("left")
    dev.close()


def test_faults() -> None:
    sdk = EmulatedIrisSdk(status=SdkStatus.DEVICE_ERROR, error_code=-42)
    dev = scanner(sdk)
    with pytest.raises(DeviceFaultError) as err:
        dev.capture("left")
    assert err.value.code == -42
    sdk.status = SdkStatus.OK
    sdk.disconnected = True
    with pytest.raises(DeviceMissingError):
        dev.capture("left")
    assert not dev.self_test().ok
    dev.close()
    with pytest.raises(DeviceMissingError):
        SdkIrisScanner(sdk).open()  # the SDK's OSError becomes DeviceMissingError


def test_health_probe() -> None:
    sdk = EmulatedIrisSdk()
    dev = SdkIrisScanner(sdk)
    with pytest.raises(DeviceMissingError):
        dev.health()
    dev.open()
    dev.health()
    sdk.disconnected = True
    with pytest.raises(DeviceMissingError):
        dev.health()
    dev.close()


def test_misuse_is_refused_before_the_device() -> None:
    sdk = EmulatedIrisSdk()
    dev = SdkIrisScanner(sdk)
    with pytest.raises(ValueError):
        dev.capture("middle")  # type: ignore[arg-type]
    with pytest.raises(DeviceMissingError):
        dev.capture("left")
    with pytest.raises(DeviceMissingError):
        dev.identify()
    assert sdk.captures == 0
    with pytest.raises(ValueError):
        eyes_of("none")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        IrisImage("left", 640, 480, b"short")


def test_hung_sdk_is_a_bounded_timeout_then_wedged() -> None:
    sdk = EmulatedIrisSdk(hang=True)
    dev = scanner(sdk, timeout_s=0.1, grace_s=0.1)
    try:
        with pytest.raises(DeviceTimeoutError):
            dev.capture("left")
        with pytest.raises(DeviceFaultError) as err:
            dev.capture("left")
        assert err.value.code == "WEDGED"
    finally:
        sdk.release.set()
        dev.close()


def test_cancel_from_another_thread() -> None:
    gate = threading.Event()

    @dataclass
    class SlowSdk(EmulatedIrisSdk):
        def capture(self, eyes, timeout_s, cancel):  # type: ignore[no-untyped-def]
            gate.set()
            cancel.wait(5)
            return super().capture(eyes, timeout_s, cancel)

    dev = scanner(SlowSdk())

    def canceller() -> None:
        gate.wait(5)
        dev.cancel()

    helper = threading.Thread(target=canceller)
    helper.start()
    with pytest.raises(UserRetryError, match="cancelled"):
        dev.capture("left")
    helper.join(5)
    dev.close()


@dataclass
class BadSdk(EmulatedIrisSdk):
    reply: SdkCapture | None = None
    boom: bool = False

    def capture(self, eyes, timeout_s, cancel):  # type: ignore[no-untyped-def]
        if self.boom:
            raise RuntimeError("vendor library crashed")
        assert self.reply is not None
        return self.reply


def test_bad_sdk_results_are_protocol_errors() -> None:
    small = IrisImage("left", 320, 240, bytes(320 * 240))
    ok_left = IrisImage("left", 640, 480, bytes(640 * 480))
    cases = [
        SdkCapture(SdkStatus.OK, (small,)),
        SdkCapture(SdkStatus.OK, (ok_left,)),  # asked for both, got one
        SdkCapture(SdkStatus.OK, (IrisImage("left", 640, 480, bytes(640 * 480), 150),
                                  IrisImage("right", 640, 480, bytes(640 * 480)))),
    ]
    for reply in cases:
        dev = scanner(BadSdk(reply=reply))
        with pytest.raises(DeviceProtocolError):
            dev.capture("left" if reply.images[0] is small else "both")
        dev.close()
    dev = scanner(BadSdk(boom=True))
    with pytest.raises(DeviceFaultError) as err:
        dev.capture("left")
    assert err.value.code == "SDK"
    dev.close()


def test_self_test() -> None:
    dev = scanner(EmulatedIrisSdk())
    result = dev.self_test()
    assert result.ok and result.steps[-1][0] == "sdk self-test"
    dev.close()
