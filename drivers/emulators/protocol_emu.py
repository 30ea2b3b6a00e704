"""pyserial URL handler ``emu://KIND?options``: an in-process serial port wired to an emulator.

pyserial finds this module by name (``protocol_<scheme>`` inside a package listed in
``serial.protocol_handler_packages``; :func:`drivers.emulators.install` adds ours) and uses its
``Serial`` class. The port behaves like a real one where the driver can tell: reads honour the
port timeout, writes go to the emulated device, and a device that was "unplugged" makes reads
and writes raise ``serial.SerialException`` as a vanished USB adapter does. Modem lines are
fixed (a pty or a bare UART has none worth trusting either).

``name=`` attaches to a named emulator kept in a process-wide registry (created on first use),
so a test or ``rekam demo`` can hold the emulator object while the driver opens the port by URL.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol
from urllib.parse import parse_qsl, urlparse

from serial.serialutil import PortNotOpenError, SerialBase, SerialException


class EmulatedDevice(Protocol):
    """What a port needs from an emulator: bytes in, (lazy) byte chunks out, and plug state."""

    def receive(self, data: bytes) -> Iterable[Iterable[bytes]]:
        """Feed bytes from the host; return its replies, each a (lazy) sequence of chunks."""

    @property
    def unplugged(self) -> bool:
        """True once the device has vanished from the bus."""


Factory = Callable[[Mapping[str, str]], EmulatedDevice]

# Kinds resolvable by URL host, imported lazily so a port of one kind does not load every model.
_KIND_MODULES: dict[str, str] = {"zfm": "drivers.emulators.zfm"}
_FACTORIES: dict[str, Factory] = {}
_NAMED: dict[tuple[str, str], EmulatedDevice] = {}
_REGISTRY_LOCK = threading.Lock()


def register_kind(kind: str, factory: Factory) -> None:
    """Let ``emu://<kind>?...`` build devices with ``factory(options)``."""
    _FACTORIES[kind] = factory


def attach(kind: str, name: str, device: EmulatedDevice) -> None:
    """Publish ``device`` so ``emu://<kind>?name=<name>`` opens a port to it."""
    with _REGISTRY_LOCK:
        _NAMED[(kind, name)] = device


def detach(kind: str, name: str) -> None:
    """Forget a named device (tests call this in their cleanup)."""
    with _REGISTRY_LOCK:
        _NAMED.pop((kind, name), None)


def lookup(kind: str, options: Mapping[str, str]) -> EmulatedDevice:
    """The named device, or a new one built from the URL options."""
    if kind not in _FACTORIES and kind in _KIND_MODULES:
        importlib.import_module(_KIND_MODULES[kind])  # registers itself
    factory = _FACTORIES.get(kind)
    if factory is None:
        raise SerialException(f"emu://{kind}: no such emulated device kind")
    name = options.get("name")
    if name is None:
        return factory(options)
    with _REGISTRY_LOCK:
        device = _NAMED.get((kind, name))
        if device is None:
            device = factory(options)
            _NAMED[(kind, name)] = device
        return device


class Serial(SerialBase):
    """The emulated port pyserial returns for ``emu://`` URLs."""

    def open(self) -> None:
        """Connect to the emulated device named by the URL."""
        if self.port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        kind, options = self._parse(self.portstr or "")
        device = lookup(kind, options)
        if device.unplugged:
            # What opening the path of an unplugged USB-serial adapter gives.
            raise SerialException(2, f"could not open port {self.portstr}: device not present")
        self._device = device
        self._rx = bytearray()
        self._pending: deque[Iterator[bytes]] = deque()
        self._cond = threading.Condition()
        self.is_open = True

    @staticmethod
    def _parse(url: str) -> tuple[str, dict[str, str]]:
        parts = urlparse(url)
        if parts.scheme != "emu" or not parts.netloc:
            raise SerialException(f"expected emu://KIND?options, got {url!r}")
        return parts.netloc.lower(), dict(parse_qsl(parts.query))

    def _reconfigure_port(self, force_update: bool = False) -> None:
        # Baud rate, parity and the rest mean nothing in process; accept them as a pty would.
        return None

    def close(self) -> None:
        """Close the port (safe to call twice)."""
        self.is_open = False

    def _check_open(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()

    def _pull(self, want: int) -> None:
        # Draw lazily produced output (e.g. an image upload) only as far as the reader needs, so
        # neither side ever holds a whole stream.
        while len(self._rx) < want and self._pending:
            try:
                self._rx += next(self._pending[0])
            except StopIteration:
                self._pending.popleft()

    @property
    def in_waiting(self) -> int:
        """Bytes that can be read now without waiting."""
        self._check_open()
        with self._cond:
            self._pull(1)
            return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        """Read up to ``size`` bytes, waiting at most the port timeout."""
        self._check_open()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        with self._cond:
            while True:
                self._pull(size)
                if len(self._rx) >= size or (self._rx and self.timeout == 0):
                    break
                if self._device.unplugged and not self._pending:
                    if self._rx:
                        break
                    raise SerialException("read failed: device disconnected")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining if remaining is not None else 0.1)
            data = bytes(self._rx[:size])
            del self._rx[:size]
            return data

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        """Send bytes to the emulated device."""
        self._check_open()
        if self._device.unplugged:
            raise SerialException("write failed: device disconnected")
        payload = bytes(data)
        replies = self._device.receive(payload)
        with self._cond:
            self._pending.extend(iter(reply) for reply in replies)
            self._cond.notify_all()
        return len(payload)

    def reset_input_buffer(self) -> None:
        """Discard everything the device has sent so far (including streams in flight)."""
        self._check_open()
        with self._cond:
            self._rx.clear()
            while self._pending:
                for _ in self._pending.popleft():
                    pass

    def reset_output_buffer(self) -> None:
        """Nothing is ever queued on the way out."""
        self._check_open()

    def send_break(self, duration: float = 0.25) -> None:
        """Breaks mean nothing to the emulated device."""
        self._check_open()

    def _update_break_state(self) -> None:
        return None

    def _update_rts_state(self) -> None:
        return None

    def _update_dtr_state(self) -> None:
        return None

    @property
    def cts(self) -> bool:
        """Fixed: the emulated UART has no flow control lines."""
        return True

    @property
    def dsr(self) -> bool:
        """Fixed: the emulated UART has no flow control lines."""
        return True

    @property
    def ri(self) -> bool:
        """Fixed: no ring indicator."""
        return False

    @property
    def cd(self) -> bool:
        """Fixed: carrier always present."""
        return True


__all__ = ["EmulatedDevice", "Serial", "attach", "detach", "lookup", "register_kind"]
