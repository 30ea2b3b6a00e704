"""Signature capture from any pen tablet the Linux kernel exposes through evdev.

Evidence: public protocol (kernel input UAPI). Wacom STU and Topaz pads speak closed
protocols (research note protocols.md section 4) and are not supported directly; many pen
tablets, and Wacom STU pads with the kernel's HID driver, appear as ``/dev/input/eventN``.

The driver reads ``struct input_event`` records (``firmware_protocols.evdev``), learns axis
ranges with EVIOCGABS, grabs the device (EVIOCGRAB) so the pen does not also move the
desktop cursor, assembles strokes, renders them to a clean PNG and checks the minimum ink.
One thread owns a pad; every wait is bounded.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import threading
import time
from dataclasses import dataclass

from drivers.base import DeviceIdentity, FrameLog, SelfTestResult
from drivers.errors import (
    DeviceError,
    DeviceFaultError,
    DeviceMissingError,
    DeviceProtocolError,
    UserRetryError,
)
from drivers.signature import evdev_io
from drivers.signature.render import ink_extent, ink_share, render_strokes, to_png
from firmware_protocols.errors import CodecError
from firmware_protocols.evdev import (
    ABS_PRESSURE,
    ABS_X,
    ABS_Y,
    EV_ABS,
    AbsRange,
    EvdevDecoder,
    Layout,
    Stroke,
    StrokeAssembler,
)

log = logging.getLogger(__name__)

HINT_SIGN_AGAIN_ID = "Tanda tangan kurang jelas. Silakan tanda tangan lagi dengan lebih besar."
HINT_SIGN_AGAIN_EN = "The signature is not clear enough. Please sign again, a little larger."


@dataclass(frozen=True)
class Signature:
    """One captured signature: strokes (device units), the PNG and its ink measures."""

    strokes: tuple[Stroke, ...]
    x_range: AbsRange
    y_range: AbsRange
    png: bytes
    ink_share: float
    extent: tuple[float, float]

    def __repr__(self) -> str:
        # The strokes are biometric data: never print them.
        return (f"Signature({len(self.strokes)} strokes, ink {self.ink_share:.4f}, "
                f"png {len(self.png)} bytes)")


class EvdevSignaturePad:
    """A pen tablet through evdev; implements ``drivers.base.Device``."""

    def __init__(
        self,
        path: str,
        *,
        box: tuple[int, int] = (600, 200),
        min_ink: float = 0.005,
        min_extent: float = 0.10,
        idle_end_s: float = 2.0,
        max_duration_s: float = 60.0,
        poll_s: float = 0.1,
        grab: bool = True,
        layout: Layout | None = None,
        syscalls: evdev_io.EvdevSyscalls | None = None,
        emulated: bool = False,
    ) -> None:
        self.path = path
        self.box = box
        self.min_ink = min_ink
        self.min_extent = min_extent
        self.idle_end_s = idle_end_s
        self.max_duration_s = max_duration_s
        self.poll_s = poll_s
        self.grab = grab
        self.layout: Layout = layout or ("64" if ctypes.sizeof(ctypes.c_long) == 8 else "32")
        self.sys: evdev_io.EvdevSyscalls = syscalls or evdev_io.RealEvdevSyscalls()
        self.emulated = emulated
        self.frame_log = FrameLog()
        self.fd: int | None = None
        self.name = ""
        self.ident = evdev_io.input_id()
        self.x_range: AbsRange | None = None
        self.y_range: AbsRange | None = None
        self.p_range: AbsRange | None = None
        self._grabbed = False

    # ------------------------------------------------------------------ helpers

    def _ioctl(self, request: int, size: int) -> bytearray:
        if self.fd is None:
            raise DeviceMissingError("signature pad is not open", device=self.path)
        buf = bytearray(size)
        try:
            self.sys.ioctl(self.fd, request, buf)
        except OSError as exc:
            raise self._os_error(exc, f"ioctl {request:#x}") from exc
        return buf

    def _os_error(self, exc: OSError, what: str) -> DeviceError:
        if exc.errno in (errno.ENODEV, errno.ENOENT, errno.ENXIO, errno.EIO):
            return DeviceMissingError(f"signature pad gone ({what})", device=self.path)
        if exc.errno in (errno.EACCES, errno.EPERM):
            return DeviceMissingError(
                f"no permission for {self.path}",
                hint_id="Alat tanda tangan tidak bisa dibuka (izin). Hubungi teknisi.",
                hint_en="The signature pad cannot be opened (permission). Call the technician.",
                device=self.path,
            )
        if exc.errno == errno.EBUSY:
            return DeviceFaultError(
                f"signature pad grabbed by another program ({what})", code="EBUSY",
                hint_id="Alat tanda tangan dipakai aplikasi lain. Tutup aplikasi itu.",
                hint_en="Another program holds the signature pad. Close it.",
                device=self.path,
            )
        return DeviceProtocolError(f"{what}: errno {exc.errno}", device=self.path)

    def _axis(self, axis: int) -> AbsRange | None:
        try:
            buf = self._ioctl(evdev_io.EVIOCGABS(axis), ctypes.sizeof(evdev_io.input_absinfo))
        except DeviceProtocolError:
            return None
        info = evdev_io.input_absinfo.from_buffer_copy(buf)
        if info.maximum <= info.minimum:
            return None
        return AbsRange(info.minimum, info.maximum, info.fuzz, info.flat, info.resolution)

    # ------------------------------------------------------------------ Device

    def open(self) -> None:
        """Open the event node, read name, id and axis ranges, grab it."""
        if self.fd is not None:
            return
        try:
            self.fd = self.sys.open(self.path)
        except OSError as exc:
            raise self._os_error(exc, "open") from exc
        try:
            self.name = bytes(self._ioctl(evdev_io.EVIOCGNAME(256), 256)).split(b"\0")[0].decode(
                "utf-8", "replace")
            self.ident = evdev_io.input_id.from_buffer_copy(
                self._ioctl(evdev_io.EVIOCGID, ctypes.sizeof(evdev_io.input_id)))
            abs_bits = int.from_bytes(self._ioctl(evdev_io.EVIOCGBIT(EV_ABS, 8), 8), "little")
            if not (abs_bits >> ABS_X) & 1 or not (abs_bits >> ABS_Y) & 1:
                raise DeviceFaultError(
                    f"{self.path} ({self.name}) has no absolute X/Y axes: not a pen tablet",
                    code="NOT_PEN",
                    hint_id="Perangkat ini bukan alat tanda tangan. Periksa pengaturan.",
                    hint_en="This device is not a signature pad. Check the setting.",
                    device=self.path,
                )
            self.x_range = self._axis(ABS_X)
            self.y_range = self._axis(ABS_Y)
            self.p_range = self._axis(ABS_PRESSURE) if (abs_bits >> ABS_PRESSURE) & 1 else None
            if self.x_range is None or self.y_range is None:
                raise DeviceFaultError("pen axes report no usable range", code="NO_RANGE",
                                       device=self.path)
            if self.grab:
                try:
                    self.sys.grab(self.fd, True)
                    self._grabbed = True
                except OSError as exc:
                    err = self._os_error(exc, "EVIOCGRAB")
                    if not isinstance(err, DeviceProtocolError):
                        raise err from exc
                    log.info("signature pad %s could not be grabbed; the cursor may move", self.path)
        except BaseException:
            self.close()
            raise
        self.frame_log.record("rx", f"open {self.name!r} x{self.x_range} y{self.y_range}")
        log.info("signature pad %s open: %s", self.path, self.name)

    def health(self) -> None:
        """Cheap liveness probe for the device manager (EVIOCGID); DeviceMissingError when gone."""
        self._ioctl(evdev_io.EVIOCGID, ctypes.sizeof(evdev_io.input_id))

    def identify(self) -> DeviceIdentity:
        """Name and USB ids as the kernel reports them (evdev gives no serial number)."""
        if self.fd is None:
            raise DeviceMissingError("signature pad is not open", device=self.path)
        i = self.ident
        return DeviceIdentity(
            kind="signature",
            make=f"{i.vendor:04x}",
            model=f"{self.name} ({i.vendor:04x}:{i.product:04x})",
            serial="",
            firmware=f"{i.version:#06x}",
            evidence="public protocol",
            emulated=self.emulated,
        )

    def self_test(self) -> SelfTestResult:
        """Open and check the axes (no capture: that needs a person)."""
        steps: list[tuple[str, bool, str]] = []
        try:
            self.open()
            steps.append(("open", True, self.name))
            steps.append(("axes", True, f"x {self.x_range} y {self.y_range} pressure {self.p_range}"))
        except DeviceError as exc:
            steps.append(("open", False, str(exc)))
        return SelfTestResult(all(s[1] for s in steps), tuple(steps))

    def close(self) -> None:
        """Release the grab and close; safe to call twice."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        self._grabbed = False  # closing the fd releases the grab too
        try:
            self.sys.close(fd)
        except OSError as exc:
            log.debug("close failed: errno %s", exc.errno)

    # ------------------------------------------------------------------ capture

    def _drain(self) -> None:
        """Drop events queued before the capture started (a pen resting on the pad)."""
        if self.fd is None:
            return
        for _ in range(1000):  # bounded
            try:
                if not self.sys.read(self.fd, 4096):
                    return
            except BlockingIOError:
                return
            except OSError as exc:
                raise self._os_error(exc, "read") from exc

    def _read_some(self) -> bytes | None:
        """One non-blocking read: bytes, or None when nothing is waiting."""
        if self.fd is None:
            raise DeviceMissingError("signature pad is not open", device=self.path)
        try:
            data = self.sys.read(self.fd, 4096)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise self._os_error(exc, "read") from exc
        if not data:
            raise DeviceMissingError("signature pad closed its event stream", device=self.path)
        return data

    def capture(self, timeout_s: float = 30.0, stop: threading.Event | None = None) -> Signature:
        """Wait up to ``timeout_s`` for the pen, then record until it rests ``idle_end_s``.

        ``stop`` (the operator's "done" button) ends the capture early. Raises
        UserRetryError when nothing or too little was signed, or the kernel dropped events.
        """
        self.open()
        if self.fd is None or self.x_range is None or self.y_range is None:
            raise DeviceMissingError("signature pad is not open", device=self.path)
        self._drain()
        decoder = EvdevDecoder(self.layout)
        strokes = StrokeAssembler()
        start = time.monotonic()
        last_event = start
        started = False
        while True:
            now = time.monotonic()
            stopping = stop is not None and stop.is_set()
            if not stopping:
                if not started and now - start >= timeout_s:
                    raise UserRetryError(
                        f"no pen input within {timeout_s} s",
                        hint_id="Belum ada tanda tangan. Silakan tanda tangan pada alat.",
                        hint_en="Nothing was signed yet. Please sign on the pad.",
                        device=self.path,
                    )
                if started and now - last_event >= self.idle_end_s and not strokes.in_stroke:
                    break
                if now - start >= self.max_duration_s:
                    break
                if not self.sys.wait_readable(self.fd, self.poll_s):
                    continue
            # When the operator pressed "done", still take what the pad already sent.
            data = self._read_some()
            if data is None:
                if stopping:
                    break
                continue
            try:
                events = decoder.feed(data)
            except CodecError as exc:
                self.frame_log.record("rx", f"undecodable evdev bytes ({len(data)})")
                raise DeviceProtocolError(f"bad evdev stream: {exc}", device=self.path) from exc
            if events:
                last_event = time.monotonic()
                started = True
                strokes.feed(events)
                self.frame_log.record("rx", f"{len(events)} events (values elided)")
        strokes.finish()
        if strokes.dropped:
            raise UserRetryError(
                "the kernel dropped pen events (SYN_DROPPED)",
                hint_id=HINT_SIGN_AGAIN_ID, hint_en=HINT_SIGN_AGAIN_EN, device=self.path,
            )
        img = render_strokes(strokes.strokes, self.x_range, self.y_range, self.box, self.p_range)
        share = ink_share(img)
        extent = ink_extent(img)
        if not strokes.strokes or share < self.min_ink or max(extent) < self.min_extent:
            raise UserRetryError(
                f"too little ink: {share:.4f} of the box (minimum {self.min_ink}), "
                f"extent {extent[0]:.2f}x{extent[1]:.2f}",
                hint_id=HINT_SIGN_AGAIN_ID, hint_en=HINT_SIGN_AGAIN_EN, device=self.path,
            )
        return Signature(tuple(strokes.strokes), self.x_range, self.y_range, to_png(img), share, extent)
