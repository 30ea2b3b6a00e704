"""Offline export to removable media and its verified import at head office."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.config import JournalConfig
from agent.export import (
    MANIFEST,
    ExportError,
    ForeignStationError,
    ManifestError,
    PacketRejectedError,
    TamperedExportError,
    TruncatedExportError,
    UnsafePathError,
    export_backlog,
    import_export,
    open_export,
    packet_verifier,
)
from agent.journal import Journal
from agent.packet import PacketWriter, new_packet_id

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CFG = JournalConfig(chunk_bytes=4096, max_packet_bytes=1024 * 1024, max_bytes=1024**3,
                    free_disk_floor_bytes=0, reserve_bytes=0)
NOW = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
STATION_KEY = Ed25519PrivateKey.generate()
HO_KEY = X25519PrivateKey.generate()


def write_real_packet(j: Journal, size: int) -> str:
    """A genuine signed+encrypted packet streamed by PacketWriter into the journal."""
    pid = new_packet_id()
    with j.begin_packet(pid, station_id="st-1", created_at="2026-11-29T08:00:00Z") as sink:
        w = PacketWriter(sink, station_id="st-1", packet_id=pid, station_signing_key=STATION_KEY,
                         headoffice_encryption_key=HO_KEY.public_key())
        w.add_item("face", os.urandom(size), kind="face", format="jpeg", quality=80)
        w.finish(operator_id="op-7")
        sink.commit()
    return pid


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    (tmp_path / "state").mkdir(mode=0o700)
    j = Journal.open(tmp_path / "state", CFG)
    yield j
    j.close()


@pytest.fixture
def exported(journal: Journal, tmp_path: Path) -> tuple[Path, list[str]]:
    ids = [write_real_packet(journal, n) for n in (10, 9000, 50_000)]
    stick = tmp_path / "stick"
    stick.mkdir()
    result = export_backlog(journal, stick, station_id="st-1", now=NOW)
    assert result.packets == 3 and result.folder.parent == stick
    return result.folder, ids


def test_export_then_import_verifies_every_packet(journal: Journal,
                                                  exported: tuple[Path, list[str]]) -> None:
    folder, ids = exported
    assert folder.name == "rekam-st-1-20261129T093000Z"
    # Byte for byte what the journal holds, and marked exported but still waiting.
    for pid in ids:
        info = journal.packet(pid)
        assert info is not None and info.exported and info.state == "queued"
        assert (folder / f"{pid}.rkp").read_bytes() == journal.read_range(pid, 0, info.size)
    assert not any(p.name.endswith(".part") for p in folder.iterdir())
    verify = packet_verifier(headoffice_private_key=HO_KEY,
                             station_public_keys={"st-1": STATION_KEY.public_key()})
    got = list(import_export(folder, station_id="st-1", verify=verify))
    assert sorted(p.packet_id for p in got) == sorted(ids)
    for p in got:
        with p.open() as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == p.sha256


def test_second_export_goes_to_a_new_folder(journal: Journal, exported: tuple[Path, list[str]]) -> None:
    folder, _ = exported
    again = export_backlog(journal, folder.parent, station_id="st-1", now=NOW)
    assert again.folder != folder and again.packets == 3


def test_missing_manifest_is_a_truncated_export(exported: tuple[Path, list[str]]) -> None:
    folder, _ = exported
    (folder / MANIFEST).unlink()
    with pytest.raises(TruncatedExportError, match="did not finish"):
        open_export(folder)


def test_cut_manifest_is_a_truncated_export(exported: tuple[Path, list[str]]) -> None:
    folder, _ = exported
    text = (folder / MANIFEST).read_bytes()
    (folder / MANIFEST).write_bytes(text[: len(text) // 2])
    with pytest.raises(TruncatedExportError):
        open_export(folder)


def test_missing_or_short_packet_file(exported: tuple[Path, list[str]]) -> None:
    folder, ids = exported
    path = folder / f"{ids[2]}.rkp"
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    with pytest.raises(TruncatedExportError, match="truncated"):
        open_export(folder)
    path.unlink()
    with pytest.raises(TruncatedExportError, match="missing"):
        open_export(folder)


def test_flipped_byte_or_longer_file_is_tampering(exported: tuple[Path, list[str]]) -> None:
    folder, ids = exported
    path = folder / f"{ids[1]}.rkp"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    checked = open_export(folder)  # sizes still fine
    with pytest.raises(TamperedExportError):
        list(checked)
    path.write_bytes(bytes(data) + b"x")
    with pytest.raises(TamperedExportError):
        open_export(folder)


def test_packet_failing_signature_check_is_rejected(exported: tuple[Path, list[str]]) -> None:
    folder, _ = exported
    other_station = Ed25519PrivateKey.generate()
    verify = packet_verifier(headoffice_private_key=HO_KEY,
                             station_public_keys={"st-1": other_station.public_key()})
    with pytest.raises(PacketRejectedError):
        list(import_export(folder, verify=verify))
    wrong_ho = packet_verifier(headoffice_private_key=X25519PrivateKey.generate(),
                               station_public_keys={"st-1": STATION_KEY.public_key()})
    with pytest.raises(PacketRejectedError):
        list(import_export(folder, verify=wrong_ho))


def edit_manifest(folder: Path, change: object) -> None:
    doc = json.loads((folder / MANIFEST).read_text())
    change(doc)  # type: ignore[operator]
    (folder / MANIFEST).write_text(json.dumps(doc))


@pytest.mark.parametrize("name", ["../escape.rkp", "/etc/passwd", "sub/x.rkp", ".hidden.rkp",
                                  "..", "a\\b.rkp"])
def test_path_traversal_refused(exported: tuple[Path, list[str]], name: str) -> None:
    folder, _ = exported

    def change(doc: dict[str, Any]) -> None:
        doc["packets"][0]["file"] = name
        doc["packets"][0]["packet_id"] = name.removesuffix(".rkp")

    edit_manifest(folder, change)
    with pytest.raises(UnsafePathError):
        open_export(folder)


def test_symlinked_packet_refused(exported: tuple[Path, list[str]], tmp_path: Path) -> None:
    folder, ids = exported
    target = tmp_path / "elsewhere"
    path = folder / f"{ids[0]}.rkp"
    target.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(target)
    with pytest.raises(UnsafePathError):
        open_export(folder)


def test_foreign_station_refused(exported: tuple[Path, list[str]]) -> None:
    folder, _ = exported
    with pytest.raises(ForeignStationError):
        open_export(folder, station_id="st-2")
    edit_manifest(folder, lambda d: d["packets"][0].update(station_id="st-9"))
    with pytest.raises(ForeignStationError):
        open_export(folder)


@pytest.mark.parametrize("raw", [
    b'{"format": "rekam-export", "format": "rekam-export"}',
    b'{"format": "rekam-export", "v": 1, "total_bytes": NaN}',
    b'[1, 2]',
    b'{"format": "other", "v": 1}',
    b'{"format": "rekam-export", "v": 99}',
])
def test_bad_manifests(exported: tuple[Path, list[str]], raw: bytes) -> None:
    folder, _ = exported
    (folder / MANIFEST).write_bytes(raw)
    with pytest.raises(ManifestError):
        open_export(folder)


def test_inconsistent_counts_and_duplicates(exported: tuple[Path, list[str]]) -> None:
    folder, _ = exported
    edit_manifest(folder, lambda d: d.update(packet_count=99))
    with pytest.raises(ManifestError):
        open_export(folder)
    edit_manifest(folder, lambda d: d.update(packet_count=4, packets=d["packets"] + [d["packets"][0]]))
    with pytest.raises(ManifestError, match="twice"):
        open_export(folder)


def test_export_to_missing_directory(journal: Journal, tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export_backlog(journal, tmp_path / "not-mounted", station_id="st-1")
    assert "pasang media" in info.value.message_id


def test_full_stick_leaves_nothing_and_marks_nothing(journal: Journal, tmp_path: Path) -> None:
    ids = [write_real_packet(journal, 300_000) for _ in range(4)]
    stick = tmp_path / "small-stick"
    stick.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(stick)],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        if IN_CI:
            pytest.fail(f"mount failed in CI: {res.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()}")
    try:
        with pytest.raises(ExportError, match="full"):
            export_backlog(journal, stick, station_id="st-1")
        assert list(stick.iterdir()) == []
        assert not any(journal.packet(pid).exported for pid in ids)  # type: ignore[union-attr]
    finally:
        subprocess.run(["umount", "-l", str(stick)], check=True)


def test_empty_backlog_exports_an_empty_manifest(journal: Journal, tmp_path: Path) -> None:
    res = export_backlog(journal, tmp_path, station_id="st-1", now=NOW)
    assert res.packets == 0
    checked = open_export(res.folder, station_id="st-1")
    assert checked.packets == () and list(checked) == []
