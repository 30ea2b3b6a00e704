"""The monthly indicators report over a busy month, against reading the same rows plainly.

Run: /work/venv/bin/python bench/bench_operators.py [--enrollments 900] [--rounds 3]

Setup (not timed): one month in a real journal with N sealed enrollments (three times the field
study's 300 a month, by default), each with the trail the workflow writes (biodata, 16 captures,
seal; every tenth shared by two operators, with a force-accept and an approval), its
``service_times`` row, six operators' sign-in shifts on every working day, and print confirmations.

Rows (Markdown):
* month figures: ``Indicators.compute`` for the whole month (all five indicators, station and
  every operator). Baseline, same run: plain SQL reading the same audit, service and shift rows
  of the month (``SELECT *`` through ``Journal.query`` into Python lists, as the module reads),
  i.e. the unavoidable I/O without any arithmetic.
* CSV report: ``csvreport.rows`` (every day of the month, then the month): what
  ``rekam report --month`` does, against the same baseline times the 31 periods it covers.
Target: the whole CSV report of a month in under 5 s on the development machine (an office
runs it once a month; it must not hold the journal's writer long: each period is its own reads).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent import kpi
from agent.config import parse_config
from agent.journal import Journal
from agent.operators import csvreport
from agent.operators._db import JournalQuery
from agent.operators.audit import AuditLog
from agent.operators.indicators import Indicators, Period
from agent.operators.registry import OperatorRegistry
from agent.operators.signin import SCHEMA as SHIFTS

MONTH = "2026-11"
STAFF = ("op1", "op2", "op3", "op4", "sup1", "sup2")
ITEMS = ("face", *(f"finger.{i}" for i in range(1, 11)), "iris.right", "iris.left", "signature")


def populate(journal: Journal, n: int) -> None:
    """Write the month's rows directly (the shapes the modules write)."""
    audit = AuditLog(journal, tz="Asia/Makassar")
    OperatorRegistry(journal, audit=audit)
    journal.register_schema("operators_shifts", SHIFTS)
    kpi.install(JournalQuery(journal))
    start = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # 08:00 Makassar, a Monday
    workdays = [start + timedelta(days=d) for d in range(29) if (start + timedelta(days=d)).weekday() < 5]
    with journal.transaction() as db:
        for staff in STAFF:
            db.execute("INSERT INTO operators VALUES (?, ?, ?, ?, ?, NULL)",
                       [staff, staff, "supervisor" if staff.startswith("sup") else "operator",
                        STAFF.index(staff), "2026-10-01T00:00:00+00:00"])
            for day in workdays:
                local = (day + timedelta(hours=8)).date().isoformat()
                db.execute("INSERT INTO operator_shifts (staff_id, method, day, signed_in_at, signed_out_at, "
                           "out_reason, mono_seconds) VALUES (?, 'fingerprint', ?, ?, ?, 'manual', ?)",
                           [staff, local, (day - timedelta(minutes=20)).isoformat(),
                            (day + timedelta(hours=7)).isoformat(), 7 * 3600 + 1200])
    rows: list[list[object]] = []
    service: list[dict[str, Any]] = []
    for i in range(n):
        day = workdays[i % len(workdays)]
        t0 = day + timedelta(minutes=(i // len(workdays)) * 15)
        op = STAFF[i % 4]
        other = STAFF[(i + 1) % 4] if i % 10 == 0 else op
        sid = f"s{i:06d}"
        pid = f"p{i:06d}"
        trail: list[tuple[str, str, str, str | None, str | None]] = [("session.biodata", "ok", op, None, None)]
        for k, key in enumerate(ITEMS):
            who = other if k >= 8 else op
            trail.append(("session.capture", "accepted", who, None, key))
        if i % 10 == 0:
            trail.append(("session.capture", "below_threshold", other, None, "finger.9"))
            trail.append(("session.force_accept", "ok", other, "sup1", "finger.9"))
            trail.append(("session.approve", "force_accepted", "sup1", "sup1", "finger.9"))
        trail.append(("session.seal", "requested", other, None, None))
        for seq, (action, outcome, who, approved, item) in enumerate(trail):
            at = (t0 + timedelta(seconds=20 * seq)).isoformat()
            rows.append([at, (t0 + timedelta(hours=8)).date().isoformat(), action, outcome, who, approved,
                         sid, seq, pid, item, None])
        service.append({"session_id": sid, "packet_id": pid, "kelurahan": "SIDODADI", "operator_id": other,
                        "started_at": t0.isoformat(), "sealed_at": (t0 + timedelta(seconds=400)).isoformat(),
                        "record_seconds": 400.0, "retry_seconds": 10.0, "fault_seconds": 0.0, "captures": 16,
                        "first_time_pass": 14, "force_accepts": 1 if i % 10 == 0 else 0, "exceptions": 0,
                        "satisfaction": 1 + i % 4})
    with journal.transaction() as db:
        db.executemany(
            "INSERT INTO audit_trail (at, day, action, outcome, operator_id, approved_by, session_id, seq, "
            "packet_id, item, details) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    store = JournalQuery(journal)
    for rec in service:
        kpi.record_session(store, rec, tz="Asia/Makassar")
    for i in range(0, n, 2):
        kpi.mark(store, f"p{i:06d}", "printed_at",
                 (datetime.fromisoformat(service[i]["started_at"]) + timedelta(minutes=12)).isoformat())
        audit.record("print.confirm", "ok", operator_id=STAFF[i % 4], packet_id=f"p{i:06d}",
                     at=service[i]["started_at"])


def baseline(journal: Journal, first: str, last: str) -> int:
    """Plain reads of the same rows."""
    n = 0
    for table in ("audit_trail", "service_times", "operator_shifts"):
        n += len(journal.query(f"SELECT * FROM {table} WHERE day BETWEEN ? AND ?", [first, last]))
    return n


def timed(fn: object, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> None:
    """Print the Markdown rows."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--enrollments", type=int, default=900)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config({"station": {"state_dir": tmp},
                            "journal": {"free_disk_floor_bytes": 0, "reserve_bytes": 0}})
        with Journal.open(Path(tmp), cfg.journal) as journal:
            populate(journal, args.enrollments)
            ind = Indicators(journal, cfg)
            period = Period.parse(MONTH)
            now = datetime(2026, 12, 1, tzinfo=UTC)
            base = timed(lambda: baseline(journal, period.first_day, period.last_day), args.rounds)
            month = timed(lambda: ind.compute(period, now=now), args.rounds)
            report = timed(lambda: csvreport.rows(ind, MONTH, station_id="st", now=now), args.rounds)
            figures = ind.compute(period, now=now)["station"]
            assert figures["recordings"] == args.enrollments, figures
    print(f"{args.enrollments} enrollments in {MONTH}, median of {args.rounds} rounds")
    print("| figure | value | plain baseline | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| month figures (Indicators.compute) | {month * 1000:.0f} ms | {base * 1000:.0f} ms (SELECT the month's rows) "
          f"| {month / base:.1f}x | - |")
    print(f"| CSV report (31 periods) | {report * 1000:.0f} ms | {2 * base * 1000:.0f} ms (the month's rows read twice: days + month) "
          f"| {report / (2 * base):.1f}x | < 5000 ms |")


if __name__ == "__main__":
    main()
