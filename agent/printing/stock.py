"""Blank-card stock ledger and forecast, kept in the journal's database.

Every change to the count of blank cards is one ledger row: a delivery (count, batch), a
printed card, a spoiled card, a test card, or a recount (the difference to the counted
number, with a reason). The current stock is the running total. The ribbon's remaining cards
come from the printer (``Rco;l``) and are logged as readings.

Forecast: the use rate is cards consumed (printed + spoiled + test) over the last
``window_days`` (or since the first ledger row, if younger, at least one day). Approved but
unprinted orders are taken off the stock first; days left = (stock - queued) / rate.
A ``low_stock`` event goes to head office when days left fall under the threshold, and again
each time the forecast worsens by a whole day, or the stock reaches zero.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('delivery', 'printed', 'spoiled', 'test', 'recount')),
    delta INTEGER NOT NULL,
    balance INTEGER NOT NULL,
    batch TEXT,
    reason TEXT,
    order_id TEXT
);
CREATE TABLE IF NOT EXISTS stock_ribbon (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    cards_left INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS stock_alerts (
    resource TEXT PRIMARY KEY,
    days REAL NOT NULL,
    at TEXT NOT NULL
)
"""

CONSUMING = ("printed", "spoiled", "test")


class StockError(ValueError):
    """A ledger entry that makes no sense (negative delivery, empty reason ...)."""


class JournalLike(Protocol):
    """The part of :class:`agent.journal.Journal` the ledger uses."""

    def register_schema(self, name: str, ddl_sql: str) -> None:
        """Create tables once."""

    def transaction(self) -> AbstractContextManager[Any]:
        """A write transaction yielding something with ``execute(sql, params)``."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement (never waits for the writer)."""

    def add_event(self, kind: str, payload: dict[str, Any]) -> int:
        """Journal an outgoing event."""


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    """ISO 8601 UTC text as the journal stores it."""
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Forecast:
    """Stock, ribbon and how many days each lasts at the recent rate (None: no use yet)."""

    blanks: int
    queued: int
    ribbon_cards_left: int | None
    rate_per_day: float
    blank_days: float | None
    ribbon_days: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON form for telemetry, events and ``rekam stock show``."""
        return {
            "blanks": self.blanks,
            "queued_orders": self.queued,
            "ribbon_cards_left": self.ribbon_cards_left,
            "rate_per_day": round(self.rate_per_day, 2),
            "blank_days": None if self.blank_days is None else round(self.blank_days, 1),
            "ribbon_days": None if self.ribbon_days is None else round(self.ribbon_days, 1),
        }


class StockLedger:
    """The ledger over a journal; thread-safe through the journal's single writer."""

    def __init__(self, journal: JournalLike, *, window_days: int = 14, low_days: float = 5.0,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self._j = journal
        self._window = window_days
        self._low_days = low_days
        self._clock = clock
        journal.register_schema("printing_stock", SCHEMA)

    # -- entries -------------------------------------------------------------------------

    def add_delivery(self, count: int, batch: str) -> int:
        """A delivery of ``count`` blanks from ``batch``; returns the new stock."""
        if count <= 0:
            raise StockError("a delivery adds at least one card")
        if not batch.strip():
            raise StockError("a delivery names its batch")
        return self._append("delivery", count, batch=batch.strip())

    def record_printed(self, order_id: str) -> int:
        """One card printed for ``order_id``."""
        return self._append("printed", -1, order_id=order_id)

    def record_spoiled(self, reason: str, order_id: str | None = None) -> int:
        """One blank spoiled (jam, ribbon break, misprint)."""
        return self._append("spoiled", -1, reason=reason, order_id=order_id)

    def record_test(self) -> int:
        """One blank used for a test card."""
        return self._append("test", -1, reason="test card")

    def recount(self, counted: int, reason: str) -> int:
        """The operator counted ``counted`` blanks; the difference is booked with ``reason``."""
        if counted < 0:
            raise StockError("a count cannot be negative")
        if not reason.strip():
            raise StockError("a recount needs a reason")
        with self._j.transaction() as db:
            current = self._balance(db)
            self._insert(db, "recount", counted - current, counted, reason=reason.strip())
        return counted

    def record_ribbon(self, cards_left: int) -> None:
        """A ribbon reading from the printer (``Rco;l``)."""
        with self._j.transaction() as db:
            db.execute("INSERT INTO stock_ribbon (at, cards_left) VALUES (?, ?)",
                       [iso(self._clock()), int(cards_left)])

    def _append(self, kind: str, delta: int, *, batch: str | None = None, reason: str | None = None,
                order_id: str | None = None) -> int:
        with self._j.transaction() as db:
            # The ledger may go negative when cards were never booked in: that is a fact to
            # show (and a recount to ask for), not a reason to refuse a printed card.
            balance = self._balance(db) + delta
            self._insert(db, kind, delta, balance, batch=batch, reason=reason, order_id=order_id)
        return balance

    def _insert(self, db: Any, kind: str, delta: int, balance: int, *, batch: str | None = None,
                reason: str | None = None, order_id: str | None = None) -> None:
        db.execute("INSERT INTO stock_ledger (at, kind, delta, balance, batch, reason, order_id) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [iso(self._clock()), kind, delta, balance, batch, reason, order_id])
        log.info("stock %s %+d -> %d", kind, delta, balance)

    @staticmethod
    def _balance(db: Any) -> int:
        row = db.execute("SELECT balance FROM stock_ledger ORDER BY id DESC LIMIT 1").fetchone()
        return int(row[0]) if row else 0

    # -- reading -------------------------------------------------------------------------
    # Reads go to the journal's read-only pool: telemetry asks for the forecast every few
    # seconds, and a read must neither wait for nor take the single writer (an fsync each).

    def current(self) -> int:
        """Blanks in stock now."""
        rows = self._j.query("SELECT balance FROM stock_ledger ORDER BY id DESC LIMIT 1")
        return int(rows[0][0]) if rows else 0

    def ribbon_left(self) -> int | None:
        """The last ribbon reading, if any."""
        rows = self._j.query("SELECT cards_left FROM stock_ribbon ORDER BY id DESC LIMIT 1")
        return int(rows[0][0]) if rows else None

    def entries(self, limit: int = 20) -> Iterator[dict[str, Any]]:
        """The latest ledger rows, newest first."""
        names = ("at", "kind", "delta", "balance", "batch", "reason", "order_id")
        rows = self._j.query(f"SELECT {', '.join(names)} FROM stock_ledger ORDER BY id DESC LIMIT ?",
                             [limit])
        return iter([dict(zip(names, r, strict=True)) for r in rows])

    def forecast(self, queued: int) -> Forecast:
        """Days until blanks and ribbon run out, counting ``queued`` approved orders first."""
        now = self._clock()
        since = now - timedelta(days=self._window)
        # One statement, so the four figures come from one snapshot of the ledger.
        balance, used, first, ribbon_left = self._j.query(
            "SELECT (SELECT balance FROM stock_ledger ORDER BY id DESC LIMIT 1), "
            "(SELECT COALESCE(-SUM(delta), 0) FROM stock_ledger WHERE at >= ? "
            f"AND kind IN ({','.join('?' * len(CONSUMING))})), "
            "(SELECT MIN(at) FROM stock_ledger), "
            "(SELECT cards_left FROM stock_ribbon ORDER BY id DESC LIMIT 1)",
            [iso(since), *CONSUMING])[0]
        balance = 0 if balance is None else int(balance)
        ribbon_left = None if ribbon_left is None else int(ribbon_left)
        span_days = float(self._window)
        if first is not None:
            age = (now - datetime.fromisoformat(first.replace("Z", "+00:00"))).total_seconds() / 86400
            span_days = min(span_days, max(1.0, age))
        rate = int(used) / span_days
        return Forecast(
            blanks=balance,
            queued=queued,
            ribbon_cards_left=ribbon_left,
            rate_per_day=rate,
            blank_days=_days(balance - queued, rate),
            ribbon_days=None if ribbon_left is None else _days(ribbon_left - queued, rate),
        )

    # -- alerts --------------------------------------------------------------------------

    def check_alerts(self, queued: int) -> list[dict[str, Any]]:
        """Raise ``low_stock`` events that are due; return their payloads."""
        fc = self.forecast(queued)
        sent: list[dict[str, Any]] = []
        for resource, days in (("blanks", fc.blank_days), ("ribbon", fc.ribbon_days)):
            with self._j.transaction() as db:
                row = db.execute("SELECT days FROM stock_alerts WHERE resource = ?", [resource]).fetchone()
                last = None if row is None else float(row[0])
                if days is None or days >= self._low_days:
                    if last is not None:
                        db.execute("DELETE FROM stock_alerts WHERE resource = ?", [resource])
                    continue
                # Repeat only when the forecast lost at least a whole day (or hit zero), so a
                # slowly worsening forecast does not flood head office.
                due = last is None or math.floor(days) < math.floor(last) or (days <= 0 < last)
                if not due:
                    continue
                db.execute("INSERT INTO stock_alerts (resource, days, at) VALUES (?, ?, ?) "
                           "ON CONFLICT (resource) DO UPDATE SET days = excluded.days, at = excluded.at",
                           [resource, days, iso(self._clock())])
            payload = {"resource": resource, "days_left": round(max(days, 0.0), 1),
                       "threshold_days": self._low_days, "repeat": last is not None, **fc.as_dict()}
            self._j.add_event("low_stock", payload)
            sent.append(payload)
            log.warning("low stock: %s forecast %.1f days", resource, days)
        return sent


def _days(left: int, rate: float) -> float | None:
    if left <= 0:
        return 0.0
    if rate <= 0:
        return None
    return left / rate
