"""Mains power: read the UPS from Network UPS Tools (``upsd`` on this machine) and act on it.

Offices lose mains power. With ``[power] enabled = true`` a :class:`PowerMonitor` thread asks
``upsd`` (its line-based text protocol on TCP, normally port 3493) for the UPS variables every
``poll_seconds``. When the UPS runs on battery at or below ``low_battery_percent`` (or reports
``LB``, low battery), the station goes into *power save*:

- the capture in progress is left to finish (nothing is cancelled here);
- new sessions are refused with a clear message, through :meth:`PowerMonitor.check_new_session`
  (or :meth:`PowerMonitor.gate_headroom` wrapped around the journal's headroom);
- a ``power_low`` event is journalled (durable: the journal commits with ``synchronous=FULL``
  and checkpoints after each write) and the uplink is woken so it leaves while the UPS lasts.

When mains returns (``OL`` without ``OB``) a ``power_restored`` event is journalled and new
sessions are accepted again. An unreachable ``upsd`` never blocks recording: the state becomes
``unknown`` and diagnostics say so.

Protocol (NUT network protocol, the few commands we need)::

    -> LIST VAR <ups>\\n
    <- BEGIN LIST VAR <ups>\\n  VAR <ups> <name> "<value>"\\n ...  END LIST VAR <ups>\\n
    <- ERR <CODE>\\n                         (UNKNOWN-UPS, DATA-STALE, DRIVER-NOT-CONNECTED, ...)
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.config import Config, PowerConfig

if TYPE_CHECKING:
    from agent.daemon import Daemon

log = logging.getLogger(__name__)

MAX_LINE = 4096  # upsd lines are short; a longer one means we are not talking to upsd
MAX_VARS = 2000  # a real UPS has a few hundred variables at most


class PowerError(Exception):
    """Root of this module's errors: the UPS state could not be read."""


class NutUnavailableError(PowerError):
    """upsd cannot be reached (not running, wrong port, connection lost or timed out)."""


class NutProtocolError(PowerError):
    """upsd answered something we did not expect, or an ``ERR`` line (kept in ``code``)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


def _unquote(text: str) -> str:
    """The value of a NUT quoted string (``"..."`` with backslash escapes)."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise NutProtocolError(f"expected a quoted value, got {text[:40]!r}")
    out: list[str] = []
    it = iter(text[1:-1])
    for ch in it:
        if ch == "\\":
            nxt = next(it, None)
            if nxt is None:
                raise NutProtocolError("dangling backslash in a quoted value")
            out.append(nxt)
        elif ch == '"':
            raise NutProtocolError("unescaped quote inside a value")
        else:
            out.append(ch)
    return "".join(out)


def parse_var_line(line: str, ups: str) -> tuple[str, str]:
    """``VAR <ups> <name> "<value>"`` -> (name, value); anything else raises NutProtocolError."""
    if line.startswith("ERR "):
        code = line[4:].strip()
        raise NutProtocolError(f"upsd: {code}", code)
    parts = line.split(" ", 3)
    if len(parts) != 4 or parts[0] != "VAR" or parts[1] != ups:
        raise NutProtocolError(f"unexpected line from upsd: {line[:60]!r}")
    return parts[2], _unquote(parts[3])


class NutClient:
    """A minimal client for upsd's text protocol: one connection per poll, every wait bounded."""

    def __init__(self, host: str, port: int, *, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    def list_vars(self, ups: str) -> dict[str, str]:
        """All variables of ``ups`` (``LIST VAR``)."""
        lines = self._exchange(f"LIST VAR {ups}", until=f"END LIST VAR {ups}")
        if lines and lines[0].startswith("ERR "):
            code = lines[0][4:].strip()
            raise NutProtocolError(f"upsd: {code}", code)
        if not lines or lines[0] != f"BEGIN LIST VAR {ups}":
            raise NutProtocolError(f"unexpected start of list: {(lines or [''])[0][:60]!r}")
        return dict(parse_var_line(line, ups) for line in lines[1:-1])

    def get_var(self, ups: str, name: str) -> str:
        """One variable (``GET VAR``)."""
        lines = self._exchange(f"GET VAR {ups} {name}", until=None)
        got, value = parse_var_line(lines[0], ups)
        if got != name:
            raise NutProtocolError(f"asked for {name}, upsd answered {got}")
        return value

    def _exchange(self, command: str, *, until: str | None) -> list[str]:
        # A fresh connection per poll: upsd is local and cheap to reach, and a stale socket after
        # upsd restarts would otherwise need its own recovery path.
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
                sock.settimeout(self.timeout)
                sock.sendall(command.encode("ascii") + b"\n")
                lines = self._read_lines(sock, until)
                try:
                    sock.sendall(b"LOGOUT\n")
                except OSError:
                    pass  # the answer is in; a failed goodbye changes nothing
                return lines
        except TimeoutError as exc:
            raise NutUnavailableError(f"upsd at {self.host}:{self.port} did not answer in time") from exc
        except OSError as exc:
            raise NutUnavailableError(f"upsd at {self.host}:{self.port}: {exc.strerror or exc}") from exc

    @staticmethod
    def _read_lines(sock: socket.socket, until: str | None) -> list[str]:
        buf = bytearray()
        lines: list[str] = []
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > MAX_LINE:
                    raise NutProtocolError("line from upsd too long")
                data = sock.recv(4096)
                if not data:
                    raise NutUnavailableError("upsd closed the connection mid-answer")
                buf += data
                continue
            raw = bytes(buf[:nl]).rstrip(b"\r")
            del buf[: nl + 1]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise NutProtocolError("non-UTF-8 line from upsd") from exc
            lines.append(line)
            if len(lines) > MAX_VARS:
                raise NutProtocolError("too many lines from upsd")
            # A single-line answer (GET, or ERR for anything) ends at its first line.
            if until is None or line == until or (len(lines) == 1 and line.startswith("ERR ")):
                return lines


@dataclass(frozen=True)
class PowerState:
    """What the UPS says, and what the station does about it."""

    state: str  # "mains" | "battery" | "low" | "unknown" | "disabled"
    status: str = ""  # raw ups.status flags, e.g. "OB LB"
    charge: float | None = None
    runtime_seconds: float | None = None
    error: str = ""
    checked_at: str = ""

    @property
    def sessions_allowed(self) -> bool:
        """False only in power save (battery low); an unknown state never blocks recording."""
        return self.state != "low"

    def as_dict(self) -> dict[str, Any]:
        """JSON form for diagnostics and events."""
        return {**dataclasses.asdict(self), "sessions_allowed": self.sessions_allowed}


MESSAGE_ID = ("Listrik padam dan baterai UPS hampir habis: perekaman baru ditunda sampai listrik "
              "menyala. Selesaikan perekaman yang sedang berjalan.")
MESSAGE_EN = ("Mains power is off and the UPS battery is low: new recordings wait until power "
              "returns. Finish the recording in progress.")


def classify(values: Mapping[str, str], cfg: PowerConfig) -> PowerState:
    """Turn upsd variables into a PowerState (pure: no I/O)."""
    status = values.get("ups.status", "").strip()
    flags = set(status.split())
    charge = _number(values.get("battery.charge"))
    runtime = _number(values.get("battery.runtime"))
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if not flags:
        return PowerState("unknown", status, charge, runtime, "ups.status missing", now)
    on_battery = "OB" in flags or ("OL" not in flags and "LB" in flags)
    if on_battery and ("LB" in flags or (charge is not None and charge <= cfg.low_battery_percent)):
        return PowerState("low", status, charge, runtime, "", now)
    if on_battery:
        return PowerState("battery", status, charge, runtime, "", now)
    if "OL" in flags:
        return PowerState("mains", status, charge, runtime, "", now)
    return PowerState("unknown", status, charge, runtime, f"unrecognised status {status[:40]!r}", now)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None  # NaN/inf are not readings


class PowerMonitor:
    """Daemon component: polls upsd, gates new sessions in power save, journals the changes."""

    name = "power"

    def __init__(self, cfg: PowerConfig, *, journal: Any = None,
                 wake_uplink: Callable[[], None] | None = None,
                 client: NutClient | None = None) -> None:
        self.cfg = cfg
        self.journal = journal
        self.wake_uplink = wake_uplink
        self.client = client or NutClient(cfg.host, cfg.port, timeout=cfg.timeout_seconds)
        self._state = PowerState("unknown", error="not polled yet")
        self._known: str | None = None  # the last state upsd actually reported
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.transitions = 0

    # ----------------------------------------------------------------- component

    def start(self) -> None:
        """Poll once (so the first state is known at READY) and start the poll thread."""
        self.poll()
        self._thread = threading.Thread(target=self._run, name="power", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.cfg.timeout_seconds * 3 + 1)

    def healthy(self) -> bool:
        """The poll thread is alive (an unreachable upsd is a diagnostics warning, not unhealthy)."""
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> str:
        """A STATUS= fragment while not on mains."""
        state = self.state().state
        return "" if state == "mains" else f"power {state}"

    # ----------------------------------------------------------------- queries

    def state(self) -> PowerState:
        """The last polled state."""
        with self._lock:
            return self._state

    def power_ok(self) -> bool:
        """True when new sessions may start."""
        return self.state().sessions_allowed

    def check_new_session(self) -> None:
        """Raise the workflow's 503 ``power_low`` error while in power save (SessionManager hook)."""
        if self.power_ok():
            return
        from agent.workflow.session import WorkflowError

        raise WorkflowError("power_low", 503, MESSAGE_ID, MESSAGE_EN)

    def gate_headroom(self, headroom: Callable[[], Any]) -> Callable[[], Any]:
        """Wrap the journal's headroom() so that power save also refuses new sessions (no API change)."""

        def gated() -> Any:
            room = headroom()
            if self.power_ok() or not room.ok:
                return room
            return dataclasses.replace(room, ok=False, message_id=MESSAGE_ID, message_en=MESSAGE_EN)

        return gated

    # ----------------------------------------------------------------- polling

    def poll(self) -> PowerState:
        """Ask upsd once, update the state and act on a change; never raises."""
        try:
            new = classify(self.client.list_vars(self.cfg.ups), self.cfg)
        except PowerError as exc:
            new = PowerState("unknown", error=str(exc), checked_at=datetime.now(UTC).isoformat(timespec="seconds"))
        with self._lock:
            old, self._state = self._state, new
            known = self._known
            if new.state != "unknown":
                self._known = new.state
        if new.state == "unknown" and old.state != "unknown":
            # Logged once per change, not every poll: upsd being down is one fact.
            log.warning("UPS state unknown: %s", new.error)
        elif new.state != "unknown" and new.state != known:
            # Compared with the last *known* state, so a hiccup of upsd (DATA-STALE under load,
            # a restart) neither loses a change nor repeats an event.
            self._changed(known, new)
        return new

    def _run(self) -> None:
        while not self._stop.wait(self.cfg.poll_seconds):
            self.poll()

    def _changed(self, old: str | None, new: PowerState) -> None:
        self.transitions += 1
        log.info("power: %s -> %s (status %s, charge %s)", old or "start", new.state, new.status, new.charge)
        kind = None
        if new.state == "low":
            log.warning("power save: on battery at %s%%; new sessions refused until mains returns", new.charge)
            kind = "power_low"
        elif old == "low":
            kind = "power_restored"
        elif new.state == "battery":
            kind = "power_battery"  # also when the daemon starts on battery
        elif new.state == "mains" and old == "battery":
            kind = "power_mains"
        if kind is None or self.journal is None:
            return
        try:
            self.journal.add_event(kind, {"status": new.status, "charge": new.charge,
                                          "runtime_seconds": new.runtime_seconds, "previous": old})
        except Exception:  # the journal may be full or closing; the state change still holds
            log.exception("power: could not journal the %s event", kind)
            return
        if self.wake_uplink is not None:
            self.wake_uplink()


def power_component(config: Config, daemon: Daemon) -> PowerMonitor | None:
    """Daemon component factory: a PowerMonitor when ``[power] enabled``; registered as ``power``."""
    if not config.power.enabled:
        return None
    journal_part = daemon.parts.get("journal")

    def wake() -> None:
        uplink = daemon.parts.get("uplink")
        if uplink is not None:
            uplink.wake()

    monitor = PowerMonitor(config.power, journal=journal_part.journal if journal_part else None, wake_uplink=wake)
    daemon.parts["power"] = monitor
    return monitor
