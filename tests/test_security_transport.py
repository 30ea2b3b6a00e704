"""The locked-down transport: mosquitto with TLS 1.3 as the floor, client certificates from a CA
made in the test, and a per-station ACL split by direction.

tests/test_uplink_tls.py already shows delivery over TLS with a broad ``rekam/v1/%u/#`` ACL. Here
the broker refuses TLS 1.2 (checked with ``openssl s_client``, since an MQTT client's TLS option
only sets a minimum), refuses clients without a certificate, with a certificate from another CA
or with a revoked one (``crlfile``), and a station may write only its outgoing leaves and read
only its incoming ones, so it can neither touch another station's subtree nor publish a print
order or command to itself. A real uplink still delivers and gets its acks under that ACL.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from agent.journal import Journal
from agent.testbed.mosquitto import Mosquitto
from agent.uplink.client import Uplink
from tests.test_uplink_support import (
    AS_ROOT,
    HeadOffice,
    ho_public_keys,
    journal_cfg,
    save_packets,
    uplink_cfg,
    wait_for,
)
from tests.test_uplink_tls import Pki, Probe

# Stations write only what they send and read only what head office sends them. "Pattern ACLs
# apply to all users", so head office's own grants come from its user line.
STRICT_ACL = """pattern write rekam/v1/%u/status
pattern write rekam/v1/%u/packet
pattern write rekam/v1/%u/event
pattern write rekam/v1/%u/telemetry
pattern write rekam/v1/%u/print/result
pattern read rekam/v1/%u/ack
pattern read rekam/v1/%u/print/order
pattern read rekam/v1/%u/command
user headoffice
topic readwrite rekam/v1/#
"""
NOT_AUTHORISED = 0x87


def _crl(pki: Pki, revoked_cert: Path) -> Path:
    cert = x509.load_pem_x509_certificate(revoked_cert.read_bytes())
    now = datetime.now(UTC)
    crl = (
        x509.CertificateRevocationListBuilder().issuer_name(pki.cert.subject)
        .last_update(now - timedelta(minutes=5)).next_update(now + timedelta(days=1))
        .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                                 .revocation_date(now - timedelta(minutes=1)).build())
        .sign(pki.key, hashes.SHA256())
    )
    path = pki.dir / "revoked.crl"
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture
def strict_broker(mosquitto_factory: Any, pki: Pki, tmp_path: Path) -> Iterator[Mosquitto]:
    cert, key = pki.issue("broker", server=True)
    revoked, _ = pki.issue("st-revoked")
    acl = tmp_path / "acl"
    acl.write_text(STRICT_ACL)
    broker = mosquitto_factory("tls13", allow_anonymous=False, extra="\n".join([
        f"cafile {pki.ca_file}", f"certfile {cert}", f"keyfile {key}", f"crlfile {_crl(pki, revoked)}",
        "require_certificate true", "use_identity_as_username true", "tls_version tlsv1.3",
        f"acl_file {acl}", AS_ROOT,
    ]))
    yield broker.start()


def _s_client(port: int, pki: Pki, version: str, cn: str | None) -> subprocess.CompletedProcess[str]:
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", version, "-CAfile", str(pki.ca_file),
            "-verify_return_error", "-brief"]
    if cn is not None:
        args += ["-cert", str(pki.dir / f"{cn}.crt"), "-key", str(pki.dir / f"{cn}.key")]
    # stdin closed: s_client does the handshake, prints the session and exits.
    return subprocess.run(args, input="", capture_output=True, text=True, timeout=20, check=False)


def test_tls12_is_refused_and_tls13_negotiated(strict_broker: Mosquitto, pki: Pki) -> None:
    pki.issue("st-1")
    old = _s_client(strict_broker.port, pki, "-tls1_2", "st-1")
    assert old.returncode != 0
    assert "protocol version" in (old.stdout + old.stderr).lower()
    new = _s_client(strict_broker.port, pki, "-tls1_3", "st-1")
    out = new.stdout + new.stderr
    assert new.returncode == 0, out
    assert "Protocol version: TLSv1.3" in out
    assert "Verification: OK" in out


def _refused(port: int, pki: Pki, cn: str | None, client_id: str) -> bool:
    probe = Probe(port, pki.context(cn), client_id)
    try:
        return not probe.connected.wait(3)
    finally:
        probe.stop()


def test_clients_without_a_valid_certificate_are_refused(strict_broker: Mosquitto, pki: Pki,
                                                         tmp_path: Path) -> None:
    assert _refused(strict_broker.port, pki, None, "st-1")  # no certificate
    rogue = Pki(tmp_path / "rogue")  # a certificate with a good name from another CA
    rogue.issue("st-1")
    ctx = pki.context(None)
    ctx.load_cert_chain(str(rogue.dir / "st-1.crt"), str(rogue.dir / "st-1.key"))
    probe = Probe(strict_broker.port, ctx, "st-1")
    try:
        assert not probe.connected.wait(3)
    finally:
        probe.stop()
    assert _refused(strict_broker.port, pki, "st-revoked", "st-revoked")  # on the CRL
    assert not _refused(strict_broker.port, pki, "st-1", "st-1")  # the control: a good one connects


def test_a_station_writes_and_reads_only_its_own_leaves(strict_broker: Mosquitto, pki: Pki) -> None:
    st1 = Probe(strict_broker.port, pki.context("st-1"), "st-1")
    ho = Probe(strict_broker.port, pki.context("headoffice"), "headoffice")
    try:
        assert st1.connected.wait(10) and ho.connected.wait(10)
        ho.client.subscribe("rekam/v1/#", qos=1)
        assert ho.subscribed.wait(10)
        ho.subscribed.clear()
        # Greedy subscriptions are granted by mosquitto but filtered per message by the ACL.
        for pattern in ("#", "rekam/v1/#", "rekam/v1/+/command", "$share/g/rekam/v1/+/packet",
                        "rekam/v1/st-2/ack"):
            st1.subscribed.clear()
            st1.client.subscribe(pattern, qos=1)
            assert st1.subscribed.wait(10)
        forbidden = ["rekam/v1/st-2/packet", "rekam/v1/st-1/print/order", "rekam/v1/st-1/command",
                     "rekam/v1/st-1/ack", "rekam/v1/st-1x/packet", "rekam/v1/st-1", "other/topic"]
        infos = {t: st1.client.publish(t, b"x", qos=1) for t in [*forbidden, "rekam/v1/st-1/packet"]}
        for info in infos.values():
            info.wait_for_publish(10)
        wait_for(lambda: all(i.mid in st1.pubacks for i in infos.values()), 10, "PUBACKs")
        assert {t: st1.pubacks[i.mid] for t, i in infos.items() if t in forbidden} == {
            t: NOT_AUTHORISED for t in forbidden}
        assert st1.pubacks[infos["rekam/v1/st-1/packet"].mid] == 0
        # Head office writes to st-2's and st-1's leaves; st-1 gets only its own incoming ones.
        sent = ["rekam/v1/st-2/ack", "rekam/v1/st-2/command", "rekam/v1/st-2/packet",
                "rekam/v1/st-1/telemetry", "rekam/v1/st-1/ack", "rekam/v1/st-1/command"]
        for topic in sent:
            ho.client.publish(topic, b"y", qos=1).wait_for_publish(10)
        wait_for(lambda: {"rekam/v1/st-1/ack", "rekam/v1/st-1/command"} <= set(st1.received), 10,
                 "st-1's own ack and command")
        time.sleep(0.5)  # let a wrongly delivered foreign message arrive too
        assert set(st1.received) == {"rekam/v1/st-1/ack", "rekam/v1/st-1/command"}
        # Head office saw the station's one permitted write and none of the refused ones.
        assert "rekam/v1/st-1/packet" in ho.received
        assert not set(forbidden) & {t for t in ho.received if t not in sent}
    finally:
        st1.stop()
        ho.stop()


def test_real_uplink_delivers_under_the_strict_acl(strict_broker: Mosquitto, pki: Pki, tmp_path: Path) -> None:
    cert, key = pki.issue("st-1")
    (tmp_path / "station").mkdir(mode=0o700)
    journal = Journal.open(tmp_path / "station", journal_cfg())
    packets = save_packets(journal, "st-1", [70_000, 10], seed=5)
    ho = HeadOffice(strict_broker.port, client_id="headoffice", tls=pki.context("headoffice")).start()
    up = Uplink(uplink_cfg(strict_broker.port, transport="tls", ca_file=pki.ca_file, cert_file=cert,
                           key_file=key),
                station_id="st-1", journal=journal, chunk_bytes=journal.cfg.chunk_bytes,
                public_keys=ho_public_keys, version="test")
    up.start()
    try:
        wait_for(lambda: len(ho.stored) == len(packets), 30, "delivery under the strict ACL")
        wait_for(lambda: all(journal.packet(p).state == "purged"  # type: ignore[union-attr]
                             for p in packets), 15, "acks read under the strict ACL")
    finally:
        up.stop()
        ho.stop()
        journal.close()
    assert ho.stored == packets
