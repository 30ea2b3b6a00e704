"""A simulated station publisher that follows the wire contract (docs/protocol.md) to the letter.

Tests and the benchmark drive receivers with it: it publishes packet chunks with the contract's
MQTT v5 user properties, asks for acks, verifies the signed acks it receives and resends what
head office reports missing. It is deliberately small and independent of the real uplink
(agent/uplink), so the receiver is checked against the contract, not against one implementation.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.envelope import EnvelopeError, ReplayGuard, open_envelope
from agent.uplink.topics import CONTENT_TYPE_CHUNK, ROOT


@dataclass(frozen=True)
class Delivery:
    """The outcome of :meth:`SimStation.deliver`."""

    status: str
    rounds: int
    reason: str


class SimStation:
    """One station's MQTT side, reduced to packet delivery and ack checking."""

    def __init__(self, host: str, port: int, station_id: str, *,
                 headoffice_keys: Mapping[str, Ed25519PublicKey], chunk_size: int = 65536,
                 window: int = 16) -> None:
        """Configure; :meth:`connect` opens the connection."""
        self.station_id = station_id
        self.host, self.port = host, port
        self.chunk_size = chunk_size
        self.headoffice_keys = dict(headoffice_keys)
        self.base = f"{ROOT}/{station_id}"
        self.acks: dict[str, list[dict[str, Any]]] = {}
        self.bad_acks = 0
        self._cond = threading.Condition()
        self._guard = ReplayGuard()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"sim-{station_id}", protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(window)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message

    def connect(self, timeout: float = 10.0) -> SimStation:
        """Connect and subscribe to this station's ack topic (bounded wait)."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.close()
            raise ConnectionError(f"sim station {self.station_id}: no SUBACK within {timeout} s")
        return self

    def close(self) -> None:
        """Disconnect; drop the callbacks so the client (and paho's socket pair) is freed."""
        self.client.disconnect()
        self.client.loop_stop()
        self.client.on_connect = None
        self.client.on_subscribe = None
        self.client.on_message = None

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if not reason.is_failure:
            client.subscribe(f"{self.base}/ack", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = open_envelope(bytes(msg.payload), topic=msg.topic, public_keys=self.headoffice_keys,
                                 station_id=self.station_id, now=datetime.now(UTC),
                                 seen=self._guard)
        except EnvelopeError:
            with self._cond:
                self.bad_acks += 1
            return
        with self._cond:
            self.acks.setdefault(str(body.get("packet_id")), []).append(body)
            self._cond.notify_all()

    # ------------------------------------------------------------------ publishing

    def _props(self, **user: str | int) -> Properties:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.UserProperty = [("v", "1"), *((k, str(v)) for k, v in user.items())]
        return props

    def chunk_count(self, data: bytes) -> int:
        """How many chunks ``data`` makes."""
        return max(1, -(-len(data) // self.chunk_size))

    def publish_chunks(self, packet_id: str, data: bytes, indices: Iterable[int] | None = None,
                       *, corrupt: Iterable[int] = ()) -> list[mqtt.MQTTMessageInfo]:
        """Publish some or all chunks of ``data`` (QoS 1); ``corrupt`` flips a byte in those."""
        n = self.chunk_count(data)
        bad = set(corrupt)
        infos = []
        packet_sha = hashlib.sha256(data).hexdigest()
        for i in (range(n) if indices is None else indices):
            off = i * self.chunk_size
            chunk = data[off:off + self.chunk_size]
            user: dict[str, str | int] = {
                "packet_id": packet_id, "chunk": i, "chunks": n, "chunk_size": self.chunk_size,
                "offset": off, "chunk_sha256": hashlib.sha256(chunk).hexdigest(),
            }
            if i == n - 1:
                user["packet_size"] = len(data)
                user["packet_sha256"] = packet_sha
            if i in bad:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            props = self._props(**user)
            props.ContentType = CONTENT_TYPE_CHUNK
            infos.append(self.client.publish(f"{self.base}/packet", chunk, qos=1,
                                             properties=props))
        return infos

    def query(self, packet_id: str, data: bytes) -> None:
        """Ask head office for the packet's state (an empty QoS 1 message)."""
        self.client.publish(f"{self.base}/packet", b"", qos=1, properties=self._props(
            packet_id=packet_id, query=1, packet_sha256=hashlib.sha256(data).hexdigest(),
            packet_size=len(data), chunks=self.chunk_count(data), chunk_size=self.chunk_size))

    def wait_ack(self, packet_id: str, after: int, timeout: float) -> dict[str, Any] | None:
        """The first ack for ``packet_id`` beyond the first ``after`` ones, or None on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.acks.get(packet_id, [])) <= after:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self.acks[packet_id][after]

    def final_ack(self, packet_id: str, timeout: float) -> dict[str, Any] | None:
        """The first "complete" or "rejected" ack for ``packet_id``, or None on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ack in self.acks.get(packet_id, []):
                    if ack.get("status") in ("complete", "rejected"):
                        return ack
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def deliver(self, packet_id: str, data: bytes, *, timeout: float = 30.0,
                ack_wait: float = 2.0, skip: Iterable[int] = ()) -> Delivery:
        """Send a packet until head office acks it complete or rejected, like a real station.

        ``skip`` leaves some chunks out of the first round (a simulated loss) so the query and
        resend path is exercised.
        """
        deadline = time.monotonic() + timeout
        skipped = set(skip)
        self.publish_chunks(packet_id, data,
                            [i for i in range(self.chunk_count(data)) if i not in skipped])
        rounds = 1
        seen = len(self.acks.get(packet_id, []))
        while time.monotonic() < deadline:
            ack = self.wait_ack(packet_id, seen, min(ack_wait, max(0.0, deadline - time.monotonic())))
            if ack is None:
                self.query(packet_id, data)
                continue
            seen += 1
            status = ack.get("status")
            if status in ("complete", "rejected"):
                return Delivery(str(status), rounds, str(ack.get("reason", "")))
            missing = ack.get("missing") or []
            if missing:
                rounds += 1
                infos = self.publish_chunks(packet_id, data, [int(i) for i in missing])
                # Like the real uplink, let the resent chunks reach the broker before asking
                # again, so a slow head office is not flooded with the same chunks every round.
                for info in infos:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        info.wait_for_publish(left)
                    except (RuntimeError, ValueError):
                        break  # not queued (link down): the next query round repairs it
        return Delivery("timeout", rounds, "")
