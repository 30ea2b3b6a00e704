"""Sans-IO codec for the kernel's hot-plug messages (``NETLINK_KOBJECT_UEVENT``, group 1).

Evidence: public protocol (``lib/kobject_uevent.c`` in the Linux kernel; what
``udevadm monitor --kernel --property`` prints). One datagram is one event::

    add@/devices/pci0000:00/.../ttyUSB0 \\0 ACTION=add \\0 DEVPATH=/devices/... \\0
    SUBSYSTEM=tty \\0 SEQNUM=1234 \\0 MAJOR=188 \\0 ... \\0

a header ``ACTION@DEVPATH`` and then NUL-separated ``KEY=VALUE`` pairs (the last one is
NUL-terminated too). The kernel builds it in a 2048-byte buffer (``UEVENT_BUFFER_SIZE``).
udevd re-broadcasts events on group 2 in a different, binary format that starts with
``libudev\\0``; we listen to the kernel's group only, and refuse that format by name should it
arrive.

:func:`parse_uevent` turns one datagram into a :class:`UEvent` or raises
:class:`firmware_protocols.errors.FrameError`; it never does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from firmware_protocols.errors import EncodeError, FrameError

# The kernel's buffer is 2048 bytes; allow twice that before calling a datagram garbage, so a
# future kernel with a larger buffer degrades to "event ignored" only far beyond it.
MAX_UEVENT_BYTES = 4096
LIBUDEV_MAGIC = b"libudev\0"
# Kernel actions (enum kobject_action); others are refused rather than guessed at.
ACTIONS = frozenset({"add", "remove", "change", "move", "online", "offline", "bind", "unbind"})
_KEY = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class UEvent:
    """One kernel hot-plug event: action, device path and the environment the kernel sent."""

    action: str
    devpath: str
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def subsystem(self) -> str | None:
        """``SUBSYSTEM`` (usb, tty, video4linux, input, net, ...), None when the kernel sent none."""
        return self.env.get("SUBSYSTEM")

    @property
    def seqnum(self) -> int | None:
        """The kernel's event sequence number, None when absent or not a number."""
        raw = self.env.get("SEQNUM", "")
        return int(raw) if raw.isascii() and raw.isdigit() else None


def _text(raw: bytes, what: str) -> str:
    try:
        # Device names are bytes to the kernel; in practice ASCII. UTF-8 is accepted, anything
        # else refused so no caller has to handle surrogates.
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(f"uevent {what} is not UTF-8 text") from None


def parse_uevent(data: bytes) -> UEvent:
    """Parse one kernel uevent datagram.

    Args:
        data: the datagram as received (one ``recv``).

    Returns:
        The event; ``env`` holds every ``KEY=VALUE`` pair, ``ACTION`` and ``DEVPATH`` included.

    Raises:
        FrameError: empty, too long, a udevd (``libudev``) message, no ``ACTION@DEVPATH``
            header, an unknown action, a pair without ``=`` or with a bad or repeated key,
            or ``ACTION``/``DEVPATH`` pairs that contradict the header.
    """
    if not data:
        raise FrameError("empty uevent")
    if len(data) > MAX_UEVENT_BYTES:
        raise FrameError(f"uevent of {len(data)} bytes exceeds {MAX_UEVENT_BYTES}")
    if data.startswith(LIBUDEV_MAGIC):
        raise FrameError("udevd (libudev) message, not a kernel uevent")
    # The final pair ends with NUL; a missing terminator is tolerated, an empty pair inside is not.
    parts = data[:-1].split(b"\0") if data.endswith(b"\0") else data.split(b"\0")
    header = _text(parts[0], "header")
    action, at, devpath = header.partition("@")
    if not at or not devpath.startswith("/"):
        raise FrameError("uevent header is not ACTION@/DEVPATH")
    if action not in ACTIONS:
        raise FrameError(f"unknown uevent action {action[:16]!r}")
    env: dict[str, str] = {}
    for raw in parts[1:]:
        pair = _text(raw, "pair")
        key, eq, value = pair.partition("=")
        if not eq or not _KEY.fullmatch(key):
            raise FrameError(f"uevent pair {pair[:32]!r} is not KEY=VALUE")
        if key in env:
            raise FrameError(f"uevent repeats {key}")
        env[key] = value
    for key, expected in (("ACTION", action), ("DEVPATH", devpath)):
        if env.get(key, expected) != expected:
            raise FrameError(f"uevent {key}= contradicts its header")
    return UEvent(action, devpath, MappingProxyType(env))


def encode_uevent(event: UEvent) -> bytes:
    """The datagram the kernel would send for ``event`` (for emulators and tests).

    Raises:
        EncodeError: an unknown action, a devpath not starting with ``/``, a bad key, a NUL in
            any text, or a result longer than :data:`MAX_UEVENT_BYTES`.
    """
    if event.action not in ACTIONS:
        raise EncodeError(f"unknown uevent action {event.action[:16]!r}")
    if not event.devpath.startswith("/"):
        raise EncodeError("uevent devpath must start with /")
    texts = [event.devpath, *event.env.values()]
    if any("\0" in t for t in texts) or not all(_KEY.fullmatch(k) for k in event.env):
        raise EncodeError("uevent keys must be [A-Za-z0-9_]+ and no text may hold NUL")
    pairs = [f"{k}={v}" for k, v in event.env.items()]
    out = "\0".join([f"{event.action}@{event.devpath}", *pairs]).encode() + b"\0"
    if len(out) > MAX_UEVENT_BYTES:
        raise EncodeError(f"uevent of {len(out)} bytes exceeds {MAX_UEVENT_BYTES}")
    return out
