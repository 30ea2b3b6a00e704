"""The seam for a vendor iris SDK, and the driver that turns it into an :class:`IrisScanner`.

Evidence: emulator only. The only implementation in this repository is the emulator
(``drivers.emulators.iris.EmulatedIrisSdk``); no vendor SDK is exercised here.

To support a real scanner (IriShield through IriTech's IDDK, for example) write one class
that satisfies :class:`IrisSdk`, typically a ctypes wrapper of the vendor's shared library:

* ``open_device`` / ``close_device``: the SDK's open and close, returning make, model,
  serial and firmware as the SDK reports them;
* ``capture``: start the SDK's capture for the requested eyes, wait at most ``timeout_s``
  (poll ``cancel`` if the SDK allows aborting), and map the SDK's result codes to
  :class:`SdkStatus`; images are 640x480 8-bit grey (crop or pad if the SDK returns a
  different ISO 19794-6 size, and say so in the adapter's docstring);
* ``self_test``: the SDK's own device check.

The adapter must not log images. :class:`SdkIrisScanner` does the rest: argument checks,
the bounded wait (the SDK call runs on a worker thread, so a hung SDK cannot hang the
device thread), result validation, the error split and the frame log.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from drivers.base import DeviceIdentity, FrameLog, SelfTestResult
from drivers.errors import (
    DeviceError,
    DeviceFaultError,
    DeviceMissingError,
    DeviceProtocolError,
    DeviceTimeoutError,
    UserRetryError,
)
from drivers.iris.base import IRIS_HEIGHT, IRIS_WIDTH, EyeSelection, IrisImage, eyes_of

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class SdkStatus(enum.Enum):
    """Outcome of one SDK capture, in the terms every iris SDK we looked at uses."""

    OK = "ok"
    NO_EYE = "no_eye"
    EYES_CLOSED = "eyes_closed"
    TOO_FAR = "too_far"
    TOO_CLOSE = "too_close"
    MOTION = "motion"
    TIMEOUT = "timeout"  # the SDK's own capture timer ran out (no usable eye presented)
    CANCELLED = "cancelled"
    DISCONNECTED = "disconnected"
    DEVICE_ERROR = "device_error"


@dataclass(frozen=True)
class SdkDeviceInfo:
    """What the SDK says about the device."""

    make: str
    model: str
    serial: str
    firmware: str


@dataclass(frozen=True)
class SdkCapture:
    """One SDK capture result; ``images`` only when status is OK."""

    status: SdkStatus
    images: tuple[IrisImage, ...] = ()
    code: int | str | None = None  # the vendor's raw result code, for the technician


class IrisSdk(Protocol):
    """What a vendor SDK adapter provides (see the module docstring)."""

    def open_device(self) -> SdkDeviceInfo:
        """Open the scanner through the SDK."""

    def close_device(self) -> None:
        """Close it; safe to call twice."""

    def capture(self, eyes: EyeSelection, timeout_s: float, cancel: threading.Event) -> SdkCapture:
        """Capture the selected eyes within ``timeout_s``; return early when ``cancel`` is set."""

    def self_test(self) -> tuple[bool, str]:
        """The SDK's device check: (passed, detail)."""

    def present(self) -> bool:
        """Cheap check that the scanner is still attached (the SDK's device query)."""


# user-retry statuses: (log text, hint_id, hint_en)
_RETRY: dict[SdkStatus, tuple[str, str, str]] = {
    SdkStatus.NO_EYE: (
        "no eye found",
        "Mata tidak terlihat. Lihat lurus ke dalam alat pemindai iris.",
        "No eye seen. Look straight into the iris scanner.",
    ),
    SdkStatus.EYES_CLOSED: (
        "eyes closed",
        "Buka mata lebih lebar dan jangan berkedip.",
        "Open your eyes wider and do not blink.",
    ),
    SdkStatus.TOO_FAR: (
        "too far",
        "Dekatkan wajah ke alat pemindai.",
        "Move your face closer to the scanner.",
    ),
    SdkStatus.TOO_CLOSE: (
        "too close",
        "Jauhkan wajah sedikit dari alat pemindai.",
        "Move your face a little away from the scanner.",
    ),
    SdkStatus.MOTION: (
        "motion",
        "Jangan bergerak saat pemindaian.",
        "Hold still during the scan.",
    ),
    SdkStatus.TIMEOUT: (
        "no usable eye before the SDK timeout",
        "Lihat ke dalam alat pemindai dan buka mata lebar, lalu ulangi.",
        "Look into the scanner with eyes wide open, then try again.",
    ),
    SdkStatus.CANCELLED: (
        "cancelled",
        "Pemindaian dibatalkan. Ulangi bila perlu.",
        "Scan cancelled. Repeat if needed.",
    ),
}


@dataclass
class SdkIrisScanner:
    """An :class:`IrisScanner` over any :class:`IrisSdk` (implements ``drivers.base.Device``)."""

    sdk: IrisSdk
    timeout_s: float = 10.0
    grace_s: float = 2.0  # extra time the SDK gets beyond its own timeout before we give up
    emulated: bool = False
    frame_log: FrameLog = field(default_factory=FrameLog)
    _info: SdkDeviceInfo | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wedged: bool = False

    def open(self) -> None:
        """Open the scanner through its SDK."""
        if self._info is not None:
            return
        info = self._call("open", self.sdk.open_device)
        self._info = info
        self.frame_log.record("rx", f"open: {info.make} {info.model} fw {info.firmware}")

    def identify(self) -> DeviceIdentity:
        """Make, model, serial and firmware as the SDK reports them."""
        if self._info is None:
            raise DeviceMissingError("iris scanner is not open")
        i = self._info
        return DeviceIdentity("iris", i.make, i.model, i.serial, i.firmware, "emulator only", self.emulated)

    def self_test(self) -> SelfTestResult:
        """The SDK's own check (no capture: that needs a person in front of it)."""
        steps: list[tuple[str, bool, str]] = []
        try:
            self.open()
            steps.append(("open", True, ""))
            ok, detail = self._call("self_test", self.sdk.self_test)
            steps.append(("sdk self-test", ok, detail))
        except DeviceError as exc:
            steps.append(("sdk", False, str(exc)))
        return SelfTestResult(all(s[1] for s in steps), tuple(steps))

    def health(self) -> None:
        """Cheap presence probe for the device manager; skipped while a capture runs."""
        if self._info is None:
            raise DeviceMissingError("iris scanner is not open")
        if self._wedged:
            raise DeviceFaultError("a previous SDK call never returned", code="WEDGED")
        if self._lock.locked():
            return
        if not self._call("present", self.sdk.present):
            raise DeviceMissingError("iris scanner no longer attached")

    def close(self) -> None:
        """Close through the SDK; safe to call twice."""
        if self._info is None:
            return
        self._info = None
        try:
            self.sdk.close_device()
        except Exception as exc:  # noqa: BLE001 - vendor code may raise anything; closing must finish
            log.warning("iris SDK close failed: %s", type(exc).__name__)

    def cancel(self) -> None:
        """Abort a capture in progress."""
        self._cancel.set()

    def capture(self, eyes: EyeSelection, timeout_s: float | None = None) -> tuple[IrisImage, ...]:
        """Capture the selected eyes; see :class:`drivers.iris.base.IrisScanner`."""
        wanted = eyes_of(eyes)  # argument misuse is refused before touching the device
        if self._info is None:
            raise DeviceMissingError("iris scanner is not open")
        if self._wedged:
            raise DeviceFaultError(
                "a previous SDK call never returned; reopen the device",
                code="WEDGED",
                hint_id="Alat iris macet. Cabut dan pasang kembali, lalu mulai ulang layanan.",
                hint_en="The iris scanner hangs. Replug it and restart the service.",
            )
        bound = self.timeout_s if timeout_s is None else timeout_s
        self._cancel.clear()
        result = self._call("capture", lambda: self.sdk.capture(eyes, bound, self._cancel), bound)
        self.frame_log.record("rx", f"capture {eyes}: {result.status.value} code={result.code}")
        if result.status in _RETRY:
            text, hint_id, hint_en = _RETRY[result.status]
            raise UserRetryError(f"iris capture: {text}", hint_id=hint_id, hint_en=hint_en)
        if result.status is SdkStatus.DISCONNECTED:
            raise DeviceMissingError("iris scanner disconnected")
        if result.status is SdkStatus.DEVICE_ERROR:
            raise DeviceFaultError(f"iris scanner error {result.code}", code=result.code)
        got = tuple(img.eye for img in result.images)
        if got != wanted:
            raise DeviceProtocolError(f"asked for {wanted}, SDK returned {got}", response=got)
        for img in result.images:
            if (img.width, img.height) != (IRIS_WIDTH, IRIS_HEIGHT):
                raise DeviceProtocolError(
                    f"{img.eye} image is {img.width}x{img.height}, expected {IRIS_WIDTH}x{IRIS_HEIGHT}",
                    response=(img.width, img.height),
                )
            if img.sdk_quality is not None and not 0 <= img.sdk_quality <= 100:
                raise DeviceProtocolError(f"SDK quality {img.sdk_quality} outside 0-100")
            self.frame_log.record("rx", f"{img.eye} image {img.width}x{img.height} (pixels elided)")
        return result.images

    def _call(self, what: str, fn: Callable[[], _T], bound: float | None = None) -> _T:
        """Run one SDK call on a worker thread and wait at most its bound plus the grace time."""
        limit = (self.timeout_s if bound is None else bound) + self.grace_s
        box: list[_T] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                box.append(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
                failure.append(exc)

        with self._lock:  # one SDK call in flight: vendor SDKs are rarely re-entrant
            worker = threading.Thread(target=run, name=f"iris-sdk-{what}", daemon=True)
            worker.start()
            worker.join(limit)
            if worker.is_alive():
                self._cancel.set()
                self._wedged = True
                self.frame_log.record("tx", f"{what}: no return within {limit:.1f}s")
                raise DeviceTimeoutError(f"iris SDK {what} did not return within {limit:.1f} s")
        if failure:
            exc = failure[0]
            if isinstance(exc, DeviceError):
                raise exc
            if isinstance(exc, OSError):
                raise DeviceMissingError(f"iris SDK {what}: {exc}") from exc
            raise DeviceFaultError(f"iris SDK {what} raised {type(exc).__name__}", code="SDK") from exc
        return box[0]
