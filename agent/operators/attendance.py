"""Attendance from sign-in shifts against the office hours ([office], [operators] workdays).

Per operator and office-local day: the first sign-in (arrival), the last sign-out, whether the
arrival was late (after ``opens`` + ``late_grace_minutes``), and the time signed in inside office
hours (opening to closing, the break excluded). An operator or supervisor who was enrolled on a
working day and did not sign in that day is absent; technicians visit and are not counted absent.

Clock trouble: a shift belongs to the day of its sign-in (the sign-in module ends every shift
when the day changes, including by a clock jump across midnight), and its length is the
monotonic length kept at sign-out, so a wall clock stepped backwards cannot produce a negative
or doubled time. A shift whose end is unknown (closed at a restart) counts up to its sign-out
stamp when that is later than the sign-in, else not at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import Config
from agent.operators._db import JournalLike, query

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
COUNTED_ROLES = ("operator", "supervisor")


@dataclass(frozen=True)
class Shift:
    """One sign-in to sign-out."""

    staff_id: str
    day: str
    signed_in_at: str
    signed_out_at: str | None
    mono_seconds: float | None
    out_reason: str | None


@dataclass(frozen=True)
class AttendanceDay:
    """One operator's attendance on one office-local day."""

    day: str
    staff_id: str
    status: str  # present | late | absent
    first_in: str | None  # local HH:MM
    last_out: str | None
    late_minutes: int
    office_seconds: int
    shifts: int

    def as_dict(self) -> dict[str, Any]:
        """JSON view."""
        return dict(self.__dict__)


def _hm(text: str) -> time:
    h, m = text.split(":")
    return time(int(h), int(m))


def _days(first: str, last: str) -> list[str]:
    d, end = date.fromisoformat(first), date.fromisoformat(last)
    out = []
    while d <= end:
        out.append(d.isoformat())
        d += timedelta(days=1)
    return out


def shift_end(shift: Shift, *, now: datetime) -> datetime | None:
    """When the shift ended in wall time, trusting the monotonic length when there is one."""
    start = datetime.fromisoformat(shift.signed_in_at)
    if shift.mono_seconds is not None:
        return start + timedelta(seconds=shift.mono_seconds)
    if shift.signed_out_at is None:
        return max(start, now)  # still signed in
    end = datetime.fromisoformat(shift.signed_out_at)
    return end if end >= start else None


class Attendance:
    """Attendance figures from the journal's shift table."""

    def __init__(self, journal: JournalLike, config: Config) -> None:
        self.journal = journal
        self.office = config.office
        self.zone = ZoneInfo(config.station.timezone)
        self.workdays = {WEEKDAYS.index(d) for d in config.operators.workdays.split(",")}
        self.grace = timedelta(minutes=config.operators.late_grace_minutes)
        from agent.operators.signin import SCHEMA

        journal.register_schema("operators_shifts", SCHEMA)

    def shifts(self, first_day: str, last_day: str) -> list[Shift]:
        """Shifts whose sign-in day is in [first_day, last_day]."""
        rows = query(self.journal, "SELECT staff_id, day, signed_in_at, signed_out_at, mono_seconds, out_reason "
                     "FROM operator_shifts WHERE day BETWEEN ? AND ? ORDER BY signed_in_at, id", [first_day, last_day])
        return [Shift(*r) for r in rows]

    def _windows(self, day: str) -> list[tuple[datetime, datetime]]:
        d = date.fromisoformat(day)

        def at(t: str) -> datetime:
            return datetime.combine(d, _hm(t), self.zone)

        o = self.office
        return [(at(o.opens), at(o.break_start)), (at(o.break_end), at(o.closes))]

    def is_workday(self, day: str) -> bool:
        """True when the office opens on ``day``."""
        return date.fromisoformat(day).weekday() in self.workdays

    def day_of(self, staff_id: str, day: str, shifts: Iterable[Shift], *, now: datetime,
               counted: bool = True) -> AttendanceDay | None:
        """One operator's day from their shifts of that day; None for no shift.

        ``counted=False`` (technicians) records presence without judging the arrival time.
        """
        mine = [s for s in shifts if s.staff_id == staff_id and s.day == day]
        if not mine:
            return None
        starts = [datetime.fromisoformat(s.signed_in_at).astimezone(self.zone) for s in mine]
        ends = [e.astimezone(self.zone) for s in mine if (e := shift_end(s, now=now)) is not None]
        first = min(starts)
        opens = datetime.combine(first.date(), _hm(self.office.opens), self.zone)
        late_minutes = int((first - opens).total_seconds() // 60) if counted and first > opens + self.grace else 0
        office = 0.0
        for s in mine:
            end = shift_end(s, now=now)
            if end is None:
                continue
            start = datetime.fromisoformat(s.signed_in_at)
            for a, b in self._windows(day):
                office += max(0.0, (min(end, b) - max(start, a)).total_seconds())
        return AttendanceDay(day, staff_id, "late" if late_minutes else "present", first.strftime("%H:%M"),
                             max(ends).strftime("%H:%M") if ends else None, late_minutes, int(office), len(mine))

    def days(self, first_day: str, last_day: str, *, now: datetime,
             operators: Iterable[Any]) -> list[AttendanceDay]:
        """Attendance rows for every counted operator and day (absences included) up to today."""
        shifts = self.shifts(first_day, last_day)
        today = now.astimezone(self.zone).date().isoformat()
        ops = list(operators)
        out: list[AttendanceDay] = []
        for day in _days(first_day, min(last_day, today)):
            for op in ops:
                row = self.day_of(op.staff_id, day, shifts, now=now, counted=op.role in COUNTED_ROLES)
                if row is not None:
                    out.append(row)
                    continue
                enrolled = datetime.fromisoformat(op.enrolled_at).astimezone(self.zone).date().isoformat()
                removed = (datetime.fromisoformat(op.removed_at).astimezone(self.zone).date().isoformat()
                           if op.removed_at else None)
                if (op.role in COUNTED_ROLES and self.is_workday(day) and enrolled <= day
                        and (removed is None or removed > day) and day < today):
                    out.append(AttendanceDay(day, op.staff_id, "absent", None, None, 0, 0, 0))
            # Shifts of people no longer listed (removed) still count as present that day.
            listed = {op.staff_id for op in ops}
            for staff_id in sorted({s.staff_id for s in shifts if s.day == day} - listed):
                row = self.day_of(staff_id, day, shifts, now=now)
                if row is not None:
                    out.append(row)
        return out


def summarise(rows: Iterable[AttendanceDay]) -> dict[str, Any]:
    """Totals for a group of attendance rows (one operator's month, or the station's)."""
    rows = list(rows)
    present = sum(1 for r in rows if r.status in ("present", "late"))
    late = sum(1 for r in rows if r.status == "late")
    absent = sum(1 for r in rows if r.status == "absent")
    expected = present + absent
    return {
        "days_expected": expected,
        "days_present": present,
        "days_late": late,
        "days_absent": absent,
        "late_minutes": sum(r.late_minutes for r in rows),
        "office_hours": round(sum(r.office_seconds for r in rows) / 3600, 2),
        "attendance_share": round(present / expected, 3) if expected else None,
        "on_time_share": round((present - late) / present, 3) if present else None,
    }
