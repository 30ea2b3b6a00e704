"""The printing side of the daemon in one object: orders in, cards out, results and stock back.

Wiring (for the daemon and the uplink):

* the uplink verifies each ``rekam/v1/{station}/print/order`` envelope and calls
  :meth:`PrintService.on_order_body` with its body (``register_handler("print/order", ...)``);
  :meth:`PrintService.on_order` takes a raw payload and verifies the envelope itself;
* the printer's owner thread calls :meth:`PrintService.print_pending` when woken (by
  :attr:`PrintService.wake`) or periodically, with the opened driver;
* the uplink publishes :meth:`pending_results` on ``print/result`` (QoS 1) and calls
  :meth:`mark_result_sent` on PUBACK; ``low_stock``, ``print_waiting_stock``,
  ``print_uncertain`` and ``printer_fault`` go out as journal events;
* telemetry adds :meth:`telemetry`;
* ``order_key`` loads the print-order key (default: the systemd credential ``rekam-order-key``,
  else ``<state_dir>/keys/print_orders.key``, see :func:`agent.keys.load_or_create_order_key`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.envelope import ReplayGuard
from agent.keys import OrderKey
from agent.printing.orders import OrderRejectedError, order_from_body, order_topic, parse_order
from agent.printing.queue import JobView, PrinterLike, PrintQueue
from agent.printing.stock import JournalLike, StockLedger, utc_now

log = logging.getLogger(__name__)


class PrintService:
    """Print orders, queue, stock ledger and results over one journal."""

    def __init__(self, journal: JournalLike, *, station_id: str,
                 headoffice_keys: Callable[[], Mapping[str, Ed25519PublicKey]],
                 order_max_bytes: int = 512 * 1024, max_attempts: int = 3,
                 low_stock_days: float = 5.0, forecast_window_days: int = 14,
                 clock: Callable[[], datetime] = utc_now, recover: bool = True,
                 order_key: Callable[[], OrderKey] | None = None) -> None:
        self._station = station_id
        self._keys = headoffice_keys  # a callable: key rotation must take effect without restart
        self._max_bytes = order_max_bytes
        self._clock = clock
        self._seen = ReplayGuard(max_entries=10_000)
        self.ledger = StockLedger(journal, window_days=forecast_window_days, low_days=low_stock_days,
                                  clock=clock)
        self.queue = PrintQueue(journal, self.ledger, station_id=station_id,
                                max_attempts=max_attempts, clock=clock, recover=recover,
                                order_key=order_key)
        self.wake = threading.Event()

    @property
    def topic(self) -> str:
        """The print-order topic to subscribe to."""
        return order_topic(self._station)

    def on_order(self, topic: str, payload: bytes) -> JobView | None:
        """Verify and journal one order; a refusal is journaled as a result. Never raises for bad input."""
        try:
            order = parse_order(payload, station_id=self._station, public_keys=self._keys(),
                                now=self._clock(), max_bytes=self._max_bytes, seen=self._seen,
                                topic=topic)
        except OrderRejectedError as exc:
            self.queue.reject(exc)
            return None
        view = self.queue.receive(order)
        self.wake.set()
        return view

    def on_order_body(self, body: dict[str, Any]) -> JobView | None:
        """The uplink's ``print/order`` handler: ``body`` comes from an envelope it verified."""
        try:
            order = order_from_body(body)
        except OrderRejectedError as exc:
            self.queue.reject(exc)
            return None
        view = self.queue.receive(order)
        self.wake.set()
        return view

    def print_pending(self, printer: PrinterLike, *, limit: int = 10) -> list[JobView]:
        """Print waiting jobs until none is printable or one stops on a printer fault."""
        done: list[JobView] = []
        for _ in range(limit):
            view = self.queue.print_next(printer)
            if view is None:
                break
            done.append(view)
            if view.state not in ("printed", "failed"):
                # Waiting for stock, a printer fault, or an uncertain card: the operator acts.
                break
        return done

    def pending_results(self, limit: int = 50) -> list[tuple[int, bytes]]:
        """Results to publish on ``print/result``."""
        return self.queue.pending_results(limit)

    def mark_result_sent(self, result_id: int) -> None:
        """The broker acknowledged a result."""
        self.queue.mark_result_sent(result_id)

    def telemetry(self) -> dict[str, Any]:
        """Stock, forecast and queue counts for the telemetry message."""
        queued = self.queue.queued_count()
        counts: dict[str, int] = {}
        for job in self.queue.jobs(["received", "waiting_stock", "printing", "uncertain"], limit=1000):
            counts[job.state] = counts.get(job.state, 0) + 1
        return {"stock": self.ledger.forecast(queued).as_dict(), "print_queue": counts}
