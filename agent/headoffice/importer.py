"""Import of a station's offline export folder into head-office storage.

The export format and its verification belong to the journal (``agent.export``); this module
takes the packets that function vouches for, verifies each one again exactly as if it had come
over MQTT (registered station, station signature, head-office decryption, packet id) and stores
it unless it is already stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.headoffice.receiver import packet_verifier
from agent.headoffice.storage import STORED, PacketInvalid, PacketRecord, Storage


class ImportUnavailable(Exception):
    """agent.export (the journal's export reader) is not installed in this build."""


@dataclass
class ImportReport:
    """What an import did."""

    imported: int = 0
    duplicates: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def import_packet_file(storage: Storage, path: Path, *, station_id: str, packet_id: str,
                       headoffice_private_key: Any,
                       station_keys: Mapping[str, Ed25519PublicKey], report: ImportReport) -> None:
    """Verify one packet file and store it (or count it as a duplicate, or refuse it)."""
    existing = storage.packet(packet_id)
    if existing is not None and existing.state == STORED:
        report.duplicates += 1
        return
    sha, size = _sha256_file(path)
    record = PacketRecord(packet_id=packet_id, station_id=station_id, state="receiving",
                          chunks=0, chunk_size=0, packet_size=size, packet_sha256=sha,
                          received=frozenset())
    try:
        packet_verifier(headoffice_private_key, station_keys)(path, record)
    except PacketInvalid as exc:
        report.refused.append((path.name, exc.reason))
        return
    if storage.import_packet(station_id, packet_id, path, sha, size):
        report.imported += 1
    else:
        report.duplicates += 1


def import_export_folder(storage: Storage, folder: Path, *, headoffice_private_key: Any,
                         station_keys: Mapping[str, Ed25519PublicKey]) -> ImportReport:
    """Verify and store every packet of an export folder; returns counts and refusals."""
    try:
        from agent import export
    except ImportError:
        raise ImportUnavailable("agent.export is not available in this build") from None
    entries = export.verify_export(folder)  # type: ignore[attr-defined]
    report = ImportReport()
    for entry in entries:
        import_packet_file(storage, Path(entry.path), station_id=entry.station_id,
                           packet_id=entry.packet_id,
                           headoffice_private_key=headoffice_private_key,
                           station_keys=station_keys, report=report)
    return report
