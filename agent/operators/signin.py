"""Who is signed in at the station: fingerprint (or PIN) sign-in, sign-out, idle sign-out.

One operator at a time per station; a second sign-in is a hand-over (the first is signed out
with reason ``handover``), which is how two colleagues share one applicant's stages.

Each sign-in opens a *shift* row in the journal (the attendance record). A shift ends on an
explicit sign-out, on a hand-over, after ``idle_signout_seconds`` without activity (measured on
the monotonic clock, so a wall-clock correction neither signs anyone out early nor keeps them
in), when the operator is removed (noticed at the next check), when the office-local day changes
(midnight, or a clock jump across it: the next day starts with a fresh sign-in and so a true
arrival time), and at start-up for a shift a crash left open. Its length by the monotonic
clock is kept beside the wall times, so a wall clock stepped backwards cannot make it negative.

Sign-in is only ever this explicit step: the capture routes never call it, so an applicant's
finger on the scanner cannot sign anyone in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.config import Config
from agent.operators._db import JournalLike
from agent.operators.audit import AuditLog
from agent.operators.errors import NotSignedInError, PinError, UnknownFingerError
from agent.operators.pin import PinFile
from agent.operators.registry import FingerAccess, Operator, OperatorRegistry

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS operator_shifts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    staff_id TEXT NOT NULL,
    method TEXT NOT NULL,
    day TEXT NOT NULL,
    signed_in_at TEXT NOT NULL,
    signed_out_at TEXT,
    out_reason TEXT,
    mono_seconds REAL
);
CREATE INDEX IF NOT EXISTS operator_shifts_day ON operator_shifts (day, staff_id)
"""


@dataclass(frozen=True)
class Current:
    """The signed-in operator."""

    staff_id: str
    role: str
    method: str
    signed_in_at: str
    day: str
    shift_id: int
    since_mono: float

    def view(self) -> dict[str, Any]:
        """What GET /v1/operators/current answers (no name: the front-end can ask the list)."""
        return {"staff_id": self.staff_id, "role": self.role, "method": self.method,
                "signed_in_at": self.signed_in_at}


def _wall() -> datetime:
    return datetime.now(UTC)


class SignIn:
    """The station's sign-in state."""

    def __init__(self, journal: JournalLike, registry: OperatorRegistry, config: Config, *,
                 audit: AuditLog | None = None, pins: PinFile | None = None,
                 access: FingerAccess | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = _wall) -> None:
        self.journal = journal
        self.registry = registry
        self.cfg = config.operators
        self.tz = config.station.timezone
        self.audit = audit
        self.pins = pins
        self.access = access
        self.clock = clock
        self.wall = wall
        self._lock = threading.RLock()
        self._current: Current | None = None
        self._last_activity = 0.0
        self._pin_failures: dict[str, tuple[int, float]] = {}
        journal.register_schema("operators_shifts", SCHEMA)
        self.close_open_shifts("restart")

    # ------------------------------------------------------------------ helpers

    def _day(self, at: datetime) -> str:
        from zoneinfo import ZoneInfo

        return at.astimezone(ZoneInfo(self.tz)).date().isoformat()

    def close_open_shifts(self, reason: str) -> int:
        """End shifts left open (by a crash or a stop); their end is unknown, so no length is kept."""
        # Read first: most starts have nothing to close, and a start needs no write (nor the
        # journal's write helpers loaded) for that.
        if not self.journal.query("SELECT 1 FROM operator_shifts WHERE signed_out_at IS NULL LIMIT 1"):
            return 0
        now = self.wall().isoformat(timespec="milliseconds")
        with self.journal.transaction() as db:
            n = db.execute("UPDATE operator_shifts SET signed_out_at = ?, out_reason = ? "
                           "WHERE signed_out_at IS NULL", [now, reason]).rowcount
        return int(n)

    def _open(self, op: Operator, method: str) -> Current:
        with self._lock:
            if self._current is not None:
                self._end("handover")
            now = self.wall()
            at = now.isoformat(timespec="milliseconds")
            day = self._day(now)
            with self.journal.transaction() as db:
                cur = db.execute("INSERT INTO operator_shifts (staff_id, method, day, signed_in_at) "
                                 "VALUES (?, ?, ?, ?)", [op.staff_id, method, day, at])
                shift_id = int(cur.lastrowid)
            mono = self.clock()
            self._current = Current(op.staff_id, op.role, method, at, day, shift_id, mono)
            self._last_activity = mono
        if self.audit is not None:
            self.audit.record("operator.sign_in", "ok", operator_id=op.staff_id, details={"method": method})
        log.info("operator %s signed in (%s)", op.staff_id, method)
        return self._current

    def _end(self, reason: str, *, mono_end: float | None = None) -> Current | None:
        """Close the current shift; caller holds the lock."""
        cur = self._current
        if cur is None:
            return None
        now_mono = self.clock()
        end_mono = now_mono if mono_end is None else min(mono_end, now_mono)
        wall_end = self.wall() - timedelta(seconds=now_mono - end_mono)
        length = max(0.0, end_mono - cur.since_mono)
        with self.journal.transaction() as db:
            db.execute("UPDATE operator_shifts SET signed_out_at = ?, out_reason = ?, mono_seconds = ? "
                       "WHERE id = ? AND signed_out_at IS NULL",
                       [wall_end.isoformat(timespec="milliseconds"), reason, round(length, 3), cur.shift_id])
        self._current = None
        if self.audit is not None:
            self.audit.record("operator.sign_out", reason, operator_id=cur.staff_id,
                              details={"shift_seconds": round(length)})
        log.info("operator %s signed out (%s)", cur.staff_id, reason)
        return cur

    # ------------------------------------------------------------------ sign in / out

    def sign_in_fingerprint(self, *, timeout: float | None = None) -> Current:
        """Identify the finger on the scanner (1:N on the module) and sign its operator in.

        Raises:
            UnknownFingerError: nobody's finger (the current operator, if any, stays signed in).
            UserRetryError / DeviceError: no finger, poor image, scanner trouble.
        """
        if self.access is None:
            raise UnknownFingerError("Pemindai sidik jari petugas tidak tersedia.",
                                     "No operator fingerprint scanner is configured.")
        try:
            op, _score = self.registry.identify(self.access, timeout=timeout or self.cfg.sign_in_timeout_seconds)
        except UnknownFingerError:
            if self.audit is not None:
                self.audit.record("operator.sign_in_refused", "unknown_finger")
            raise
        return self._open(op, "fingerprint")

    def sign_in_pin(self, staff_id: str, pin: str) -> Current:
        """PIN fallback for the roles in ``[operators] pin_roles`` (scanner broken).

        Raises:
            PinError: unknown staff id, wrong PIN, role not allowed, or locked after failures.
        """
        refused = PinError("ID petugas atau PIN salah.", "Wrong staff id or PIN.")
        now = self.clock()
        # Per staff id, and station-wide at three times that, so guessing across many staff
        # ids is slowed too. Unknown staff ids share the station-wide counter only (bounded memory).
        keys = [("*", 3 * self.cfg.pin_max_failures)]
        op = self.registry.active(staff_id) if isinstance(staff_id, str) else None
        if op is not None:
            keys.append((op.staff_id, self.cfg.pin_max_failures))
        with self._lock:
            wait = max((self._pin_failures.get(k, (0, 0.0))[1] - now for k, _ in keys), default=0.0)
            if wait > 0:
                raise PinError(f"Masuk dengan PIN dikunci {int(wait) + 1} detik lagi.",
                               f"PIN sign-in is locked for {int(wait) + 1} more seconds.")
        allowed_roles = set(self.cfg.pin_roles.split(","))
        ok = self.pins is not None and op is not None and self.pins.verify(staff_id, pin)
        if ok and op is not None and op.role not in allowed_roles:
            if self.audit is not None:
                self.audit.record("operator.sign_in_refused", "pin_role", operator_id=op.staff_id)
            raise PinError(f"Peran {op.role} tidak boleh masuk dengan PIN; gunakan sidik jari.",
                           f"The {op.role} role may not sign in by PIN; use the fingerprint.")
        if not ok or op is None:
            with self._lock:
                for key, limit in keys:
                    failures = self._pin_failures.get(key, (0, 0.0))[0] + 1
                    lock = now + self.cfg.pin_lock_seconds if failures >= limit else 0.0
                    self._pin_failures[key] = (0 if lock else failures, lock)
            if self.audit is not None:
                self.audit.record("operator.sign_in_refused", "bad_pin",
                                  operator_id=op.staff_id if op is not None else None)
            raise refused
        with self._lock:
            self._pin_failures.pop(op.staff_id, None)
        return self._open(op, "pin")

    def sign_out(self, reason: str = "manual") -> Current | None:
        """Sign the current operator out; returns who it was (None when nobody was).

        The checks run first: an operator idle past the limit (or past midnight) was already
        signed out then, and that earlier end is what the shift keeps, not this late tap.
        """
        with self._lock:
            if self.current() is None:
                return None
            return self._end(reason)

    # ------------------------------------------------------------------ checks

    def current(self) -> Current | None:
        """The signed-in operator after the checks (idle, removed, day changed), or None."""
        with self._lock:
            cur = self._current
            if cur is None:
                return None
            idle_limit = self.cfg.idle_signout_seconds
            if self.clock() - self._last_activity > idle_limit:
                self._end("idle", mono_end=self._last_activity + idle_limit)
                return None
            if self._day(self.wall()) != cur.day:
                self._end("day_changed")
                return None
            if self.registry.active(cur.staff_id) is None:
                self._end("removed")
                return None
            return cur

    def peek(self) -> Current | None:
        """The signed-in operator without running the checks (status lines)."""
        return self._current

    def touch(self) -> None:
        """Note activity (each station API call of the signed-in operator)."""
        with self._lock:
            if self._current is not None:
                self._last_activity = self.clock()

    def require(self) -> Current:
        """The signed-in operator (and note activity), or NotSignedInError."""
        cur = self.current()
        if cur is None:
            raise NotSignedInError("Belum ada petugas yang masuk. Masuk dengan sidik jari dulu.",
                                   "No operator is signed in. Sign in with your fingerprint first.")
        self.touch()
        return cur


class SignInWatcher:
    """Daemon component: checks the sign-in every ``period`` seconds so an idle, removed or
    past-midnight operator is signed out (and their shift closed) even when nobody calls the API."""

    name = "operator-signin"

    def __init__(self, signin: SignIn, *, period: float = 15.0) -> None:
        self.signin = signin
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rekam-signin", daemon=True)

    def start(self) -> None:
        """Start the checking thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop it; the signed-in operator's shift is closed as the daemon stops."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        try:
            self.signin.sign_out("stopped")
        except Exception:
            log.exception("closing the shift at stop failed")

    def healthy(self) -> bool:
        """The thread is alive (or was never started)."""
        return self._thread.is_alive() or not self._thread.ident

    def status(self) -> str:
        """STATUS= fragment: who is signed in (a staff id, never a name)."""
        cur = self.signin.peek()
        return f"operator {cur.staff_id}" if cur else "no operator"

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.signin.current()
            except Exception:
                # A busy journal now is retried at the next tick; the thread must not die.
                log.exception("sign-in check failed")
