"""Signed messages head office sends to a station: print orders and commands (contract B).

Each builder returns ``(topic, payload)``: the payload is an envelope signed for exactly that
topic (agent.envelope.sign_envelope), so an order cannot be replayed as a command or to another
station. Every body carries a fresh unique ``id`` and head office's clock (``issued_at``), which
lets a station without a real-time clock notice that its own clock is wrong.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from agent.envelope import utc_iso
from agent.headoffice.receiver import AckSigner
from agent.uplink.topics import ROOT, check_station_id

# The station refuses anything else (DESIGN.md, "Commands from head office are few").
COMMAND_ACTIONS = ("diagnostics", "telemetry", "set", "rotate_keys")


def _body(kind: str, station_id: str, now: datetime, ttl_seconds: int) -> dict[str, Any]:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    return {
        "type": kind,
        "station_id": check_station_id(station_id),
        "id": str(uuid.uuid4()),
        "issued_at": utc_iso(now),
        "expires_at": utc_iso(now + timedelta(seconds=ttl_seconds)),
    }


def print_order(signer: AckSigner, station_id: str, *, card: Mapping[str, str], photo: bytes,
                now: datetime, signature: bytes | None = None,
                print_before: datetime | None = None, packet_id: str | None = None,
                ttl_seconds: int = 3 * 86400, order_id: str | None = None
                ) -> tuple[str, bytes]:
    """A signed order to print one card (the body agent.printing.orders parses).

    ``card`` holds the printed text fields (agent.printing.render.CardData), ``photo`` and
    ``signature`` the images (JPEG or PNG bytes). ``packet_id`` names the enrollment packet the
    card was approved from, for head office's records. None of it is logged here.
    """
    body = _body("print_order", station_id, now, ttl_seconds)
    body["order_id"] = order_id or body["id"]
    body["card"] = dict(card)
    body["photo"] = base64.b64encode(photo).decode("ascii")
    if signature is not None:
        body["signature"] = base64.b64encode(signature).decode("ascii")
    if print_before is not None:
        body["print_before"] = utc_iso(print_before)
    if packet_id is not None:
        body["packet_id"] = packet_id
    topic = f"{ROOT}/{station_id}/print/order"
    return topic, signer.sign(topic, body)


def command(signer: AckSigner, station_id: str, action: str, *, now: datetime,
            params: Mapping[str, Any] | None = None, ttl_seconds: int = 3600
            ) -> tuple[str, bytes]:
    """A signed command; ``action`` is one of :data:`COMMAND_ACTIONS`."""
    if action not in COMMAND_ACTIONS:
        raise ValueError(f"unknown command action {action!r} (known: {', '.join(COMMAND_ACTIONS)})")
    body = _body("command", station_id, now, ttl_seconds)
    body["action"] = action
    body["params"] = dict(params or {})
    topic = f"{ROOT}/{station_id}/command"
    return topic, signer.sign(topic, body)
