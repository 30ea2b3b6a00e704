"""The printer's owner thread: a daemon component that prints waiting jobs.

It opens the printer (again, with doubling delays, when it is absent or faults), and whenever
woken by a new order (``service.wake``) or every ``poll_seconds`` it reads the printer's status
and, when ready, lets :meth:`PrintService.print_pending` print. After a job stops on a printer
fault it backs off (doubling up to ``retry_max_seconds``) so an open cover does not turn into a
stream of retries and events. Every wait is bounded; :meth:`stop` ends the loop and closes the
printer. It implements the daemon's ``Component`` protocol (name, start, stop, healthy, status).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from agent.printing.queue import PrinterLike
from agent.printing.service import PrintService
from drivers.errors import DeviceError

log = logging.getLogger(__name__)


class OpenPrinter(PrinterLike, Protocol):
    """A printer driver the worker can close."""

    def close(self) -> None:
        """Release the printer."""


class PrinterWorker:
    """Owns the printer; one thread."""

    name = "printer"

    def __init__(self, service: PrintService, open_printer: Callable[[], OpenPrinter], *,
                 poll_seconds: float = 5.0, retry_min_seconds: float = 1.0,
                 retry_max_seconds: float = 300.0) -> None:
        self._service = service
        self._open = open_printer
        self._poll = poll_seconds
        self._retry_min = retry_min_seconds
        self._retry_max = retry_max_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._printer: OpenPrinter | None = None
        self._heartbeat = time.monotonic()
        self.state = "stopped"  # read by other threads for diagnostics
        self.printed = 0

    def start(self) -> None:
        """Start the owner thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="printer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current step (a card in progress finishes or fails) and close."""
        self._stop.set()
        self._service.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("printer thread did not stop within %.0f s", timeout)
            self._thread = None
        self.state = "stopped"

    def healthy(self) -> bool:
        """False when the thread died or has not turned its loop for far longer than it waits."""
        if self._thread is None:
            return True
        if not self._thread.is_alive():
            return False
        # A card may take minutes (print timeouts); allow that plus the longest back-off.
        return time.monotonic() - self._heartbeat < self._retry_max + 900.0

    def status(self) -> str:
        """Short STATUS= fragment."""
        return f"printer {self.state}, {self.printed} printed"

    def _run(self) -> None:
        delay = self._retry_min
        absent_logged = False
        try:
            while not self._stop.is_set():
                self._heartbeat = time.monotonic()
                wait = self._poll
                if self._printer is None:
                    try:
                        self._printer = self._open()
                    except DeviceError as exc:
                        if not absent_logged:
                            log.warning("printer unavailable: %s", exc)
                            absent_logged = True
                        self.state = "unavailable"
                        self._wait(delay)
                        delay = min(delay * 2, self._retry_max)
                        continue
                    if absent_logged:
                        log.info("printer back")
                    absent_logged = False
                    delay = self._retry_min
                try:
                    status = self._printer.status()
                    if not status.ready:
                        self.state = ",".join(sorted(s.value for s in status.states))
                    else:
                        self.state = "ready"
                        done = self._service.print_pending(self._printer)
                        self.printed += sum(1 for v in done if v.state == "printed")
                        if done and done[-1].state in ("received", "uncertain"):
                            # Stopped on a fault: back off before trying the printer again.
                            wait = delay
                            delay = min(delay * 2, self._retry_max)
                        else:
                            delay = self._retry_min
                except DeviceError as exc:
                    log.warning("printer fault: %s", exc)
                    self._close()
                    self.state = "unavailable"
                    wait = delay
                    delay = min(delay * 2, self._retry_max)
                self._wait(wait)
        finally:
            self._close()

    def _wait(self, seconds: float) -> None:
        self._service.wake.wait(seconds)
        self._service.wake.clear()

    def _close(self) -> None:
        if self._printer is not None:
            try:
                self._printer.close()
            except DeviceError:
                log.debug("printer close failed")
            self._printer = None
