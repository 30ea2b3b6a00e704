"""The monthly CSV for the office's own reports (``rekam report --month 2026-11``).

One row per (day, scope) and then the month's totals: ``scope`` is ``station`` or ``operator``,
``staff_id`` is empty for the station. Columns are :data:`agent.operators.indicators.FIGURES`;
an empty cell means "no data" (no print, no answer), never zero. Ids and counts only.
"""

from __future__ import annotations

import csv
from datetime import datetime
from typing import Any, TextIO

from agent.operators.indicators import FIGURES, Indicators, Period

HEADER = ("period", "scope", "station_id", "staff_id", *FIGURES)


def _cell(value: Any) -> Any:
    return "" if value is None else value


def rows(indicators: Indicators, month: str, *, station_id: str, now: datetime | None = None,
         daily: bool = True) -> list[list[Any]]:
    """The report rows (header excluded): each day, then the whole month."""
    period = Period.parse(month)
    periods = [*period.days(), period] if daily else [period]
    out: list[list[Any]] = []
    for p in periods:
        figures = indicators.compute(p, now=now)
        out.append([p.label, "station", station_id, "", *(_cell(figures["station"][k]) for k in FIGURES)])
        for staff_id, f in figures["operators"].items():
            out.append([p.label, "operator", station_id, staff_id, *(_cell(f[k]) for k in FIGURES)])
    return out


def write(out: TextIO, indicators: Indicators, month: str, *, station_id: str,
          now: datetime | None = None, daily: bool = True) -> int:
    """Write the CSV (with header) to ``out``; return the number of data rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    data = rows(indicators, month, station_id=station_id, now=now, daily=daily)
    writer.writerows(data)
    return len(data)
