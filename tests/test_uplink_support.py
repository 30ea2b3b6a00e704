"""Helpers for the uplink tests (a minimal head-office responder, journals, station config),
plus unit tests of the uplink's small pure parts: topics, backoff, token bucket, ack schema."""

from __future__ import annotations

import hashlib
import os
import random
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config import JournalConfig, UplinkConfig
from agent.envelope import sign_envelope
from agent.journal import Journal
from agent.keys import key_id
from agent.uplink.backoff import Backoff
from agent.uplink.incoming import RejectedMessage, parse_ack
from agent.uplink.ratelimit import TokenBucket
from agent.uplink.topics import TopicError, Topics, parse_station_topic

# mosquitto started as root drops to the "mosquitto" user and then cannot write its log and
# persistence file (or read an ACL) under pytest's private tmp_path; keep it root in tests.
AS_ROOT = "user root" if os.geteuid() == 0 else ""

HO_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
HO_KID = key_id(HO_KEY.public_key())


def ho_public_keys() -> dict[str, Any]:
    """The verifying keys a station trusts in these tests."""
    return {HO_KID: HO_KEY.public_key()}


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ack_body(station: str, packet_id: str, status: str, **extra: Any) -> dict[str, Any]:
    """A head-office ack body (built by hand from docs/protocol.md, not by the station code)."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "type": "ack", "station_id": station, "id": str(uuid.uuid4()),
        "issued_at": iso(now), "expires_at": iso(now + timedelta(hours=1)),
        "packet_id": packet_id, "status": status, "packet_sha256": "", "missing": [],
        "chunk_size": 0, "reason": "",
    }
    body.update(extra)
    return body


def journal_cfg(**over: Any) -> JournalConfig:
    base: dict[str, Any] = dict(chunk_bytes=64 * 1024, max_packet_bytes=8 * 1024 * 1024,
                                max_bytes=256 * 1024 * 1024, free_disk_floor_bytes=0)
    base.update(over)
    return JournalConfig(**base)


def uplink_cfg(port: int, **over: Any) -> UplinkConfig:
    base: dict[str, Any] = dict(
        host="127.0.0.1", port=port, transport="tcp", keepalive_seconds=5,
        ack_timeout_seconds=2, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5,
        inflight_window=8, telemetry_seconds=1, puback_timeout_seconds=10,
    )
    base.update(over)
    return UplinkConfig(**base)


def save_packets(journal: Journal, station: str, sizes: list[int], *,
                 seed: int = 1, created: str = "2026-11-01T08:00:00.000000Z",
                 priority: int = 0) -> dict[str, bytes]:
    """Write packets of the given sizes into the journal; return packet_id -> bytes."""
    rng = random.Random(seed)
    out: dict[str, bytes] = {}
    for n, size in enumerate(sizes):
        pid = f"p{seed:03d}-{n:04d}"
        data = rng.randbytes(size)
        with journal.begin_packet(pid, station_id=station, created_at=created,
                                  priority=priority) as sink:
            for i in range(0, size, 100_000):  # streamed in pieces, as the packet writer does
                sink.write(data[i:i + 100_000])
            sink.commit()
        out[pid] = data
    return out


class HeadOffice:
    """A minimal head-office receiver for tests: assembles chunks, verifies, acks (signed).

    It follows docs/protocol.md on its own (it reads user properties and checks hashes itself)
    so the station code is tested against the contract, not against itself.
    """

    def __init__(self, port: int, *, client_id: str = "ho-test", answer: bool = True,
                 tls: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.answer = answer
        self.reject_reason: str | None = None
        self.lock = threading.Lock()
        self.parts: dict[str, dict[int, bytes]] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self.stored: dict[str, bytes] = {}
        self.store_count: Counter[str] = Counter()
        self.chunks_received = 0
        self.bad_chunks = 0
        self.queries = 0
        self.events: list[dict[str, Any]] = []
        self.statuses: list[bytes] = []
        self.print_results: list[bytes] = []
        self.telemetry: list[dict[str, Any]] = []
        self.first_seen: list[str] = []  # packet ids in the order their first chunk came
        self.acks_sent: list[dict[str, Any]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.connected = threading.Event()

    def start(self) -> HeadOffice:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", self.port, keepalive=5, clean_start=False,
                            properties=props)
        self.client.loop_start()
        assert self.connected.wait(10), "head office did not connect"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
        client.subscribe([("rekam/v1/+/packet", 1), ("rekam/v1/+/event", 1),
                          ("rekam/v1/+/status", 1), ("rekam/v1/+/print/result", 1),
                          ("rekam/v1/+/telemetry", 0)])
        self.connected.set()

    def _ack(self, station: str, body: dict[str, Any]) -> None:
        topic = f"rekam/v1/{station}/ack"
        self.acks_sent.append(body)
        self.client.publish(topic, sign_envelope(HO_KEY, HO_KID, topic, body), qos=1)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        station, leaf = parse_station_topic(msg.topic)
        if leaf == "event":
            import json
            self.events.append(json.loads(msg.payload))
            return
        if leaf == "telemetry":
            import json
            self.telemetry.append(json.loads(msg.payload))
            return
        if leaf == "print/result":
            self.print_results.append(bytes(msg.payload))
            return
        if leaf == "status":
            self.statuses.append(bytes(msg.payload))
            return
        props = dict(getattr(msg.properties, "UserProperty", []) or [])
        pid = props["packet_id"]
        with self.lock:
            if pid not in self.first_seen:
                self.first_seen.append(pid)
            meta = self.meta.setdefault(pid, {})
            meta["chunks"] = int(props["chunks"])
            meta["chunk_size"] = int(props["chunk_size"])
            if "packet_sha256" in props:
                meta["sha"] = props["packet_sha256"]
                meta["size"] = int(props["packet_size"])
            if props.get("query") == "1":
                self.queries += 1
                meta["sha"] = props["packet_sha256"]
                meta["size"] = int(props["packet_size"])
            else:
                self.chunks_received += 1
                data = bytes(msg.payload)
                if hashlib.sha256(data).hexdigest() != props["chunk_sha256"]:
                    self.bad_chunks += 1
                    return
                idx = int(props["chunk"])
                assert int(props["offset"]) == idx * meta["chunk_size"]
                self.parts.setdefault(pid, {})[idx] = data
            self._maybe_answer(station, pid, query=props.get("query") == "1")

    def _maybe_answer(self, station: str, pid: str, *, query: bool) -> None:
        meta = self.meta[pid]
        if not self.answer:
            return
        if self.reject_reason is not None and ("sha" in meta):
            self._ack(station, ack_body(station, pid, "rejected", reason=self.reject_reason))
            return
        if pid in self.stored:
            if query or True:
                self._ack(station, ack_body(station, pid, "complete", packet_sha256=meta["sha"]))
            return
        have = self.parts.get(pid, {})
        missing = [i for i in range(meta["chunks"]) if i not in have]
        if not missing and "sha" in meta:
            data = b"".join(have[i] for i in range(meta["chunks"]))
            if len(data) == meta["size"] and hashlib.sha256(data).hexdigest() == meta["sha"]:
                self.stored[pid] = data
                self.store_count[pid] += 1
                self.parts.pop(pid, None)
                self._ack(station, ack_body(station, pid, "complete", packet_sha256=meta["sha"]))
                return
        if query:
            self._ack(station, ack_body(station, pid, "missing", packet_sha256=meta["sha"],
                                        missing=missing, chunk_size=meta["chunk_size"]))


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll until ``predicate()`` is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


# ---------------------------------------------------------------- unit tests of pure parts

def test_topics_tree_and_refusals() -> None:
    t = Topics("st-1")
    assert t.packet == "rekam/v1/st-1/packet"
    assert t.subscriptions() == ["rekam/v1/st-1/ack", "rekam/v1/st-1/print/order",
                                 "rekam/v1/st-1/command"]
    assert t.incoming_leaf("rekam/v1/st-1/print/order") == "print/order"
    assert t.incoming_leaf("rekam/v1/st-2/ack") is None
    assert t.incoming_leaf("rekam/v1/st-1/packet") is None
    assert parse_station_topic("rekam/v1/st-9/print/result") == ("st-9", "print/result")
    for bad in ("a/b", "st/1", "+", "#", "", "x" * 65, "-lead"):
        with pytest.raises(TopicError):
            Topics(bad)
    for topic in ("rekam/v2/st-1/ack", "rekam/v1/st-1/nope", "rekam/v1/+/ack"):
        with pytest.raises(TopicError):
            parse_station_topic(topic)


@given(st.integers(min_value=0, max_value=500), st.integers(min_value=0, max_value=2**32))
def test_backoff_stays_in_bounds(failures: int, seed: int) -> None:
    b = Backoff(0.5, 30.0, rng=random.Random(seed))
    b.failures = failures
    delay = b.next_delay()
    assert 0.5 <= delay <= 30.0


def test_backoff_grows_and_resets_only_after_a_stable_connection() -> None:
    b = Backoff(1.0, 300.0, stable_after=60.0, rng=random.Random(3))
    ceilings = []
    for _ in range(12):
        ceilings.append(b.ceiling())
        b.next_delay()
    assert ceilings[:5] == [1.0, 2.0, 4.0, 8.0, 16.0] and ceilings[-1] == 300.0
    b.connected(100.0)
    b.disconnected(110.0)  # a flapping link: 10 s is not stable
    assert b.failures == 12
    b.connected(200.0)
    b.disconnected(300.0)
    assert b.failures == 0
    with pytest.raises(ValueError):
        Backoff(0, 1)


def test_token_bucket_average_rate_within_five_percent() -> None:
    rate = 1_000_000.0
    bucket = TokenBucket(rate, now=0.0)
    now, sent = 0.0, 0
    while now < 60.0:  # simulated time: send 256 KiB whenever allowed
        delay = bucket.delay(now)
        if delay > 0:
            now += delay
            continue
        bucket.consume(262_144, now)
        sent += 262_144
    assert abs(sent / now - rate) / rate < 0.05
    assert TokenBucket(0).delay(5.0) == 0.0
    with pytest.raises(ValueError):
        TokenBucket(-1)


@pytest.mark.parametrize("body, reason", [
    ({"status": "weird"}, "schema"),
    ({"status": "missing", "missing": "1,2", "chunk_size": 10}, "schema"),
    ({"status": "missing", "missing": [True], "chunk_size": 10}, "schema"),
    ({"status": "missing", "missing": [-1], "chunk_size": 10}, "schema"),
    ({"status": "missing", "missing": [1]}, "schema"),
    ({"status": "complete", "packet_sha256": "XYZ"}, "schema"),
    ({"status": "complete", "packet_id": "../etc"}, "schema"),
    ({"status": "rejected", "reason": None}, "schema"),
])
def test_ack_schema_refusals(body: dict[str, Any], reason: str) -> None:
    full = ack_body("st-1", "p1", "complete", packet_sha256="a" * 64)
    full.update(body)
    with pytest.raises(RejectedMessage) as exc:
        parse_ack(full)
    assert exc.value.reason == reason


def test_ack_schema_accepts_the_documented_examples() -> None:
    ack = parse_ack(ack_body("st-1", "p1", "missing", packet_sha256="b" * 64,
                             missing=[3, 1, 3], chunk_size=65536))
    assert ack.missing == (1, 3) and ack.chunk_size == 65536
    ack = parse_ack(ack_body("st-1", "p1", "rejected", reason="bad signature"))
    assert ack.status == "rejected" and ack.reason == "bad signature"


def test_random_bytes_helper_is_deterministic(tmp_path: Path) -> None:
    j = Journal.open(tmp_path, journal_cfg())
    try:
        a = save_packets(j, "st-1", [10, 70_000], seed=4)
        assert {k: len(v) for k, v in a.items()} == {"p004-0000": 10, "p004-0001": 70_000}
        assert j.read_range("p004-0001", 0, 70_000) == a["p004-0001"]
    finally:
        j.close()
    assert os.path.exists(tmp_path)
