"""USB printer-class transport over pyusb: bulk OUT/IN endpoints and GET_DEVICE_ID.

Evidence: the USB Printer Class 1.1 requests as restated in the research note (not re-read
from the specification); tested against :mod:`drivers.emulators.pyusb_backend`.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from drivers.errors import DeviceError, DeviceMissingError, DeviceProtocolError, DeviceTimeoutError

log = logging.getLogger(__name__)

PRINTER_CLASS = 0x07
GET_DEVICE_ID = 0
LIBUSB_ERROR_NO_DEVICE = -4


def is_usable() -> bool:
    """True when pyusb imports (libusb itself is only looked for at open)."""
    try:
        import usb.core  # noqa: F401
    except ImportError:
        return False
    return True


class UsbTransport:
    """One printer-class interface of one USB device; thin: bytes in, bytes out."""

    def __init__(self, *, vid: int, pid: int | None = None, serial: str | None = None,
                 backend: Any = None, write_chunk: int = 16 * 1024) -> None:
        self._vid, self._pid, self._serial, self._backend = vid, pid, serial, backend
        self._write_chunk = write_chunk
        self._dev: Any = None
        self._intf: Any = None
        self._ep_out: Any = None
        self._ep_in: Any = None

    @property
    def name(self) -> str:
        """usb:VID:PID for messages."""
        pid = f"{self._pid:04x}" if self._pid is not None else "*"
        return f"usb:{self._vid:04x}:{pid}"

    def open(self) -> None:
        """Find the device, claim its printer interface and find the bulk endpoints."""
        import usb.core
        import usb.util

        def is_printer(dev: Any) -> bool:
            if self._pid is not None and dev.idProduct != self._pid:
                return False
            return any(i.bInterfaceClass == PRINTER_CLASS for cfg in dev for i in cfg)

        try:
            found = list(usb.core.find(find_all=True, idVendor=self._vid, backend=self._backend,
                                       custom_match=is_printer))
        except usb.core.NoBackendError as exc:
            raise DeviceMissingError(f"{self.name}: no libusb backend available", device=self.name) from exc
        if self._serial is not None:
            found = [d for d in found if _safe_serial(d) == self._serial]
        if not found:
            raise DeviceMissingError(f"{self.name}: no printer-class USB device found", device=self.name)
        dev = found[0]
        try:
            cfg = dev[0]
            intf = next(i for i in cfg if i.bInterfaceClass == PRINTER_CLASS)
            # On Linux usblp binds to the printer interface; we need it for ourselves.
            if dev.is_kernel_driver_active(intf.bInterfaceNumber):
                dev.detach_kernel_driver(intf.bInterfaceNumber)
            dev.set_configuration(cfg.bConfigurationValue)
            usb.util.claim_interface(dev, intf.bInterfaceNumber)
        except usb.core.USBError as exc:
            raise _map_usb_error(self.name, exc, "open") from exc

        def direction(d: int) -> Any:
            return lambda e: (usb.util.endpoint_direction(e.bEndpointAddress) == d
                              and usb.util.endpoint_type(e.bmAttributes) == usb.util.ENDPOINT_TYPE_BULK)

        ep_out = usb.util.find_descriptor(intf, custom_match=direction(usb.util.ENDPOINT_OUT))
        ep_in = usb.util.find_descriptor(intf, custom_match=direction(usb.util.ENDPOINT_IN))
        if ep_out is None or ep_in is None:
            usb.util.dispose_resources(dev)
            raise DeviceProtocolError(f"{self.name}: printer interface lacks bulk endpoints", device=self.name)
        self._dev, self._intf, self._ep_out, self._ep_in = dev, intf, ep_out, ep_in

    def device_id(self) -> str | None:
        """The IEEE 1284 device id (GET_DEVICE_ID), or None if the printer does not answer it."""
        import usb.core

        dev = self._require()
        try:
            raw = bytes(dev.ctrl_transfer(0xA1, GET_DEVICE_ID, 0,
                                          self._intf.bInterfaceNumber << 8 | self._intf.bAlternateSetting,
                                          1024, timeout=2000))
        except usb.core.USBTimeoutError:
            return None
        except usb.core.USBError as exc:
            if _gone(exc):
                raise _map_usb_error(self.name, exc, "GET_DEVICE_ID") from exc
            return None
        if len(raw) < 2:
            return None
        # The first two bytes are the big-endian length, themselves included.
        length = min(int.from_bytes(raw[:2], "big"), len(raw))
        return raw[2:length].decode("ascii", "replace")

    def write(self, data: bytes, timeout_s: float) -> None:
        """Write all bytes in bounded chunks (a panel never goes down as one transfer)."""
        import usb.core

        dev = self._require()
        view = memoryview(data)
        try:
            for start in range(0, len(view), self._write_chunk):
                # bytes, not a memoryview: pyusb copies bytes into its array in one step but
                # walks a memoryview element by element.
                dev.write(self._ep_out, bytes(view[start : start + self._write_chunk]),
                          int(timeout_s * 1000))
        except usb.core.USBTimeoutError as exc:
            raise DeviceTimeoutError(f"{self.name}: write timed out", device=self.name) from exc
        except usb.core.USBError as exc:
            raise _map_usb_error(self.name, exc, "write") from exc

    def read(self, size: int, timeout_s: float) -> bytes:
        """Up to ``size`` bytes, or b"" when none came within ``timeout_s``."""
        import usb.core

        dev = self._require()
        try:
            return bytes(dev.read(self._ep_in, size, max(1, int(timeout_s * 1000))))
        except usb.core.USBTimeoutError:
            return b""
        except usb.core.USBError as exc:
            raise _map_usb_error(self.name, exc, "read") from exc

    def close(self) -> None:
        """Release the interface; safe to call twice."""
        import usb.util

        if self._dev is not None:
            try:
                usb.util.dispose_resources(self._dev)
            except Exception:  # noqa: BLE001 - closing a vanished device must not raise
                log.debug("%s: dispose failed on close", self.name)
        self._dev = None

    def _require(self) -> Any:
        if self._dev is None:
            raise DeviceMissingError(f"{self.name}: transport is not open", device=self.name)
        return self._dev


def _safe_serial(dev: Any) -> str | None:
    import usb.core
    import usb.util

    try:
        return str(usb.util.get_string(dev, dev.iSerialNumber))
    except (usb.core.USBError, ValueError):
        return None


def _gone(exc: Any) -> bool:
    return getattr(exc, "errno", None) == errno.ENODEV or getattr(exc, "backend_error_code", None) == LIBUSB_ERROR_NO_DEVICE


def _map_usb_error(name: str, exc: Any, what: str) -> DeviceError:
    if _gone(exc):
        return DeviceMissingError(f"{name}: printer unplugged during {what}", device=name)
    if getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM):
        return DeviceMissingError(
            f"{name}: no permission to use the USB device",
            hint_id="Tidak ada izin akses USB. Periksa aturan udev printer.",
            hint_en="No permission for the USB device. Check the printer's udev rule.",
            device=name,
        )
    return DeviceProtocolError(f"{name}: USB error during {what}: {exc}", device=name)
