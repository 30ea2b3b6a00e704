"""An emulated evdev pen tablet: generated ``struct input_event`` streams through a real pipe.

Evidence: emulator only (of the public kernel evdev interface, not of any vendor's pad).
:class:`EmulatedPenTablet` implements ``drivers.signature.evdev_io.EvdevSyscalls``: reads
and ``select`` go to a real OS pipe (so the driver's real read path runs), the ioctls a pen
driver makes (EVIOCGNAME, EVIOCGID, EVIOCGBIT, EVIOCGABS, EVIOCGRAB) are answered from the
tablet's description. Event bytes are packed here with ``struct`` in the kernel's layout,
independently of the codec under test, and can be written in odd-sized pieces.

uinput (a kernel-made real event node) is not used: ``/dev/uinput`` is absent on the
development machine; on a machine that has it, a uinput-backed tablet would be the next tier.
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import select
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from drivers.signature import evdev_io

EV_SYN, EV_KEY, EV_ABS = 0, 1, 3
SYN_REPORT, SYN_DROPPED = 0, 3
BTN_TOUCH, BTN_TOOL_PEN = 0x14A, 0x140
ABS_X, ABS_Y, ABS_PRESSURE = 0, 1, 0x18

RawEvent = tuple[float, int, int, int]  # (time, type, code, value)


def pack_events(events: Iterable[RawEvent], layout: str = "64") -> bytes:
    """The kernel's bytes for a list of events (timeval + u16 type + u16 code + s32 value)."""
    fmt = "<qqHHi" if layout == "64" else "<IIHHi"
    out = bytearray()
    for t, etype, code, value in events:
        sec = int(t)
        out += struct.pack(fmt, sec, int(round((t - sec) * 1e6)) % 1_000_000, etype, code, value)
    return bytes(out)


@dataclass(frozen=True)
class TabletSpec:
    """What the emulated tablet reports about itself."""

    name: str = "Rekam Emulated Pen Tablet"
    bustype: int = 0x03  # BUS_USB
    vendor: int = 0xFFFF  # not a real vendor id: never mistaken for a real device
    product: int = 0x0001
    version: int = 0x0100
    x_max: int = 15200
    y_max: int = 9500
    pressure_max: int = 1023
    resolution: int = 100  # units per mm
    has_pressure: bool = True
    has_xy: bool = True


def pen_strokes_events(
    strokes: list[list[tuple[float, float, float]]],
    spec: TabletSpec = TabletSpec(),
    t0: float = 1000.0,
    dt: float = 0.005,
) -> list[RawEvent]:
    """Events for strokes given as (x, y, pressure) in 0..1 shares of the tablet's ranges."""
    out: list[RawEvent] = []
    t = t0
    for stroke in strokes:
        for i, (x, y, p) in enumerate(stroke):
            out.append((t, EV_ABS, ABS_X, round(x * spec.x_max)))
            out.append((t, EV_ABS, ABS_Y, round(y * spec.y_max)))
            if spec.has_pressure:
                out.append((t, EV_ABS, ABS_PRESSURE, round(p * spec.pressure_max)))
            if i == 0:
                out.append((t, EV_KEY, BTN_TOOL_PEN, 1))
                out.append((t, EV_KEY, BTN_TOUCH, 1))
            out.append((t, EV_SYN, SYN_REPORT, 0))
            t += dt
        out.append((t, EV_KEY, BTN_TOUCH, 0))
        if spec.has_pressure:
            out.append((t, EV_ABS, ABS_PRESSURE, 0))
        out.append((t, EV_KEY, BTN_TOOL_PEN, 0))
        out.append((t, EV_SYN, SYN_REPORT, 0))
        t += 0.15  # pen lifted between strokes
    return out


def signature_strokes(scale: float = 0.8, points: int = 120) -> list[list[tuple[float, float, float]]]:
    """A generated signature: a cursive wave with loops, a second word, and an underline."""
    def at(u: float, v: float) -> tuple[float, float]:
        return 0.5 + (u - 0.5) * scale, 0.5 + (v - 0.5) * scale

    wave = []
    for i in range(points):
        s = i / (points - 1)
        u = 0.05 + 0.55 * s + 0.03 * math.sin(s * 40)
        v = 0.45 + 0.18 * math.sin(s * 20) * (1 - 0.4 * s)
        wave.append((*at(u, v), 0.4 + 0.4 * math.sin(s * math.pi)))
    loop = []
    for i in range(points // 2):
        a = i / (points // 2 - 1) * 2 * math.pi * 1.5
        loop.append((*at(0.75 + 0.1 * math.cos(a) + 0.1 * i / points, 0.45 + 0.15 * math.sin(a)), 0.6))
    line = [(*at(0.05 + 0.9 * i / 30, 0.8), 0.3) for i in range(31)]
    return [wave, loop, line]


def dot_strokes() -> list[list[tuple[float, float, float]]]:
    """A tiny mark: too little ink for a signature."""
    return [[(0.5, 0.5, 0.5), (0.502, 0.501, 0.5)]]


class EmulatedPenTablet:
    """An evdev pen tablet over a real pipe (implements ``EvdevSyscalls``)."""

    def __init__(self, spec: TabletSpec = TabletSpec(), path: str = "/dev/input/event-emu",
                 layout: str = "64") -> None:
        self.spec = spec
        self.path = path
        self.layout = layout
        self.vanished = False
        self.grab_busy = False
        self.grabbed = False
        self.open_fds: set[int] = set()
        # A simulated applicant who signs whenever the driver starts a capture (demo, e2e tests).
        self.autosign = False
        self._write_fd: int | None = None
        self._fd_lock = threading.Lock()
        self._writers: list[threading.Thread] = []

    # ------------------------------------------------------------------ feeding

    def play(self, events: list[RawEvent], chunk: int | None = None) -> None:
        """Write the events' bytes into the pipe (in ``chunk``-byte pieces) from a thread."""
        self.write_bytes(pack_events(events, self.layout), chunk)

    def write_bytes(self, data: bytes, chunk: int | None = None) -> None:
        """Write raw bytes (for garbage and partial-record tests)."""
        fd = self._write_fd
        if fd is None:
            raise RuntimeError("tablet is not open")
        step = chunk or len(data) or 1

        def run() -> None:
            for i in range(0, len(data), step):
                try:
                    os.write(fd, data[i : i + step])
                except OSError:
                    return  # reader closed: the test is over

        t = threading.Thread(target=run, name="pen-emulator", daemon=True)
        t.start()
        self._writers.append(t)

    def sign(self, strokes: list[list[tuple[float, float, float]]] | None = None,
             chunk: int | None = None) -> None:
        """Play a generated signature (default: :func:`signature_strokes`)."""
        self.play(pen_strokes_events(strokes or signature_strokes(), self.spec), chunk)

    def unplug(self) -> None:
        """The device disappears: reads fail with ENODEV, like a pulled USB cable."""
        self.vanished = True
        self._close_writer()

    def replug(self) -> None:
        """Plug back in after :meth:`unplug`: the node opens again."""
        self.vanished = False

    def _close_writer(self) -> None:
        # unplug() (a test's thread) and close() (the driver's) may race: take the fd under a
        # lock so exactly one of them closes it (a second close could hit a reused fd number).
        with self._fd_lock:
            fd, self._write_fd = self._write_fd, None
        if fd is not None:
            os.close(fd)

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the writer threads (bounded)."""
        for t in self._writers:
            t.join(timeout)

    # ------------------------------------------------------------------ EvdevSyscalls

    def open(self, path: str) -> int:
        """A fresh pipe per open; the driver gets the read end."""
        if self.vanished or path != self.path:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        r, w = os.pipe()
        os.set_blocking(r, False)
        self._close_writer()
        with self._fd_lock:
            self._write_fd = w
        self.open_fds.add(r)
        return r

    def close(self, fd: int) -> None:
        """Close the read end (and the write end: nobody can feed a closed device)."""
        self.open_fds.discard(fd)
        os.close(fd)
        self._close_writer()
        self.grabbed = False
        self.join()

    def read(self, fd: int, size: int) -> bytes:
        """Real read(2) on the pipe; ENODEV once unplugged.

        With ``autosign``, an empty pipe read (the driver draining stale events as a capture
        starts) makes the simulated applicant sign, unless a signature is still being written.
        """
        if self.vanished:
            raise OSError(errno.ENODEV, "No such device")
        try:
            return os.read(fd, size)
        except BlockingIOError:
            if self.autosign and not any(t.is_alive() for t in self._writers):
                self._writers = []
                self.sign()
            raise

    def wait_readable(self, fd: int, timeout_s: float) -> bool:
        """Real select(2) on the pipe."""
        if self.vanished:
            return True
        readable, _, _ = select.select([fd], [], [], timeout_s)
        return bool(readable)

    def grab(self, fd: int, on: bool) -> None:
        """EVIOCGRAB."""
        if self.grab_busy:
            raise OSError(errno.EBUSY, "Device or resource busy")
        self.grabbed = on

    def ioctl(self, fd: int, request: int, arg: bytearray) -> None:
        """EVIOCGNAME, EVIOCGID, EVIOCGBIT(EV_ABS), EVIOCGABS for the tablet's axes."""
        if fd not in self.open_fds:
            raise OSError(errno.EBADF, "Bad file descriptor")
        if self.vanished:
            raise OSError(errno.ENODEV, "No such device")
        s = self.spec
        if request == evdev_io.EVIOCGNAME(len(arg)):
            name = s.name.encode()[: len(arg) - 1] + b"\0"
            arg[: len(name)] = name
            return
        if request == evdev_io.EVIOCGID:
            arg[:] = bytes(evdev_io.input_id(s.bustype, s.vendor, s.product, s.version))
            return
        if request == evdev_io.EVIOCGBIT(EV_ABS, len(arg)):
            bits = 0
            if s.has_xy:
                bits |= (1 << ABS_X) | (1 << ABS_Y)
            if s.has_pressure:
                bits |= 1 << ABS_PRESSURE
            arg[:] = bits.to_bytes(len(arg), "little")
            return
        axes = {ABS_X: s.x_max, ABS_Y: s.y_max}
        if s.has_pressure:
            axes[ABS_PRESSURE] = s.pressure_max
        for axis, maximum in axes.items():
            if request == evdev_io.EVIOCGABS(axis) and (s.has_xy or axis == ABS_PRESSURE):
                res = s.resolution if axis != ABS_PRESSURE else 0
                info = evdev_io.input_absinfo(0, 0, maximum, 4, 0, res)
                arg[: ctypes.sizeof(info)] = bytes(info)
                return
        raise OSError(errno.EINVAL, "Invalid argument")


_HARDWARE: dict[str, EmulatedPenTablet] = {}
_HARDWARE_LOCK = threading.Lock()


def hardware(name: str) -> EmulatedPenTablet:
    """The emulated tablet called ``name``, created on first use."""
    with _HARDWARE_LOCK:
        if name not in _HARDWARE:
            _HARDWARE[name] = EmulatedPenTablet(path=f"/dev/input/event-emu-{name}")
        return _HARDWARE[name]


def forget(name: str) -> None:
    """Remove an emulated tablet (tests call this to start fresh)."""
    with _HARDWARE_LOCK:
        _HARDWARE.pop(name, None)
