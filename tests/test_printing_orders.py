"""Print orders: forged, expired, replayed, malformed, oversized, foreign-station and bad data."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from agent.envelope import ReplayGuard, sign_envelope
from agent.printing.orders import (
    CARD_FIELDS,
    OrderRejectedError,
    PrintOrder,
    order_topic,
    parse_order,
)
from agent.printing.samples import sample_card, sample_photo, sample_signature

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
STATION = "st-1"
HO_KEY = Ed25519PrivateKey.generate()
KEYS = {"ho1": HO_KEY.public_key()}


def png(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def order_body(order_id: str = "ord-1", **over: Any) -> dict[str, Any]:
    card = sample_card()
    body: dict[str, Any] = {
        "type": "print_order", "station_id": STATION, "id": f"msg-{order_id}",
        "issued_at": (NOW - timedelta(minutes=1)).isoformat(),
        "expires_at": (NOW + timedelta(days=7)).isoformat(),
        "order_id": order_id,
        "card": {f: getattr(card, f) for f in CARD_FIELDS},
        "photo": png(sample_photo()), "signature": png(sample_signature()),
    }
    body.update(over)
    return body


def signed(body: dict[str, Any], *, key: Ed25519PrivateKey = HO_KEY, kid: str = "ho1",
           topic: str | None = None) -> bytes:
    return sign_envelope(key, kid, topic or order_topic(STATION), body)


def parse(payload: bytes, seen: ReplayGuard | None = None, max_bytes: int = 512 * 1024) -> PrintOrder:
    return parse_order(payload, station_id=STATION, public_keys=KEYS, now=NOW, max_bytes=max_bytes,
                       seen=seen)


def test_valid_order_round_trips() -> None:
    order = parse(signed(order_body()))
    assert order.order_id == "ord-1" and order.message_id == "msg-ord-1"
    assert order.card["nik"] == "6472010101900001"
    assert PrintOrder.from_json(order.to_json()) == order
    assert order.card_data().photo is not None


def reason_of(payload: bytes, **kw: Any) -> str:
    with pytest.raises(OrderRejectedError) as info:
        parse(payload, **kw)
    return info.value.reason


def test_forged_order_is_refused() -> None:
    assert reason_of(signed(order_body(), key=Ed25519PrivateKey.generate())) == "bad_signature"
    assert reason_of(signed(order_body(), kid="other")) == "unknown_key"
    # Signed for another topic (an ack) and replayed on print/order.
    assert reason_of(signed(order_body(), topic=f"rekam/v1/{STATION}/ack")) == "bad_signature"


def test_expired_replayed_foreign_oversized_malformed() -> None:
    expired = order_body(expires_at=(NOW - timedelta(seconds=1)).isoformat(),
                         issued_at=(NOW - timedelta(days=1)).isoformat())
    assert reason_of(signed(expired)) == "expired"
    seen = ReplayGuard()
    payload = signed(order_body())
    parse(payload, seen=seen)
    assert reason_of(payload, seen=seen) == "replayed"
    assert reason_of(signed(order_body(station_id="st-2"))) == "wrong_station"
    assert reason_of(signed(order_body()), max_bytes=4096) == "oversized"
    assert reason_of(b"{not json") == "malformed"
    assert reason_of(b'{"v":1,"v":1,"kid":"ho1","body":"","sig":""}') == "malformed"


@pytest.mark.parametrize(
    "change",
    [
        {"type": "ack"},
        {"order_id": ""},
        {"order_id": "../etc"},
        {"card": "not an object"},
        {"photo": "%%%"},
        {"photo": base64.b64encode(b"not an image").decode()},
        {"photo": None},
        {"signature": 12},
    ],
)
def test_bad_order_shape_is_invalid(change: dict[str, Any]) -> None:
    assert reason_of(signed(order_body(**change))) == "invalid"


def test_bad_card_fields_are_invalid() -> None:
    body = order_body()
    del body["card"]["religion"]
    assert reason_of(signed(body)) == "invalid"
    body = order_body()
    body["card"]["extra"] = "x"
    assert reason_of(signed(body)) == "invalid"
    body = order_body()
    body["card"]["nik"] = "123"
    assert reason_of(signed(body)) == "invalid"
    body = order_body()
    body["card"]["name"] = 5
    assert reason_of(signed(body)) == "invalid"
    body = order_body()
    body["card"]["address"] = "A\nB"
    assert reason_of(signed(body)) == "invalid"


def test_card_that_cannot_fit_is_refused_at_once() -> None:
    body = order_body()
    body["card"]["kecamatan"] = "KECAMATAN DENGAN NAMA YANG TERLALU PANJANG UNTUK KARTU"
    with pytest.raises(OrderRejectedError) as info:
        parse(signed(body))
    assert info.value.reason == "layout" and info.value.order_id == "ord-1"
    assert "kecamatan" in str(info.value)


def test_print_before_is_optional_and_checked() -> None:
    assert parse(signed(order_body())).print_before is None
    when = (NOW + timedelta(days=2)).isoformat()
    assert parse(signed(order_body(print_before=when))).print_before == when
    assert reason_of(signed(order_body(print_before="tomorrow"))) == "invalid"
    assert reason_of(signed(order_body(print_before=5))) == "invalid"
