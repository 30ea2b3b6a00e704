"""Print orders from head office: a signed envelope (docs/protocol.md) carrying one card.

Body of the envelope on ``rekam/v1/{station}/print/order`` (besides the envelope's own
``type``/``station_id``/``id``/``issued_at``/``expires_at``)::

    {"type": "print_order", "order_id": "<id>", "card": {<CardData text fields>},
     "photo": "<base64 JPEG or PNG>", "signature": "<base64 JPEG or PNG, optional>",
     "print_before": "<ISO 8601 UTC, optional: fail the order if not printed by then>"}

The envelope's ``expires_at`` bounds delivery only: an accepted order waits (for stock, for
the printer) as long as it must, unless ``print_before`` says otherwise.

Every check that can refuse an order runs here, before anything is journaled: envelope
(signature, key, station, expiry, replay, size), the order's shape, the card's fields, and
the images. Refusals raise :class:`OrderRejectedError` with a short ``reason`` code that
goes back to head office on ``print/result``; none carries card data.

At rest (the print queue) an order is kept only sealed: :func:`seal_order` encrypts its JSON
form with ChaCha20-Poly1305 under the station's print-order key, a random 96-bit nonce per
row, and associated data naming the station and the order, so a row copied onto another order
or another station does not open. Text form: ``rk-order-v1:<key id>:<base64(nonce||ct)>``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from agent import envelope
from agent.keys import OrderKey
from agent.printing.render import CardData, CardLayoutError, image_from_bytes, render_card

ORDER_TYPE = "print_order"
ORDER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
CARD_FIELDS = tuple(f.name for f in fields(CardData) if f.name not in ("photo", "signature"))
MAX_FIELD_CHARS = 200
SEALED_PREFIX = "rk-order-v1:"
_NONCE_BYTES = 12
_AAD_DOMAIN = "rekam-print-order-v1"

# EnvelopeError subclass -> reason code sent back to head office.
_ENVELOPE_REASONS: dict[type[envelope.EnvelopeError], str] = {
    envelope.OversizedError: "oversized",
    envelope.MalformedError: "malformed",
    envelope.UnknownKeyError: "unknown_key",
    envelope.BadSignatureError: "bad_signature",
    envelope.WrongStationError: "wrong_station",
    envelope.ExpiredError: "expired",
    envelope.ReplayedError: "replayed",
}


class OrderRejectedError(Exception):
    """An order the station refuses; ``reason`` is a short code, ``order_id`` when known."""

    def __init__(self, reason: str, message: str, *, order_id: str | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.order_id = order_id


@dataclass(frozen=True)
class PrintOrder:
    """A verified order: ids, validity, the card's text and its images as received."""

    order_id: str
    message_id: str
    issued_at: str
    expires_at: str
    card: Mapping[str, str]
    photo: bytes
    signature: bytes | None
    print_before: str | None = None  # optional deadline; the envelope's expiry only bounds delivery
    packet_id: str | None = None  # the enrollment packet the card was approved from (service times)

    def card_data(self) -> CardData:
        """The card to render (decodes the images)."""
        photo = image_from_bytes(self.photo, field_name="photo")
        sig = image_from_bytes(self.signature, field_name="signature") if self.signature else None
        return CardData(**dict(self.card), photo=photo, signature=sig)

    def to_json(self) -> dict[str, Any]:
        """Form kept in the print queue until the job is final."""
        return {
            "order_id": self.order_id, "message_id": self.message_id,
            "issued_at": self.issued_at, "expires_at": self.expires_at,
            "card": dict(self.card),
            "photo": base64.b64encode(self.photo).decode("ascii"),
            "signature": base64.b64encode(self.signature).decode("ascii") if self.signature else None,
            "print_before": self.print_before,
            "packet_id": self.packet_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PrintOrder:
        """Inverse of :meth:`to_json` (data the station itself journaled)."""
        sig = data.get("signature")
        return cls(
            order_id=data["order_id"], message_id=data["message_id"],
            issued_at=data["issued_at"], expires_at=data["expires_at"],
            card=dict(data["card"]),
            photo=base64.b64decode(data["photo"]),
            signature=base64.b64decode(sig) if sig else None,
            print_before=data.get("print_before"),
            packet_id=data.get("packet_id"),
        )


class SealedOrderError(Exception):
    """A sealed order that does not open: wrong key, tampered, moved to another row, or garbled."""


def _aad(station_id: str, order_id: str) -> bytes:
    # JSON, not concatenation: no choice of ids can make two different rows share associated data.
    return json.dumps([_AAD_DOMAIN, station_id, order_id]).encode("utf-8")


def is_sealed(text: str) -> bool:
    """True for a queue row written by :func:`seal_order`."""
    return text.startswith(SEALED_PREFIX)


def seal_order(order: PrintOrder, key: OrderKey, *, station_id: str) -> str:
    """The order's JSON form encrypted for the queue row of (``station_id``, ``order.order_id``)."""
    return seal_json(json.dumps(order.to_json()), key, station_id=station_id, order_id=order.order_id)


def seal_json(plain: str, key: OrderKey, *, station_id: str, order_id: str) -> str:
    """Encrypt an order's JSON text for one queue row (also used to migrate old plaintext rows)."""
    nonce = os.urandom(_NONCE_BYTES)
    ct = ChaCha20Poly1305(key.key).encrypt(nonce, plain.encode("utf-8"), _aad(station_id, order_id))
    return f"{SEALED_PREFIX}{key.kid}:{base64.b64encode(nonce + ct).decode('ascii')}"


def open_order(text: str, key: OrderKey, *, station_id: str, order_id: str) -> PrintOrder:
    """Decrypt a queue row in memory; :class:`SealedOrderError` says why it cannot be opened."""
    if not is_sealed(text):
        raise SealedOrderError("the stored order is not sealed (written outside the print queue)")
    kid, sep, blob = text[len(SEALED_PREFIX):].partition(":")
    if not sep:
        raise SealedOrderError("the stored order is garbled (no key id)")
    if kid != key.kid:
        raise SealedOrderError(f"the stored order was sealed under key {kid}, "
                               f"this station's print-order key is {key.kid} (wrong key)")
    try:
        raw = base64.b64decode(blob.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SealedOrderError("the stored order is garbled (not base64)") from None
    if len(raw) < _NONCE_BYTES + 16:
        raise SealedOrderError("the stored order is garbled (too short)")
    try:
        plain = ChaCha20Poly1305(key.key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:],
                                                  _aad(station_id, order_id))
    except InvalidTag:
        raise SealedOrderError("the stored order fails authentication "
                               "(tampered, or moved from another order or station)") from None
    try:
        data = json.loads(plain)
        order = PrintOrder.from_json(data)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise SealedOrderError("the stored order opens but is not an order") from None
    if order.order_id != order_id:
        raise SealedOrderError("the stored order belongs to another order id")
    return order


def order_topic(station_id: str) -> str:
    """The MQTT topic print orders for ``station_id`` arrive on."""
    return f"rekam/v1/{station_id}/print/order"


def parse_order(
    payload: bytes,
    *,
    station_id: str,
    public_keys: Mapping[str, Ed25519PublicKey],
    now: datetime,
    max_bytes: int,
    seen: envelope.ReplayGuard | None,
    topic: str | None = None,
) -> PrintOrder:
    """Verify and validate one print order; raise :class:`OrderRejectedError`."""
    try:
        body = envelope.open_envelope(
            payload, topic=topic or order_topic(station_id), public_keys=public_keys,
            station_id=station_id, now=now, max_bytes=max_bytes, seen=seen,
        )
    except envelope.EnvelopeError as exc:
        reason = next((r for t, r in _ENVELOPE_REASONS.items() if isinstance(exc, t)), "malformed")
        raise OrderRejectedError(reason, str(exc)) from exc
    return order_from_body(body)


def order_from_body(body: Mapping[str, Any]) -> PrintOrder:
    """Validate the body of an envelope that was already opened and verified (e.g. by the uplink).

    Raises :class:`OrderRejectedError` for a wrong shape, bad card fields or images, and data that
    cannot fit the card.
    """
    for name in envelope.REQUIRED_BODY_FIELDS:
        if not isinstance(body.get(name), str) or not body[name]:
            raise OrderRejectedError("malformed", f"body field {name!r} missing")
    order_id = body.get("order_id")
    if not isinstance(order_id, str) or not ORDER_ID_RE.fullmatch(order_id):
        raise OrderRejectedError("invalid", "order_id missing or not a plain id")
    if body["type"] != ORDER_TYPE:
        raise OrderRejectedError("invalid", f"type must be {ORDER_TYPE}", order_id=order_id)
    card = body.get("card")
    if not isinstance(card, dict):
        raise OrderRejectedError("invalid", "card must be an object", order_id=order_id)
    missing = [f for f in CARD_FIELDS if f not in card]
    extra = [f for f in card if f not in CARD_FIELDS]
    if missing or extra:
        raise OrderRejectedError(
            "invalid", f"card fields missing {missing[:5]} or unknown {extra[:5]}", order_id=order_id)
    for name in CARD_FIELDS:
        value = card[name]
        if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS or not value.isprintable():
            raise OrderRejectedError("invalid", f"card field {name} must be printable text", order_id=order_id)
    print_before = body.get("print_before")
    if print_before is not None:
        try:
            envelope.parse_utc(print_before if isinstance(print_before, str) else "")
        except ValueError as exc:
            raise OrderRejectedError("invalid", "print_before must be ISO 8601 with a zone",
                                     order_id=order_id) from exc
    packet_id = body.get("packet_id")
    if packet_id is not None and (not isinstance(packet_id, str) or not ORDER_ID_RE.fullmatch(packet_id)):
        raise OrderRejectedError("invalid", "packet_id must be a plain id", order_id=order_id)
    photo = _image(body.get("photo"), "photo", order_id, required=True)
    sig = _image(body.get("signature"), "signature", order_id, required=False)
    order = PrintOrder(order_id=order_id, message_id=body["id"], issued_at=body["issued_at"],
                       expires_at=body["expires_at"], card=card, photo=photo or b"", signature=sig,
                       print_before=print_before, packet_id=packet_id)
    try:
        card_data = order.card_data()
    except CardLayoutError as exc:
        raise OrderRejectedError("invalid", str(exc), order_id=order_id) from exc
    try:
        # Render once now so data that cannot fit the card goes back to head office at once,
        # not days later when stock arrives.
        render_card(card_data)
    except CardLayoutError as exc:
        raise OrderRejectedError("layout", str(exc), order_id=order_id) from exc
    return order


def _image(value: Any, name: str, order_id: str, *, required: bool) -> bytes | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise OrderRejectedError("invalid", f"{name} must be base64 text", order_id=order_id)
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise OrderRejectedError("invalid", f"{name} is not base64", order_id=order_id) from exc
