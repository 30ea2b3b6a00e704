"""Blank-card stock ledger in the real journal: entries, recounts, forecast and low-stock events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config import JournalConfig
from agent.journal import Journal
from agent.printing.stock import StockError, StockLedger


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path, JournalConfig(free_disk_floor_bytes=0, reserve_bytes=0))
    yield j
    j.close()


def test_entries_and_balance(journal: Journal) -> None:
    ledger = StockLedger(journal)
    assert ledger.current() == 0
    assert ledger.add_delivery(100, "BATCH-2026-11") == 100
    assert ledger.record_printed("o1") == 99
    assert ledger.record_spoiled("card_jam", "o2") == 98
    assert ledger.record_test() == 97
    assert ledger.recount(90, "counted at closing; 7 missing") == 90
    rows = list(ledger.entries())
    assert [r["kind"] for r in rows] == ["recount", "test", "spoiled", "printed", "delivery"]
    assert rows[0]["delta"] == -7 and rows[0]["reason"] == "counted at closing; 7 missing"
    assert rows[-1]["batch"] == "BATCH-2026-11"
    # Re-opening registers the schema again without harm and keeps the data.
    assert StockLedger(journal).current() == 90


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.add_delivery(0, "B"),
        lambda s: s.add_delivery(-5, "B"),
        lambda s: s.add_delivery(5, " "),
        lambda s: s.recount(-1, "x"),
        lambda s: s.recount(3, ""),
    ],
)
def test_nonsense_entries_are_refused(journal: Journal, call: object) -> None:
    ledger = StockLedger(journal)
    with pytest.raises(StockError):
        call(ledger)  # type: ignore[operator]
    assert ledger.current() == 0


def test_forecast_uses_recent_rate_and_queue(journal: Journal) -> None:
    clock = Clock()
    ledger = StockLedger(journal, window_days=10, clock=clock)
    ledger.add_delivery(50, "B1")
    fc = ledger.forecast(queued=0)
    assert fc.blanks == 50 and fc.rate_per_day == 0 and fc.blank_days is None
    for day in range(10):  # 4 cards a day for 10 days
        clock.now += timedelta(days=1)
        for i in range(4):
            ledger.record_printed(f"o{day}-{i}")
    ledger.record_ribbon(30)
    fc = ledger.forecast(queued=2)
    assert fc.blanks == 10
    assert fc.rate_per_day == pytest.approx(4.0)
    assert fc.blank_days == pytest.approx((10 - 2) / 4)
    assert fc.ribbon_days == pytest.approx((30 - 2) / 4)
    assert ledger.forecast(queued=12).blank_days == 0.0
    # Old printing falls out of the window.
    clock.now += timedelta(days=30)
    assert ledger.forecast(queued=0).rate_per_day == 0


def test_low_stock_event_then_repeat_only_when_worse(journal: Journal) -> None:
    clock = Clock()
    ledger = StockLedger(journal, window_days=7, low_days=5.0, clock=clock)
    ledger.add_delivery(40, "B1")
    clock.now += timedelta(days=7)
    for i in range(14):  # 2 a day over the window
        ledger.record_printed(f"o{i}")
    # 26 left at 2/day = 13 days: fine
    assert ledger.check_alerts(queued=0) == []
    ledger.recount(9, "found damaged cards")  # 9 left: 4.5 days
    first = ledger.check_alerts(queued=0)
    assert [e["resource"] for e in first] == ["blanks"] and first[0]["repeat"] is False
    assert ledger.check_alerts(queued=0) == []  # same forecast: no repeat
    ledger.record_printed("x1")  # 8 left: 4.0 days -> lost a whole day
    again = ledger.check_alerts(queued=0)
    assert len(again) == 1 and again[0]["repeat"] is True
    ledger.add_delivery(100, "B2")  # recovered: alert clears
    assert ledger.check_alerts(queued=0) == []
    events = [e for e in journal.pending_events(50) if e.kind == "low_stock"]
    assert len(events) == 2
    assert "nik" not in str(events[0].payload).lower()


def test_ribbon_low_event(journal: Journal) -> None:
    clock = Clock()
    ledger = StockLedger(journal, window_days=7, low_days=5.0, clock=clock)
    ledger.add_delivery(500, "B1")
    clock.now += timedelta(days=7)
    for i in range(70):  # 10 a day
        ledger.record_printed(f"o{i}")
    ledger.record_ribbon(20)  # 2 days of ribbon
    alerts = ledger.check_alerts(queued=0)
    assert [a["resource"] for a in alerts] == ["ribbon"]
    assert alerts[0]["days_left"] == 2.0
