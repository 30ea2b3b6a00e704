"""Head-office receiver against a real mosquitto, real packets and both storage backends.

Stations are simulated by agent.headoffice.simstation, which follows the wire contract directly
(it shares no code with the receiver), and packets are built with the real agent.packet writer.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.headoffice.config import HeadOfficeConfig, parse_headoffice_config
from agent.headoffice.pgserver import PgServer, PgServerError
from agent.headoffice.receiver import AckSigner, Receiver, packet_verifier
from agent.headoffice.simstation import SimStation
from agent.headoffice.storage import STORED, Storage
from agent.headoffice.storage_pg import PostgresStorage
from agent.headoffice.storage_sqlite import SqliteStorage
from agent.keys import HeadOfficeKeys, generate_headoffice_keys, key_id
from agent.packet import PacketWriter, new_packet_id
from agent.testbed.mosquitto import Mosquitto

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    """One real PostgreSQL server for the module (initdb costs about a second)."""
    try:
        server = PgServer().start()
    except PgServerError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL must run in CI: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()


def fresh_pg_dsn(pg: PgServer) -> str:
    """A new empty database on the shared server, so tests do not see each other's rows."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"host=127.0.0.1 port={pg.port} user=postgres dbname={name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run a test once per storage backend."""
    return str(request.param)


class World:
    """Keys, stations, a broker, storage and receivers for one test."""

    def __init__(self, tmp: Path, broker: Mosquitto, backend: str, dsn: str | None) -> None:
        self.tmp = tmp
        self.broker = broker
        self.backend = backend
        self.dsn = dsn
        self.ho: HeadOfficeKeys = generate_headoffice_keys(tmp / "hokeys", now=datetime.now(UTC))
        self.station_keys: dict[str, Ed25519PrivateKey] = {}
        self.receivers: list[Receiver] = []
        self.sims: list[SimStation] = []
        self.storages: list[Storage] = []

    def add_station(self, sid: str) -> Ed25519PrivateKey:
        key = Ed25519PrivateKey.generate()
        self.station_keys[sid] = key
        return key

    def config(self) -> HeadOfficeConfig:
        stations = {}
        for sid, key in self.station_keys.items():
            pub = self.tmp / f"{sid}.pub"
            pub.write_bytes(key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
            stations[sid] = {"public_key": str(pub)}
        storage: dict[str, Any] = {"backend": self.backend, "folder": str(self.tmp / "store")}
        if self.dsn:
            (self.tmp / "dsn").write_text(self.dsn)
            storage["dsn_file"] = str(self.tmp / "dsn")
        return parse_headoffice_config({
            "broker": {"host": "127.0.0.1", "port": self.broker.port, "transport": "tcp"},
            "receiver": {"group": "ingest", "lease_seconds": 1.0},
            "storage": storage,
            "keys": {"directory": str(self.tmp / "hokeys")},
            "stations": stations,
        })

    def storage(self) -> Storage:
        folder = self.tmp / "store"
        st: Storage = (PostgresStorage(self.dsn, folder) if self.dsn
                       else SqliteStorage(folder))
        self.storages.append(st)
        return st

    def receiver(self, name: str | None = None) -> Receiver:
        cfg = self.config()
        from agent.headoffice.receiver import load_station_keys

        rx = Receiver(
            cfg, self.storage(),
            verify=packet_verifier(self.ho.encryption, load_station_keys(cfg)),
            signer=AckSigner(self.ho.signing, key_id(self.ho.signing.public_key())),
            client_id=name,
        )
        self.receivers.append(rx.start())
        return rx

    def sim(self, sid: str, chunk_size: int = 4096) -> SimStation:
        s = SimStation("127.0.0.1", self.broker.port, sid, chunk_size=chunk_size,
                       headoffice_keys={key_id(self.ho.signing.public_key()):
                                        self.ho.signing.public_key()}).connect()
        self.sims.append(s)
        return s

    def packet(self, sid: str, size: int = 20_000, *, key: Ed25519PrivateKey | None = None
               ) -> tuple[str, bytes]:
        pid = new_packet_id()
        buf = io.BytesIO()
        w = PacketWriter(buf, station_id=sid, packet_id=pid,
                         station_signing_key=key or self.station_keys[sid],
                         headoffice_encryption_key=self.ho.encryption.public_key(),
                         chunk_size=4096)
        w.add_item("face.jpg", os.urandom(size), kind="face", format="jpeg")
        w.finish(biodata={"note": "test"})
        return pid, buf.getvalue()

    def close(self) -> None:
        for s in self.sims:
            s.close()
        for r in self.receivers:
            r.stop()
        for st in self.storages:
            st.close()


@pytest.fixture
def world_factory(tmp_path: Path, mosquitto: Mosquitto,
                  request: pytest.FixtureRequest) -> Iterator[Callable[[str], World]]:
    """Build a World for a backend (PostgreSQL gets a fresh database on the module's server)."""
    made: list[World] = []

    def make(backend: str) -> World:
        dsn = fresh_pg_dsn(request.getfixturevalue("pg")) if backend == "postgresql" else None
        w = World(tmp_path / f"w{len(made)}", mosquitto, backend, dsn)
        (tmp_path / f"w{len(made)}").mkdir(parents=True, exist_ok=True)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll a condition with a bound (no timing assertion: only 'eventually')."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def stored_bytes(st: Storage, pid: str) -> bytes:
    rec = st.packet(pid)
    assert rec is not None and rec.state == STORED
    return st.packet_path(rec).read_bytes()


# --------------------------------------------------------------------------- tests


def test_packet_is_stored_verified_and_acked(world_factory: Callable[[str], World]) -> None:
    w = world_factory("sqlite")
    w.add_station("st-a")
    rx = w.receiver()
    sim = w.sim("st-a")
    pid, data = w.packet("st-a")
    result = sim.deliver(pid, data)
    assert result.status == "complete"
    ack = sim.acks[pid][-1]
    assert ack["packet_sha256"] == hashlib.sha256(data).hexdigest()
    assert ack["station_id"] == "st-a" and ack["type"] == "ack"
    assert stored_bytes(rx.storage, pid) == data
    assert sim.bad_acks == 0


def test_duplicate_copy_is_acked_again_not_stored_twice(
        world_factory: Callable[[str], World], backend: str) -> None:
    w = world_factory(backend)
    w.add_station("st-a")
    rx = w.receiver()
    sim = w.sim("st-a")
    pid, data = w.packet("st-a")
    assert sim.deliver(pid, data).status == "complete"
    assert sim.deliver(pid, data).status == "complete"
    assert wait_for(lambda: rx.stats.duplicates >= 1)
    assert rx.stats.stored == 1
    assert rx.storage.stored_count() == 1  # type: ignore[attr-defined]
    files = list((w.tmp / "store" / "packets").rglob("*.rkp"))
    assert len(files) == 1


def test_lost_and_corrupted_chunks_are_reported_missing_and_resent(
        world_factory: Callable[[str], World]) -> None:
    w = world_factory("sqlite")
    w.add_station("st-a")
    rx = w.receiver()
    sim = w.sim("st-a")
    pid, data = w.packet("st-a", 30_000)
    n = sim.chunk_count(data)
    # Chunk 2 arrives corrupted (its sha256 no longer matches) and chunks 3, 4 never arrive.
    sim.publish_chunks(pid, data, [2], corrupt=[2])
    result = sim.deliver(pid, data, skip={2, 3, 4})
    assert result.status == "complete"
    assert result.rounds >= 2
    assert rx.stats.bad_chunks >= 1
    assert stored_bytes(rx.storage, pid) == data
    assert n > 5


def test_tampered_packet_is_rejected_with_reason(world_factory: Callable[[str], World]) -> None:
    w = world_factory("sqlite")
    w.add_station("st-a")
    rx = w.receiver()
    sim = w.sim("st-a")
    pid, data = w.packet("st-a")
    # Flip one byte of the encrypted body; the chunk and packet hashes are recomputed by the
    # sender, so only the packet's own authentication can catch it.
    tampered = bytearray(data)
    tampered[len(data) // 2] ^= 0x01
    result = sim.deliver(pid, bytes(tampered))
    assert result.status == "rejected"
    assert "TamperedError" in result.reason
    rec = rx.storage.packet(pid)
    assert rec is not None and rec.state == "rejected"
    assert not list((w.tmp / "store" / "packets").rglob("*.rkp"))
    # The station's next (untampered) attempt under the same id is accepted.
    assert sim.deliver(pid, data).status == "complete"


def test_foreign_signature_and_unregistered_station_are_rejected(
        world_factory: Callable[[str], World]) -> None:
    w = world_factory("sqlite")
    w.add_station("st-a")
    w.add_station("st-b")
    w.receiver()
    sim_a = w.sim("st-a")
    # st-b's packet published under st-a's topic: signed by the wrong station.
    pid, data = w.packet("st-b")
    res = sim_a.deliver(pid, data)
    assert res.status == "rejected"
    assert "Station" in res.reason or "Signature" in res.reason
    # A packet signed with a key head office never registered.
    pid2, data2 = w.packet("st-a", key=Ed25519PrivateKey.generate())
    res2 = sim_a.deliver(pid2, data2)
    assert res2.status == "rejected" and "BadSignatureError" in res2.reason
    # A station that is not in the config at all.
    sim_x = w.sim("st-unknown")
    w.station_keys["st-unknown"] = Ed25519PrivateKey.generate()
    pid3, data3 = w.packet("st-unknown")
    res3 = sim_x.deliver(pid3, data3)
    assert res3.status == "rejected" and "not registered" in res3.reason


def test_receiver_killed_mid_packet_then_restarted_loses_nothing(
        world_factory: Callable[[str], World], backend: str) -> None:
    w = world_factory(backend)
    w.add_station("st-a")
    rx1 = w.receiver("rx-1")
    sim = w.sim("st-a")
    pid, data = w.packet("st-a", 40_000)
    n = sim.chunk_count(data)
    half = list(range(n // 2))
    sim.publish_chunks(pid, data, half)
    assert wait_for(lambda: (rx1.storage.packet(pid) or _none()).received_count == len(half))
    rx1.kill()  # no DISCONNECT: as if the process died
    rx2 = w.receiver("rx-2")  # the restart, on the same shared storage
    result = sim.deliver(pid, data, skip=set(half))
    assert result.status == "complete"
    assert stored_bytes(rx2.storage, pid) == data


def test_assembler_killed_holding_the_lease_is_replaced(
        world_factory: Callable[[str], World], backend: str) -> None:
    w = world_factory(backend)
    w.add_station("st-a")
    sim = w.sim("st-a")
    pid, data = w.packet("st-a")
    # Every chunk lands, but the receiver that claimed the assembly died before storing it.
    rx1 = w.receiver("rx-1")
    sim.publish_chunks(pid, data, range(sim.chunk_count(data) - 1))
    assert wait_for(lambda: (rx1.storage.packet(pid) or _none()).received_count
                    == sim.chunk_count(data) - 1)
    rx1.kill()
    st = w.storage()
    from agent.headoffice.storage import ChunkMeta

    n = sim.chunk_count(data)
    last = data[(n - 1) * 4096:]
    st.put_chunk(ChunkMeta("st-a", pid, n - 1, n, 4096, (n - 1) * 4096,
                           hashlib.sha256(last).hexdigest(), len(data),
                           hashlib.sha256(data).hexdigest()), last)
    assert st.claim(pid, "dead-receiver", lease_seconds=1.0)
    rx2 = w.receiver("rx-2")
    # While the lease holds, queries are answered "missing" with nothing missing (in progress);
    # once it runs out the next query makes rx2 finish the packet.
    assert sim.deliver(pid, data, skip=range(n), ack_wait=0.5).status == "complete"
    assert stored_bytes(rx2.storage, pid) == data


def test_two_receivers_in_a_group_store_each_packet_once(
        world_factory: Callable[[str], World], backend: str) -> None:
    w = world_factory(backend)
    stations = [f"st-{i}" for i in range(4)]
    for sid in stations:
        w.add_station(sid)
    rx1 = w.receiver("rx-1")
    rx2 = w.receiver("rx-2")
    sims = {sid: w.sim(sid) for sid in stations}
    packets = {sid: [w.packet(sid, 12_000) for _ in range(3)] for sid in stations}
    # Publish everything first so chunks of one packet interleave across both receivers.
    for sid, items in packets.items():
        for pid, data in items:
            sims[sid].publish_chunks(pid, data)
    for sid, items in packets.items():
        for pid, data in items:
            assert sims[sid].deliver(pid, data).status == "complete"
    st = rx1.storage
    assert st.stored_count() == 12  # type: ignore[attr-defined]
    assert rx1.stats.stored + rx2.stats.stored == 12
    assert rx1.stats.chunks > 0 and rx2.stats.chunks > 0
    for items in packets.values():
        for pid, data in items:
            assert stored_bytes(st, pid) == data
    assert len(list((w.tmp / "store" / "packets").rglob("*.rkp"))) == 12


def test_status_telemetry_and_events_are_recorded(world_factory: Callable[[str], World]) -> None:
    import json

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    w = world_factory("sqlite")
    w.add_station("st-a")
    rx = w.receiver()
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="st-a-raw",
                    protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", w.broker.port)
    c.loop_start()
    try:
        base = "rekam/v1/st-a"
        c.publish(f"{base}/status", json.dumps({"v": 1, "state": "online", "version": "0.9",
                                                "started_at": "2026-01-01T00:00:00Z"}),
                  qos=1, retain=True).wait_for_publish(5)
        c.publish(f"{base}/telemetry", json.dumps({"v": 1, "backlog": {"packets": 7},
                                                   "stock": {"blanks": 40}}), qos=1)
        ev = {"v": 1, "id": "e-1", "kind": "low_stock", "at": "2026-01-01T01:00:00Z"}
        for _ in range(2):  # at-least-once delivery: the same event twice is recorded once
            c.publish(f"{base}/event", json.dumps(ev), qos=1).wait_for_publish(5)
        # Garbage on every leaf must be ignored without stopping the receiver.
        for leaf in ("status", "telemetry", "event"):
            c.publish(f"{base}/{leaf}", b'{"v":1,"v":2}', qos=1).wait_for_publish(5)
        c.publish(f"{base}/telemetry", b"[" * 5000, qos=1).wait_for_publish(5)
        c.publish(f"{base}/status", b"", qos=1, retain=True).wait_for_publish(5)
        c.publish(f"{base}/event", json.dumps({**ev, "id": "e-2"}), qos=1).wait_for_publish(5)

        def seen() -> bool:
            rows = rx.storage.stations()
            return bool(rows) and rows[0].events == 2 and rows[0].telemetry is not None
        assert wait_for(seen)
        row = rx.storage.stations()[0]
        assert row.station_id == "st-a" and row.online is True and row.version == "0.9"
        assert row.telemetry == {"v": 1, "backlog": {"packets": 7}, "stock": {"blanks": 40}}
    finally:
        c.disconnect()
        c.loop_stop()


def test_malformed_chunk_messages_are_ignored_and_receiver_runs_on(
        world_factory: Callable[[str], World]) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    w = world_factory("sqlite")
    w.add_station("st-a")
    rx = w.receiver()
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="evil",
                    protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", w.broker.port)
    c.loop_start()
    good = {"v": "1", "packet_id": "p1", "chunk": "0", "chunks": "2", "chunk_size": "4",
            "offset": "0", "chunk_sha256": hashlib.sha256(b"abcd").hexdigest()}
    cases: list[dict[str, str]] = [
        {},
        {**good, "v": "2"},
        {**good, "packet_id": "../etc"},
        {**good, "chunk": "5"},
        {**good, "offset": "4"},
        {**good, "chunk_size": "-1"},
        {**good, "chunk_sha256": "00" * 32},
        {**good, "chunks": "99999999999999999999999"},
        {**good, "chunk": "1", "offset": "4"},  # last chunk without packet_size/sha
    ]
    try:
        for props_d in cases:
            p = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            p.UserProperty = list(props_d.items())
            c.publish("rekam/v1/st-a/packet", b"abcd", qos=1, properties=p).wait_for_publish(5)
        c.publish("rekam/v1/st-a/packet", b"abcd", qos=1).wait_for_publish(5)
    finally:
        c.disconnect()
        c.loop_stop()
    sim = w.sim("st-a")
    pid, data = w.packet("st-a")
    assert sim.deliver(pid, data).status == "complete"
    assert rx.stats.stored == 1
    assert rx.storage.packet("p1") is None  # nothing of the bad chunks was stored


def _none() -> Any:
    class _Empty:
        received_count = 0
    return _Empty()


def test_unexpected_error_in_one_packet_does_not_stop_the_receiver(
        world_factory: Callable[[str], World]) -> None:
    w = world_factory("sqlite")
    w.add_station("st-a")
    rx = w.receiver()
    real_verify = rx.verify
    calls = {"n": 0}

    def flaky(path: Path, record: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug in a verifier")
        real_verify(path, record)

    rx.verify = flaky
    sim = w.sim("st-a")
    pid, data = w.packet("st-a")
    # The first assembly blows up; the lease (1 s here) runs out and a later query finishes it.
    assert sim.deliver(pid, data, ack_wait=0.5).status == "complete"
    assert rx.stats.internal_errors == 1
    pid2, data2 = w.packet("st-a")
    assert sim.deliver(pid2, data2).status == "complete"
    assert stored_bytes(rx.storage, pid) == data


def test_station_that_rechunks_a_packet_is_not_rejected(
        world_factory: Callable[[str], World]) -> None:
    """The uplink clamps chunks to the broker's maximum packet size; if that changes between
    attempts it resends the whole packet in the new size, which must not count as a rejection."""
    w = world_factory("sqlite")
    w.add_station("st-a")
    rx = w.receiver()
    sim = w.sim("st-a", chunk_size=4096)
    pid, data = w.packet("st-a", 30_000)
    sim.publish_chunks(pid, data, range(3))
    assert wait_for(lambda: (rx.storage.packet(pid) or _none()).received_count == 3)
    sim.chunk_size = 1024
    result = sim.deliver(pid, data)
    assert result.status == "complete"
    assert stored_bytes(rx.storage, pid) == data
    assert rx.stats.bad_chunks == 0


def test_receiver_survives_a_broker_restart(world_factory: Callable[[str], World]) -> None:
    w = world_factory("sqlite")
    w.add_station("st-a")
    rx = w.receiver()
    w.broker.stop()
    w.broker.start()  # same port; paho reconnects with backoff and subscribes again
    assert wait_for(lambda: rx.connected, 30)
    sim = w.sim("st-a")
    pid, data = w.packet("st-a")
    assert sim.deliver(pid, data, timeout=40).status == "complete"
    assert stored_bytes(rx.storage, pid) == data
