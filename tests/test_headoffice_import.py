"""Import of a station's offline export folder (real journal, real export, real packets)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cli import main
from agent.config import JournalConfig
from agent.export import export_backlog
from agent.headoffice.config import parse_headoffice_config
from agent.headoffice.importer import import_export_folder
from agent.headoffice.storage import STORED
from agent.headoffice.storage_sqlite import SqliteStorage
from agent.journal import Journal
from agent.keys import HeadOfficeKeys, generate_headoffice_keys
from agent.packet import PacketWriter, new_packet_id


def journal_with_packets(state: Path, sid: str, key: Ed25519PrivateKey, ho: HeadOfficeKeys,
                         n: int) -> tuple[Journal, list[str]]:
    """A real station journal holding n unacknowledged packets."""
    state.mkdir(parents=True, exist_ok=True)
    j = Journal.open(state, JournalConfig(max_bytes=64 * 1024**2, free_disk_floor_bytes=0))
    items = []
    for k in range(n):
        pid = new_packet_id()
        sink = j.begin_packet(pid, station_id=sid, created_at=datetime.now(UTC).isoformat())
        w = PacketWriter(sink, station_id=sid, packet_id=pid, station_signing_key=key,
                         headoffice_encryption_key=ho.encryption.public_key())
        w.add_item("face.jpg", bytes([k]) * 5000, kind="face", format="jpeg")
        w.finish()
        sink.commit()
        items.append(pid)
    return j, items


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, HeadOfficeKeys, Ed25519PrivateKey]:
    ho = generate_headoffice_keys(tmp_path / "hokeys", now=datetime.now(UTC))
    key = Ed25519PrivateKey.generate()
    pub = tmp_path / "st-a.pub"
    pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    cfg = tmp_path / "ho.toml"
    cfg.write_text(f'[storage]\nfolder = "{tmp_path / "store"}"\n'
                   f'[keys]\ndirectory = "{tmp_path / "hokeys"}"\n'
                   f'[stations.st-a]\npublic_key = "{pub}"\n')
    media = tmp_path / "usb"
    media.mkdir()
    return cfg, media, ho, key


def test_import_stores_verified_packets_once(
        setup: tuple[Path, Path, HeadOfficeKeys, Ed25519PrivateKey], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg, media, ho, key = setup
    j, items = journal_with_packets(tmp_path / "station", "st-a", key, ho, 3)
    result = export_backlog(j, media, station_id="st-a")
    j.close()
    assert result.packets == 3
    assert main(["headoffice", "--config", str(cfg), "import", str(result.folder)]) == 0
    assert "imported 3, already stored 0, refused 0" in capsys.readouterr().out
    st = SqliteStorage(tmp_path / "store")
    try:
        for pid in items:
            rec = st.packet(pid)
            assert rec is not None and rec.state == STORED
            assert st.packet_path(rec).read_bytes() == (result.folder / f"{pid}.rkp").read_bytes()
    finally:
        st.close()
    # Importing the same folder again stores nothing twice.
    assert main(["headoffice", "--config", str(cfg), "import", str(result.folder)]) == 0
    assert "imported 0, already stored 3, refused 0" in capsys.readouterr().out


def test_import_refuses_tampered_and_foreign_packets(
        setup: tuple[Path, Path, HeadOfficeKeys, Ed25519PrivateKey], tmp_path: Path) -> None:
    cfg_path, media, ho, key = setup
    j, items = journal_with_packets(tmp_path / "station", "st-a", key, ho, 3)
    result = export_backlog(j, media, station_id="st-a")
    j.close()
    pids = sorted(items)
    # 1) flip a byte in one file and fix up the manifest hash, so only the packet's own
    #    authentication can catch it; 2) a packet signed with an unregistered key.
    manifest_path = result.folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    victim = result.folder / f"{pids[0]}.rkp"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 1
    victim.write_bytes(bytes(data))
    for entry in manifest["packets"]:
        if entry["packet_id"] == pids[0]:
            entry["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    cfg = parse_headoffice_config({"storage": {"folder": str(tmp_path / "store")}})
    st = SqliteStorage(cfg.storage.folder)
    try:
        report = import_export_folder(st, result.folder, headoffice_private_key=ho.encryption,
                                      station_keys={"st-a": key.public_key()})
        assert report.imported == 2
        assert [name for name, _ in report.refused] == [f"{pids[0]}.rkp"]
        assert "TamperedError" in report.refused[0][1]
        assert st.packet(pids[0]) is None
        # The same folder from a station head office does not know: every packet refused.
        report2 = import_export_folder(st, result.folder, headoffice_private_key=ho.encryption,
                                       station_keys={"st-b": key.public_key()})
        assert report2.imported == 0 and len(report2.refused) == 3
        # Wrong signing key registered for st-a: the remaining packet is refused too.
        st2 = SqliteStorage(tmp_path / "store2")
        try:
            report3 = import_export_folder(
                st2, result.folder, headoffice_private_key=ho.encryption,
                station_keys={"st-a": Ed25519PrivateKey.generate().public_key()})
            assert report3.imported == 0 and len(report3.refused) == 3
        finally:
            st2.close()
    finally:
        st.close()


def test_import_of_a_truncated_folder_is_a_one_line_error(
        setup: tuple[Path, Path, HeadOfficeKeys, Ed25519PrivateKey], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg, media, ho, key = setup
    j, _items = journal_with_packets(tmp_path / "station", "st-a", key, ho, 2)
    result = export_backlog(j, media, station_id="st-a")
    j.close()
    (result.folder / "manifest.json").unlink()
    assert main(["headoffice", "--config", str(cfg), "import", str(result.folder)]) == 2
    err = capsys.readouterr().err
    assert "export folder refused" in err and "Traceback" not in err
