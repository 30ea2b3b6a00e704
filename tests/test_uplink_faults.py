"""Link and process faults: station kill -9 and resume, half-open link, hostile messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from agent.envelope import sign_envelope
from agent.journal import Journal
from agent.testbed.linkproxy import LinkProxy
from agent.testbed.mosquitto import Mosquitto
from agent.uplink.client import Uplink
from tests.test_uplink_support import (
    HO_KEY,
    HO_KID,
    HeadOffice,
    ho_public_keys,
    iso,
    journal_cfg,
    save_packets,
    uplink_cfg,
    wait_for,
)

STATION = "st-1"
ROOT = Path(__file__).resolve().parents[1]

# The station as its own process, so the test can kill -9 it.
STATION_SCRIPT = """
import sys, time
from pathlib import Path
from agent.journal import Journal
from agent.uplink.client import Uplink
from tests.test_uplink_support import ho_public_keys, journal_cfg, uplink_cfg
state, port = Path(sys.argv[1]), int(sys.argv[2])
journal = Journal.open(state, journal_cfg())
up = Uplink(uplink_cfg(port, bandwidth_limit_bps=1_000_000), station_id="st-1",
            journal=journal, chunk_bytes=journal.cfg.chunk_bytes,
            public_keys=ho_public_keys, version="test")
up.start()
print("started", flush=True)
while True:
    time.sleep(1)
"""


def spawn_station(state: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", STATION_SCRIPT, str(state), str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None and proc.stdout.readline() == b"started\n"
    return proc


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    (tmp_path / "station").mkdir(mode=0o700)
    j = Journal.open(tmp_path / "station", journal_cfg())
    yield j
    j.close()


def test_station_killed_mid_transfer_resumes_from_missing_chunks(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    state = tmp_path / "station"
    state.mkdir(mode=0o700)
    journal = Journal.open(state, journal_cfg())
    packets = save_packets(journal, STATION, [640_000] * 6, seed=11)  # 10 chunks each
    journal.close()
    total_chunks = 10 * len(packets)
    ho = HeadOffice(mosquitto.port).start()
    proc = spawn_station(state, mosquitto.port)
    try:
        # Kill in the middle of a packet: some stored, the next one partly received.
        wait_for(lambda: len(ho.stored) >= 2 and any(ho.parts.values()), 60,
                 "a packet half-way through")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
        # The broker publishes the Last Will: the station is offline (retained).
        wait_for(lambda: bool(ho.statuses) and json.loads(ho.statuses[-1])["state"] == "offline",
                 10, "the Last Will")
        half_done = {pid: len(parts) for pid, parts in ho.parts.items() if parts}
        assert half_done, "the kill did not land mid-packet"
        received_before = ho.chunks_received
        proc = spawn_station(state, mosquitto.port)
        wait_for(lambda: len(ho.stored) == len(packets), 60, "every packet after restart")
        wait_for(lambda: all_purged(state, list(packets)), 20, "the station to take the acks")
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
        ho.stop()
    assert ho.stored == packets and set(ho.store_count.values()) == {1}
    assert ho.queries >= 1  # the restarted station asked before resending
    # Resumed, not restarted: after the restart head office got at most the chunks it lacked
    # (plus at most one window of chunks that were in flight at the kill).
    resent = ho.chunks_received - received_before
    assert resent <= total_chunks - received_before + 8
    assert resent < total_chunks - sum(half_done.values()) + 8


def all_purged(state: Path, ids: list[str]) -> bool:
    """Read the live station's journal from beside it (no recovery, as a CLI tool would)."""
    journal = Journal.open(state, journal_cfg(), recover=False)
    try:
        return all((info := journal.packet(p)) is not None and info.state == "purged"
                   for p in ids)
    finally:
        journal.close()


def test_half_open_link_detected_and_recovered(mosquitto: Mosquitto, journal: Journal) -> None:
    packets = save_packets(journal, STATION, [200_000] * 12, seed=12)
    ho = HeadOffice(mosquitto.port).start()
    with LinkProxy(mosquitto.port) as proxy:
        up = Uplink(uplink_cfg(proxy.port, keepalive_seconds=2, bandwidth_limit_bps=1_000_000,
                               puback_timeout_seconds=60),
                    station_id=STATION, journal=journal, chunk_bytes=journal.cfg.chunk_bytes,
                    public_keys=ho_public_keys, version="test")
        up.start()
        try:
            wait_for(lambda: len(ho.stored) >= 2, 30, "transfer under way")
            proxy.blackhole(True)  # no FIN, no RST: only the keepalive can tell
            # paho pings after one keepalive of silence and gives up one keepalive later.
            wait_for(lambda: up.link_state != "connected", 3 * 2 + 2, "half-open detection")
            assert up.last_error
            proxy.blackhole(False)
            wait_for(lambda: len(ho.stored) == len(packets), 60, "recovery after the link")
        finally:
            up.stop()
            ho.stop()
    assert ho.stored == packets and set(ho.store_count.values()) == {1}
    assert up.connects >= 2


class Injector:
    """A client that publishes raw payloads onto the station's head-office topics."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="injector",
                                  protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, leaf: str, payload: bytes) -> None:
        self.client.publish(f"rekam/v1/{STATION}/{leaf}", payload, qos=1).wait_for_publish(5)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def body(kind: str, **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    b: dict[str, Any] = {"type": kind, "station_id": STATION, "id": os.urandom(8).hex(),
                         "issued_at": iso(now), "expires_at": iso(now + timedelta(hours=1))}
    b.update(extra)
    return b


def signed(leaf: str, b: dict[str, Any], key: Ed25519PrivateKey = HO_KEY,
           kid: str = HO_KID) -> bytes:
    return sign_envelope(key, kid, f"rekam/v1/{STATION}/{leaf}", b)


def test_hostile_messages_are_rejected_and_the_agent_runs_on(
        mosquitto: Mosquitto, journal: Journal) -> None:
    up = Uplink(uplink_cfg(mosquitto.port), station_id=STATION, journal=journal,
                chunk_bytes=journal.cfg.chunk_bytes, public_keys=ho_public_keys,
                version="test")
    got: list[dict[str, Any]] = []
    done = threading.Event()

    def on_command(b: dict[str, Any]) -> None:
        got.append(b)
        if b.get("name") == "last":
            done.set()

    up.register_handler("command", on_command)
    up.register_handler("print/order", lambda b: got.append(b))
    up.start()
    inj = Injector(mosquitto.port)
    try:
        wait_for(lambda: up.link_state == "connected", 10, "station connected")
        wait_for(lambda: up.connects == 1 and up.sender.window > 0, 5, "subscriptions")
        good = signed("command", body("command", name="first"))
        stranger = Ed25519PrivateKey.generate()
        past = datetime.now(UTC) - timedelta(hours=2)
        hostile = {
            "malformed": (b"{not json", "command"),
            "nan": (b'{"v":1,"kid":"k","body":NaN,"sig":"x"}', "command"),
            "oversized": (b"{" + b" " * 70_000 + b"}", "command"),
            "unsigned": (b'{"v":1,"kid":"' + HO_KID.encode() + b'","body":"e30=","sig":"AAAA"}',
                         "ack"),
            "unknown key": (signed("command", body("command"), stranger, "someone"), "command"),
            "forged": (signed("command", body("command"), stranger, HO_KID), "command"),
            "foreign station": (signed("ack", body("ack", station_id="st-2", packet_id="p",
                                                   status="complete", packet_sha256="0" * 64)),
                                "ack"),
            "expired": (signed("command", body("command", issued_at=iso(past),
                                               expires_at=iso(past + timedelta(minutes=5)))),
                        "command"),
            "other topic": (signed("print/order", body("command")), "command"),
            "wrong type": (signed("print/order", body("command")), "print/order"),
            "bad ack schema": (signed("ack", body("ack", packet_id="p", status="maybe")), "ack"),
        }
        inj.send("command", good)
        for payload, leaf in hostile.values():
            inj.send(leaf, payload)
        inj.send("command", good)  # replayed
        inj.send("command", signed("command", body("command", name="last")))
        assert done.wait(10), "the valid command after the hostile ones did not arrive"
    finally:
        inj.stop()
        up.stop()
    assert [b["name"] for b in got] == ["first", "last"]
    # Every rejection is journaled as an event (some were already published and marked sent).
    rows = journal.db.execute("SELECT payload FROM events WHERE kind = 'uplink_message_rejected'")
    reasons = [json.loads(r[0])["reason"] for r in rows.fetchall()]
    assert len(reasons) == len(hostile) + 1
    assert set(reasons) >= {"MalformedError", "OversizedError", "BadSignatureError",
                            "UnknownKeyError", "WrongStationError", "ExpiredError",
                            "ReplayedError", "schema"}
    assert up.rejected_messages == len(hostile) + 1


def test_replay_refused_across_a_station_restart(mosquitto: Mosquitto, journal: Journal) -> None:
    order = signed("command", body("command", name="once"))
    got: list[str] = []

    def run_once() -> Uplink:
        up = Uplink(uplink_cfg(mosquitto.port), station_id=STATION, journal=journal,
                    chunk_bytes=journal.cfg.chunk_bytes, public_keys=ho_public_keys,
                    version="test")
        up.register_handler("command", lambda b: got.append(b["name"]))
        up.start()
        wait_for(lambda: up.link_state == "connected", 10, "station connected")
        return up

    inj = Injector(mosquitto.port)
    try:
        up = run_once()
        try:
            wait_for(lambda: up.connects == 1, 5, "subscribed")
            inj.send("command", order)
            wait_for(lambda: got == ["once"], 10, "the command")
        finally:
            up.stop()
        up = run_once()  # a restarted station: a new process would load the same journal
        try:
            inj.send("command", order)
            wait_for(lambda: up.rejected_messages == 1, 10, "the replay refused")
        finally:
            up.stop()
    finally:
        inj.stop()
    assert got == ["once"]


def test_outage_longer_than_the_puback_timeout(mosquitto: Mosquitto, journal: Journal) -> None:
    # Regression: PUBACK clocks of messages in flight when the link went down must restart on
    # the new connection, or every reconnect after a long outage is dropped at once.
    packets = save_packets(journal, STATION, [200_000] * 8, seed=71)
    ho = HeadOffice(mosquitto.port).start()
    with LinkProxy(mosquitto.port) as proxy:
        up = Uplink(uplink_cfg(proxy.port, puback_timeout_seconds=2,
                               bandwidth_limit_bps=800_000),
                    station_id=STATION, journal=journal, chunk_bytes=journal.cfg.chunk_bytes,
                    public_keys=ho_public_keys, version="test")
        up.start()
        try:
            wait_for(lambda: len(ho.stored) >= 1, 20, "transfer under way")
            # From now on chunks go into the black hole and get no PUBACK (the cap keeps the
            # transfer going for seconds more, so there is always a next chunk).
            proxy.blackhole(True)
            wait_for(lambda: up.link_state != "connected", 15, "the PUBACK timeout to fire")
            proxy.refuse(True)
            proxy.drop()
            proxy.blackhole(False)
            time.sleep(3)  # the outage outlasts the PUBACK timeout
            proxy.set_latency(0.05)  # a real link: PUBACKs come a round trip after CONNACK
            proxy.refuse(False)
            # About 2 s of sending is left; flapping reconnects (the bug) take far longer.
            wait_for(lambda: len(ho.stored) == len(packets), 20, "delivery after the outage")
        finally:
            up.stop()
            ho.stop()
    assert ho.stored == packets and set(ho.store_count.values()) == {1}
