"""Enrollment-grade ten-print (4-4-2 slap) scanners: the adapter seam. Evidence: emulator only.

No public wire protocol exists for any FBI Appendix F / FAP 45+ slap scanner (research note §1.2):
every vendor ships an SDK. So this module does NOT speak to any real scanner by itself. It has:

* :class:`TenPrintBackend` -- the few calls every vendor SDK offers in some form (open, info,
  start a capture, poll its status, fetch the image and the finger boxes, abort, close);
* :class:`TenPrintScanner` -- the :class:`~drivers.fingerprint.base.FingerprintScanner` built on
  any backend: bounded polling with timeout and cancel, validation of what the SDK returns,
  per-finger crops from the SDK's segmentation, per-finger quality, the frame log;
* :class:`VendorLibraryBackend` -- loads a vendor shim library from a configured path with ctypes
  and maps its calls. **Needs the vendor SDK (and a small C shim over it, ABI below); not
  exercised against any real SDK or scanner: none is available to this project.** Its ctypes
  mapping is checked only against a fake shim compiled by ``tests/test_tenprint_sdk_shim.py``.
* the emulator backend lives in ``drivers/emulators/tenprint.py`` and is what the tests and the
  demo use.

Shim C ABI expected by :class:`VendorLibraryBackend` (every call returns 0 or an ``RK_TP_*`` code)::

    int rk_tp_open(void **handle);
    int rk_tp_info(void *h, struct rk_tp_info *out);      /* 4 x char[64], then int ppi, width,
                                                              height, flags (1 slaps, 2 rolled) */
    int rk_tp_start(void *h, int iso_code, int rolled, int missing);
                          /* iso_code 1-10 one finger, 13-15 a slap; missing: bit p set when
                             finger p of the slap is absent (amputated, bandaged) */
    int rk_tp_poll(void *h, int *status);                 /* 0 waiting, 1 capturing, 2 done */
    int rk_tp_result(void *h, unsigned char *buf, size_t len, int *width, int *height,
                     struct rk_tp_segment *segs, int max_segs, int *n_segs);
                                                          /* segment: int position, l, t, r, b */
    int rk_tp_abort(void *h);
    int rk_tp_close(void *h);
"""

from __future__ import annotations

import ctypes
import enum
import logging
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image

from drivers.base import DeviceIdentity, FrameLog, SelfTestResult
from drivers.errors import (
    DeviceError,
    DeviceFaultError,
    DeviceMissingError,
    DeviceProtocolError,
    DeviceTimeoutError,
)
from drivers.fingerprint.base import (
    QUALITY_METHOD,
    CaptureArgumentError,
    CaptureCancelledError,
    CaptureNotSupportedError,
    FingerCapture,
    FingerPosition,
    FingerQualityError,
    Impression,
    NoFingerError,
    ScannerCapabilities,
    Slap,
    SlapCapture,
    block_mean_std,
    estimate_quality,
    grey_image,
)

log = logging.getLogger(__name__)

MAX_PIXELS = 4000 * 3000  # larger than any FAP 60 platen at 500 ppi; guards a corrupt size


def _position(value: int) -> FingerPosition:
    try:
        return FingerPosition(value)
    except ValueError as exc:
        raise CaptureArgumentError(f"not a finger position (1-10): {value!r}") from exc


class Poll(enum.IntEnum):
    """A backend's capture status."""

    WAITING = 0  # nothing on the glass yet
    CAPTURING = 1  # finger(s) present, the device is acquiring
    DONE = 2  # image ready: call ``result``


@dataclass(frozen=True)
class BackendInfo:
    """What the SDK says about the connected scanner."""

    make: str
    model: str
    serial: str
    firmware: str
    ppi: int
    platen: tuple[int, int]  # width, height in pixels
    slaps: bool
    rolled: bool
    emulated: bool = False


@dataclass(frozen=True)
class Segment:
    """One finger the SDK found in a capture: ISO position and box (left, top, right, bottom)."""

    position: int
    bbox: tuple[int, int, int, int]


@dataclass(frozen=True)
class RawCapture:
    """The image an SDK returns: 8-bit greyscale rows, plus its finger segmentation."""

    width: int
    height: int
    ppi: int
    pixels: bytes
    segments: tuple[Segment, ...] = ()


class TenPrintBackend(Protocol):
    """The calls a vendor SDK must provide (through a shim) for :class:`TenPrintScanner`.

    Methods raise ``drivers.errors`` classes: the backend maps its vendor's return codes.
    """

    def open(self) -> None:
        """Connect to the scanner."""

    def info(self) -> BackendInfo:
        """Describe the scanner."""

    def start(self, iso_code: int, *, rolled: bool, missing: frozenset[int] = frozenset()) -> None:
        """Arm a capture of one finger (1-10) or one slap (13-15) without the ``missing`` fingers."""

    def poll(self) -> Poll:
        """Where the armed capture is (non-blocking or briefly blocking)."""

    def result(self) -> RawCapture:
        """The finished capture."""

    def abort(self) -> None:
        """Cancel the armed capture; harmless when none is armed."""

    def close(self) -> None:
        """Disconnect; safe to call twice."""


class TenPrintScanner:
    """A :class:`~drivers.fingerprint.base.FingerprintScanner` over a :class:`TenPrintBackend`."""

    def __init__(
        self,
        backend: TenPrintBackend,
        *,
        poll_interval: float = 0.02,
        reject_below: int = 0,
    ) -> None:
        """``reject_below`` > 0 turns a capture scoring lower into a FingerQualityError."""
        self._backend = backend
        self._poll_interval = poll_interval
        self._reject_below = reject_below
        self._info: BackendInfo | None = None
        self._lock = threading.Lock()  # one capture in flight: SDKs are not re-entrant
        self.frame_log = FrameLog()

    # ----------------------------------------------------------------- Device

    def open(self) -> None:
        """Open the backend and read its description."""
        self.frame_log.record("tx", "open")
        self._backend.open()
        info = self._backend.info()
        if info.ppi <= 0 or info.platen[0] <= 0 or info.platen[1] <= 0:
            raise DeviceProtocolError(f"scanner reports impossible geometry {info}", response=info)
        self._info = info
        self.frame_log.record("rx", f"info {info.make} {info.model} {info.ppi}ppi {info.platen}")

    def _need_info(self) -> BackendInfo:
        if self._info is None:
            raise DeviceMissingError("scanner is not open")
        return self._info

    def identify(self) -> DeviceIdentity:
        """Identity from the SDK's description; evidence is always "emulator only" here."""
        info = self._need_info()
        return DeviceIdentity(
            kind="tenprint",
            make=info.make,
            model=info.model,
            serial=info.serial,
            firmware=info.firmware,
            evidence="emulator only",
            emulated=info.emulated,
        )

    def health(self) -> None:
        """Cheap presence check for the device manager: ask the SDK for its description.

        Skipped while a capture runs (the capture itself reports a vanished scanner).
        """
        self._need_info()
        if self._lock.acquire(blocking=False):
            try:
                self._backend.info()
            finally:
                self._lock.release()

    def capabilities(self) -> ScannerCapabilities:
        """Single fingers always; slaps and rolled as the SDK reports."""
        info = self._need_info()
        return ScannerCapabilities(
            single_finger=True,
            slaps=frozenset(Slap) if info.slaps else frozenset(),
            rolled=info.rolled,
            ppi=info.ppi,
        )

    def self_test(self) -> SelfTestResult:
        """Open state, geometry, and one short capture cycle (arm, poll, fetch or time out).

        Usually nobody is at the scanner during a self-test, so "no finger" passes: the sensor
        was armed and answered. No image is attached: it could be a person's print.
        """
        steps: list[tuple[str, bool, str]] = []
        try:
            info = self._need_info()
            steps.append(("identify", True, f"{info.make} {info.model} serial {info.serial}"))
            steps.append(("geometry", info.ppi >= 500, f"{info.ppi} ppi, platen {info.platen}"))
            try:
                capture = self.capture_finger(FingerPosition.RIGHT_INDEX, timeout=1.0)
            except NoFingerError:
                steps.append(("capture", True, "sensor armed and answered; no finger on the glass"))
            else:
                detail = f"quality {capture.quality} ({capture.quality_method})"
                steps.append(("capture", True, detail))
        except DeviceError as exc:
            steps.append(("capture" if len(steps) >= 2 else "identify", False, str(exc)))
        return SelfTestResult(ok=all(ok for _, ok, _ in steps), steps=tuple(steps))

    def close(self) -> None:
        """Close the backend; safe twice."""
        self._info = None
        self.frame_log.record("tx", "close")
        self._backend.close()

    # ----------------------------------------------------------------- captures

    def capture_finger(
        self,
        position: FingerPosition,
        *,
        timeout: float,
        rolled: bool = False,
        cancel: threading.Event | None = None,
    ) -> FingerCapture:
        """Capture one finger; see ``FingerprintScanner.capture_finger``."""
        position = _position(position)
        if rolled and not self.capabilities().rolled:
            raise CaptureNotSupportedError("this scanner has no rolled capture")
        raw = self._capture(int(position), rolled=rolled, timeout=timeout, cancel=cancel)
        image = self._image(raw)
        impression = Impression.LIVE_ROLLED if rolled else Impression.LIVE_PLAIN
        # A rolled print covers nail to nail, so it is held to a larger expected area.
        report = estimate_quality(image, ppi=raw.ppi, expected_area_in2=0.45 if rolled else 0.3)
        self._gate(report.score, report.likely_problem())
        return FingerCapture(
            position=position,
            image=image,
            ppi=raw.ppi,
            quality=report.score,
            quality_method=QUALITY_METHOD,
            impression=impression,
        )

    def capture_slap(
        self,
        slap: Slap,
        *,
        timeout: float,
        skip: Collection[FingerPosition] = (),
        cancel: threading.Event | None = None,
    ) -> SlapCapture:
        """Capture one slap and segment it; see ``FingerprintScanner.capture_slap``."""
        try:
            slap = Slap(slap)
        except ValueError as exc:
            raise CaptureArgumentError(f"not a slap code: {slap!r}") from exc
        skipped = frozenset(_position(f) for f in skip)
        if not self.capabilities().slaps:
            raise CaptureNotSupportedError("this scanner has no slap capture")
        if not skipped <= set(slap.fingers):
            raise CaptureArgumentError(
                f"skip {sorted(skipped)} names fingers outside slap {slap.name}"
            )
        if skipped == set(slap.fingers):
            raise CaptureArgumentError(
                f"every finger of slap {slap.name} skipped: nothing to capture"
            )
        raw = self._capture(
            int(slap),
            rolled=False,
            timeout=timeout,
            cancel=cancel,
            missing=frozenset(int(f) for f in skipped),
        )
        image = self._image(raw)
        expected = [f for f in slap.fingers if f not in skipped]
        segments = raw.segments
        if not segments:
            # Some SDKs return only the platen image: fall back to our own column segmentation.
            segments = segment_slap(image, [int(f) for f in expected])
            self.frame_log.record("rx", f"segmented here: {[s.bbox for s in segments]}")
        found = {s.position: s for s in segments}
        if sorted(found) != sorted(int(f) for f in expected) or len(segments) != len(expected):
            raise DeviceProtocolError(
                f"segmentation returned positions {[s.position for s in segments]}, "
                f"expected {[int(f) for f in expected]}",
                response=[s.position for s in segments],
            )
        fingers: list[FingerCapture] = []
        worst: tuple[int, str] | None = None
        for position in expected:
            seg = found[int(position)]
            left, top, right, bottom = seg.bbox
            if not (0 <= left < right <= raw.width and 0 <= top < bottom <= raw.height):
                raise DeviceProtocolError(f"segment box {seg.bbox} outside the image", response=seg)
            crop = image.crop(seg.bbox)
            report = estimate_quality(crop, ppi=raw.ppi)
            if worst is None or report.score < worst[0]:
                worst = (report.score, report.likely_problem())
            fingers.append(
                FingerCapture(
                    position=position,
                    image=crop,
                    ppi=raw.ppi,
                    quality=report.score,
                    quality_method=QUALITY_METHOD,
                    bbox=seg.bbox,
                )
            )
        if worst is not None:
            self._gate(*worst)
        return SlapCapture(
            slap=slap, image=image, ppi=raw.ppi, fingers=tuple(fingers), skipped=skipped
        )

    def _gate(self, score: int, problem: str) -> None:
        if score < self._reject_below:
            raise FingerQualityError(
                f"capture quality {score} below {self._reject_below} ({problem})",
                reason=problem,
                quality=score,
            )

    def _capture(
        self,
        iso_code: int,
        *,
        rolled: bool,
        timeout: float,
        cancel: threading.Event | None,
        missing: frozenset[int] = frozenset(),
    ) -> RawCapture:
        """Arm, poll until done within ``timeout``, fetch; abort on any way out but success."""
        if timeout <= 0:
            raise CaptureArgumentError(f"timeout must be positive, got {timeout}")
        self._need_info()
        if not self._lock.acquire(blocking=False):
            raise DeviceFaultError(
                "a capture is already running on this scanner",
                code="busy",
                hint_id="Pemindai sedang dipakai. Tunggu sampai pengambilan selesai.",
                hint_en="The scanner is busy. Wait until the current capture finishes.",
            )
        try:
            self.frame_log.record(
                "tx", f"start code={iso_code} rolled={int(rolled)} missing={sorted(missing)}"
            )
            self._backend.start(iso_code, rolled=rolled, missing=missing)
            deadline = time.monotonic() + timeout
            status = Poll.WAITING
            done = False
            try:
                while True:
                    answer = self._backend.poll()
                    try:
                        status = Poll(answer)
                    except ValueError as exc:
                        raise DeviceProtocolError(
                            f"backend poll answered {answer!r}", response=answer
                        ) from exc
                    if status is Poll.DONE:
                        done = True
                        break
                    if cancel is not None and cancel.is_set():
                        raise CaptureCancelledError("capture cancelled")
                    if time.monotonic() >= deadline:
                        if status is Poll.WAITING:
                            raise NoFingerError(f"no finger within {timeout:.1f} s")
                        raise DeviceTimeoutError(f"scanner still capturing after {timeout:.1f} s")
                    # Sleep in short steps so cancel takes effect quickly.
                    if cancel is not None:
                        cancel.wait(self._poll_interval)
                    else:
                        time.sleep(self._poll_interval)
            finally:
                if not done:
                    self._abort_quietly()
            raw = self._backend.result()
            self.frame_log.record(
                "rx",
                f"image {raw.width}x{raw.height} {raw.ppi}ppi <{len(raw.pixels)} bytes elided> "
                f"segments={[s.position for s in raw.segments]}",
            )
            return self._check(raw)
        finally:
            self._lock.release()

    def _abort_quietly(self) -> None:
        self.frame_log.record("tx", "abort")
        try:
            self._backend.abort()
        except DeviceError as exc:
            # The capture is already failing with a better error; a failed abort adds nothing.
            log.debug("abort after a failed capture also failed: %s", exc)

    @staticmethod
    def _check(raw: RawCapture) -> RawCapture:
        if not (0 < raw.width and 0 < raw.height and raw.width * raw.height <= MAX_PIXELS):
            raise DeviceProtocolError(
                f"impossible image size {raw.width}x{raw.height}", response=raw.width
            )
        if len(raw.pixels) != raw.width * raw.height:
            raise DeviceProtocolError(
                f"image of {raw.width}x{raw.height} carries {len(raw.pixels)} bytes",
                response=len(raw.pixels),
            )
        if raw.ppi < 100:
            raise DeviceProtocolError(f"impossible resolution {raw.ppi} ppi", response=raw.ppi)
        return raw

    @staticmethod
    def _image(raw: RawCapture) -> Image.Image:
        return Image.frombytes("L", (raw.width, raw.height), raw.pixels)


# --------------------------------------------------------------------------- segmentation

_SEG_BLOCK = 16  # pixels; about two ridge periods at 500 ppi


def segment_slap(image: Image.Image, positions: list[int]) -> tuple[Segment, ...]:
    """Boxes for ``positions`` (left to right on the glass) in a slap image without SDK boxes.

    Method: 16x16 blocks holding print (grey spread >= 12) are found; block columns with print
    form runs; the ``len(positions)`` heaviest runs, taken left to right, are the fingers, each
    boxed from its first to last print row. Fingers pressed together into one run cannot be
    split this way, so fewer runs than fingers is a retry ("spread the fingers"), not a guess.

    Raises:
        FingerQualityError: fewer separate fingers on the glass than expected.
    """
    b = _SEG_BLOCK
    # Block statistics come from Pillow's C reductions; Python walks only the blocks (6200 on a
    # 1600x1000 platen), so the daemon segments without numpy.
    w, means, stds = block_mean_std(grey_image(image), b)
    h = len(means) // w if w else 0
    fg = [std >= 12.0 and mean < 245.0 for mean, std in zip(means, stds, strict=True)]
    per_column = [sum(fg[x::w]) for x in range(w)] if h else []
    active = [n >= 2 for n in per_column]  # a column needs two print blocks: one is a speck
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for x, on in enumerate([*active, False]):
        if on and start is None:
            start = x
        elif not on and start is not None:
            runs.append((start, x))
            start = None
    if len(runs) < len(positions):
        raise FingerQualityError(
            f"found {len(runs)} separate fingers, expected {len(positions)}",
            reason="partial",
        )
    heaviest = sorted(runs, key=lambda r: sum(per_column[r[0] : r[1]]), reverse=True)
    chosen = sorted(heaviest[: len(positions)])
    out: list[Segment] = []
    for position, (x0, x1) in zip(positions, chosen, strict=True):
        rows = [y for y in range(h) if any(fg[y * w + x0 : y * w + x1])]
        out.append(Segment(position, (x0 * b, rows[0] * b, x1 * b, (rows[-1] + 1) * b)))
    return tuple(out)


# --------------------------------------------------------------------------- vendor seam


class _Info(ctypes.Structure):
    _fields_ = [
        ("make", ctypes.c_char * 64),
        ("model", ctypes.c_char * 64),
        ("serial", ctypes.c_char * 64),
        ("firmware", ctypes.c_char * 64),
        ("ppi", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("flags", ctypes.c_int),
    ]


class _Segment(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in ("position", "left", "top", "right", "bottom")]


# Shim return codes -> (error class, message). Kept as data: a new vendor mapping is a table edit.
RK_TP_CODES: Mapping[int, tuple[type[DeviceError], str]] = {
    1: (DeviceMissingError, "no scanner connected"),
    2: (DeviceTimeoutError, "scanner did not answer"),
    3: (FingerQualityError, "finger moved during capture"),
    4: (FingerQualityError, "finger too dry"),
    5: (FingerQualityError, "finger too wet"),
    6: (DeviceFaultError, "scanner hardware fault"),
    7: (DeviceProtocolError, "invalid argument or state"),
}
_QUALITY_REASON = {3: "smudge", 4: "dry", 5: "wet"}


class VendorLibraryBackend:
    """A :class:`TenPrintBackend` over a vendor shim library. NEEDS THE VENDOR SDK; NOT EXERCISED HERE.

    ``library`` is the configured path of the shim (``[devices.NAME] options.sdk_library``).
    The calls have run only against a fake shim written in the tests (checking the ctypes
    structures, out-parameters and return codes), never against a real vendor SDK.
    """

    _SYMBOLS = (
        "rk_tp_open",
        "rk_tp_info",
        "rk_tp_start",
        "rk_tp_poll",
        "rk_tp_result",
        "rk_tp_abort",
        "rk_tp_close",
    )

    def __init__(self, library: str | Path) -> None:
        self._path = Path(library)
        self._lib: ctypes.CDLL | None = None
        self._handle = ctypes.c_void_p()
        self._info: BackendInfo | None = None

    def _call(self, name: str, *args: object) -> None:
        if self._lib is None:
            raise DeviceMissingError("vendor library not loaded")
        rc = int(getattr(self._lib, name)(*args))
        if rc == 0:
            return
        cls, message = RK_TP_CODES.get(rc, (DeviceFaultError, f"vendor code {rc}"))
        if cls is FingerQualityError:
            raise FingerQualityError(message, reason=_QUALITY_REASON.get(rc, "features"))
        if cls is DeviceFaultError:
            raise DeviceFaultError(f"{name}: {message}", code=rc)
        raise cls(f"{name}: {message}")

    def open(self) -> None:
        """Load the shim and open the scanner."""
        if not self._path.is_file():
            raise DeviceMissingError(
                f"vendor SDK shim not found at {self._path}",
                hint_id="Perangkat lunak pemindai (SDK) belum terpasang. Hubungi teknisi.",
                hint_en="The scanner's vendor software (SDK) is not installed. Call the technician.",
            )
        try:
            lib = ctypes.CDLL(str(self._path))
        except OSError as exc:
            raise DeviceMissingError(f"cannot load vendor SDK shim {self._path}: {exc}") from exc
        missing = [s for s in self._SYMBOLS if not hasattr(lib, s)]
        if missing:
            raise DeviceMissingError(f"vendor SDK shim {self._path} lacks {', '.join(missing)}")
        self._lib = lib
        self._call("rk_tp_open", ctypes.byref(self._handle))

    def info(self) -> BackendInfo:
        """Read the scanner description."""
        raw = _Info()
        self._call("rk_tp_info", self._handle, ctypes.byref(raw))
        self._info = BackendInfo(
            make=raw.make.decode(errors="replace"),
            model=raw.model.decode(errors="replace"),
            serial=raw.serial.decode(errors="replace"),
            firmware=raw.firmware.decode(errors="replace"),
            ppi=raw.ppi,
            platen=(raw.width, raw.height),
            slaps=bool(raw.flags & 1),
            rolled=bool(raw.flags & 2),
        )
        return self._info

    def start(self, iso_code: int, *, rolled: bool, missing: frozenset[int] = frozenset()) -> None:
        """Arm a capture."""
        mask = sum(1 << p for p in missing)
        self._call(
            "rk_tp_start",
            self._handle,
            ctypes.c_int(iso_code),
            ctypes.c_int(int(rolled)),
            ctypes.c_int(mask),
        )

    def poll(self) -> Poll:
        """Capture status."""
        status = ctypes.c_int()
        self._call("rk_tp_poll", self._handle, ctypes.byref(status))
        try:
            return Poll(status.value)
        except ValueError as exc:
            raise DeviceProtocolError(
                f"unknown poll status {status.value}", response=status.value
            ) from exc

    def result(self) -> RawCapture:
        """Fetch the image into a platen-sized buffer, with up to 4 segments."""
        info = self._info or self.info()
        buf = (ctypes.c_ubyte * (info.platen[0] * info.platen[1]))()
        width, height, n = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        segs = (_Segment * 4)()
        self._call(
            "rk_tp_result",
            self._handle,
            buf,
            ctypes.c_size_t(len(buf)),
            ctypes.byref(width),
            ctypes.byref(height),
            segs,
            ctypes.c_int(4),
            ctypes.byref(n),
        )
        size = width.value * height.value
        if not 0 < size <= len(buf) or not 0 <= n.value <= 4:
            raise DeviceProtocolError(
                f"shim returned size {width.value}x{height.value}, {n.value} segments"
            )
        return RawCapture(
            width=width.value,
            height=height.value,
            ppi=info.ppi,
            pixels=bytes(buf[:size]),
            segments=tuple(
                Segment(s.position, (s.left, s.top, s.right, s.bottom)) for s in segs[: n.value]
            ),
        )

    def abort(self) -> None:
        """Cancel the armed capture."""
        self._call("rk_tp_abort", self._handle)

    def close(self) -> None:
        """Close the scanner; safe twice."""
        if self._lib is not None and self._handle.value:
            try:
                self._call("rk_tp_close", self._handle)
            finally:
                self._handle = ctypes.c_void_p()
        self._lib = None
