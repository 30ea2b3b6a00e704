"""Serve an emulated serial device on a pseudo-terminal pair, from one thread.

The driver opens the slave path (``/dev/pts/N``) with its normal pyserial code, so this tier
exercises a real file descriptor, real ``termios`` and real partial reads. Two traps, both from
the research note (§6): the slave is put in raw mode *at once*, before the driver opens it, or
the line discipline echoes bytes and turns 0x0D into 0x0A; and modem-line ioctls do not work on
a pty, so a driver that needs them fails here as it would on a bare Pi UART.

An unplug fault closes both ends, so the driver's next read fails with an I/O error exactly as
when a USB-serial adapter is pulled.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
import tty
from collections.abc import Iterable, Iterator
from types import TracebackType

from drivers.emulators.protocol_emu import EmulatedDevice

_log = logging.getLogger(__name__)

_POLL = 0.05  # how often the thread looks at its stop flag while the line is idle


class PtyLink:
    """A pty pair whose master side is served by ``device`` in a background thread."""

    def __init__(self, device: EmulatedDevice, *, name: str = "emulator") -> None:
        self.device = device
        self.name = name
        self._master = -1
        self._slave = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.path = ""
        self.error: BaseException | None = None

    def start(self) -> PtyLink:
        """Open the pair (raw at once) and start serving; returns self."""
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        self._thread = threading.Thread(target=self._serve, name=f"pty-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and close both ends (safe to call twice)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._close()

    def __enter__(self) -> PtyLink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        """True while the serving thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _close(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = -1

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                if self.device.unplugged:
                    self._close()
                    return
                readable, _, _ = select.select([self._master], [], [], _POLL)
                if not readable:
                    continue
                try:
                    data = os.read(self._master, 4096)
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                        continue
                    # EIO on the master means no process holds the slave open; we keep our
                    # own slave descriptor, so this only happens while shutting down.
                    if exc.errno == errno.EIO:
                        continue
                    raise
                for reply in self.device.receive(data):
                    self._send(reply)
        except Exception as exc:  # noqa: BLE001 - recorded for the test that owns this link
            self.error = exc
            _log.debug("pty emulator %s stopped: %s", self.name, type(exc).__name__)

    def _send(self, chunks: Iterable[bytes]) -> None:
        it: Iterator[bytes] = iter(chunks)
        for chunk in it:
            view = memoryview(chunk)
            while view and not self._stop.is_set():
                _, writable, _ = select.select([], [self._master], [], _POLL)
                if not writable:
                    continue
                try:
                    sent = os.write(self._master, view)
                except BlockingIOError:
                    continue
                view = view[sent:]
        if self.device.unplugged:
            self._close()
