"""`rekam headoffice ...`: config errors, keys, the stations listing, orders."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cli import main
from agent.config import ConfigError
from agent.envelope import ReplayGuard, WrongStationError, open_envelope
from agent.headoffice.config import load_headoffice_config, parse_headoffice_config
from agent.headoffice.orders import command, print_order
from agent.headoffice.receiver import AckSigner
from agent.headoffice.storage import STORED
from agent.headoffice.storage_sqlite import SqliteStorage
from agent.keys import generate_headoffice_keys, key_id


def write_config(tmp: Path, extra: str = "") -> Path:
    key = Ed25519PrivateKey.generate()
    pub = tmp / "st-a.pub"
    pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    cfg = tmp / "headoffice.toml"
    cfg.write_text(
        f'[broker]\nhost = "127.0.0.1"\nport = 1883\ntransport = "tcp"\n'
        f'[storage]\nfolder = "{tmp / "store"}"\n'
        f'[keys]\ndirectory = "{tmp / "hokeys"}"\n'
        f'[stations.st-a]\npublic_key = "{pub}"\n'
        f'[stations.st-quiet]\npublic_key = "{pub}"\n' + extra
    )
    return cfg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[broker]\nhots = 1\n", r"\[broker\] hots: unknown key"),
        ("[receiver]\ngroup = \"a/b\"\n", r"\[receiver\] group: expected a value matching"),
        ("[storage]\nbackend = \"postgresql\"\n", r"\[storage\] dsn_file: required"),
        ("[storage]\nbackend = \"mysql\"\n", r"expected one of sqlite, postgresql"),
        ("[stations.\"bad/id\"]\npublic_key = \"x\"\n", r"not a valid station id"),
        ("[stations.st-a]\n", r"\[stations.st-a\] public_key: required key is missing"),
        ("[extra]\n", r"\[extra\]: unknown section"),
        ("[broker\n", r"invalid TOML"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    p = tmp_path / "ho.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_headoffice_config(p)
    assert str(p) in str(info.value)


def test_missing_config_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["headoffice", "--config", str(tmp_path / "nope.toml"), "stations"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "config file not found" in err and "Traceback" not in err


def test_keys_init_then_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    assert main(["headoffice", "--config", str(cfg), "keys", "init"]) == 0
    out = capsys.readouterr().out
    assert "encryption (X25519) kid" in out and "headoffice_bundle.json" in out
    assert main(["headoffice", "--config", str(cfg), "keys", "show"]) == 0
    out = capsys.readouterr().out
    assert "station st-a: kid" in out
    # A second init refuses to overwrite the keys (one line, exit 2).
    assert main(["headoffice", "--config", str(cfg), "keys", "init"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_stations_lists_status_telemetry_and_never_seen(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    st = SqliteStorage(tmp_path / "store")
    st.record_status("st-a", True, "1.4.0", "2026-11-29T07:30:00Z")
    st.record_telemetry("st-a", {"v": 1, "uplink": {"backlog_packets": 12},
                                 "stock": {"blanks": 35, "ribbon": 80},
                                 "kpi": {"median_minutes": 11.5}})
    st.record_event("st-a", "event:1", "low_stock", "2026-11-29T08:00:00Z", {"kind": "low_stock"})
    st.record_status("st-stranger", False, None, None)
    st.close()
    assert main(["headoffice", "--config", str(cfg), "stations"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["STATION", "ONLINE", "LAST_SEEN"]
    row = next(line for line in out if line.startswith("st-a "))
    assert "online" in row and "1.4.0" in row and "12" in row
    assert "blanks=35 ribbon=80" in row and "median_minutes=11.5" in row
    assert any(line.startswith("st-quiet") and "never seen" in line for line in out)
    assert any(line.startswith("st-stranger") and "(not registered)" in line for line in out)
    assert main(["headoffice", "--config", str(cfg), "stations", "--json"]) == 0
    rows = {r["station"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["st-a"]["backlog"] == "12" and rows["st-a"]["events"] == 1
    assert rows["st-stranger"]["registered"] is False


def test_orders_and_commands_are_signed_for_their_topic_and_station(tmp_path: Path) -> None:
    import io

    from PIL import Image

    from agent.printing.orders import parse_order

    ho = generate_headoffice_keys(tmp_path / "k", now=datetime.now(UTC))
    kid = key_id(ho.signing.public_key())
    signer = AckSigner(ho.signing, kid)
    now = datetime.now(UTC)
    photo = io.BytesIO()
    Image.new("RGB", (60, 80), (200, 30, 30)).save(photo, "PNG")
    card = {"nik": "6472010101900001", "name": "SITI AMINAH", "birth_place": "SAMARINDA",
            "birth_date": "01-01-1990", "sex": "PEREMPUAN", "blood_type": "O",
            "address": "JL. PAHLAWAN NO. 1", "rt_rw": "001/002", "kel_desa": "PELABUHAN",
            "kecamatan": "SAMARINDA KOTA", "religion": "ISLAM", "marital_status": "KAWIN",
            "occupation": "GURU", "citizenship": "WNI", "valid_until": "SEUMUR HIDUP",
            "province": "KALIMANTAN TIMUR", "regency": "KOTA SAMARINDA",
            "issue_place": "SAMARINDA", "issue_date": "29-11-2026"}
    topic, payload = print_order(signer, "st-a", card=card, photo=photo.getvalue(), now=now,
                                 packet_id="p-1", order_id="ord-1")
    assert topic == "rekam/v1/st-a/print/order"
    keys = {kid: ho.signing.public_key()}
    # The station's own print-order parser accepts it (built independently of this builder).
    order = parse_order(payload, station_id="st-a", public_keys=keys, now=now, max_bytes=1 << 20,
                        seen=ReplayGuard())
    assert order.order_id == "ord-1" and order.card["nik"] == card["nik"]
    with pytest.raises(WrongStationError):
        open_envelope(payload, topic=topic, public_keys=keys, station_id="st-b", now=now)
    ctopic, cpayload = command(signer, "st-a", "telemetry", now=now)
    cbody = open_envelope(cpayload, topic=ctopic, public_keys=keys, station_id="st-a", now=now)
    assert cbody["type"] == "command" and cbody["action"] == "telemetry"
    with pytest.raises(ValueError, match="unknown command action"):
        command(signer, "st-a", "format_disk", now=now)
    with pytest.raises(ValueError, match="timezone"):
        command(signer, "st-a", "telemetry", now=datetime(2026, 1, 1))


def test_parse_config_defaults() -> None:
    cfg = parse_headoffice_config({})
    assert cfg.storage.backend == "sqlite" and cfg.receiver.group == "rekam-ho"
    assert cfg.broker.transport == "tls"


def test_every_config_key_is_documented() -> None:
    import dataclasses
    import typing

    from agent.headoffice.config import HeadOfficeConfig, RegisteredStation

    doc = (Path(__file__).resolve().parent.parent / "docs" / "headoffice.md").read_text()
    for section in dataclasses.fields(HeadOfficeConfig):
        if section.name in ("source", "stations"):
            continue
        cls = typing.get_type_hints(HeadOfficeConfig)[section.name]
        for f in dataclasses.fields(cls):
            assert f"`[{section.name}] {f.name}" in doc or f", `{f.name}`" in doc, (
                f"[{section.name}] {f.name} is not in docs/headoffice.md")
    for f in dataclasses.fields(RegisteredStation):
        assert f"`[stations.ID] {f.name}`" in doc


def test_run_receives_until_sigterm(tmp_path: Path, mosquitto: object) -> None:
    """`rekam headoffice run` as a real process: stores and acks a packet, stops on SIGTERM."""
    import io
    import os
    import signal
    import subprocess
    import sys

    from agent.headoffice.simstation import SimStation
    from agent.packet import PacketWriter, new_packet_id

    port = mosquitto.port  # type: ignore[attr-defined]
    cfg = write_config(tmp_path)
    text = cfg.read_text().replace("port = 1883", f"port = {port}")
    key = Ed25519PrivateKey.generate()
    (tmp_path / "st-a.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    cfg.write_text(text)
    ho = generate_headoffice_keys(tmp_path / "hokeys", now=datetime.now(UTC))
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "headoffice", "--config", str(cfg), "run",
         "--client-id", "rx-cli"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    sim = None
    try:
        assert proc.stdout is not None
        seen = []
        for _ in range(20):  # log lines until "running" (EOF if the process died)
            line = proc.stdout.readline().decode()
            seen.append(line)
            if "running" in line or not line:
                break
        assert "running" in seen[-1], seen
        kid = key_id(ho.signing.public_key())
        sim = SimStation("127.0.0.1", port, "st-a", chunk_size=4096,
                         headoffice_keys={kid: ho.signing.public_key()}).connect()
        pid = new_packet_id()
        buf = io.BytesIO()
        w = PacketWriter(buf, station_id="st-a", packet_id=pid, station_signing_key=key,
                         headoffice_encryption_key=ho.encryption.public_key())
        w.add_item("sig.png", b"\x89PNG" * 3000, kind="signature", format="png")
        w.finish()
        assert sim.deliver(pid, buf.getvalue(), timeout=30).status == "complete"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if sim is not None:
            sim.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    st = SqliteStorage(tmp_path / "store")
    try:
        rec = st.packet(pid)
        assert rec is not None and rec.state == STORED
    finally:
        st.close()


def test_receiver_process_killed_mid_packet_loses_nothing(tmp_path: Path, mosquitto: object) -> None:
    """kill -9 of `rekam headoffice run` while chunks stream in; a new receiver finishes."""
    import io
    import os
    import signal
    import subprocess
    import sys
    import time

    from agent.headoffice.simstation import SimStation
    from agent.packet import PacketWriter, new_packet_id

    port = mosquitto.port  # type: ignore[attr-defined]
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("port = 1883", f"port = {port}"))
    key = Ed25519PrivateKey.generate()
    (tmp_path / "st-a.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    ho = generate_headoffice_keys(tmp_path / "hokeys", now=datetime.now(UTC))

    def start(name: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "headoffice", "--config", str(cfg), "run",
             "--client-id", name],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert proc.stdout is not None
        for _ in range(20):
            line = proc.stdout.readline().decode()
            if "running" in line or not line:
                break
        assert "running" in line, line
        return proc

    pid = new_packet_id()
    buf = io.BytesIO()
    w = PacketWriter(buf, station_id="st-a", packet_id=pid, station_signing_key=key,
                     headoffice_encryption_key=ho.encryption.public_key())
    w.add_item("iris.png", os.urandom(1_500_000), kind="iris", format="png")
    w.finish()
    data = buf.getvalue()
    procs: list[subprocess.Popen[bytes]] = []
    sim = None
    try:
        procs.append(start("rx-a"))
        kid = key_id(ho.signing.public_key())
        sim = SimStation("127.0.0.1", port, "st-a", chunk_size=4096, window=4,
                         headoffice_keys={kid: ho.signing.public_key()}).connect()
        sim.publish_chunks(pid, data)
        st = SqliteStorage(tmp_path / "store")
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                rec = st.packet(pid)
                if rec is not None and rec.received_count >= 20:
                    break
                time.sleep(0.01)
            procs[0].send_signal(signal.SIGKILL)  # mid-packet: chunks still streaming
            procs[0].wait(10)
            rec = st.packet(pid)
            assert rec is not None and rec.state != STORED, "killed too late to test anything"
            procs.append(start("rx-b"))
            # The station notices no ack, asks, and resends only what head office lacks.
            result = sim.deliver(pid, data, skip=range(sim.chunk_count(data)), ack_wait=2.0,
                                 timeout=80)
            assert result.status == "complete"
            final = st.packet(pid)
            assert final is not None and final.state == STORED
            assert st.packet_path(final).read_bytes() == data
            assert len(list((tmp_path / "store" / "packets").rglob("*.rkp"))) == 1
        finally:
            st.close()
    finally:
        if sim is not None:
            sim.close()
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
            if p.stdout is not None:
                p.stdout.close()
