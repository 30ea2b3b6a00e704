"""Forged, unsigned, wrongly signed, expired, replayed and wrong-station print orders and commands,
sent through a real mosquitto to a running station daemon (emulated printer with blank cards).

None is executed: not one card is printed and no setting changes. Each is journaled as a
security event (``uplink_message_rejected`` with the reason) that reaches head office on the
``event`` topic, and neither that event nor the daemon's log carries the message's payload
(a canary string in every hostile message is searched for). A valid order and a valid command
sent afterwards ARE carried out, so the zero counts above mean something; their replays are not.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from agent.keys import HeadOfficeKeys, generate_headoffice_keys, key_id
from agent.printing.orders import CARD_FIELDS
from agent.printing.samples import sample_card, sample_photo
from agent.testbed.mosquitto import Mosquitto
from agent.testbed.station import SimulatedStation

STATION = "st-sec-01"
BASE = f"rekam/v1/{STATION}"
CANARY = "CANARY-" + secrets.token_hex(8)


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _sign(key: Ed25519PrivateKey, kid: str, topic: str, body: dict[str, Any] | bytes) -> bytes:
    """An envelope built from the contract text (independent of agent.envelope.sign_envelope)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sig = key.sign(b"rekam-envelope-v1\0" + topic.encode() + b"\0" + raw)
    return json.dumps({"v": 1, "kid": kid, "body": base64.b64encode(raw).decode(),
                       "sig": base64.b64encode(sig).decode()}).encode()


def _body(kind: str, *, station: str = STATION, ttl: timedelta = timedelta(minutes=10),
          issued: timedelta = timedelta(minutes=-1), **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    body: dict[str, Any] = {"type": kind, "station_id": station, "id": str(uuid.uuid4()),
                            "issued_at": (now + issued).isoformat(),
                            "expires_at": (now + issued + ttl).isoformat()}
    body.update(extra)
    return body


def _order(**over: Any) -> dict[str, Any]:
    buf = io.BytesIO()
    sample_photo().save(buf, format="JPEG", quality=70)
    card = sample_card()
    fields = {f: getattr(card, f) for f in CARD_FIELDS}
    order_id = "ord-" + uuid.uuid4().hex[:12]
    body = _body("print_order", order_id=order_id, card=fields,
                 photo=base64.b64encode(buf.getvalue()).decode(), **over)
    return body


def _hostile_card(body: dict[str, Any]) -> dict[str, Any]:
    # The canary goes where a leak would show it: a printed text field (not the ids, which
    # may legitimately be logged).
    name_field = next(f for f in CARD_FIELDS if "name" in f or "nama" in f)
    body["card"] = {**body["card"], name_field: CANARY}
    return body


def _set_command(**over: Any) -> dict[str, Any]:
    return _body("command", action="set", params={"uplink.telemetry_seconds": 61}, note=CANARY, **over)


class HeadOfficeProbe:
    """Head office's side on the broker: publishes to the station, collects its events."""

    def __init__(self, port: int) -> None:
        self.events: list[dict[str, Any]] = []
        self.status: list[str] = []
        self.raw_events: list[bytes] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ho-probe", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.ready = threading.Event()
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.subscribe([(f"{BASE}/event", 1), (f"{BASE}/status", 1)])
        self.client.loop_start()
        assert self.ready.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            if msg.topic.endswith("/event"):
                self.raw_events.append(bytes(msg.payload))
                self.events.append(json.loads(msg.payload))
            else:
                self.status.append(json.loads(msg.payload).get("state", ""))

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["kind"] == kind]

    def send(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def office(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[SimulatedStation, HeadOfficeProbe, HeadOfficeKeys]]:
    ho_keys = generate_headoffice_keys(tmp_path / "ho", now=datetime.now(UTC))
    station = SimulatedStation(tmp_path / "station", station_id=STATION, broker_port=mosquitto.port,
                               uplink_enabled=True, printer=True)
    station.prepare(headoffice_bundle=tmp_path / "ho" / "headoffice_bundle.json")
    res = station.cli("stock", "add", "5", "--batch", "SEC-1")
    assert res.returncode == 0, res.stderr
    probe = HeadOfficeProbe(mosquitto.port)
    station.start()
    try:
        wait_for(lambda: "online" in probe.status, 60, "the station's uplink online")
        yield station, probe, ho_keys
    finally:
        station.stop()
        probe.stop()


def _cards(station: SimulatedStation) -> list[Path]:
    folder = station.workdir / "cards"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_hostile_orders_and_commands_are_refused_logged_and_never_executed(
        office: tuple[SimulatedStation, HeadOfficeProbe, HeadOfficeKeys]) -> None:
    station, probe, ho = office
    kid = key_id(ho.signing.public_key())
    attacker = Ed25519PrivateKey.generate()
    order_topic, command_topic = f"{BASE}/print/order", f"{BASE}/command"

    hostile: dict[str, tuple[str, bytes, str]] = {}
    def hostile_order(**over: Any) -> dict[str, Any]:
        return _hostile_card(_order(**over))

    makers: tuple[tuple[str, str, Callable[..., dict[str, Any]]], ...] = (
        ("order", order_topic, hostile_order), ("command", command_topic, _set_command))
    for leaf, topic, make in makers:
        hostile[f"{leaf} forged (attacker key under head office's kid)"] = (
            topic, _sign(attacker, kid, topic, make()), "BadSignatureError")
        hostile[f"{leaf} unknown kid"] = (topic, _sign(attacker, key_id(attacker.public_key()), topic, make()),
                                          "UnknownKeyError")
        hostile[f"{leaf} unsigned (bare JSON body)"] = (topic, json.dumps(make()).encode(), "MalformedError")
        unsigned = json.loads(_sign(ho.signing, kid, topic, make()))
        unsigned["sig"] = ""
        hostile[f"{leaf} unsigned (empty sig)"] = (topic, json.dumps(unsigned).encode(), "BadSignatureError")
        other = command_topic if topic == order_topic else order_topic
        hostile[f"{leaf} wrongly signed (for another topic)"] = (
            topic, _sign(ho.signing, kid, other, make()), "BadSignatureError")
        hostile[f"{leaf} expired"] = (topic, _sign(ho.signing, kid, topic, make(
            issued=timedelta(hours=-2), ttl=timedelta(hours=1))), "ExpiredError")
        hostile[f"{leaf} wrong station"] = (topic, _sign(ho.signing, kid, topic, make(station="st-other-02")),
                                            "WrongStationError")
        hostile[f"{leaf} oversized"] = (topic, b'{"pad": "' + CANARY.encode() * 9000 + b'"}', "OversizedError")
    for name, (topic, payload, _reason) in hostile.items():
        assert CANARY.encode() in payload or b"body" in payload, name
        probe.send(topic, payload)

    wait_for(lambda: len(probe.kinds("uplink_message_rejected")) >= len(hostile), 60,
             "one security event per hostile message at head office")
    reasons = sorted(e["data"]["reason"] for e in probe.kinds("uplink_message_rejected"))
    assert reasons == sorted(r for _t, _p, r in hostile.values())
    assert {e["data"]["topic"] for e in probe.kinds("uplink_message_rejected")} == {"print/order", "command"}

    # The valid order and command now: carried out (so the zeros above are meaningful) ...
    good_order = _order()
    good_order_payload = _sign(ho.signing, kid, order_topic, good_order)
    probe.send(order_topic, good_order_payload)
    good_cmd_payload = _sign(ho.signing, kid, command_topic, _body(
        "command", action="set", params={"uplink.telemetry_seconds": 61}))
    probe.send(command_topic, good_cmd_payload)
    wait_for(lambda: len(_cards(station)) == 1, 90, "the valid order's card")
    wait_for(lambda: len(probe.kinds("command_result")) == 1, 30, "the valid command's result")
    assert probe.kinds("command_result")[0]["data"]["outcome"] == "done"
    assert json.loads((station.state_dir / "settings.json").read_text())["uplink"]["telemetry_seconds"] == 61

    # ... and their replays are refused: still one card, one command result.
    probe.send(order_topic, good_order_payload)
    probe.send(command_topic, good_cmd_payload)
    wait_for(lambda: len(probe.kinds("uplink_message_rejected")) >= len(hostile) + 2, 60, "replay events")
    replays = [e["data"]["reason"] for e in probe.kinds("uplink_message_rejected")[len(hostile):]]
    assert replays == ["ReplayedError", "ReplayedError"]
    time.sleep(2.0)  # give a wrongly accepted replay the time to print (the worker polls)
    assert len(_cards(station)) == 1
    assert len(probe.kinds("command_result")) == 1

    # No payload in the security events nor in the daemon's log.
    assert all(CANARY.encode() not in raw for raw in probe.raw_events)
    assert CANARY not in station.log_tail(10_000_000)
