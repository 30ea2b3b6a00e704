"""The journaled print queue against the emulated printer (real pyusb path) and the real journal."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from agent.config import JournalConfig
from agent.journal import Journal
from agent.printing.orders import CARD_FIELDS, OrderRejectedError, PrintOrder
from agent.printing.queue import PrintQueue, QueueError
from agent.printing.samples import sample_card, sample_photo, sample_signature
from agent.printing.stock import StockLedger
from drivers.emulators.evolis import EVOLIS_VID, EvolisModel, EvolisUsbPrinter, emulated_usb_printer
from drivers.printer.evolis import EvolisPrinter
from drivers.printer.status import PrinterStatus
from drivers.printer.usb import UsbTransport

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_order(order_id: str = "ord-1", *, print_before: datetime | None = None,
               **card: str) -> PrintOrder:
    base = sample_card()
    fields = {f: getattr(base, f) for f in CARD_FIELDS}
    fields.update(card)
    return PrintOrder(order_id=order_id, message_id=f"m-{order_id}", issued_at=NOW.isoformat(),
                      expires_at=(NOW + timedelta(minutes=10)).isoformat(), card=fields,
                      photo=png(sample_photo()), signature=png(sample_signature()),
                      print_before=print_before.isoformat() if print_before else None)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path, JournalConfig(free_disk_floor_bytes=0, reserve_bytes=0))
    yield j
    j.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def station(journal: Journal, clock: Clock, stock: int = 10) -> tuple[PrintQueue, StockLedger]:
    ledger = StockLedger(journal, clock=clock)
    if stock:
        ledger.add_delivery(stock, "B1")
    return PrintQueue(journal, ledger, station_id="st-1", clock=clock), ledger


def printer(model: EvolisModel | None = None) -> tuple[EvolisPrinter, EvolisUsbPrinter]:
    backend, emu = emulated_usb_printer(model)
    drv = EvolisPrinter(UsbTransport(vid=EVOLIS_VID, backend=backend), timeout_s=0.2,
                        print_timeout_s=0.2, emulated=True)
    drv.open()
    return drv, emu


def results(q: PrintQueue) -> list[dict[str, object]]:
    return [json.loads(p) for _, p in q.pending_results()]


def events(j: Journal, kind: str) -> list[dict[str, object]]:
    return [e.payload for e in j.pending_events(100) if e.kind == kind]


def test_order_prints_once_and_is_idempotent(journal: Journal, clock: Clock) -> None:
    q, ledger = station(journal, clock)
    drv, emu = printer()
    assert q.receive(make_order()).state == "received"
    view = q.print_next(drv)
    assert view is not None and view.state == "printed" and view.attempts == 1
    assert len(emu.model.printed) == 1
    assert ledger.current() == 9
    assert ledger.ribbon_left() == 199
    assert q.print_next(drv) is None
    # The same order again: nothing new, the result is repeated.
    assert q.receive(make_order()).state == "printed"
    assert q.print_next(drv) is None
    assert len(emu.model.printed) == 1
    res = results(q)
    assert [r["state"] for r in res] == ["printed", "printed"]
    assert res[0]["order_id"] == "ord-1" and res[0]["station_id"] == "st-1" and res[0]["v"] == 1
    # Card data is gone from the final job; results never carry it.
    with journal.transaction() as db:
        assert db.execute("SELECT order_json FROM print_jobs").fetchone()[0] == "{}"
    assert "6472010101900001" not in json.dumps(res)
    # Ids are acknowledged by the uplink one by one.
    first_id = q.pending_results()[0][0]
    q.mark_result_sent(first_id)
    assert len(q.pending_results()) == 1


def test_zero_stock_waits_with_event_then_prints(journal: Journal, clock: Clock) -> None:
    q, ledger = station(journal, clock, stock=0)
    drv, emu = printer()
    assert q.receive(make_order()).state == "waiting_stock"
    clock.now += timedelta(days=3)  # long past the envelope's expiry: the order still waits
    assert events(journal, "print_waiting_stock") == [{"order_id": "ord-1", "blanks": 0}]
    assert [r["state"] for r in results(q)] == ["waiting_stock"]
    view = q.print_next(drv)
    assert view is not None and view.state == "waiting_stock"
    assert emu.model.printed == []
    assert events(journal, "low_stock")  # zero blanks with an order waiting is low stock
    ledger.add_delivery(5, "B2")
    assert q.release_waiting() == 1
    view = q.print_next(drv)
    assert view is not None and view.state == "printed"
    assert q.queued_count() == 0


def test_second_order_beyond_stock_waits(journal: Journal, clock: Clock) -> None:
    q, _ = station(journal, clock, stock=1)
    assert q.receive(make_order("a")).state == "received"
    clock.now += timedelta(seconds=1)
    assert q.receive(make_order("b")).state == "waiting_stock"


@pytest.mark.parametrize(("step", "fault"), [("Ss", "no_card"), ("Ss", "cover_open"), ("Pr", "unplug")])
def test_fault_before_the_card_is_fed_keeps_the_job(journal: Journal, clock: Clock, step: str,
                                                    fault: str) -> None:
    q, ledger = station(journal, clock)
    drv, emu = printer(EvolisModel(faults={step: fault}))
    q.receive(make_order())
    view = q.print_next(drv)
    assert view is not None and view.state == "received" and view.reason
    assert view.spoiled == 0 and ledger.current() == 10
    assert events(journal, "printer_fault")[0]["card_consumed"] is False
    # Operator fixes the printer; the same job prints.
    drv2, emu2 = printer()
    view = q.print_next(drv2)
    assert view is not None and view.state == "printed" and view.attempts == 2
    assert len(emu2.model.printed) == 1


@pytest.mark.parametrize(("step", "fault"), [("Se", "jam"), ("Db:m", "ribbon_end"), ("Db:k", "cover_open")])
def test_fault_after_feeding_spoils_a_card_and_retries(journal: Journal, clock: Clock, step: str,
                                                      fault: str) -> None:
    q, ledger = station(journal, clock)
    drv, emu = printer(EvolisModel(faults={step: fault}))
    q.receive(make_order())
    view = q.print_next(drv)
    assert view is not None and view.state == "received" and view.spoiled == 1
    assert ledger.current() == 9
    assert list(ledger.entries(1))[0]["kind"] == "spoiled"
    emu.model.jammed = emu.model.cover_open = False
    emu.model.ribbon_left = 50
    view = q.print_next(drv)
    assert view is not None and view.state == "printed"
    assert ledger.current() == 8


def test_repeated_spoils_fail_the_order(journal: Journal, clock: Clock) -> None:
    ledger = StockLedger(journal, clock=clock)
    ledger.add_delivery(10, "B1")
    q = PrintQueue(journal, ledger, station_id="st-1", clock=clock, max_attempts=2)
    q.receive(make_order())
    for _ in range(2):
        drv, _emu = printer(EvolisModel(faults={"Se": "jam"}))
        view = q.print_next(drv)
    assert view is not None and view.state == "failed" and view.spoiled == 2
    assert "spoiled" in (view.reason or "")
    assert q.print_next(printer()[0]) is None
    assert results(q)[-1]["state"] == "failed"


@pytest.mark.parametrize(("step", "fault"), [("Db:c", "unplug"), ("Se", "silent"), ("Ss", "unplug"), ("Ss", "jam")])
def test_lost_printer_mid_job_makes_the_job_uncertain(journal: Journal, clock: Clock, step: str,
                                                      fault: str) -> None:
    q, ledger = station(journal, clock)
    drv, _ = printer(EvolisModel(faults={step: fault}))
    q.receive(make_order())
    view = q.print_next(drv)
    assert view is not None and view.state == "uncertain"
    assert events(journal, "print_uncertain") == [{"order_id": "ord-1"}]
    assert q.print_next(printer()[0]) is None  # never printed again on a guess
    assert ledger.current() == 10
    assert q.confirm("ord-1", printed=True).state == "printed"
    assert ledger.current() == 9


def test_confirm_not_printed_requeues(journal: Journal, clock: Clock) -> None:
    q, ledger = station(journal, clock)
    q.receive(make_order())
    q.print_next(printer(EvolisModel(faults={"Se": "silent"}))[0])
    view = q.confirm("ord-1", printed=False, card_spoiled=True)
    assert view.state == "received" and view.spoiled == 1 and ledger.current() == 9
    with pytest.raises(QueueError):
        q.confirm("ord-1", printed=True)
    with pytest.raises(QueueError):
        q.confirm("nope", printed=True)
    assert q.print_next(printer()[0]).state == "printed"  # type: ignore[union-attr]


class CrashingPrinter:
    """Stands in for the station dying mid-job: the exception is not a device error."""

    def print_job(self, frames: Iterable[bytes]) -> object:
        next(iter(frames))
        raise SystemExit("power cut")

    def status(self) -> PrinterStatus:
        raise AssertionError("not reached")


def test_crash_mid_print_recovers_as_uncertain(journal: Journal, clock: Clock) -> None:
    q, ledger = station(journal, clock)
    q.receive(make_order())
    with pytest.raises(SystemExit):
        q.print_next(CrashingPrinter())
    assert q.job("ord-1").state == "printing"
    restarted = PrintQueue(journal, ledger, station_id="st-1", clock=clock)
    assert restarted.job("ord-1").state == "uncertain"
    assert restarted.print_next(printer()[0]) is None
    cli_view = PrintQueue(journal, ledger, station_id="st-1", clock=clock, recover=False)
    assert cli_view.jobs(["uncertain"])[0].order_id == "ord-1"


def test_expired_and_unprintable_orders_fail(journal: Journal, clock: Clock) -> None:
    q, ledger = station(journal, clock)
    q.receive(make_order("old", print_before=NOW + timedelta(hours=1)))
    clock.now += timedelta(hours=2)
    view = q.print_next(printer()[0])
    assert view is not None and view.state == "failed" and "print_before" in (view.reason or "")
    q.receive(make_order("long", kecamatan="X " * 100))
    view = q.print_next(printer()[0])
    assert view is not None and view.state == "failed" and (view.reason or "").startswith("layout")
    assert ledger.current() == 10


def test_rejected_orders_are_reported(journal: Journal, clock: Clock) -> None:
    q, _ = station(journal, clock)
    q.reject(OrderRejectedError("bad_signature", "signature does not verify"))
    q.reject(OrderRejectedError("layout", "name: does not fit", order_id="o9"))
    res = results(q)
    assert [(r["state"], r["reason"], r["order_id"]) for r in res] == [
        ("rejected", "bad_signature", None), ("rejected", "layout", "o9")]
