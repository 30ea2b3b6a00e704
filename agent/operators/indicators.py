"""The office's five indicators, per day and per month, per operator and for the station.

Measured, not guessed, from what the station recorded:

* **quality** -- share of items whose first capture passed its gate (from the audit trail, credited
  to whoever made that capture), force-accepts and exceptions (credited to whoever recorded
  them), and head-office rejections of the packets an operator worked on (journal packets);
* **quantity** -- recordings (sessions sealed; credited to the operator who sealed) and prints
  (``print.confirm`` audit records by operator; for the station, cards printed);
* **timeliness** -- recording and service time against the standard (``[session]
  service_standard_seconds``, 15 minutes) from :mod:`agent.kpi`'s ``service_times`` rows;
* **attendance** -- :mod:`agent.operators.attendance`;
* **teamwork** -- how many operators shared the stages of each enrollment (captures, entries,
  force-accepts, exceptions, approvals and seal, from the audit trail);
* **satisfaction** (optional) -- the applicants' 1-4 answers, only ever as a mean and a count.

Everything here is ids and counts: no names, no NIKs, no biometrics.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from agent import kpi
from agent.config import Config
from agent.operators._db import JournalLike, JournalQuery, query
from agent.operators.attendance import Attendance, AttendanceDay
from agent.operators.attendance import summarise as summarise_attendance
from agent.operators.audit import AuditLog, AuditRow
from agent.operators.errors import BadOperatorInput
from agent.operators.registry import OperatorRegistry

# Column order of the CSV report and of every figures dict.
FIGURES = (
    "recordings", "prints",
    "captures", "first_time_pass_share", "force_accepts", "exceptions", "ho_rejections",
    "recording_median_s", "service_median_s", "within_standard_share",
    "days_expected", "days_present", "days_late", "days_absent", "late_minutes", "office_hours",
    "enrollments", "shared_enrollments", "operators_per_enrollment",
    "satisfaction_mean", "satisfaction_responses",
)
_STAGE_ACTIONS = ("session.biodata", "session.capture", "session.force_accept", "session.exception",
                  "session.approve", "session.review", "session.seal")


@dataclass(frozen=True)
class Period:
    """A day (YYYY-MM-DD) or a month (YYYY-MM) as first and last office-local day."""

    label: str
    first_day: str
    last_day: str

    @classmethod
    def parse(cls, text: str) -> Period:
        """``2026-11`` or ``2026-11-03``; BadOperatorInput otherwise."""
        try:
            if len(text) == 7:
                first = date.fromisoformat(text + "-01")
                nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
                return cls(text, first.isoformat(), (nxt - timedelta(days=1)).isoformat())
            if len(text) == 10:
                d = date.fromisoformat(text)
                return cls(text, d.isoformat(), d.isoformat())
        except ValueError:
            pass
        raise BadOperatorInput("Periode harus YYYY-MM atau YYYY-MM-DD.", f"Period must be YYYY-MM or YYYY-MM-DD, got {text[:20]!r}.")

    def days(self) -> list[Period]:
        """The days of this period."""
        d, end, out = date.fromisoformat(self.first_day), date.fromisoformat(self.last_day), []
        while d <= end:
            out.append(Period(d.isoformat(), d.isoformat(), d.isoformat()))
            d += timedelta(days=1)
        return out


def _share(num: int, den: int) -> float | None:
    return round(num / den, 3) if den else None


class Indicators:
    """Computes the figures from the journal (kpi rows, audit trail, shifts, packets)."""

    def __init__(self, journal: JournalLike, config: Config, *, registry: OperatorRegistry | None = None,
                 audit: AuditLog | None = None) -> None:
        self.journal = journal
        self.config = config
        self.store = JournalQuery(journal)
        kpi.install(self.store)
        self.audit = audit or AuditLog(journal, tz=config.station.timezone)
        self.registry = registry or OperatorRegistry(journal, audit=self.audit)
        self.attendance = Attendance(journal, config)
        self.standard = config.session.service_standard_seconds

    def _rejected_packets(self, packet_ids: Iterable[str]) -> set[str]:
        ids = sorted(set(packet_ids))
        if not ids:
            return set()
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            rows = query(self.journal, f"SELECT packet_id FROM packets WHERE packet_id IN ({','.join('?' * len(part))}) "
                         "AND (rejects > 0 OR state = 'quarantined')", part)
            out.update(r[0] for r in rows)
        return out

    def compute(self, period: Period, *, now: datetime | None = None) -> dict[str, Any]:
        """``{"period", "station": figures, "operators": {staff_id: figures}}`` for one period."""
        now = now or datetime.now(UTC)
        trail = self.audit.rows(period.first_day, period.last_day, action_prefix="session.")
        prints = self.audit.rows(period.first_day, period.last_day, action_prefix="print.confirm")
        service = kpi.rows_for(self.store, period.first_day, period.last_day)
        operators = self.registry.operators(include_removed=True)
        attendance = self.attendance.days(period.first_day, period.last_day, now=now, operators=operators)
        return self._figures(period, trail, prints, service, attendance)

    def _figures(self, period: Period, trail: list[AuditRow], prints: list[AuditRow],
                 service: list[dict[str, Any]], attendance: list[AttendanceDay]) -> dict[str, Any]:
        by_session: dict[str, list[AuditRow]] = defaultdict(list)
        for r in trail:
            if r.session_id:
                by_session[r.session_id].append(r)
        sealed_by: dict[str, str] = {}
        packet_of: dict[str, str] = {}
        team: dict[str, set[str]] = {}
        for sid, rows in by_session.items():
            team[sid] = {r.operator_id for r in rows if r.operator_id and r.action in _STAGE_ACTIONS}
            for r in rows:
                if r.packet_id:
                    packet_of[sid] = r.packet_id
                if r.action == "session.seal" and r.operator_id:
                    sealed_by[sid] = r.operator_id
        sealed = {sid for sid in packet_of}
        rejected = self._rejected_packets(packet_of.values())

        ops: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
        first_seen: set[tuple[str, str]] = set()
        station: dict[str, Any] = defaultdict(int)
        for r in trail:
            if not r.session_id:
                continue
            who = ops[r.operator_id] if r.operator_id else defaultdict(int)
            if r.action == "session.capture" and r.outcome in ("accepted", "below_threshold", "user_retry"):
                who["captures"] += 1
                station["captures"] += 1
                key = (r.session_id, r.item or "")
                if key not in first_seen:
                    first_seen.add(key)
                    who["_items"] += 1
                    station["_items"] += 1
                    if r.outcome == "accepted":
                        who["_first_pass"] += 1
                        station["_first_pass"] += 1
            elif r.action == "session.force_accept":
                who["force_accepts"] += 1
                station["force_accepts"] += 1
            elif r.action == "session.exception":
                who["exceptions"] += 1
                station["exceptions"] += 1
        for sid in sealed:
            members = team.get(sid, set())
            if sealed_by.get(sid):
                ops[sealed_by[sid]]["recordings"] += 1
            station["recordings"] += 1
            station["enrollments"] += 1
            station["_members"] += len(members)
            if len(members) > 1:
                station["shared_enrollments"] += 1
            for m in members:
                ops[m]["enrollments"] += 1
                ops[m]["_members"] += len(members)
                if len(members) > 1:
                    ops[m]["shared_enrollments"] += 1
                if packet_of[sid] in rejected:
                    ops[m]["ho_rejections"] += 1
            if packet_of[sid] in rejected:
                station["ho_rejections"] += 1
        for r in prints:
            if r.outcome == "ok" and r.operator_id:
                ops[r.operator_id]["prints"] += 1

        # Timeliness and satisfaction from the service rows: the station's whole, and each
        # operator's sessions by who sealed them.
        session_op = {sid: op for sid, op in sealed_by.items()}
        service_by_op: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in service:
            op = session_op.get(row["session_id"]) or row.get("operator_id")
            if op:
                service_by_op[op].append(row)
        att_by_op: dict[str, list[AttendanceDay]] = defaultdict(list)
        for a in attendance:
            att_by_op[a.staff_id].append(a)

        def finish(counts: Mapping[str, Any], rows: list[dict[str, Any]], att: list[AttendanceDay],
                   *, printed_from_service: bool) -> dict[str, Any]:
            summ = kpi.summarise(rows, standard_seconds=self.standard)
            att_sum = summarise_attendance(att)
            out = {
                "recordings": counts.get("recordings", 0),
                "prints": summ["printed"] if printed_from_service else counts.get("prints", 0),
                "captures": counts.get("captures", 0),
                "first_time_pass_share": _share(counts.get("_first_pass", 0), counts.get("_items", 0)),
                "force_accepts": counts.get("force_accepts", 0),
                "exceptions": counts.get("exceptions", 0),
                "ho_rejections": counts.get("ho_rejections", 0),
                "recording_median_s": summ["recording_median_s"],
                "service_median_s": summ["service_median_s"],
                "within_standard_share": summ["within_standard_share"],
                **{k: att_sum[k] for k in ("days_expected", "days_present", "days_late", "days_absent",
                                           "late_minutes", "office_hours")},
                "enrollments": counts.get("enrollments", 0),
                "shared_enrollments": counts.get("shared_enrollments", 0),
                "operators_per_enrollment": (round(counts["_members"] / counts["enrollments"], 2)
                                             if counts.get("enrollments") else None),
                "satisfaction_mean": summ["satisfaction_mean"],
                "satisfaction_responses": summ["satisfaction_responses"],
            }
            return out

        staff = sorted(set(ops) | set(att_by_op) | set(service_by_op))
        return {
            "period": period.label,
            "first_day": period.first_day,
            "last_day": period.last_day,
            "standard_seconds": self.standard,
            "station": finish(station, service, attendance, printed_from_service=True),
            "operators": {s: finish(ops.get(s, {}), service_by_op.get(s, []), att_by_op.get(s, []),
                                    printed_from_service=False) for s in staff},
        }

    def today(self, *, now: datetime | None = None) -> dict[str, Any]:
        """Today's station figures (for telemetry and the diagnostics page)."""
        from zoneinfo import ZoneInfo

        now = now or datetime.now(UTC)
        day = now.astimezone(ZoneInfo(self.config.station.timezone)).date().isoformat()
        figures = self.compute(Period(day, day, day), now=now)
        return {"day": day, "station": figures["station"], "operators_signed_in_today": sum(
            1 for f in figures["operators"].values() if f["days_present"])}
