"""The printer owner thread: prints woken orders, survives an absent printer, stops cleanly."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config import JournalConfig
from agent.journal import Journal
from agent.printing.orders import CARD_FIELDS
from agent.printing.samples import sample_card
from agent.printing.service import PrintService
from agent.printing.worker import PrinterWorker
from drivers.emulators.evolis import EVOLIS_VID, EvolisModel, emulated_usb_printer
from drivers.errors import DeviceMissingError
from drivers.printer.evolis import EvolisPrinter
from drivers.printer.usb import UsbTransport

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def body(order_id: str) -> dict[str, object]:
    import base64
    import io

    from agent.printing.samples import sample_photo

    buf = io.BytesIO()
    sample_photo().save(buf, format="PNG")
    card = sample_card()
    return {"type": "print_order", "station_id": "st-1", "id": f"m-{order_id}",
            "issued_at": NOW.isoformat(), "expires_at": (NOW + timedelta(days=1)).isoformat(),
            "order_id": order_id, "card": {f: getattr(card, f) for f in CARD_FIELDS},
            "photo": base64.b64encode(buf.getvalue()).decode()}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[PrintService]:
    j = Journal.open(tmp_path, JournalConfig(free_disk_floor_bytes=0, reserve_bytes=0))
    svc = PrintService(j, station_id="st-1", headoffice_keys=dict, clock=lambda: NOW)
    svc.ledger.add_delivery(5, "B1")
    yield svc
    j.close()


def wait_for(cond: Callable[[], bool], limit: float = 20.0) -> bool:
    """Poll a condition with a bound (a wait, not a timing assertion)."""
    pause = threading.Event()
    for _ in range(int(limit / 0.02)):
        if cond():
            return True
        pause.wait(0.02)
    return cond()


def test_worker_prints_and_recovers_from_an_absent_printer(service: PrintService) -> None:
    backend, emu = emulated_usb_printer(EvolisModel())
    attempts = {"n": 0}

    def open_printer() -> EvolisPrinter:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise DeviceMissingError("not plugged in yet")
        drv = EvolisPrinter(UsbTransport(vid=EVOLIS_VID, backend=backend), timeout_s=1)
        drv.open()
        return drv

    worker = PrinterWorker(service, open_printer, poll_seconds=0.05, retry_min_seconds=0.01,
                           retry_max_seconds=0.05)
    worker.start()
    try:
        assert service.on_order_body(body("o1")) is not None
        assert wait_for(lambda: len(emu.model.printed) == 1)
        assert wait_for(lambda: service.queue.job("o1").state == "printed")
        assert worker.healthy()
        assert "printed" in worker.status()
    finally:
        worker.stop()
    assert worker.status().startswith("printer stopped") and worker.healthy()
    assert attempts["n"] >= 3


def test_worker_waits_while_printer_not_ready(service: PrintService) -> None:
    backend, emu = emulated_usb_printer(EvolisModel(cards=0))

    def open_printer() -> EvolisPrinter:
        drv = EvolisPrinter(UsbTransport(vid=EVOLIS_VID, backend=backend), timeout_s=1)
        drv.open()
        return drv

    worker = PrinterWorker(service, open_printer, poll_seconds=0.05)
    worker.start()
    try:
        service.on_order_body(body("o2"))
        assert wait_for(lambda: "feeder_empty" in worker.status())
        assert service.queue.job("o2").state == "received"
        emu.model.cards = 10  # the operator loads cards
        service.wake.set()
        assert wait_for(lambda: service.queue.job("o2").state == "printed")
    finally:
        worker.stop()
