"""TLS with client certificates and a per-station ACL against a real mosquitto.

The CA, the broker's and the clients' certificates are generated here with ``cryptography``.
mosquitto runs with ``require_certificate`` and ``use_identity_as_username`` (the certificate's
CN is the MQTT user name) and an ACL ``pattern readwrite rekam/v1/%u/#``, so a station may
only touch its own subtree; head office's user reads and writes every station's.
"""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.journal import Journal
from agent.testbed.mosquitto import Mosquitto
from agent.uplink.client import Uplink, UplinkConfigError
from tests.test_uplink_support import (
    AS_ROOT,
    HeadOffice,
    ho_public_keys,
    journal_cfg,
    save_packets,
    uplink_cfg,
    wait_for,
)

ACL = """pattern readwrite rekam/v1/%u/#
user headoffice
topic readwrite rekam/v1/#
"""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    path.with_suffix(".key").chmod(0o600)


class Pki:
    """A throw-away CA that issues the broker's and the clients' certificates."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder().subject_name(_name("Rekam test CA"))
            .issuer_name(_name("Rekam test CA")).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        _write(self.dir / "ca", self.cert, self.key)

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.crt"

    def issue(self, cn: str, *, server: bool = False) -> tuple[Path, Path]:
        """Certificate and key files for ``cn``."""
        now = datetime.now(UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
        _write(self.dir / cn, builder.sign(self.key, hashes.SHA256()), key)
        return self.dir / f"{cn}.crt", self.dir / f"{cn}.key"

    def context(self, cn: str | None) -> ssl.SSLContext:
        """A client TLS context presenting ``cn``'s certificate (None: no certificate)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if cn is not None:
            cert, key = self.dir / f"{cn}.crt", self.dir / f"{cn}.key"
            if not cert.exists():
                self.issue(cn)
            ctx.load_cert_chain(str(cert), str(key))
        return ctx


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture
def tls_broker(mosquitto_factory: Any, pki: Pki, tmp_path: Path) -> Iterator[Mosquitto]:
    cert, key = pki.issue("broker", server=True)
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    broker = mosquitto_factory("tls", allow_anonymous=False, extra="\n".join([
        f"cafile {pki.ca_file}", f"certfile {cert}", f"keyfile {key}",
        "require_certificate true", "use_identity_as_username true", "tls_version tlsv1.2",
        f"acl_file {acl}", AS_ROOT,
    ]))
    yield broker.start()


class Probe:
    """A raw MQTT v5 client over TLS that records what it receives and its PUBACK codes."""

    def __init__(self, port: int, ctx: ssl.SSLContext, client_id: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.tls_set_context(ctx)
        self.received: list[str] = []
        self.pubacks: dict[int, int] = {}
        self.connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.received.append(m.topic)
        self.client.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc.value)
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            self.connected.set()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_station_over_tls_delivers_to_head_office(tls_broker: Mosquitto, pki: Pki,
                                                  tmp_path: Path) -> None:
    cert, key = pki.issue("st-1")
    (tmp_path / "station").mkdir(mode=0o700)
    journal = Journal.open(tmp_path / "station", journal_cfg())
    packets = save_packets(journal, "st-1", [150_000, 10], seed=21)
    ho = HeadOffice(tls_broker.port, client_id="headoffice",
                    tls=pki.context("headoffice")).start()
    cfg = uplink_cfg(tls_broker.port, transport="tls", ca_file=pki.ca_file, cert_file=cert,
                     key_file=key)
    up = Uplink(cfg, station_id="st-1", journal=journal, chunk_bytes=journal.cfg.chunk_bytes,
                public_keys=ho_public_keys, version="test")
    up.start()
    try:
        wait_for(lambda: len(ho.stored) == len(packets), 30, "delivery over TLS")
        wait_for(lambda: all(journal.packet(p).state == "purged"  # type: ignore[union-attr]
                             for p in packets), 10, "acks over TLS")
    finally:
        up.stop()
        ho.stop()
        journal.close()
    assert ho.stored == packets


def test_a_station_cannot_read_or_write_another_stations_topics(tls_broker: Mosquitto,
                                                                 pki: Pki) -> None:
    pki.issue("st-1")
    pki.issue("st-2")
    st1 = Probe(tls_broker.port, pki.context("st-1"), "st-1")
    st2 = Probe(tls_broker.port, pki.context("st-2"), "st-2")
    ho = Probe(tls_broker.port, pki.context("headoffice"), "headoffice")
    try:
        for p in (st1, st2, ho):
            assert p.connected.wait(10)
        st1.client.subscribe("rekam/v1/st-2/#", qos=1)  # a foreign subtree
        st2.client.subscribe("rekam/v1/st-2/#", qos=1)  # its own
        ho.client.subscribe("rekam/v1/+/packet", qos=1)
        for p in (st1, st2, ho):
            assert p.subscribed.wait(10)
        # Write into another station's subtree: refused with v5 PUBACK 0x87 Not authorized.
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        info = st1.client.publish("rekam/v1/st-2/packet", b"forged", qos=1, properties=props)
        own = st1.client.publish("rekam/v1/st-1/packet", b"mine", qos=1)
        info.wait_for_publish(10)
        own.wait_for_publish(10)
        wait_for(lambda: info.mid in st1.pubacks and own.mid in st1.pubacks, 10, "PUBACKs")
        assert st1.pubacks[info.mid] == 0x87
        assert st1.pubacks[own.mid] == 0
        # Read another station's acks: head office's message reaches st-2 but never st-1.
        ho.client.publish("rekam/v1/st-2/ack", b"for st-2 only", qos=1).wait_for_publish(10)
        wait_for(lambda: "rekam/v1/st-2/ack" in st2.received, 10, "st-2 gets its ack")
        wait_for(lambda: "rekam/v1/st-1/packet" in ho.received, 10, "head office gets st-1")
        assert "rekam/v1/st-2/packet" not in ho.received
        assert st1.received == []
    finally:
        for p in (st1, st2, ho):
            p.stop()


def test_client_without_certificate_is_refused(tls_broker: Mosquitto, pki: Pki,
                                               tmp_path: Path) -> None:
    probe = Probe(tls_broker.port, pki.context(None), "st-1")
    try:
        assert not probe.connected.wait(1.5)
    finally:
        probe.stop()
    # The uplink refuses to start TLS without its files, naming the keys.
    with pytest.raises(UplinkConfigError, match="cert_file"):
        (tmp_path / "s").mkdir()
        journal = Journal.open(tmp_path / "s", journal_cfg())
        try:
            Uplink(uplink_cfg(tls_broker.port, transport="tls", ca_file=pki.ca_file),
                   station_id="st-1", journal=journal, chunk_bytes=65536,
                   public_keys=ho_public_keys, version="test")
        finally:
            journal.close()
