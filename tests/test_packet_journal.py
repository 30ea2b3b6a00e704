"""A packet streamed into the real journal (contract A) reads back and verifies at head office;
a writer failure leaves nothing in the journal."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.config import JournalConfig
from agent.journal import Journal
from agent.packet import PacketWriter, SourceChangedError, new_packet_id, read_packet

STATION = Ed25519PrivateKey.generate()
HO = X25519PrivateKey.generate()


class JournalReader:
    """A read(n) stream over Journal.read_range, as the uplink and export would use it."""

    def __init__(self, journal: Journal, packet_id: str) -> None:
        self.j, self.pid, self.pos = journal, packet_id, 0

    def read(self, n: int) -> bytes:
        data = self.j.read_range(self.pid, self.pos, n)
        self.pos += len(data)
        return data


def test_packet_through_journal_round_trips(tmp_path: Path) -> None:
    cfg = JournalConfig(max_bytes=64 * 1024**2, free_disk_floor_bytes=0, chunk_bytes=4096)
    big = bytes(range(256)) * 1000
    with Journal.open(tmp_path, cfg) as j:
        pid = new_packet_id()
        sink = j.begin_packet(pid, station_id="st-1",
                              created_at=datetime.now(UTC).isoformat())
        w = PacketWriter(sink, station_id="st-1", packet_id=pid, station_signing_key=STATION,
                         headoffice_encryption_key=HO.public_key(), chunk_size=1024)
        w.add_item("face", b"\xff\xd8" + b"j" * 5000, kind="face", format="iso19794-5")
        w.add_item("photo", io.BytesIO(big), kind="photo", format="raw")
        summary = w.finish(biodata={"nik": "6472010101900001"})
        info = sink.commit()
        assert info.size == summary.size and info.sha256 == summary.sha256
        header, manifest, items = read_packet(JournalReader(j, pid), headoffice_private_key=HO,
                                              station_public_keys={"st-1": STATION.public_key()})
        assert header.packet_id == pid and manifest["biodata"]["nik"] == "6472010101900001"
        got = {item.name: hashlib.sha256(b"".join(item.chunks())).hexdigest() for item in items}
        assert got["photo"] == hashlib.sha256(big).hexdigest()


def test_writer_failure_aborts_and_keeps_nothing(tmp_path: Path) -> None:
    cfg = JournalConfig(max_bytes=64 * 1024**2, free_disk_floor_bytes=0, chunk_bytes=4096)
    src = tmp_path / "item"
    src.write_bytes(b"a" * 50_000)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    with Journal.open(state, cfg) as j:
        pid = new_packet_id()
        sink = j.begin_packet(pid, station_id="st-1", created_at=datetime.now(UTC).isoformat())
        w = PacketWriter(sink, station_id="st-1", packet_id=pid, station_signing_key=STATION,
                         headoffice_encryption_key=HO.public_key(), chunk_size=1024)
        w.add_item("x", src, kind="photo", format="raw")
        src.write_bytes(b"b" * 50_000)  # changes between the hash pass and the write pass
        with pytest.raises(SourceChangedError):
            try:
                w.finish()
            except BaseException:
                sink.abort()
                raise
        assert j.packet(pid) is None
        assert j.outbox(10) == []
