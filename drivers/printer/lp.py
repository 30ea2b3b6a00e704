"""Transport over a kernel printer device (``/dev/usb/lp*``, the usblp driver).

The Dualys tools talk to the printer this way: write the command, read the reply. Reads and
writes are non-blocking with ``select`` so every wait is bounded.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import time

from drivers.errors import DeviceMissingError, DeviceProtocolError, DeviceTimeoutError

# usblp's LPIOC_GET_DEVICE_ID(len) = _IOC(_IOC_READ, 'P', 1, len) (linux/usb/usblp.c).
_IOC_READ = 2


def _lpioc_get_device_id(length: int) -> int:
    return (_IOC_READ << 30) | (length << 16) | (ord("P") << 8) | 1


class LpTransport:
    """A character device opened read-write, non-blocking."""

    def __init__(self, path: str) -> None:
        self.name = path
        self._fd: int | None = None

    def open(self) -> None:
        """Open the device; a missing path or permission is a missing device."""
        try:
            self._fd = os.open(self.name, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
        except FileNotFoundError as exc:
            raise DeviceMissingError(f"{self.name}: no such printer device", device=self.name) from exc
        except PermissionError as exc:
            raise DeviceMissingError(
                f"{self.name}: permission denied",
                hint_id="Tidak ada izin ke printer. Tambahkan layanan ke grup lp.",
                hint_en="No permission for the printer. Add the service to the lp group.",
                device=self.name,
            ) from exc
        except OSError as exc:
            raise DeviceMissingError(f"{self.name}: cannot open: {exc.strerror}", device=self.name) from exc

    def device_id(self) -> str | None:
        """The IEEE 1284 id through usblp's ioctl, or None where the device has none."""
        fd = self._require()
        buf = bytearray(1024)
        try:
            fcntl.ioctl(fd, _lpioc_get_device_id(len(buf)), buf)
        except OSError:
            return None
        length = min(int.from_bytes(buf[:2], "big"), len(buf))
        return bytes(buf[2:length]).decode("ascii", "replace") if length > 2 else None

    def write(self, data: bytes, timeout_s: float) -> None:
        """Write every byte, waiting (bounded) while the device is not writable."""
        fd = self._require()
        view = memoryview(data)
        deadline = time.monotonic() + timeout_s
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceTimeoutError(f"{self.name}: write timed out", device=self.name)
            _, writable, _ = select.select([], [fd], [], remaining)
            if not writable:
                continue
            try:
                n = os.write(fd, view[:65536])
            except BlockingIOError:
                continue
            except OSError as exc:
                raise self._error(exc, "write") from exc
            view = view[n:]

    def read(self, size: int, timeout_s: float) -> bytes:
        """Up to ``size`` bytes, or b"" when none came within ``timeout_s``."""
        fd = self._require()
        readable, _, _ = select.select([fd], [], [], max(0.0, timeout_s))
        if not readable:
            return b""
        try:
            return os.read(fd, size)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise self._error(exc, "read") from exc

    def close(self) -> None:
        """Close; safe to call twice."""
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = None

    def _require(self) -> int:
        if self._fd is None:
            raise DeviceMissingError(f"{self.name}: transport is not open", device=self.name)
        return self._fd

    def _error(self, exc: OSError, what: str) -> Exception:
        if exc.errno in (errno.ENODEV, errno.EIO, errno.ENXIO):
            return DeviceMissingError(f"{self.name}: printer gone during {what}", device=self.name)
        return DeviceProtocolError(f"{self.name}: {what} failed: {exc.strerror}", device=self.name)
