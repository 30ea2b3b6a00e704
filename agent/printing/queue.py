"""The journaled print queue: each approved card is printed once, never twice, never silently not.

States of a job (table ``print_jobs``)::

    received ------> printing ------> printed                     (final)
       ^  |             |  |  +-----> failed (reason)             (final)
       |  v             |  +--------> uncertain --confirm--> printed | received
    waiting_stock       +-- media fault before the card was fed, or a spoiled card with
                            attempts left: back to received (reason kept)

* ``printing`` is committed (fsynced) *before* the first byte goes to the printer. A station
  that crashes or loses the printer mid-job finds the job in ``printing`` at start-up and
  moves it to ``uncertain``: the operator looks at the printer and runs
  ``rekam print confirm ORDER --printed|--not-printed``. A second card with the same NIK is
  never printed on a guess.
* Idempotent on ``order_id``: the same order again (a re-sent message) creates nothing and
  repeats the last result.
* Zero stock: the job waits in ``waiting_stock`` with an event to head office; it is not lost
  (the envelope's expiry bounds delivery only; an order fails for lateness only when it carries
  ``print_before``). Jobs print in arrival order.
* Results for head office (``print/result``) sit in ``print_results`` until the uplink marks
  them sent. Card data (NIK, name, photo) is deleted from the job once it is final.
* Card data is never stored in the clear: ``order_json`` holds the order sealed with
  ChaCha20-Poly1305 (:func:`agent.printing.orders.seal_order`) under the print-order key
  (:func:`agent.keys.load_or_create_order_key`), opened only in memory to print. A row that
  does not open (wrong key, tampered) fails its job with a ``print_order_unreadable`` event.
  Rows written in the clear by older versions are sealed at start-up (``recover``), then the
  WAL is checkpointed and truncated so the old pages leave the disk (``secure_delete`` zeroes
  the freed pages inside the database).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from agent.faults import crash_point
from agent.keys import KeyStoreError, OrderKey, keys_dir, load_or_create_order_key
from agent.printing.orders import (
    OrderRejectedError,
    PrintOrder,
    SealedOrderError,
    is_sealed,
    open_order,
    seal_json,
    seal_order,
)
from agent.printing.render import CardLayoutError, render_card, to_panels
from agent.printing.stock import JournalLike, StockLedger, iso, utc_now
from drivers.errors import DeviceError
from drivers.printer.status import PrinterFaultError, PrinterStatus, card_consumed_of
from firmware_protocols import evolis as ev

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS print_jobs (
    order_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN
        ('received', 'waiting_stock', 'printing', 'printed', 'failed', 'uncertain')),
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    spoiled INTEGER NOT NULL DEFAULT 0,
    received_at TEXT NOT NULL,
    print_before TEXT,
    updated_at TEXT NOT NULL,
    order_json TEXT NOT NULL,
    packet_id TEXT
);
CREATE INDEX IF NOT EXISTS print_jobs_state ON print_jobs (state, received_at);
CREATE TABLE IF NOT EXISTS print_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT
)
"""

FINAL = frozenset({"printed", "failed"})
WAITING = ("received", "waiting_stock")


class QueueError(Exception):
    """A queue operation that cannot be done (unknown order, wrong state to confirm)."""


class PrinterLike(Protocol):
    """What the queue needs from a printer driver."""

    def print_job(self, frames: Iterable[bytes]) -> object:
        """Send one job's frames."""

    def status(self) -> PrinterStatus:
        """Current status (for the ribbon reading)."""


@dataclass(frozen=True)
class JobView:
    """A job as shown to the operator and head office (no card data)."""

    order_id: str
    state: str
    reason: str | None
    attempts: int
    spoiled: int
    received_at: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"order_id": self.order_id, "state": self.state, "reason": self.reason,
                "attempts": self.attempts, "spoiled": self.spoiled,
                "received_at": self.received_at, "updated_at": self.updated_at}


_COLUMNS = "order_id, state, reason, attempts, spoiled, received_at, updated_at"


class PrintQueue:
    """The queue over the journal; one printer thread calls :meth:`print_next`."""

    def __init__(self, journal: JournalLike, ledger: StockLedger, *, station_id: str,
                 max_attempts: int = 3, clock: Callable[[], datetime] = utc_now,
                 recover: bool = True, order_key: Callable[[], OrderKey] | None = None) -> None:
        self._j = journal
        self._ledger = ledger
        self._station = station_id
        self._max_attempts = max_attempts
        self._clock = clock
        # Loaded at first use: command-line tools (confirm, list) never need it and must not
        # create a key file as another user than the daemon's.
        self._key_source = order_key or self._default_key
        self._key: OrderKey | None = None
        journal.register_schema("printing_queue", SCHEMA)
        if recover:
            self.recover()
            self.seal_plaintext_rows()

    # -- receiving -----------------------------------------------------------------------

    def receive(self, order: PrintOrder) -> JobView:
        """Journal a verified order; the same order id again changes nothing."""
        now = iso(self._clock())
        # Sealed before the transaction: a key problem raises before anything is written.
        sealed = seal_order(order, self.order_key(), station_id=self._station)
        with self._j.transaction() as db:
            existing = self._get(db, order.order_id)
            if existing is None:
                db.execute(
                    "INSERT INTO print_jobs (order_id, message_id, state, reason, attempts, spoiled, "
                    "received_at, print_before, updated_at, order_json, packet_id) "
                    "VALUES (?, ?, 'received', NULL, 0, 0, ?, ?, ?, ?, ?)",
                    [order.order_id, order.message_id, now, order.print_before, now, sealed,
                     order.packet_id])
        if existing is not None:
            log.info("print order %s received again; state %s", order.order_id, existing.state)
            if existing.state in FINAL or existing.state == "uncertain":
                self._result(existing)
            return existing
        log.info("print order %s received", order.order_id)
        view = self.job(order.order_id)
        if self._ledger.current() - self._queued_before(order.order_id) <= 0:
            view = self._set(order.order_id, "waiting_stock", "no blank cards in stock")
            self._j.add_event("print_waiting_stock", {"order_id": order.order_id,
                                                      "blanks": self._ledger.current()})
            self._result(view)
        self._ledger.check_alerts(self.queued_count())
        return view

    def reject(self, exc: OrderRejectedError) -> None:
        """Tell head office an order was refused (no card data in the result)."""
        log.warning("print order %s refused: %s", exc.order_id or "(no id)", exc.reason)
        self._enqueue_result(exc.order_id, {"state": "rejected", "reason": exc.reason})

    # -- printing ------------------------------------------------------------------------

    def print_next(self, printer: PrinterLike) -> JobView | None:
        """Print the oldest waiting job if stock allows; return it in its new state."""
        job = self._next_waiting()
        if job is None:
            return None
        order_id = job["order_id"]
        if job["print_before"] and _parse(job["print_before"]) <= self._clock():
            return self._finish(order_id, "failed", "print_before passed before it could be printed")
        if self._ledger.current() <= 0:
            if job["state"] != "waiting_stock":
                view = self._set(order_id, "waiting_stock", "no blank cards in stock")
                self._j.add_event("print_waiting_stock", {"order_id": order_id, "blanks": 0})
                self._result(view)
                return view
            return self.job(order_id)
        try:
            order = open_order(job["order_json"], self.order_key(), station_id=self._station,
                               order_id=order_id)
        except KeyStoreError as exc:
            # The key file is unusable (mode, size): fixable by a technician, so the job waits.
            log.error("print order %s waits: the print-order key cannot be loaded: %s", order_id, exc)
            return self.job(order_id)
        except SealedOrderError as exc:
            return self._unreadable(order_id, str(exc))
        try:
            panels = to_panels(render_card(order.card_data()))
        except CardLayoutError as exc:
            return self._finish(order_id, "failed", f"layout: {exc}")
        self._set(order_id, "printing", None, attempt=True)  # durable before any byte is sent
        try:
            printer.print_job(ev.job_frames(panels.panel_data()))
        except PrinterFaultError as exc:
            return self._after_fault(order_id, exc, card_consumed_of(exc))
        except DeviceError as exc:
            return self._after_fault(order_id, exc, card_consumed_of(exc))
        del panels
        crash_point("mid-print")
        self._ledger.record_printed(order_id)
        view = self._finish(order_id, "printed", None)
        self._read_ribbon(printer)
        self._ledger.check_alerts(self.queued_count())
        return view

    def _unreadable(self, order_id: str, why: str) -> JobView:
        # The card cannot be printed from this row; head office learns it from the failed
        # result and re-issues the order. The rest of the queue goes on.
        log.error("print order %s cannot be opened: %s", order_id, why)
        self._j.add_event("print_order_unreadable", {"order_id": order_id, "reason": why})
        return self._finish(order_id, "failed", f"stored order unreadable: {why}")

    # -- the key and sealing old rows --------------------------------------------------------

    def order_key(self) -> OrderKey:
        """The print-order key (loaded, or created on first use, once)."""
        if self._key is None:
            self._key = self._key_source()
            log.info("print orders sealed with key %s (%s)", self._key.kid, self._key.source)
        return self._key

    def _default_key(self) -> OrderKey:
        path = getattr(self._j, "path", None)
        if path is None:
            raise KeyStoreError("no print-order key given and the journal has no state directory")
        return load_or_create_order_key(keys_dir(Path(path).parent))

    def seal_plaintext_rows(self) -> int:
        """Seal rows an older version stored in the clear, then push the old pages off the disk."""
        # A read on the pooled reader: every start runs this, and nothing needs the writer.
        rows = self._j.query("SELECT order_id, order_json FROM print_jobs "
                             "WHERE order_json != '{}' AND order_json NOT LIKE 'rk-order-v1:%'")
        if not rows:
            return 0
        try:
            key = self.order_key()
        except KeyStoreError as exc:
            log.error("%d print orders stored in the clear cannot be sealed: %s", len(rows), exc)
            return 0
        sealed = 0
        with self._j.transaction() as db:
            for order_id, text in rows:
                if is_sealed(text):
                    continue
                # secure_delete (set by the journal on its connection) zeroes the freed cells
                # and overflow pages the old text occupied.
                db.execute("UPDATE print_jobs SET order_json = ? WHERE order_id = ?",
                           [seal_json(text, key, station_id=self._station, order_id=order_id), order_id])
                sealed += 1
        self._truncate_wal()
        log.warning("sealed %d print orders that an older version stored in the clear", sealed)
        self._j.add_event("print_orders_sealed", {"count": sealed})
        return sealed

    def _truncate_wal(self) -> None:
        # The WAL still holds the frames with the old text until a checkpoint copies the new
        # pages into the database and the file is cut to zero; the journal owns that.
        truncate = getattr(self._j, "truncate_wal", None)
        if truncate is not None and not truncate():
            log.warning("journal checkpoint after sealing print orders did not complete; "
                        "the old pages leave the WAL at the next checkpoint")

    def _after_fault(self, order_id: str, exc: DeviceError, consumed: bool | None) -> JobView:
        reason = f"{type(exc).__name__}: {exc}"
        state_name = getattr(getattr(exc, "state", None), "value", "unknown")
        self._j.add_event("printer_fault", {"order_id": order_id, "state": state_name,
                                            "step": getattr(exc, "step", ""),
                                            "card_consumed": consumed})
        if consumed is False:
            # Nothing left the feeder: the job simply waits for the operator to fix the printer.
            return self._set(order_id, "received", reason)
        if consumed is True and isinstance(exc, PrinterFaultError):
            self._ledger.record_spoiled(reason=state_name, order_id=order_id)
            view = self._set(order_id, "received", reason, spoiled=True)
            if view.attempts >= self._max_attempts:
                return self._finish(order_id, "failed", f"{view.spoiled} cards spoiled; last: {reason}")
            return view
        # The printer vanished or stopped answering after the card was fed: nobody can tell
        # whether a card came out. Ask the operator rather than print a second card.
        view = self._set(order_id, "uncertain", reason)
        self._j.add_event("print_uncertain", {"order_id": order_id})
        self._result(view)
        return view

    def _read_ribbon(self, printer: PrinterLike) -> None:
        try:
            left = printer.status().ribbon_cards_left
        except DeviceError:
            log.info("printer status unavailable after a job; ribbon reading skipped")
            return
        if left is not None:
            self._ledger.record_ribbon(left)

    # -- operator ------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """At start-up: every job found in ``printing`` becomes ``uncertain``."""
        with self._j.transaction() as db:
            ids = [r[0] for r in db.execute("SELECT order_id FROM print_jobs WHERE state = 'printing'")]
        for order_id in ids:
            log.warning("print order %s was printing at a crash: now uncertain", order_id)
            view = self._set(order_id, "uncertain", "station stopped while printing")
            self._j.add_event("print_uncertain", {"order_id": order_id})
            self._result(view)
        return ids

    def confirm(self, order_id: str, *, printed: bool, card_spoiled: bool = False) -> JobView:
        """The operator's word on an uncertain job: a card came out, or it did not."""
        job = self.job(order_id)
        if job.state != "uncertain":
            raise QueueError(f"order {order_id} is {job.state}, not uncertain")
        if printed:
            self._ledger.record_printed(order_id)
            return self._finish(order_id, "printed", "confirmed by the operator")
        if card_spoiled:
            self._ledger.record_spoiled("operator: spoiled", order_id=order_id)
        return self._set(order_id, "received", "operator: no card came out", spoiled=card_spoiled)

    def release_waiting(self) -> int:
        """After a delivery: jobs waiting for stock go back to received."""
        with self._j.transaction() as db:
            cur = db.execute("UPDATE print_jobs SET state = 'received', reason = NULL, updated_at = ? "
                             "WHERE state = 'waiting_stock'", [iso(self._clock())])
            return int(cur.rowcount)

    # -- views ---------------------------------------------------------------------------

    def job(self, order_id: str) -> JobView:
        """One job; :class:`QueueError` if unknown."""
        with self._j.transaction() as db:
            view = self._get(db, order_id)
        if view is None:
            raise QueueError(f"no print order {order_id}")
        return view

    def jobs(self, states: Iterable[str] | None = None, limit: int = 100) -> list[JobView]:
        """Jobs, oldest first, optionally of some states."""
        sql = f"SELECT {_COLUMNS} FROM print_jobs"
        args: list[Any] = []
        wanted = list(states or [])
        if wanted:
            sql += f" WHERE state IN ({','.join('?' * len(wanted))})"
            args += wanted
        sql += " ORDER BY rowid LIMIT ?"
        with self._j.transaction() as db:
            return [JobView(*row) for row in db.execute(sql, [*args, limit]).fetchall()]

    def queued_count(self) -> int:
        """Approved orders not yet printed (they will take blanks)."""
        with self._j.transaction() as db:
            row = db.execute("SELECT COUNT(*) FROM print_jobs WHERE state IN "
                             "('received', 'waiting_stock', 'printing')").fetchone()
        return int(row[0])

    def pending_results(self, limit: int = 50) -> list[tuple[int, bytes]]:
        """(id, JSON payload) of results for ``print/result`` not yet sent, oldest first."""
        with self._j.transaction() as db:
            rows = db.execute("SELECT id, payload FROM print_results WHERE sent_at IS NULL "
                              "ORDER BY id LIMIT ?", [limit]).fetchall()
        return [(int(r[0]), r[1].encode("utf-8")) for r in rows]

    def mark_result_sent(self, result_id: int) -> None:
        """The uplink delivered this result (PUBACK)."""
        with self._j.transaction() as db:
            db.execute("UPDATE print_results SET sent_at = ? WHERE id = ?", [iso(self._clock()), result_id])

    # -- internals -----------------------------------------------------------------------

    @staticmethod
    def _get(db: Any, order_id: str) -> JobView | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM print_jobs WHERE order_id = ?", [order_id]).fetchone()
        return JobView(*row) if row else None

    def _queued_before(self, order_id: str) -> int:
        with self._j.transaction() as db:
            row = db.execute("SELECT COUNT(*) FROM print_jobs WHERE state IN "
                             "('received', 'waiting_stock', 'printing') AND "
                             "rowid < (SELECT rowid FROM print_jobs WHERE order_id = ?)",
                             [order_id]).fetchone()
        return int(row[0])

    def _next_waiting(self) -> dict[str, Any] | None:
        with self._j.transaction() as db:
            row = db.execute("SELECT order_id, state, print_before, order_json FROM print_jobs "
                             "WHERE state IN ('received', 'waiting_stock') "
                             "ORDER BY rowid LIMIT 1").fetchone()
        if row is None:
            return None
        return dict(zip(("order_id", "state", "print_before", "order_json"), row, strict=True))

    def _set(self, order_id: str, state: str, reason: str | None, *, attempt: bool = False,
             spoiled: bool = False) -> JobView:
        with self._j.transaction() as db:
            db.execute("UPDATE print_jobs SET state = ?, reason = ?, updated_at = ?, "
                       "attempts = attempts + ?, spoiled = spoiled + ? WHERE order_id = ?",
                       [state, reason, iso(self._clock()), int(attempt), int(spoiled), order_id])
            view = self._get(db, order_id)
        if view is None:
            raise QueueError(f"no print order {order_id}")
        return view

    def _finish(self, order_id: str, state: str, reason: str | None) -> JobView:
        view = self._set(order_id, state, reason)
        with self._j.transaction() as db:
            # Final: the card data (NIK, name, photo) has no further use at the station.
            db.execute("UPDATE print_jobs SET order_json = '{}' WHERE order_id = ?", [order_id])
        log.info("print order %s %s", order_id, state)
        self._result(view)
        return view

    def _result(self, view: JobView) -> None:
        self._enqueue_result(view.order_id, {"state": view.state, "reason": view.reason,
                                             "attempts": view.attempts, "spoiled": view.spoiled})

    def _enqueue_result(self, order_id: str | None, fields: dict[str, Any]) -> None:
        now = iso(self._clock())
        # Each result has its own id so head office can drop a redelivered copy (QoS 1).
        payload = {"v": 1, "id": uuid.uuid4().hex, "station_id": self._station, "order_id": order_id,
                   "at": now, **fields}
        with self._j.transaction() as db:
            db.execute("INSERT INTO print_results (order_id, created_at, payload) VALUES (?, ?, ?)",
                       [order_id, now, json.dumps(payload, sort_keys=True)])


def _parse(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
