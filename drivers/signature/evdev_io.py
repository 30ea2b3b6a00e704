"""The evdev ioctls a pen driver needs (``linux/input.h``), and the system-call seam.

Evidence: public protocol (kernel UAPI). Numbers are checked against the system header by
compiling a C program in ``tests/test_signature_evdev_abi.py``.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import select
from typing import Protocol

_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction: int, nr: int, size: int) -> int:
    # asm-generic/ioctl.h: nr bits 0-7, type 8-15 ('E'), size 16-29, direction 30-31
    return (direction << 30) | (size << 16) | (ord("E") << 8) | nr


class input_id(ctypes.Structure):  # kernel name, checkable against the header
    """struct input_id."""

    _fields_ = [
        ("bustype", ctypes.c_uint16),
        ("vendor", ctypes.c_uint16),
        ("product", ctypes.c_uint16),
        ("version", ctypes.c_uint16),
    ]


class input_absinfo(ctypes.Structure):  # kernel name
    """struct input_absinfo."""

    _fields_ = [
        ("value", ctypes.c_int32),
        ("minimum", ctypes.c_int32),
        ("maximum", ctypes.c_int32),
        ("fuzz", ctypes.c_int32),
        ("flat", ctypes.c_int32),
        ("resolution", ctypes.c_int32),
    ]


EVIOCGID = _ioc(_IOC_READ, 0x02, ctypes.sizeof(input_id))
EVIOCGRAB = _ioc(_IOC_WRITE, 0x90, ctypes.sizeof(ctypes.c_int))


def EVIOCGNAME(length: int) -> int:
    """Request number to read the device name into a buffer of ``length`` bytes."""
    return _ioc(_IOC_READ, 0x06, length)


def EVIOCGBIT(ev: int, length: int) -> int:
    """Request number to read the event-code bitmap of event type ``ev`` (0: the types)."""
    return _ioc(_IOC_READ, 0x20 + ev, length)


def EVIOCGABS(axis: int) -> int:
    """Request number to read one absolute axis's ``input_absinfo``."""
    return _ioc(_IOC_READ, 0x40 + axis, ctypes.sizeof(input_absinfo))


class EvdevSyscalls(Protocol):
    """System calls of the pen driver; an emulator supplies its own for tests."""

    def open(self, path: str) -> int:
        """open(2) read-only, non-blocking."""

    def close(self, fd: int) -> None:
        """close(2)."""

    def read(self, fd: int, size: int) -> bytes:
        """read(2); raises BlockingIOError when nothing is there."""

    def wait_readable(self, fd: int, timeout_s: float) -> bool:
        """select(2) bounded by ``timeout_s``."""

    def ioctl(self, fd: int, request: int, arg: bytearray) -> None:
        """ioctl(2) with an in/out buffer."""

    def grab(self, fd: int, on: bool) -> None:
        """EVIOCGRAB: take (or release) the device exclusively; its argument is a plain int."""


class RealEvdevSyscalls:
    """The kernel."""

    def open(self, path: str) -> int:
        """open(2) read-only, non-blocking."""
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    def close(self, fd: int) -> None:
        """close(2)."""
        os.close(fd)

    def read(self, fd: int, size: int) -> bytes:
        """read(2)."""
        return os.read(fd, size)

    def wait_readable(self, fd: int, timeout_s: float) -> bool:
        """select(2)."""
        readable, _, _ = select.select([fd], [], [], timeout_s)
        return bool(readable)

    def ioctl(self, fd: int, request: int, arg: bytearray) -> None:
        """ioctl(2); the kernel writes its answer into ``arg``."""
        fcntl.ioctl(fd, request, arg, True)

    def grab(self, fd: int, on: bool) -> None:
        """EVIOCGRAB with the int passed by value, as the kernel expects."""
        fcntl.ioctl(fd, EVIOCGRAB, 1 if on else 0)
