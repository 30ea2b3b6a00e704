"""PrintService: signed orders in, cards out, results and telemetry; bad orders answered, not printed."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import JournalConfig
from agent.envelope import sign_envelope
from agent.journal import Journal
from agent.printing.orders import CARD_FIELDS
from agent.printing.samples import sample_card, sample_photo
from agent.printing.service import PrintService
from drivers.emulators.evolis import EVOLIS_VID, emulated_usb_printer
from drivers.printer.evolis import EvolisPrinter
from drivers.printer.usb import UsbTransport

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()


def body(order_id: str, **over: Any) -> dict[str, Any]:
    buf = io.BytesIO()
    sample_photo().save(buf, format="JPEG")
    card = sample_card()
    b: dict[str, Any] = {
        "type": "print_order", "station_id": "st-1", "id": f"m-{order_id}",
        "issued_at": NOW.isoformat(), "expires_at": (NOW + timedelta(days=3)).isoformat(),
        "order_id": order_id, "card": {f: getattr(card, f) for f in CARD_FIELDS},
        "photo": base64.b64encode(buf.getvalue()).decode(),
    }
    b.update(over)
    return b


@pytest.fixture
def service(tmp_path: Path) -> Iterator[PrintService]:
    j = Journal.open(tmp_path, JournalConfig(free_disk_floor_bytes=0, reserve_bytes=0))
    yield PrintService(j, station_id="st-1", headoffice_keys=lambda: {"k1": KEY.public_key()},
                       clock=lambda: NOW)
    j.close()


def test_orders_flow_to_cards_and_results(service: PrintService) -> None:
    service.ledger.add_delivery(5, "B1")
    topic = service.topic
    assert service.on_order(topic, sign_envelope(KEY, "k1", topic, body("o1"))) is not None
    assert service.wake.is_set()
    # Replay of the same message, a forged one, and one for another station: answered, not queued.
    assert service.on_order(topic, sign_envelope(KEY, "k1", topic, body("o1"))) is None
    forged = sign_envelope(Ed25519PrivateKey.generate(), "k1", topic, body("o2", id="m-x"))
    assert service.on_order(topic, forged) is None
    assert service.on_order(topic, sign_envelope(KEY, "k1", topic, body("o3", station_id="st-9"))) is None
    assert service.on_order(topic, b"\x00" * 600_000) is None
    backend, emu = emulated_usb_printer()
    drv = EvolisPrinter(UsbTransport(vid=EVOLIS_VID, backend=backend), timeout_s=1)
    drv.open()
    done = service.print_pending(drv)
    assert [v.state for v in done] == ["printed"]
    assert len(emu.model.printed) == 1
    states = [(r["state"], r.get("reason")) for r in
              (json.loads(p) for _, p in service.pending_results())]
    assert states == [("rejected", "replayed"), ("rejected", "bad_signature"),
                      ("rejected", "wrong_station"), ("rejected", "oversized"), ("printed", None)]
    tele = service.telemetry()
    assert tele["stock"]["blanks"] == 4 and tele["print_queue"] == {}
    for rid, _ in service.pending_results():
        service.mark_result_sent(rid)
    assert service.pending_results() == []


def test_print_pending_stops_at_zero_stock(service: PrintService) -> None:
    topic = service.topic
    service.ledger.add_delivery(1, "B1")
    for i in range(3):
        service.on_order(topic, sign_envelope(KEY, "k1", topic, body(f"o{i}")))
    backend, emu = emulated_usb_printer()
    drv = EvolisPrinter(UsbTransport(vid=EVOLIS_VID, backend=backend), timeout_s=1)
    drv.open()
    done = service.print_pending(drv)
    assert [v.state for v in done] == ["printed", "waiting_stock"]
    assert service.telemetry()["print_queue"] == {"waiting_stock": 2}
    assert len(emu.model.printed) == 1


def test_uplink_handler_takes_verified_bodies(service: PrintService) -> None:
    service.ledger.add_delivery(2, "B1")
    assert service.on_order_body(body("o7")) is not None
    assert service.on_order_body(body("o7")) is not None  # idempotent on order id
    assert service.on_order_body({"type": "print_order"}) is None
    bad = body("o8")
    bad["card"]["nik"] = "x"
    assert service.on_order_body(bad) is None
    states = [json.loads(p)["state"] for _, p in service.pending_results()]
    assert states == ["rejected", "rejected"]
    assert service.telemetry()["print_queue"] == {"received": 1}
