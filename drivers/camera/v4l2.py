"""A thin own layer over the Linux V4L2 UAPI (``linux/videodev2.h``): structures, ioctls, mmap.

Evidence: public protocol (kernel UAPI). Written from the header, not from linuxpy (GPL-3);
structure sizes and ioctl numbers are checked against the system's header by compiling a C
program in ``tests/test_camera_v4l2_abi.py``.

All system calls go through a :class:`Syscalls` object so the same code runs against a real
``/dev/videoN`` (:class:`RealSyscalls`) or an in-process fake hardware (the camera emulator).
Layout notes for 64-bit (the sizes differ on 32-bit; ctypes follows the host's C ABI):

* ``v4l2_format`` holds a union with pointers (``v4l2_window``), so the union is 8-aligned and
  there are 4 bytes of padding after ``type``: 208 bytes in all.
* ``v4l2_buffer`` holds a ``struct timeval`` and a union with ``unsigned long``: 88 bytes.
* ``v4l2_streamparm`` (frame interval) has only 32-bit members and a 200-byte ``raw_data``
  in its union: 204 bytes on every ABI.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import select
from collections.abc import Callable
from fractions import Fraction
from typing import Protocol, TypeVar

_S = TypeVar("_S", bound=ctypes.Structure)
_T = TypeVar("_T")

# --------------------------------------------------------------------------- ioctl encoding
# From asm-generic/ioctl.h: nr bits 0-7, type 8-15, size 16-29, direction 30-31.
_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction: int, kind: str, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | nr


def _ior(kind: str, nr: int, struct_type: type[ctypes._CData]) -> int:
    return _ioc(_IOC_READ, kind, nr, ctypes.sizeof(struct_type))


def _iow(kind: str, nr: int, struct_type: type[ctypes._CData]) -> int:
    return _ioc(_IOC_WRITE, kind, nr, ctypes.sizeof(struct_type))


def _iowr(kind: str, nr: int, struct_type: type[ctypes._CData]) -> int:
    return _ioc(_IOC_READ | _IOC_WRITE, kind, nr, ctypes.sizeof(struct_type))


def fourcc(code: str) -> int:
    """The V4L2 pixel-format number of a four-character code ("MJPG" -> 0x47504A4D)."""
    if len(code) != 4:
        raise ValueError(f"fourcc must have 4 characters, got {code!r}")
    b = code.encode("ascii")
    return b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)


def fourcc_str(value: int) -> str:
    """The four characters of a V4L2 pixel-format number."""
    return bytes((value >> s) & 0xFF for s in (0, 8, 16, 24)).decode("latin-1")


def interval_for_fps(fps: float) -> tuple[int, int]:
    """The ``timeperframe`` (numerator, denominator) for a frame rate: 30 -> (1, 30), 29.97 -> (100, 2997)."""
    # The bounds keep both halves of the fraction within the kernel's u32 and well clear of 0.
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0.001 <= fps <= 1e6:
        raise ValueError(f"fps must be a number from 0.001 to 1000000, got {fps!r}")
    # V4L2 speaks seconds per frame as a fraction; NTSC-style rates need a non-unit numerator.
    rate = Fraction(fps).limit_denominator(1000)
    return rate.denominator, rate.numerator


def fps_of_interval(numerator: int, denominator: int) -> float | None:
    """Frames per second of a ``timeperframe``; None when the device reports no interval (0)."""
    if numerator == 0 or denominator == 0:
        return None
    return denominator / numerator


# --------------------------------------------------------------------------- constants

V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_STREAMING = 0x04000000
V4L2_CAP_DEVICE_CAPS = 0x80000000
V4L2_BUF_TYPE_VIDEO_CAPTURE = 1
V4L2_MEMORY_MMAP = 1
V4L2_FIELD_ANY = 0
V4L2_FIELD_NONE = 1
V4L2_FRMSIZE_TYPE_DISCRETE = 1
V4L2_FRMSIZE_TYPE_CONTINUOUS = 2
V4L2_FRMSIZE_TYPE_STEPWISE = 3
V4L2_BUF_FLAG_ERROR = 0x00000040
V4L2_CAP_TIMEPERFRAME = 0x1000  # v4l2_captureparm.capability: timeperframe can be set
V4L2_MODE_HIGHQUALITY = 0x0001
V4L2_CTRL_FLAG_DISABLED = 0x0001
V4L2_CTRL_TYPE_INTEGER = 1
V4L2_CTRL_TYPE_BOOLEAN = 2
V4L2_CTRL_TYPE_MENU = 3

V4L2_PIX_FMT_MJPEG = fourcc("MJPG")
V4L2_PIX_FMT_YUYV = fourcc("YUYV")

V4L2_CID_BASE = 0x00980900
V4L2_CID_BRIGHTNESS = V4L2_CID_BASE + 0
V4L2_CID_CONTRAST = V4L2_CID_BASE + 1
V4L2_CID_SATURATION = V4L2_CID_BASE + 2
V4L2_CID_AUTO_WHITE_BALANCE = V4L2_CID_BASE + 12
V4L2_CID_GAIN = V4L2_CID_BASE + 19
V4L2_CID_WHITE_BALANCE_TEMPERATURE = V4L2_CID_BASE + 26
V4L2_CID_CAMERA_CLASS_BASE = 0x009A0900
V4L2_CID_EXPOSURE_AUTO = V4L2_CID_CAMERA_CLASS_BASE + 1
V4L2_CID_EXPOSURE_ABSOLUTE = V4L2_CID_CAMERA_CLASS_BASE + 2
V4L2_EXPOSURE_MANUAL = 1
V4L2_EXPOSURE_APERTURE_PRIORITY = 3

# The controls the station sets, by the names used in config and diagnostics.
CONTROL_IDS: dict[str, int] = {
    "brightness": V4L2_CID_BRIGHTNESS,
    "contrast": V4L2_CID_CONTRAST,
    "saturation": V4L2_CID_SATURATION,
    "gain": V4L2_CID_GAIN,
    "white_balance_automatic": V4L2_CID_AUTO_WHITE_BALANCE,
    "white_balance_temperature": V4L2_CID_WHITE_BALANCE_TEMPERATURE,
    "auto_exposure": V4L2_CID_EXPOSURE_AUTO,
    "exposure_time_absolute": V4L2_CID_EXPOSURE_ABSOLUTE,
}

# --------------------------------------------------------------------------- structures


class v4l2_capability(ctypes.Structure):  # kernel names, checkable against the header
    """VIDIOC_QUERYCAP."""

    _fields_ = [
        ("driver", ctypes.c_char * 16),
        ("card", ctypes.c_char * 32),
        ("bus_info", ctypes.c_char * 32),
        ("version", ctypes.c_uint32),
        ("capabilities", ctypes.c_uint32),
        ("device_caps", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    ]


class v4l2_fmtdesc(ctypes.Structure):
    """VIDIOC_ENUM_FMT."""

    _fields_ = [
        ("index", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("description", ctypes.c_char * 32),
        ("pixelformat", ctypes.c_uint32),
        ("mbus_code", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    ]


class v4l2_frmsize_discrete(ctypes.Structure):
    """Discrete frame size."""

    _fields_ = [("width", ctypes.c_uint32), ("height", ctypes.c_uint32)]


class v4l2_frmsize_stepwise(ctypes.Structure):
    """Stepwise frame size range."""

    _fields_ = [
        ("min_width", ctypes.c_uint32),
        ("max_width", ctypes.c_uint32),
        ("step_width", ctypes.c_uint32),
        ("min_height", ctypes.c_uint32),
        ("max_height", ctypes.c_uint32),
        ("step_height", ctypes.c_uint32),
    ]


class _frmsize_union(ctypes.Union):
    _fields_ = [("discrete", v4l2_frmsize_discrete), ("stepwise", v4l2_frmsize_stepwise)]


class v4l2_frmsizeenum(ctypes.Structure):
    """VIDIOC_ENUM_FRAMESIZES."""

    _anonymous_ = ("u",)
    _fields_ = [
        ("index", ctypes.c_uint32),
        ("pixel_format", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("u", _frmsize_union),
        ("reserved", ctypes.c_uint32 * 2),
    ]


class v4l2_pix_format(ctypes.Structure):
    """Single-planar pixel format."""

    _fields_ = [
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("pixelformat", ctypes.c_uint32),
        ("field", ctypes.c_uint32),
        ("bytesperline", ctypes.c_uint32),
        ("sizeimage", ctypes.c_uint32),
        ("colorspace", ctypes.c_uint32),
        ("priv", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("ycbcr_enc", ctypes.c_uint32),
        ("quantization", ctypes.c_uint32),
        ("xfer_func", ctypes.c_uint32),
    ]


class _format_union(ctypes.Union):
    # raw_data is 200 bytes; the c_void_p member reproduces the 8-byte alignment the kernel's
    # union gets from v4l2_window's pointers (without it the struct would be 204 bytes).
    _fields_ = [
        ("pix", v4l2_pix_format),
        ("raw_data", ctypes.c_uint8 * 200),
        ("_align", ctypes.c_void_p),
    ]


class v4l2_format(ctypes.Structure):
    """VIDIOC_G_FMT / VIDIOC_S_FMT."""

    _fields_ = [("type", ctypes.c_uint32), ("fmt", _format_union)]


class v4l2_requestbuffers(ctypes.Structure):
    """VIDIOC_REQBUFS."""

    _fields_ = [
        ("count", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("memory", ctypes.c_uint32),
        ("capabilities", ctypes.c_uint32),
        ("flags", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 3),
    ]


class timeval(ctypes.Structure):
    """struct timeval (long, long)."""

    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class v4l2_timecode(ctypes.Structure):
    """struct v4l2_timecode."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("frames", ctypes.c_uint8),
        ("seconds", ctypes.c_uint8),
        ("minutes", ctypes.c_uint8),
        ("hours", ctypes.c_uint8),
        ("userbits", ctypes.c_uint8 * 4),
    ]


class _buffer_m(ctypes.Union):
    _fields_ = [
        ("offset", ctypes.c_uint32),
        ("userptr", ctypes.c_ulong),
        ("planes", ctypes.c_void_p),
        ("fd", ctypes.c_int32),
    ]


class v4l2_buffer(ctypes.Structure):
    """VIDIOC_QUERYBUF / QBUF / DQBUF."""

    _fields_ = [
        ("index", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("bytesused", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("field", ctypes.c_uint32),
        ("timestamp", timeval),
        ("timecode", v4l2_timecode),
        ("sequence", ctypes.c_uint32),
        ("memory", ctypes.c_uint32),
        ("m", _buffer_m),
        ("length", ctypes.c_uint32),
        ("reserved2", ctypes.c_uint32),
        ("request_fd", ctypes.c_int32),
    ]


class v4l2_queryctrl(ctypes.Structure):
    """VIDIOC_QUERYCTRL."""

    _fields_ = [
        ("id", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("name", ctypes.c_char * 32),
        ("minimum", ctypes.c_int32),
        ("maximum", ctypes.c_int32),
        ("step", ctypes.c_int32),
        ("default_value", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 2),
    ]


class v4l2_control(ctypes.Structure):
    """VIDIOC_G_CTRL / VIDIOC_S_CTRL."""

    _fields_ = [("id", ctypes.c_uint32), ("value", ctypes.c_int32)]


class v4l2_fract(ctypes.Structure):
    """A fraction (frame interval: seconds per frame = numerator / denominator)."""

    _fields_ = [("numerator", ctypes.c_uint32), ("denominator", ctypes.c_uint32)]


class v4l2_captureparm(ctypes.Structure):
    """Capture parameters: the frame interval and whether the device lets us set it."""

    _fields_ = [
        ("capability", ctypes.c_uint32),
        ("capturemode", ctypes.c_uint32),
        ("timeperframe", v4l2_fract),
        ("extendedmode", ctypes.c_uint32),
        ("readbuffers", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 4),
    ]


class _streamparm_union(ctypes.Union):
    # v4l2_outputparm has the capture layout with writebuffers for readbuffers; only capture
    # is used here, and raw_data gives the union its kernel size.
    _fields_ = [("capture", v4l2_captureparm), ("raw_data", ctypes.c_uint8 * 200)]


class v4l2_streamparm(ctypes.Structure):
    """VIDIOC_G_PARM / VIDIOC_S_PARM."""

    _fields_ = [("type", ctypes.c_uint32), ("parm", _streamparm_union)]


VIDIOC_QUERYCAP = _ior("V", 0, v4l2_capability)
VIDIOC_ENUM_FMT = _iowr("V", 2, v4l2_fmtdesc)
VIDIOC_G_FMT = _iowr("V", 4, v4l2_format)
VIDIOC_S_FMT = _iowr("V", 5, v4l2_format)
VIDIOC_REQBUFS = _iowr("V", 8, v4l2_requestbuffers)
VIDIOC_QUERYBUF = _iowr("V", 9, v4l2_buffer)
VIDIOC_QBUF = _iowr("V", 15, v4l2_buffer)
VIDIOC_DQBUF = _iowr("V", 17, v4l2_buffer)
VIDIOC_STREAMON = _iow("V", 18, ctypes.c_int)
VIDIOC_STREAMOFF = _iow("V", 19, ctypes.c_int)
VIDIOC_G_PARM = _iowr("V", 21, v4l2_streamparm)
VIDIOC_S_PARM = _iowr("V", 22, v4l2_streamparm)
VIDIOC_G_CTRL = _iowr("V", 27, v4l2_control)
VIDIOC_S_CTRL = _iowr("V", 28, v4l2_control)
VIDIOC_QUERYCTRL = _iowr("V", 36, v4l2_queryctrl)
VIDIOC_ENUM_FRAMESIZES = _iowr("V", 74, v4l2_frmsizeenum)

# Names for the frame log and for errors (never logged with payloads).
IOCTL_NAMES: dict[int, str] = {
    value: name for name, value in list(globals().items()) if name.startswith("VIDIOC_")
}


# --------------------------------------------------------------------------- system calls


class MappedBuffer(Protocol):
    """What a driver needs of an mmap'ed buffer."""

    def __getitem__(self, index: slice) -> bytes:
        """Copy a range of the buffer out."""

    def close(self) -> None:
        """munmap(2)."""


class Syscalls(Protocol):
    """The system calls the V4L2 layer makes; swapped for a fake hardware in tests."""

    def open(self, path: str) -> int:
        """open(2) read-write, non-blocking."""

    def close(self, fd: int) -> None:
        """close(2)."""

    def ioctl(self, fd: int, request: int, arg: bytearray) -> None:
        """ioctl(2) with an in/out structure buffer; raises OSError with errno."""

    def mmap(self, fd: int, length: int, offset: int) -> MappedBuffer:
        """mmap(2) one driver buffer, shared and read-only."""

    def wait_readable(self, fd: int, timeout_s: float) -> bool:
        """select(2) for readability; False on timeout."""


class RealSyscalls:
    """The kernel."""

    def open(self, path: str) -> int:
        """open(2) read-write, non-blocking (DQBUF then returns EAGAIN instead of hanging)."""
        return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)

    def close(self, fd: int) -> None:
        """close(2)."""
        os.close(fd)

    def ioctl(self, fd: int, request: int, arg: bytearray) -> None:
        """ioctl(2); the kernel writes its answer back into ``arg``."""
        fcntl.ioctl(fd, request, arg, True)

    def mmap(self, fd: int, length: int, offset: int) -> MappedBuffer:
        """mmap(2) a capture buffer read-only."""
        return mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ, offset=offset)

    def wait_readable(self, fd: int, timeout_s: float) -> bool:
        """select(2) bounded by ``timeout_s``."""
        readable, _, _ = select.select([fd], [], [], timeout_s)
        return bool(readable)


def call(sys: Syscalls, fd: int, request: int, arg: _S) -> _S:
    """Run one ioctl with a ctypes structure; returns the structure as the kernel filled it."""
    buf = bytearray(bytes(arg))
    sys.ioctl(fd, request, buf)
    return type(arg).from_buffer_copy(buf)


def call_int(sys: Syscalls, fd: int, request: int, value: int) -> None:
    """Run one ioctl whose argument is a C int (STREAMON/STREAMOFF)."""
    sys.ioctl(fd, request, bytearray(bytes(ctypes.c_int(value))))


def retry_eintr(fn: Callable[[], _T]) -> _T:
    """Repeat a call interrupted by a signal (bounded: a few tries)."""
    for _ in range(4):
        try:
            return fn()
        except InterruptedError:
            continue
    return fn()


DEVICE_GONE_ERRNOS = frozenset({errno.ENODEV, errno.ENXIO, errno.ENOENT, errno.EIO})
