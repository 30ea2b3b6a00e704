"""Service times and the office's indicators, measured from what the station saw.

Each sealed session leaves one row in ``service_times`` (ids and times, never biometrics, names
or NIKs); later stages (sent, acknowledged, print ordered, printed) fill in its columns as they
happen. The daily figures are computed from those rows, per day and per kelurahan: applicants
recorded, median and 90th percentile of the service time, the share within the standard
(15 minutes from the start of recording to a printed card), and the time lost to retries,
device faults and link outages.

"Service time" is start of recording -> card printed when the card has been printed, else
start -> sealed ("recording time"); both are reported so an office whose cards wait for head
office is not blamed for the wait, and one whose recording is slow is not hidden by it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

SCHEMA = """
CREATE TABLE IF NOT EXISTS service_times (
    session_id TEXT PRIMARY KEY,
    packet_id TEXT,
    day TEXT NOT NULL,
    kelurahan TEXT NOT NULL,
    operator_id TEXT,
    ticket_at TEXT,
    started_at TEXT NOT NULL,
    sealed_at TEXT,
    record_seconds REAL,
    retry_seconds REAL NOT NULL DEFAULT 0,
    fault_seconds REAL NOT NULL DEFAULT 0,
    captures INTEGER NOT NULL DEFAULT 0,
    first_time_pass INTEGER NOT NULL DEFAULT 0,
    force_accepts INTEGER NOT NULL DEFAULT 0,
    exceptions INTEGER NOT NULL DEFAULT 0,
    satisfaction INTEGER,
    operators TEXT,
    sent_at TEXT,
    acked_at TEXT,
    print_ordered_at TEXT,
    printed_at TEXT
);
CREATE INDEX IF NOT EXISTS service_times_packet ON service_times (packet_id);
CREATE INDEX IF NOT EXISTS service_times_day ON service_times (day);
CREATE TABLE IF NOT EXISTS link_outages (
    started_at TEXT NOT NULL,
    ended_at TEXT
)
"""

STAGES = ("sent_at", "acked_at", "print_ordered_at", "printed_at")


class Store(Protocol):
    """The part of the journal the KPI module uses."""

    def register_schema(self, name: str, ddl_sql: str) -> None:
        """Create tables once."""

    def transaction(self) -> Any:
        """A write transaction yielding something with ``execute(sql, params)``."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read rows."""


def install(store: Store) -> None:
    """Create the KPI tables in the journal."""
    store.register_schema("kpi", SCHEMA)


def local_day(iso_utc: str, tz: str) -> str:
    """The office-local date (YYYY-MM-DD) of a UTC timestamp."""
    return datetime.fromisoformat(iso_utc).astimezone(ZoneInfo(tz)).date().isoformat()


def record_session(store: Store, record: Mapping[str, Any], *, tz: str) -> None:
    """Keep a sealed session's service record (idempotent on session id)."""
    if not record.get("session_id") or not record.get("started_at"):
        raise ValueError("a service record needs its session_id and started_at")
    row = {k: record.get(k) for k in (
        "session_id", "packet_id", "kelurahan", "operator_id", "started_at", "sealed_at", "record_seconds",
        "retry_seconds", "fault_seconds", "captures", "first_time_pass", "force_accepts", "exceptions",
        "satisfaction", "ticket_at", "operators")}
    row["day"] = local_day(str(record["started_at"]), tz)
    row["kelurahan"] = str(record.get("kelurahan") or "-").upper()
    for k, v in row.items():
        if isinstance(v, list | tuple | dict):
            row[k] = json.dumps(v)  # as sqlite_utils stored them (the "operators" list, for one)
    names = list(row)
    with store.transaction() as db:
        db.execute(f"INSERT INTO service_times ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
                   f"ON CONFLICT (session_id) DO UPDATE SET "
                   f"{', '.join(f'{n} = excluded.{n}' for n in names if n != 'session_id')}",
                   [row[n] for n in names])


def mark(store: Store, packet_id: str, stage: str, at: str | None = None) -> None:
    """Stamp a later stage (sent_at, acked_at, print_ordered_at, printed_at) of a packet once."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    at = at or datetime.now(UTC).isoformat(timespec="milliseconds")
    with store.transaction() as db:
        # The first time counts: a resend or a second ack must not move the stamp.
        db.execute(f"UPDATE service_times SET {stage} = ? WHERE packet_id = ? AND {stage} IS NULL",
                   [at, packet_id])


# Later stages come from the tables that own them: the journal's packets (first send, verified
# ack) and the print queue (order received, card printed). Copying them here keeps the KPI rows
# self-contained and each stamp is set once (the first time counts).
_SYNC = {
    "sent_at": "SELECT sending_at FROM packets p WHERE p.packet_id = service_times.packet_id",
    "acked_at": "SELECT delivered_at FROM packets p WHERE p.packet_id = service_times.packet_id",
    "print_ordered_at": ("SELECT MIN(received_at) FROM print_jobs j "
                         "WHERE j.packet_id = service_times.packet_id"),
    "printed_at": ("SELECT MIN(updated_at) FROM print_jobs j WHERE j.state = 'printed' "
                   "AND j.packet_id = service_times.packet_id"),
}


def sync_stages(store: Store) -> None:
    """Fill sent/acknowledged/print-ordered/printed stamps from the journal's own tables."""
    tables = {r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    due = [(column, source) for column, source in _SYNC.items()
           if "print_jobs" not in source or "print_jobs" in tables]
    # The daemon calls this every 2 s: look on the read pool first, so an idle station does not
    # take the writer (an fsynced empty transaction) every time.
    pending = " OR ".join(f"({column} IS NULL AND ({source}) IS NOT NULL)" for column, source in due)
    if not store.query(f"SELECT 1 FROM service_times WHERE packet_id IS NOT NULL "
                       f"AND started_at >= datetime('now', '-3 days') AND ({pending}) LIMIT 1"):
        return
    with store.transaction() as db:
        for column, source in due:
            db.execute(f"UPDATE service_times SET {column} = ({source}) "
                       f"WHERE {column} IS NULL AND packet_id IS NOT NULL "
                       f"AND started_at >= datetime('now', '-3 days')")


def link_down(store: Store, at: str) -> None:
    """Remember that the uplink went down (for "time lost to link outages")."""
    with store.transaction() as db:
        db.execute("INSERT INTO link_outages (started_at) VALUES (?)", [at])


def link_up(store: Store, at: str) -> None:
    """Close the open outage, if any."""
    with store.transaction() as db:
        db.execute("UPDATE link_outages SET ended_at = ? WHERE ended_at IS NULL", [at])


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def summarise(rows: Iterable[Mapping[str, Any]], *, standard_seconds: int) -> dict[str, Any]:
    """Figures for one group of service rows (a day, a kelurahan, an operator)."""
    rows = list(rows)
    recording = [float(r["record_seconds"]) for r in rows if r.get("record_seconds") is not None]
    service = [s for r in rows if (s := _seconds(r.get("started_at"), r.get("printed_at"))) is not None]
    within = sum(1 for s in service if s <= standard_seconds)
    satisfaction = [int(r["satisfaction"]) for r in rows if r.get("satisfaction")]
    return {
        "recorded": sum(1 for r in rows if r.get("sealed_at")),
        "printed": len(service),
        "recording_median_s": _round(percentile(recording, 50)),
        "recording_p90_s": _round(percentile(recording, 90)),
        "service_median_s": _round(percentile(service, 50)),
        "service_p90_s": _round(percentile(service, 90)),
        "within_standard_share": round(within / len(service), 3) if service else None,
        "retry_seconds": round(sum(float(r.get("retry_seconds") or 0) for r in rows), 1),
        "fault_seconds": round(sum(float(r.get("fault_seconds") or 0) for r in rows), 1),
        "satisfaction_mean": round(sum(satisfaction) / len(satisfaction), 2) if satisfaction else None,
        "satisfaction_responses": len(satisfaction),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


_COLUMNS = ("session_id", "packet_id", "day", "kelurahan", "operator_id", "started_at", "sealed_at",
            "record_seconds", "retry_seconds", "fault_seconds", "captures", "first_time_pass",
            "force_accepts", "exceptions", "satisfaction", "printed_at")


def rows_for(store: Store, first_day: str, last_day: str) -> list[dict[str, Any]]:
    """Service rows whose office-local day is in [first_day, last_day]."""
    raw = store.query(f"SELECT {', '.join(_COLUMNS)} FROM service_times WHERE day BETWEEN ? AND ? "
                      "ORDER BY started_at", (first_day, last_day))
    return [dict(zip(_COLUMNS, r, strict=True)) for r in raw]


def outage_seconds(store: Store, day: str, tz: str, now: datetime | None = None) -> float:
    """Seconds of link outage overlapping the office-local ``day``."""
    zone = ZoneInfo(tz)
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), zone)
    end = start.replace(hour=23, minute=59, second=59)
    now = now or datetime.now(UTC)
    total = 0.0
    for began, ended in store.query("SELECT started_at, ended_at FROM link_outages"):
        a = max(datetime.fromisoformat(began), start)
        b = min(datetime.fromisoformat(ended) if ended else now, end)
        total += max(0.0, (b - a).total_seconds())
    return round(total, 1)


def daily(store: Store, day: str, *, tz: str, standard_seconds: int) -> dict[str, Any]:
    """One day's figures, in total and per kelurahan."""
    rows = rows_for(store, day, day)
    by_kel: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_kel.setdefault(r["kelurahan"], []).append(r)
    return {
        "day": day,
        "standard_seconds": standard_seconds,
        "total": summarise(rows, standard_seconds=standard_seconds),
        "by_kelurahan": {k: summarise(v, standard_seconds=standard_seconds) for k, v in sorted(by_kel.items())},
        "link_outage_seconds": outage_seconds(store, day, tz),
    }
