"""The who-did-what trail: one journal table of ids, times and outcomes, never biometrics.

Two sources feed it: each finished enrollment session (its ``audit`` list: biodata entry, every
capture, force-accepts, exceptions, seal; with the operator of each step and the supervisor who
approved it), and station actions done by a signed-in operator or technician (stock recount,
print confirmation, config change, export, operator enrolment and removal, sign-in and out).

``details`` may hold only short scalar values under plain keys, and keys that name personal or
biometric data are refused outright: the table must stay safe to export and to publish.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from agent.operators._db import JournalLike, query

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_trail (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    day TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    operator_id TEXT,
    approved_by TEXT,
    session_id TEXT,
    seq INTEGER,
    packet_id TEXT,
    item TEXT,
    details TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS audit_trail_session_seq ON audit_trail (session_id, seq);
CREATE INDEX IF NOT EXISTS audit_trail_day ON audit_trail (day);
CREATE INDEX IF NOT EXISTS audit_trail_operator ON audit_trail (operator_id, day)
"""

# Station actions the issue names, plus the operator layer's own. Others are refused so a typo
# cannot create an action no report knows about.
STATION_ACTIONS = frozenset({
    "stock.recount", "stock.add", "print.confirm", "config.change", "export",
    "operator.enroll", "operator.remove", "operator.pin_set",
    "operator.sign_in", "operator.sign_out", "operator.sign_in_refused",
    "session.approve", "session.approve_refused",
})
# Keys that would carry personal or biometric data: refused in details, whatever the value.
FORBIDDEN_KEYS = frozenset({
    "nik", "name", "full_name", "address", "birth_date", "birth_place", "biodata", "template",
    "image", "images", "photo", "minutiae", "pin", "password", "key", "token",
})
_KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_MAX_TEXT = 64
_COLUMNS = ("id", "at", "day", "action", "outcome", "operator_id", "approved_by", "session_id",
            "seq", "packet_id", "item", "details")


class SessionLike(Protocol):
    """What the trail reads of a finished workflow session."""

    id: str
    packet_id: str | None
    audit: list[dict[str, Any]]

    @property
    def items(self) -> Mapping[str, Any]:
        """Items by key."""


@dataclass(frozen=True)
class AuditRow:
    """One audit record as read back."""

    id: int
    at: str
    day: str
    action: str
    outcome: str
    operator_id: str | None
    approved_by: str | None
    session_id: str | None
    seq: int | None
    packet_id: str | None
    item: str | None
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {c: getattr(self, c) for c in _COLUMNS}


def _now() -> datetime:
    return datetime.now(UTC)


def check_details(details: Mapping[str, Any] | None) -> str | None:
    """``details`` as compact JSON after checking it holds no personal data; ValueError if it might."""
    if not details:
        return None
    for k, v in details.items():
        if not isinstance(k, str) or not _KEY_RE.fullmatch(k):
            raise ValueError(f"audit detail key {k!r}: expected lower_snake_case")
        if k in FORBIDDEN_KEYS:
            raise ValueError(f"audit detail key {k!r} would carry personal or biometric data")
        if isinstance(v, str):
            if len(v) > _MAX_TEXT:
                raise ValueError(f"audit detail {k!r}: text longer than {_MAX_TEXT} characters")
        elif v is not None and not isinstance(v, (bool, int, float)):
            raise ValueError(f"audit detail {k!r}: only short text, numbers and booleans are kept")
    return json.dumps(dict(details), sort_keys=True, allow_nan=False, separators=(",", ":"))


def _id(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValueError(f"audit {what}: expected an id, got {str(value)[:20]!r}")
    return value


class AuditLog:
    """The audit table in the journal."""

    def __init__(self, journal: JournalLike, *, tz: str, clock: Any = _now) -> None:
        self.journal = journal
        self.tz = tz
        self.clock = clock
        journal.register_schema("operators_audit", SCHEMA)

    def _day(self, at: str) -> str:
        from agent.kpi import local_day

        return local_day(at, self.tz)

    def record(self, action: str, outcome: str, *, operator_id: str | None = None,
               approved_by: str | None = None, session_id: str | None = None,
               packet_id: str | None = None, item: str | None = None,
               details: Mapping[str, Any] | None = None, at: str | None = None) -> int:
        """Append one station action; return its row id."""
        if action not in STATION_ACTIONS:
            raise ValueError(f"unknown audit action {action!r} (known: {', '.join(sorted(STATION_ACTIONS))})")
        if not isinstance(outcome, str) or not _KEY_RE.fullmatch(outcome):
            raise ValueError(f"audit outcome {outcome!r}: expected lower_snake_case")
        at = at or self.clock().isoformat(timespec="milliseconds")
        row = {"at": at, "day": self._day(at), "action": action, "outcome": outcome,
               "operator_id": _id(operator_id, "operator_id"), "approved_by": _id(approved_by, "approved_by"),
               "session_id": _id(session_id, "session_id"), "seq": None,
               "packet_id": _id(packet_id, "packet_id"), "item": _id(item, "item"),
               "details": check_details(details)}
        with self.journal.transaction() as db:
            cur = db.execute(f"INSERT INTO audit_trail ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                             list(row.values()))
            rowid = int(cur.lastrowid)
        log.info("audit %s %s (operator %s)", action, outcome, operator_id or "-")
        return rowid

    def record_session(self, session: SessionLike) -> int:
        """Copy a finished session's trail into the table (idempotent); return rows added.

        Meant for ``SessionManager.on_finished``. The session's entries carry only action,
        item, operator, time and outcome (agent/workflow/session.py); approval comes from items.
        """
        rows = []
        for seq, entry in enumerate(session.audit):
            at = str(entry.get("at") or self.clock().isoformat(timespec="milliseconds"))
            item_key = entry.get("item")
            item = session.items.get(item_key) if isinstance(item_key, str) else None
            approved = getattr(item, "approved_by", None) if entry.get("action") in (
                "force_accept", "exception", "approve") else None
            rows.append([at, self._day(at), f"session.{entry.get('action')}", str(entry.get("outcome")),
                         _id(entry.get("operator"), "operator_id"), _id(approved, "approved_by"),
                         session.id, seq, _id(session.packet_id, "packet_id"), _id(item_key, "item"),
                         None])
        if not rows:
            return 0
        with self.journal.transaction() as db:
            before = db.execute("SELECT count(*) FROM audit_trail WHERE session_id = ?", [session.id]).fetchone()[0]
            db.executemany(
                "INSERT OR IGNORE INTO audit_trail (at, day, action, outcome, operator_id, approved_by, "
                "session_id, seq, packet_id, item, details) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            after = db.execute("SELECT count(*) FROM audit_trail WHERE session_id = ?", [session.id]).fetchone()[0]
        return int(after) - int(before)

    def rows(self, first_day: str, last_day: str, *, action_prefix: str | None = None,
             operator_id: str | None = None, limit: int = 100_000) -> list[AuditRow]:
        """Records of office-local days [first_day, last_day], oldest first."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM audit_trail WHERE day BETWEEN ? AND ?"
        params: list[Any] = [first_day, last_day]
        if action_prefix:
            sql += " AND action LIKE ?"
            params.append(action_prefix.replace("%", "") + "%")
        if operator_id:
            sql += " AND operator_id = ?"
            params.append(operator_id)
        sql += " ORDER BY at, id LIMIT ?"
        params.append(limit)
        return [_row(r) for r in query(self.journal, sql, params)]

    def purge(self, keep_days: int) -> int:
        """Delete records older than ``keep_days``; return how many."""
        cutoff = (self.clock() - timedelta(days=keep_days)).isoformat(timespec="milliseconds")
        with self.journal.transaction() as db:
            return int(db.execute("DELETE FROM audit_trail WHERE at < ?", [cutoff]).rowcount)


def _row(r: Iterable[Any]) -> AuditRow:
    d = dict(zip(_COLUMNS, r, strict=True))
    d["details"] = json.loads(d["details"]) if d["details"] else {}
    return AuditRow(**d)


def manifest_trail(session: SessionLike) -> list[dict[str, Any]]:
    """The session's trail as the packet manifest should carry it (ids, times, outcomes only)."""
    out = []
    for entry in session.audit:
        item_key = entry.get("item")
        item = session.items.get(item_key) if isinstance(item_key, str) else None
        out.append({"action": entry.get("action"), "item": item_key, "operator": entry.get("operator"),
                    "approved_by": getattr(item, "approved_by", None) if item is not None else None,
                    "at": entry.get("at"), "outcome": entry.get("outcome")})
    return out


def audit_cli_action(journal: JournalLike, tz: str, action: str, outcome: str, *,
                     operator_id: str | None, **fields: Any) -> int:
    """Audit an action a technician or operator took with a ``rekam`` command (``--by STAFF_ID``)."""
    return AuditLog(journal, tz=tz).record(action, outcome, operator_id=operator_id, **fields)
