"""Evolis card printer driver: ESC commands over a USB or /dev/usb/lp transport.

Evidence level: verified against the public Evolis Programming Guide (A5013 Rev. E) as
restated in the research note, and against the emulator; **not** against Primacy or Zenius
hardware. Status comes only from Rev. E ASCII queries and NACK codes (no guessed binary
status command).

One request in flight (a lock); every wait is bounded by ``timeout_s``. A job is an iterable
of frames (see :func:`firmware_protocols.evolis.job_frames`), written one at a time, so at
most one card's panels are ever in memory. Each frame must be answered with OK/ACK before
the next goes; a NACK stops the job with a :class:`PrinterFaultError` that says whether a
blank card left the feeder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from drivers.base import DeviceIdentity, FrameLog, SelfTestResult
from drivers.errors import DeviceError, DeviceProtocolError, DeviceTimeoutError
from drivers.printer.status import (
    PrinterFaultError,
    PrinterState,
    PrinterStatus,
    fault_for_nack,
    status_from_replies,
)
from firmware_protocols import evolis as ev

log = logging.getLogger(__name__)
TRACE = 5


class PrinterTransport(Protocol):
    """What the driver needs from a transport (USB or lp)."""

    @property
    def name(self) -> str:
        """Where the printer is, for messages."""

    def open(self) -> None:
        """Open the device."""

    def device_id(self) -> str | None:
        """The IEEE 1284 id string, if any."""

    def write(self, data: bytes, timeout_s: float) -> None:
        """Write all bytes within the bound."""

    def read(self, size: int, timeout_s: float) -> bytes:
        """Up to ``size`` bytes; b"" on timeout."""

    def close(self) -> None:
        """Close; safe twice."""


@dataclass(frozen=True)
class JobReport:
    """A finished job: frames sent and bytes written."""

    frames: int
    bytes_sent: int


def _step_name(frame: bytes) -> str:
    """The step a frame performs ("Ss", "Db:k" ...), from its header only."""
    head = frame[1:24].split(b";")
    name = head[0].rstrip(b"\r").decode("ascii", "replace")
    if name in ("Db", "Dbc") and len(head) > 1:
        return f"Db:{head[1].decode('ascii', 'replace')}"
    return name


class EvolisPrinter:
    """The driver; implements :class:`drivers.base.Device`."""

    def __init__(self, transport: PrinterTransport, *, timeout_s: float = 5.0,
                 print_timeout_s: float = 60.0, ribbon_low_at: int = 20, emulated: bool = False) -> None:
        self._t = transport
        self._timeout = timeout_s
        self._print_timeout = print_timeout_s
        self._ribbon_low_at = ribbon_low_at
        self._emulated = emulated
        self._lock = threading.Lock()
        self._decoder = ev.ReplyDecoder()
        self._pending: deque[ev.Reply | ev.Ack | ev.Nack] = deque()
        self._open = False
        self.frames = FrameLog()

    # -- Device --------------------------------------------------------------------------

    def open(self) -> None:
        """Open the transport."""
        self._t.open()
        self._open = True
        self._decoder = ev.ReplyDecoder()

    def close(self) -> None:
        """Close the transport; safe twice."""
        self._open = False
        self._t.close()

    def identify(self) -> DeviceIdentity:
        """Model (``Rtp``), serial (``Rsn``) and firmware (``Rfv``)."""
        return DeviceIdentity(
            kind="printer",
            make="Evolis",
            model=self.query("Rtp"),
            serial=self.query("Rsn"),
            firmware=self.query("Rfv"),
            evidence="public protocol",
            emulated=self._emulated,
        )

    def device_id(self) -> str | None:
        """The transport's IEEE 1284 device id."""
        return self._t.device_id()

    def self_test(self) -> SelfTestResult:
        """Identify and read status; prints nothing (a test card costs a blank)."""
        steps: list[tuple[str, bool, str]] = []
        try:
            ident = self.identify()
            steps.append(("identify", True, f"{ident.model} fw {ident.firmware}"))
            st = self.status()
            steps.append(("status", st.ready, ",".join(sorted(s.value for s in st.states))))
        except DeviceError as exc:
            steps.append(("query", False, str(exc)))
        return SelfTestResult(ok=all(ok for _, ok, _ in steps), steps=tuple(steps))

    # -- queries -------------------------------------------------------------------------

    def query(self, name: str, *params: str) -> str:
        """Send one R-command; return its text reply (NACK raises)."""
        frame = ev.encode_command(name, *params)
        return self._request(frame, name, card_consumed=False, timeout_s=self._timeout)

    def status(self) -> PrinterStatus:
        """The status from ``Rlr;p``, ``Rlr;r``, ``Rcr`` and ``Rco;l``."""
        return status_from_replies(
            last_card=self.query("Rlr", "p"),
            last_cleaning=self.query("Rlr", "r"),
            ribbon_mark=self.query("Rcr"),
            ribbon_left=self.query("Rco", "l"),
            ribbon_low_at=self._ribbon_low_at,
        )

    # -- jobs ----------------------------------------------------------------------------

    def print_job(self, frames: Iterable[bytes]) -> JobReport:
        """Send a job frame by frame, each acknowledged before the next.

        Raises :class:`PrinterFaultError` (NACK) with ``card_consumed`` False before the card
        was fed, True after; a timeout or unplug after ``Ss`` was written is re-raised with
        ``card_consumed`` None on the error (``getattr(exc, "card_consumed")``): nobody can
        tell whether a card came out.
        """
        fed: bool | None = False
        count = sent = 0
        for frame in frames:
            step = _step_name(frame)
            if step in ("Ss", "Si", "St"):
                fed = None  # in flight: the card may or may not be picked
            timeout = self._print_timeout if step.startswith(("Db", "Se", "St", "Ss")) else self._timeout
            try:
                self._request(frame, step, card_consumed=fed, timeout_s=timeout, check_err=True)
            except PrinterFaultError as exc:
                if step in ("Ss", "Si", "St"):
                    # A media refusal at insertion means no card moved. A jam or time-out
                    # there may be an earlier jam or the new card sticking in the feed:
                    # nobody can tell, so say so instead of guessing.
                    exc.card_consumed = None if exc.state is PrinterState.CARD_JAM else False
                raise
            except DeviceError as exc:
                exc.card_consumed = fed  # type: ignore[attr-defined]
                exc.step = step  # type: ignore[attr-defined]
                raise
            if step in ("Ss", "Si", "St"):
                fed = True
            count += 1
            sent += len(frame)
        return JobReport(count, sent)

    # -- the one request path ------------------------------------------------------------

    def _request(self, frame: bytes, step: str, *, card_consumed: bool | None, timeout_s: float,
                 check_err: bool = False) -> str:
        if not self._open:
            raise DeviceProtocolError(f"{self._t.name}: printer not open", device=self._t.name)
        with self._lock:
            if self._pending:
                # Replies nobody waited for (a late answer after a timeout) must not be taken
                # as the answer to this frame.
                self.frames.record("rx", f"{len(self._pending)} stale replies dropped")
                self._pending.clear()
            summary = step if not step.startswith("Db") else f"{step} <{len(frame)} bytes>"
            self.frames.record("tx", summary)
            log.log(TRACE, "printer tx %s", summary)
            self._t.write(frame, timeout_s)
            deadline = time.monotonic() + timeout_s
            while not self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeviceTimeoutError(f"{self._t.name}: no answer to {step}", device=self._t.name)
                for event in self._decoder.feed(self._t.read(512, remaining)):
                    if isinstance(event, ev.Garbage):
                        self.frames.record("rx", f"garbage {event.length} bytes")
                    else:
                        self._pending.append(event)
            return self._answer(self._pending.popleft(), step, card_consumed, check_err)

    def _answer(self, event: ev.Reply | ev.Ack | ev.Nack, step: str, card_consumed: bool | None,
                check_err: bool) -> str:
        if isinstance(event, ev.Nack):
            self.frames.record("rx", f"NACK {event.code}")
            log.info("printer refused %s: NACK %s (%s)", step, event.code, event.meaning)
            raise fault_for_nack(event.code, step=step, card_consumed=card_consumed)
        text = "OK" if isinstance(event, ev.Ack) else event.text
        self.frames.record("rx", text[:40])
        if check_err and text.upper().startswith("ERR"):
            state = PrinterState.CARD_JAM if "CARD" in text.upper() else PrinterState.UNKNOWN
            raise PrinterFaultError(f"printer answered {text!r} to {step}", state=state, step=step,
                                    card_consumed=card_consumed)
        return text
