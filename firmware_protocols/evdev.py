"""Sans-IO codec for Linux evdev ``struct input_event`` streams, and pen-stroke assembly.

Evidence: public protocol (kernel UAPI ``linux/input.h`` and ``linux/input-event-codes.h``).

A read from ``/dev/input/eventN`` returns whole ``struct input_event`` records::

    struct input_event {
        struct timeval time;   /* 64-bit: tv_sec s64 + tv_usec s64 = 16 bytes */
        __u16 type;            /*          32-bit: tv_sec u32 + tv_usec u32 =  8 bytes */
        __u16 code;
        __s32 value;
    };                         /* 24 bytes on 64-bit, 16 bytes on 32-bit (e.g. a 32-bit Pi OS) */

The kernel delivers events in little-endian host order on every platform this agent runs
on (x86_64, arm64, armhf), so the layout is fixed here rather than taken from the host.
Events come in groups closed by ``EV_SYN/SYN_REPORT``: the group describes one state of the
device, and a consumer must apply it only when the report arrives. ``SYN_DROPPED`` means the
kernel's buffer overflowed: everything until the next ``SYN_REPORT`` must be discarded.

:class:`EvdevDecoder` turns bytes into :class:`InputEvent` (bytes in, events out; no I/O).
:class:`StrokeAssembler` turns events into pen strokes. Neither reads a clock or logs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from firmware_protocols.errors import EncodeError, FrameError

# Event types and codes, as named in linux/input-event-codes.h (values checked in tests
# against the system headers).
EV_SYN = 0x00
EV_KEY = 0x01
EV_ABS = 0x03
SYN_REPORT = 0
SYN_DROPPED = 3
BTN_TOOL_PEN = 0x140
BTN_TOUCH = 0x14A
BTN_STYLUS = 0x14B
ABS_X = 0x00
ABS_Y = 0x01
ABS_PRESSURE = 0x18

Layout = Literal["64", "32"]

# "<" = little-endian, no padding: the C struct has none in either layout.
_FORMATS: dict[str, struct.Struct] = {
    "64": struct.Struct("<qqHHi"),
    "32": struct.Struct("<IIHHi"),
}


def event_size(layout: Layout = "64") -> int:
    """Bytes of one ``struct input_event`` in ``layout`` (24 on 64-bit, 16 on 32-bit)."""
    return _FORMATS[layout].size


class InputEvent(NamedTuple):
    """One ``struct input_event``; field names follow the kernel's.

    A named tuple rather than a validating dataclass: the decoder builds hundreds of thousands
    per second, and every value it unpacks is in range by the struct format (only ``usec`` is
    checked). Events built by hand are checked by :meth:`checked` and by :meth:`serialize`.
    """

    sec: int
    usec: int
    type: int
    code: int
    value: int

    @classmethod
    def checked(cls, sec: int, usec: int, type: int, code: int, value: int) -> InputEvent:
        """Build an event, refusing values the kernel struct cannot hold.

        Raises:
            EncodeError: a field is out of its C type's range.
        """
        ev = cls(sec, usec, type, code, value)
        ev.validate()
        return ev

    def validate(self) -> None:
        """Raise :class:`EncodeError` if a field does not fit ``struct input_event``."""
        if not 0 <= self.type <= 0xFFFF or not 0 <= self.code <= 0xFFFF:
            raise EncodeError("type and code are 16-bit unsigned")
        if not -(2**31) <= self.value < 2**31:
            raise EncodeError("value is a 32-bit signed integer")
        if not 0 <= self.usec < 1_000_000:
            raise EncodeError("usec must be within one second")

    @property
    def time(self) -> float:
        """Kernel timestamp in seconds (monotonic or realtime, per the device's clock)."""
        return self.sec + self.usec / 1_000_000

    def serialize(self, layout: Layout = "64") -> bytes:
        """The event as the kernel would write it (raises EncodeError when it cannot be)."""
        self.validate()
        fmt = _FORMATS[layout]
        if layout == "32" and not 0 <= self.sec < 2**32:
            raise EncodeError("sec does not fit a 32-bit timeval")
        if layout == "64" and not -(2**63) <= self.sec < 2**63:
            raise EncodeError("sec does not fit a 64-bit timeval")
        return fmt.pack(self.sec, self.usec, self.type, self.code, self.value)

    @classmethod
    def deserialize(cls, data: bytes, layout: Layout = "64") -> tuple[InputEvent, bytes]:
        """Parse one event from the front of ``data``; returns it and the rest.

        Raises:
            FrameError: ``data`` is shorter than one event or the time field is impossible.
        """
        fmt = _FORMATS[layout]
        if len(data) < fmt.size:
            raise FrameError(f"need {fmt.size} bytes for an input_event, have {len(data)}")
        sec, usec, etype, code, value = fmt.unpack_from(data)
        if not 0 <= usec < 1_000_000:
            # The kernel never writes this; a misaligned stream or the wrong layout does.
            raise FrameError(f"tv_usec {usec} out of range: wrong layout or misaligned stream")
        return cls(sec, usec, etype, code, value), bytes(data[fmt.size :])


class EvdevDecoder:
    """Incremental decoder: ``feed`` bytes as they are read, get whole events back.

    The kernel never splits an event across reads from an evdev node, but a pipe, a pty or
    a recording may, so a partial tail is kept (bounded: at most one event's worth of bytes).
    ``close()`` at EOF raises :class:`FrameError` if a partial event is left over.
    """

    def __init__(self, layout: Layout = "64") -> None:
        self._fmt = _FORMATS[layout]
        self._layout: Layout = layout
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of an event (always < one event)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[InputEvent]:
        """Add bytes; return every event now complete (possibly none).

        Raises:
            FrameError: a complete record has an impossible time field (stream misaligned).
        """
        self._buf += data
        size = self._fmt.size
        whole = len(self._buf) - len(self._buf) % size
        if not whole:
            return []
        events = list(map(InputEvent._make, self._fmt.iter_unpack(bytes(self._buf[:whole]))))
        for i, ev in enumerate(events):
            if not 0 <= ev.usec < 1_000_000:
                # The kernel never writes this; a wrong layout or a misaligned stream
                # does. evdev has no start marker to resynchronise on, so the bad record
                # and all before it are consumed and the caller decides (usually: reopen).
                del self._buf[: (i + 1) * size]
                raise FrameError(
                    f"tv_usec {ev.usec} out of range: wrong layout or misaligned stream"
                )
        del self._buf[:whole]
        return events

    def close(self) -> None:
        """Signal EOF; raises :class:`FrameError` if a partial event remains."""
        if self._buf:
            left = len(self._buf)
            self._buf.clear()
            raise FrameError(f"stream ended inside an input_event ({left} bytes left over)")


@dataclass(frozen=True)
class AbsRange:
    """An axis range as ``EVIOCGABS`` reports it (``struct input_absinfo``)."""

    minimum: int
    maximum: int
    fuzz: int = 0
    flat: int = 0
    resolution: int = 0  # units per mm (0: unknown)

    def __post_init__(self) -> None:
        if self.maximum <= self.minimum:
            raise EncodeError(f"axis range [{self.minimum}, {self.maximum}] is empty")


@dataclass(frozen=True)
class PenPoint:
    """One sampled pen position inside a stroke."""

    x: int
    y: int
    pressure: int
    time: float


@dataclass(frozen=True)
class Stroke:
    """One pen-down to pen-up trace."""

    points: tuple[PenPoint, ...]


_PEN_CODES = frozenset({(EV_ABS, ABS_X), (EV_ABS, ABS_Y), (EV_ABS, ABS_PRESSURE), (EV_KEY, BTN_TOUCH)})


@dataclass
class StrokeAssembler:
    """Turns evdev events into strokes, applying each group only at ``SYN_REPORT``.

    Pen down is ``BTN_TOUCH`` 1 (pens report it on contact); when a device reports only
    pressure, pressure above ``pressure_threshold`` counts as contact. A ``SYN_DROPPED``
    discards the pending group and ends the current stroke (its shape is unknown), and
    ``dropped`` counts it so the driver can tell the operator to sign again.
    """

    pressure_threshold: int = 0
    max_points: int = 100_000  # bound: a stuck pen cannot grow memory without limit
    dropped: int = 0
    strokes: list[Stroke] = field(default_factory=list)
    _x: int | None = None
    _y: int | None = None
    _p: int = 0
    _touch: bool | None = None
    _pending: dict[tuple[int, int], int] = field(default_factory=dict)
    _current: list[PenPoint] = field(default_factory=list)
    _skipping: bool = False
    _total_points: int = 0

    def feed(self, events: list[InputEvent]) -> list[Stroke]:
        """Apply events; return the strokes finished by them."""
        done: list[Stroke] = []
        for ev in events:
            if ev.type == EV_SYN and ev.code == SYN_DROPPED:
                self.dropped += 1
                self._pending.clear()
                self._skipping = True
                self._end_stroke(done)
                continue
            if ev.type == EV_SYN and ev.code == SYN_REPORT:
                if self._skipping:
                    # Kernel rule: after SYN_DROPPED, drop everything up to and including
                    # the next SYN_REPORT; the pen state is re-learnt from later events.
                    self._skipping = False
                    self._pending.clear()
                    continue
                self._apply(ev.time, done)
                continue
            if self._skipping:
                continue
            if (ev.type, ev.code) in _PEN_CODES:
                # Only the codes a stroke uses are kept, so the pending group stays bounded
                # whatever a device sends between reports (tilt, wheel, buttons...).
                self._pending[(ev.type, ev.code)] = ev.value
        return done

    @property
    def in_stroke(self) -> bool:
        """True while the pen is down (a stroke is open)."""
        return bool(self._current)

    def finish(self) -> list[Stroke]:
        """End of capture: close an open stroke and return it (if any)."""
        done: list[Stroke] = []
        self._end_stroke(done)
        return done

    def _apply(self, t: float, done: list[Stroke]) -> None:
        pend = self._pending
        if (EV_ABS, ABS_X) in pend:
            self._x = pend[(EV_ABS, ABS_X)]
        if (EV_ABS, ABS_Y) in pend:
            self._y = pend[(EV_ABS, ABS_Y)]
        if (EV_ABS, ABS_PRESSURE) in pend:
            self._p = pend[(EV_ABS, ABS_PRESSURE)]
        if (EV_KEY, BTN_TOUCH) in pend:
            self._touch = pend[(EV_KEY, BTN_TOUCH)] != 0
        pend.clear()
        down = self._touch if self._touch is not None else self._p > self.pressure_threshold
        if not down:
            self._end_stroke(done)
            return
        if self._x is None or self._y is None:
            return  # contact before any position: nothing to draw yet
        if self._total_points >= self.max_points:
            return
        point = PenPoint(self._x, self._y, self._p, t)
        last = self._current[-1] if self._current else None
        if last is not None and (last.x, last.y, last.pressure) == (point.x, point.y, point.pressure):
            return  # a report that changed nothing else (e.g. only a tilt axis)
        self._current.append(point)
        self._total_points += 1

    def _end_stroke(self, done: list[Stroke]) -> None:
        if self._current:
            stroke = Stroke(tuple(self._current))
            self.strokes.append(stroke)
            done.append(stroke)
            self._current = []
