"""Import of a station's offline export folder into head-office storage.

The export format and its checks belong to the journal (``agent.export``: manifest, safe paths,
sizes, SHA-256, and signature + decryption through its ``packet_verifier``); this module runs
those checks with head office's keys and the exporting station's registered key, then stores
each good packet unless it is already stored (received over MQTT or imported before).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.headoffice.storage import STORED, Storage


@dataclass
class ImportReport:
    """What an import did."""

    imported: int = 0
    duplicates: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)


def import_export_folder(storage: Storage, folder: Path, *, headoffice_private_key: Any,
                         station_keys: Mapping[str, Ed25519PublicKey]) -> ImportReport:
    """Verify and store every packet of an export folder; returns counts and refusals.

    Raises agent.export.ImportFolderError when the folder as a whole cannot be trusted
    (manifest missing or malformed, truncated, unsafe paths).
    """
    from agent import export

    checked = export.open_export(folder)
    report = ImportReport()
    key = station_keys.get(checked.station_id)
    if key is None:
        report.refused.extend((p.path.name, "station is not registered at head office")
                              for p in checked.packets)
        return report
    # Only the exporting station's key: a packet of another station inside is refused.
    verify = export.packet_verifier(headoffice_private_key=headoffice_private_key,
                                    station_public_keys={checked.station_id: key})
    for packet in checked.packets:
        existing = storage.packet(packet.packet_id)
        if existing is not None and existing.state == STORED:
            report.duplicates += 1
            continue
        try:
            # One packet at a time, so one bad file does not stop the good ones.
            for ok in dataclasses.replace(checked, packets=(packet,)).iter_packets(verify):
                if storage.import_packet(ok.station_id, ok.packet_id, ok.path, ok.sha256,
                                         ok.size):
                    report.imported += 1
                else:
                    report.duplicates += 1
        except export.ImportFolderError as exc:  # hash mismatch, bad signature, wrong key...
            report.refused.append((packet.path.name, str(exc)))
    return report
