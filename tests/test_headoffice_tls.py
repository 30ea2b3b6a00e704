"""The receiver over TLS with a client certificate, against mosquitto with require_certificate + ACL."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.headoffice.config import parse_headoffice_config
from agent.headoffice.receiver import AckSigner, Receiver, load_station_keys, packet_verifier
from agent.headoffice.simstation import SimStation
from agent.headoffice.storage import STORED
from agent.headoffice.storage_sqlite import SqliteStorage
from agent.keys import generate_headoffice_keys, key_id
from agent.packet import PacketWriter, new_packet_id
from agent.testbed.mosquitto import Mosquitto
from tests.test_uplink_tls import ACL, AS_ROOT, Pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A throw-away CA (the uplink's TLS tests' helper)."""
    return Pki(tmp_path / "pki")


@pytest.fixture
def tls_broker(mosquitto_factory: Any, pki: Pki, tmp_path: Path) -> Mosquitto:
    """mosquitto requiring client certificates, CN as user name, per-station ACL."""
    cert, key = pki.issue("broker", server=True)
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    broker: Mosquitto = mosquitto_factory("tls", allow_anonymous=False, extra="\n".join([
        f"cafile {pki.ca_file}", f"certfile {cert}", f"keyfile {key}",
        "require_certificate true", "use_identity_as_username true", "tls_version tlsv1.2",
        f"acl_file {acl}", AS_ROOT,
    ]))
    return broker.start()


def make_receiver(tmp_path: Path, broker: Mosquitto, pki: Pki, station_key: Ed25519PrivateKey,
                  *, with_cert: bool) -> tuple[Receiver, Any]:
    ho = generate_headoffice_keys(tmp_path / f"hokeys-{with_cert}", now=datetime.now(UTC))
    pub = tmp_path / "st-a.pub"
    pub.write_bytes(station_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    broker_cfg: dict[str, Any] = {"host": "127.0.0.1", "port": broker.port, "transport": "tls",
                                  "ca_file": str(pki.ca_file)}
    if with_cert:
        cert, key = pki.issue("headoffice")
        broker_cfg.update(cert_file=str(cert), key_file=str(key))
    cfg = parse_headoffice_config({
        "broker": broker_cfg,
        "storage": {"folder": str(tmp_path / "store")},
        "stations": {"st-a": {"public_key": str(pub)}},
    })
    rx = Receiver(cfg, SqliteStorage(cfg.storage.folder),
                  verify=packet_verifier(ho.encryption, load_station_keys(cfg)),
                  signer=AckSigner(ho.signing, key_id(ho.signing.public_key())),
                  client_id="rx-tls")
    return rx, ho


def test_receiver_over_tls_with_client_certificate(tmp_path: Path, tls_broker: Mosquitto,
                                                    pki: Pki) -> None:
    station_key = Ed25519PrivateKey.generate()
    rx, ho = make_receiver(tmp_path, tls_broker, pki, station_key, with_cert=True)
    rx.start()
    sim = None
    try:
        kid = key_id(ho.signing.public_key())
        sim = SimStation("127.0.0.1", tls_broker.port, "st-a", chunk_size=4096,
                         headoffice_keys={kid: ho.signing.public_key()})
        sim.client.tls_set_context(pki.context("st-a"))  # CN st-a: its own subtree only
        sim.connect()
        pid = new_packet_id()
        buf = io.BytesIO()
        w = PacketWriter(buf, station_id="st-a", packet_id=pid, station_signing_key=station_key,
                         headoffice_encryption_key=ho.encryption.public_key())
        w.add_item("face.jpg", b"\xff\xd8" * 5000, kind="face", format="jpeg")
        w.finish()
        assert sim.deliver(pid, buf.getvalue()).status == "complete"
        rec = rx.storage.packet(pid)
        assert rec is not None and rec.state == STORED
    finally:
        if sim is not None:
            sim.close()
        rx.stop()
        rx.storage.close()


def test_receiver_without_client_certificate_fails_clearly(
        tmp_path: Path, tls_broker: Mosquitto, pki: Pki) -> None:
    rx, _ho = make_receiver(tmp_path, tls_broker, pki, Ed25519PrivateKey.generate(),
                            with_cert=False)
    try:
        with pytest.raises(ConnectionError, match="not subscribed within"):
            rx.start(timeout=1.5)
    finally:
        rx.storage.close()
