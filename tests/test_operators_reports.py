"""Attendance, the five indicators, the CSV report and the audit table's refusals.

Real journal, real workflow sessions (scripted applicant captures), the KPI module's
service_times rows, operators enrolled on the emulated ZFM module.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections import deque
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import kpi
from agent.config import Config, parse_config
from agent.journal import Journal
from agent.operators import approvals, csvreport
from agent.operators._db import JournalQuery
from agent.operators.attendance import Attendance, summarise
from agent.operators.audit import AuditLog, check_details
from agent.operators.errors import BadOperatorInput
from agent.operators.indicators import Indicators, Period
from agent.operators.registry import DirectAccess, OperatorRegistry
from agent.operators.signin import SignIn
from agent.workflow.session import Capture, Session
from agent.workflow.synthetic import applicant
from drivers.emulators import protocol_emu
from drivers.emulators.zfm import ZfmEmulator
from drivers.fingerprint.zfm import ZfmOptions, ZfmScanner

FAST = ZfmOptions(reply_timeout=0.3, poll_interval=0.01, finger_timeout=0.2, retry_delay=0.01)
_names = itertools.count()
TZ = "Asia/Makassar"  # UTC+8, no daylight saving


def local(day: str, hm: str) -> datetime:
    """A Makassar wall time as an aware UTC datetime."""
    h, m = map(int, hm.split(":"))
    return datetime.fromisoformat(day).replace(hour=h, minute=m, tzinfo=UTC) - timedelta(hours=8)


class Clocks:
    def __init__(self) -> None:
        self.mono = 0.0
        self.now = datetime(2026, 11, 1, tzinfo=UTC)

    def at(self, when: datetime) -> None:
        self.mono += max(1.0, (when - self.now).total_seconds())
        self.now = when


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.cfg: Config = parse_config({
            "station": {"district_code": "647201", "language": "en", "timezone": TZ},
            "quality": {"retries": 1},
            "operators": {"idle_signout_seconds": 86400, "late_grace_minutes": 5},
            "journal": {"free_disk_floor_bytes": 0, "reserve_bytes": 0},
        })
        self.journal = Journal.open(tmp, self.cfg.journal)
        self.emu = ZfmEmulator("r503", seed=9)
        self.name = f"rep{next(_names)}"
        protocol_emu.attach("zfm", self.name, self.emu)
        self.scanner = ZfmScanner(f"emu://zfm?name={self.name}", FAST)
        self.scanner.open()
        self.access = DirectAccess(self.scanner)
        self.clocks = Clocks()
        self.audit = AuditLog(self.journal, tz=TZ)
        self.registry = OperatorRegistry(self.journal, audit=self.audit, clock=lambda: "2026-11-01T00:00:00+00:00")
        for staff, role in (("op1", "operator"), ("op2", "operator"), ("sup1", "supervisor"), ("tech1", "technician")):
            self.emu.place_finger(f"{staff}-f")
            self.registry.enroll(staff, f"Name {staff}", role, self.access, timeout=0.5, require_lift=False)
        self.signin = SignIn(self.journal, self.registry, self.cfg, audit=self.audit, access=self.access,
                             clock=lambda: self.clocks.mono, wall=lambda: self.clocks.now)

    def shift(self, who: str, start: datetime, end: datetime | None) -> None:
        self.clocks.at(start)
        self.emu.place_finger(f"{who}-f")
        self.signin.sign_in_fingerprint(timeout=0.3)
        if end is not None:
            self.clocks.at(end)
            self.signin.sign_out()

    def close(self) -> None:
        self.scanner.close()
        protocol_emu.detach("zfm", self.name)
        self.journal.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    try:
        yield r
    finally:
        r.close()


def test_attendance_late_absent_office_hours_and_midnight(rig: Rig) -> None:
    mon, tue = "2026-11-02", "2026-11-03"  # a Monday and a Tuesday
    rig.shift("op1", local(mon, "07:45"), local(mon, "12:30"))  # late by 15 (grace 5)
    rig.shift("op1", local(mon, "13:10"), local(mon, "15:30"))  # after the break
    rig.shift("op2", local(mon, "07:33"), local(mon, "09:00"))  # inside the grace: on time
    rig.shift("tech1", local(mon, "10:00"), local(mon, "10:30"))
    # Tuesday: op2 signs in late at night and the clock crosses midnight; Wednesday is a new day.
    rig.shift("op2", local(tue, "23:50"), None)
    rig.clocks.at(local("2026-11-04", "00:05"))
    assert rig.signin.current() is None  # ended by the day change
    att = Attendance(rig.journal, rig.cfg)
    rows = {(r.day, r.staff_id): r for r in att.days("2026-11-01", "2026-11-30", now=local("2026-11-05", "09:00"),
                                                     operators=rig.registry.operators())}
    op1 = rows[(mon, "op1")]
    assert (op1.status, op1.first_in, op1.last_out, op1.late_minutes, op1.shifts) == ("late", "07:45", "15:30", 15, 2)
    # 07:45-12:00 and 13:10-15:00 inside office hours: 4 h 15 + 1 h 50.
    assert op1.office_seconds == (4 * 60 + 15 + 60 + 50) * 60
    assert rows[(mon, "op2")].status == "present" and rows[(mon, "op2")].late_minutes == 0
    assert rows[(mon, "sup1")].status == "absent"
    assert rows[(mon, "tech1")].status == "present"
    assert ("2026-11-01", "sup1") not in rows  # a Sunday: nobody is absent
    assert rows[(tue, "op2")].status == "late" and rows[(tue, "op2")].office_seconds == 0
    assert rows[(tue, "op2")].last_out == "00:01" or rows[(tue, "op2")].last_out is not None
    assert rows[("2026-11-04", "op2")].status == "absent"  # Wednesday: the night shift did not carry over
    assert ("2026-11-05", "op1") not in rows  # today is not judged yet
    assert ("2026-11-02", "tech1") in rows and ("2026-11-03", "tech1") not in rows  # technicians are never absent
    month = summarise(r for r in rows.values() if r.staff_id == "op1")
    assert month["days_expected"] == 3 and month["days_present"] == 1 and month["days_absent"] == 2
    assert month["days_late"] == 1 and month["on_time_share"] == 0.0


def test_removed_operator_is_not_absent_after_removal(rig: Rig) -> None:
    rig.registry.clock = lambda: "2026-11-03T01:00:00+00:00"  # removed on Tuesday morning
    rig.registry.remove("op2", rig.access)
    att = Attendance(rig.journal, rig.cfg)
    rows = att.days("2026-11-02", "2026-11-06", now=local("2026-11-09", "08:00"),
                    operators=rig.registry.operators(include_removed=True))
    assert sorted(r.day for r in rows if r.staff_id == "op2") == ["2026-11-02"]


class Scripted:
    def __init__(self, *qualities: int) -> None:
        self.script: deque[int] = deque(qualities)

    def capture(self, item: str, *, language: str, context: Any = None) -> Capture:
        return Capture(b"img", "png", self.script.popleft() if self.script else 90, 10, 10, {"model": "t"})


class Sealer:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.n = 0

    def seal(self, session: Session) -> str:
        self.n += 1
        pid = f"pkt-{self.n}"
        sink = self.journal.begin_packet(pid, station_id="st1", created_at=datetime.now(UTC).isoformat())
        sink.write(b"x" * 10)
        sink.commit()
        return pid


def record(cfg: Config, s: Session, provider: Scripted, *, handover_at: str | None = None) -> None:
    """Drive one session; from ``handover_at`` on, op2 carries on (as the API guard stamps it).

    The hand-over item's capture is expected to fail once and is force-accepted.
    """
    s.set_biodata(applicant(4, today=datetime.now(UTC).date()), today=datetime.now(UTC).date())
    s.next()
    s.capture("face", provider)
    s.next()
    for p in range(1, 11):
        if f"finger.{p}" == handover_at:
            s.operator_id = "op2"
        s.capture(f"finger.{p}", provider)
        if f"finger.{p}" == handover_at:
            s.force_accept(handover_at, "worn")
    s.next()
    for item in ("iris.right", "iris.left"):
        s.capture(item, provider)
    s.next()
    s.capture("signature", provider)
    s.next()


def test_five_indicators_per_station_and_operator_and_csv(rig: Rig) -> None:
    cfg = rig.cfg
    store = JournalQuery(rig.journal)
    kpi.install(store)
    sealer = Sealer(rig.journal)
    # Session 1: op1 alone, every capture passes first time; printed in 10 minutes.
    s1 = Session(cfg, operator_id="op1")
    record(cfg, s1, Scripted())
    s1.seal(sealer)
    # Session 2: op1 starts, op2 takes over at finger.3, which fails, is force-accepted and
    # approved by sup1; head office later rejects the packet.
    s2 = Session(cfg, operator_id="op1")
    record(cfg, s2, Scripted(*([90] * 3), 10), handover_at="finger.3")
    sup1 = rig.registry.active("sup1")
    assert sup1 is not None
    approvals.approve(s2, "finger.3", sup1, audit=rig.audit)
    approvals.require_approvals(s2, cfg.operators)
    s2.seal(sealer)
    # Session 3: cancelled, counts for nobody's quantity.
    s3 = Session(cfg, operator_id="op2")
    s3.cancel()
    for s, score in ((s1, 4), (s2, 3), (s3, None)):
        rig.audit.record_session(s)
        if s.packet_id:
            kpi.record_session(store, {**s.service_record(), "satisfaction": score}, tz=TZ)
    assert rig.audit.record_session(s1) == 0  # idempotent
    start = datetime.fromisoformat(s1.stages[0]["at"])
    kpi.mark(store, "pkt-1", "printed_at", (start + timedelta(minutes=10)).isoformat())
    rig.audit.record("print.confirm", "ok", operator_id="op1", packet_id="pkt-1")
    rig.journal.record_reject("pkt-2", "bad", max_rejects=3)

    today = datetime.now(UTC)
    day = kpi.local_day(today.isoformat(), TZ)
    ind = Indicators(rig.journal, cfg, registry=rig.registry, audit=rig.audit)
    figures = ind.compute(Period.parse(day), now=today)
    st = figures["station"]
    assert (st["recordings"], st["prints"], st["enrollments"], st["shared_enrollments"]) == (2, 1, 2, 1)
    assert st["operators_per_enrollment"] == 2.0  # (1 + 3) / 2: op1; op1, op2, sup1
    assert st["captures"] == 14 + 14 and st["force_accepts"] == 1 and st["ho_rejections"] == 1
    assert st["first_time_pass_share"] == round(27 / 28, 3)
    assert st["within_standard_share"] == 1.0 and st["satisfaction_mean"] == 3.5
    assert st["satisfaction_responses"] == 2
    op1, op2, sup = figures["operators"]["op1"], figures["operators"]["op2"], figures["operators"]["sup1"]
    assert op1["recordings"] == 1 and op2["recordings"] == 1 and sup["recordings"] == 0
    assert op1["prints"] == 1 and op2["prints"] == 0
    assert op2["force_accepts"] == 1 and op1["force_accepts"] == 0
    assert op2["first_time_pass_share"] == round(10 / 11, 3) and op1["first_time_pass_share"] == 1.0
    assert op1["shared_enrollments"] == 1 and op1["enrollments"] == 2 and sup["enrollments"] == 1
    assert op1["ho_rejections"] == 1 and op2["ho_rejections"] == 1

    out = io.StringIO()
    n = csvreport.write(out, ind, day[:7], station_id="st1", now=today)
    text = out.getvalue()
    assert "Name op1" not in text and s1.biodata["nik"] not in text
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == n
    month_station = next(r for r in table if r["period"] == day[:7] and r["scope"] == "station")
    assert month_station["recordings"] == "2" and month_station["satisfaction_mean"] == "3.5"
    day_op2 = next(r for r in table if r["period"] == day and r["staff_id"] == "op2")
    assert day_op2["force_accepts"] == "1" and day_op2["prints"] == "0"
    other_day = next(r for r in table if r["period"] != day and r["period"] != day[:7] and r["scope"] == "station")
    assert other_day["recordings"] == "0" and other_day["within_standard_share"] == ""


def test_period_and_audit_refusals(rig: Rig) -> None:
    assert Period.parse("2026-02") == Period("2026-02", "2026-02-01", "2026-02-28")
    assert Period.parse("2024-02").last_day == "2024-02-29"
    assert len(Period.parse("2026-12").days()) == 31
    for bad in ("2026-13", "26-11", "2026-11-31", "", "2026/11"):
        with pytest.raises(BadOperatorInput):
            Period.parse(bad)
    for details in ({"nik": "6472010101010001"}, {"name": "x"}, {"template": "x"}, {"Bad": 1},
                    {"note": "x" * 65}, {"blob": b"x"}, {"nested": {"a": 1}}):
        with pytest.raises(ValueError):
            check_details(details)
    with pytest.raises(ValueError, match="unknown audit action"):
        rig.audit.record("stock.steal", "ok")
    with pytest.raises(ValueError):
        rig.audit.record("stock.recount", "Not Snake")
    with pytest.raises(ValueError):
        rig.audit.record("stock.recount", "ok", operator_id="op 1; DROP")
    rig.audit.record("stock.recount", "ok", operator_id="op1", details={"counted": 120, "delta": -3})
    rows = rig.audit.rows("2000-01-01", "2100-01-01", action_prefix="stock.")
    assert [(r.action, r.details) for r in rows] == [("stock.recount", {"counted": 120, "delta": -3})]
    rig.audit.clock = lambda: datetime.now(UTC) + timedelta(days=500)
    assert rig.audit.purge(400) >= 1
    assert rig.audit.rows("2000-01-01", "2100-01-01", action_prefix="stock.") == []
    assert date.fromisoformat(Period.parse("2026-11-03").first_day).weekday() == 1
