"""The station's uplink against the real head-office receiver (agent.headoffice), real packets.

This checks the two sides of docs/protocol.md against each other: the uplink sends real signed
and encrypted packets from a real journal; the receiver verifies, stores and acks; the station
purges only after the verified ack.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.headoffice.config import parse_headoffice_config
from agent.headoffice.receiver import AckSigner, Receiver, load_station_keys, packet_verifier
from agent.headoffice.storage import STORED
from agent.headoffice.storage_sqlite import SqliteStorage
from agent.journal import Journal
from agent.keys import generate_headoffice_keys, key_id
from agent.packet import PacketWriter, new_packet_id
from agent.testbed.mosquitto import Mosquitto
from agent.uplink.client import Uplink
from tests.test_uplink_support import journal_cfg, uplink_cfg, wait_for

STATION = "st-e2e"


def test_real_packets_stored_by_the_real_receiver_then_purged(mosquitto: Mosquitto,
                                                               tmp_path: Path) -> None:
    ho = generate_headoffice_keys(tmp_path / "hokeys", now=datetime.now(UTC))
    station_key = Ed25519PrivateKey.generate()
    pub = tmp_path / "station.pub"
    pub.write_bytes(station_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    cfg = parse_headoffice_config({
        "broker": {"host": "127.0.0.1", "port": mosquitto.port, "transport": "tcp"},
        "receiver": {"group": "ingest", "lease_seconds": 2.0},
        "storage": {"backend": "sqlite", "folder": str(tmp_path / "store")},
        "keys": {"directory": str(tmp_path / "hokeys")},
        "stations": {STATION: {"public_key": str(pub)}},
    })
    storage = SqliteStorage(tmp_path / "store")
    rx = Receiver(cfg, storage, verify=packet_verifier(ho.encryption, load_station_keys(cfg)),
                  signer=AckSigner(ho.signing, key_id(ho.signing.public_key())),
                  client_id="ho-1").start()

    state = tmp_path / "station"
    state.mkdir(mode=0o700)
    journal = Journal.open(state, journal_cfg())
    ids: list[str] = []
    for size in (10_000, 300_000, 1_000_000):  # 1, 5 and 16 journal chunks
        pid = new_packet_id()
        with journal.begin_packet(pid, station_id=STATION,
                                  created_at="2026-11-29T08:00:00.000000Z") as sink:
            w = PacketWriter(sink, station_id=STATION, packet_id=pid,
                             station_signing_key=station_key,
                             headoffice_encryption_key=ho.encryption.public_key())
            w.add_item("face.jpg", os.urandom(size), kind="face", format="jpeg")
            w.finish(biodata={"note": "test"})
            sink.commit()
        ids.append(pid)
    keys: dict[str, Any] = {key_id(ho.signing.public_key()): ho.signing.public_key()}
    up = Uplink(uplink_cfg(mosquitto.port), station_id=STATION, journal=journal,
                chunk_bytes=journal.cfg.chunk_bytes, public_keys=lambda: keys, version="test")
    up.start()
    try:
        wait_for(lambda: all(journal.packet(p).state == "purged"  # type: ignore[union-attr]
                             for p in ids), 60, "verified acks from the real receiver")
    finally:
        up.stop()
        rx.stop()
    try:
        for pid in ids:
            record = storage.packet(pid)
            assert record is not None and record.state == STORED
            assert record.station_id == STATION
        assert up.rejected_messages == 0 and up.sender.stats.bad_acks == 0
    finally:
        storage.close()
        journal.close()
