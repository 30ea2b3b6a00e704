"""Offline export of the backlog to removable media, and its verified import at head office.

For the days-long outage: ``rekam export DIR`` copies every unacknowledged packet, byte for
byte as journaled (still signed and encrypted: the stick reveals no biometrics), into a new
folder ``DIR/rekam-<station>-<UTC time>/`` with a ``manifest.json`` naming each file's size
and SHA-256. Every file is written under a temporary name, fsynced and renamed; the manifest
comes last, so a folder without ``manifest.json`` is an export that did not finish. Exported
packets stay in the journal, marked exported, until head office acknowledges them.

Head office reads such a folder with :func:`open_export` (checks the manifest, refuses
unsafe paths and symlinks, reports a truncated folder clearly) and iterates the packets,
each re-hashed before it is handed over (and, with :func:`packet_verifier`, its signature
and decryption checked by ``agent.packet``).

Errors::

    ExportError                  writing an export failed (media full, not a directory ...)
    ImportFolderError            an export folder cannot be trusted as a whole
    +-- ManifestError            manifest.json malformed or inconsistent
    +-- TruncatedExportError     manifest or packet files missing or short
    +-- TamperedExportError      a file's size or SHA-256 differs from the manifest
    +-- UnsafePathError          a name that leaves the folder, or a symlink
    +-- ForeignStationError      packets of another station than expected
    +-- PacketRejectedError      a packet failed signature / decryption checks
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from agent.journal import CorruptPacketError, Journal
from agent.journal.model import QUARANTINED, QUEUED, SENDING, iso, utc_now

log = logging.getLogger(__name__)

FORMAT = "rekam-export"
VERSION = 1
MANIFEST = "manifest.json"
SUFFIX = ".rkp"
MAX_MANIFEST_BYTES = 32 * 1024 * 1024
_READ = 256 * 1024
# File names must be safe on FAT/exFAT sticks too: no ':' and no leading dot.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ExportError(Exception):
    """Writing an export failed; ``message_id`` is the operator's line in Indonesian."""

    def __init__(self, message: str, message_id: str) -> None:
        super().__init__(message)
        self.message_id = message_id


class ImportFolderError(Exception):
    """An export folder cannot be trusted as a whole."""


class ManifestError(ImportFolderError):
    """manifest.json is malformed or inconsistent."""


class TruncatedExportError(ImportFolderError):
    """The manifest or packet files are missing or shorter than listed."""


class TamperedExportError(ImportFolderError):
    """A file's size or SHA-256 differs from the manifest."""


class UnsafePathError(ImportFolderError):
    """A listed name would leave the folder, or is not a regular file."""


class ForeignStationError(ImportFolderError):
    """The folder holds packets of another station than expected."""


class PacketRejectedError(ImportFolderError):
    """A packet failed the verification callback (signature, key, decryption)."""

    def __init__(self, packet_id: str, reason: str) -> None:
        super().__init__(f"packet {packet_id}: {reason}")
        self.packet_id = packet_id


# ---------------------------------------------------------------------------- export


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote."""

    folder: Path
    packets: int
    total_bytes: int
    skipped_corrupt: tuple[str, ...] = ()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(final: Path, chunks: Iterator[bytes]) -> tuple[int, str]:
    """Write to a temporary name, fsync, rename; return (size, sha256 hex)."""
    tmp = final.with_name(f".{final.name}.part")
    digest = hashlib.sha256()
    size = 0
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=True) as fh:
            for block in chunks:
                fh.write(block)
                digest.update(block)
                size += len(block)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def _packet_bytes(journal: Journal, packet_id: str, size: int) -> Iterator[bytes]:
    for offset in range(0, size, _READ):
        yield journal.read_range(packet_id, offset, _READ)


def export_backlog(journal: Journal, dest: Path, *, station_id: str,
                   now: datetime | None = None) -> ExportResult:
    """Copy every unacknowledged packet into a new folder under ``dest``; mark them exported."""
    dest = Path(dest)
    if not dest.is_dir():
        raise ExportError(f"{dest}: not a directory (mount the removable media first)",
                          f"{dest}: bukan folder (pasang media lepas terlebih dahulu)")
    when = now or utc_now()
    base = f"rekam-{station_id}-{when.strftime('%Y%m%dT%H%M%SZ')}"
    folder = dest / base
    n = 1
    while folder.exists():
        n += 1
        folder = dest / f"{base}-{n}"
    try:
        folder.mkdir(mode=0o700)
    except OSError as exc:
        raise ExportError(f"{folder}: cannot create the export folder: {exc.strerror}",
                          f"{folder}: folder ekspor tidak dapat dibuat: {exc.strerror}") from exc
    infos = journal.packets(states=(QUEUED, SENDING, QUARANTINED), limit=10**7)
    entries: list[dict[str, Any]] = []
    skipped: list[str] = []
    total = 0
    try:
        for info in infos:
            if not _SAFE_ID.fullmatch(info.packet_id):
                raise ExportError(f"packet id {info.packet_id!r} cannot be a file name",
                                  "id paket tidak dapat dipakai sebagai nama berkas")
            path = folder / f"{info.packet_id}{SUFFIX}"
            try:
                size, sha = _write_durably(path, _packet_bytes(journal, info.packet_id, info.size))
            except CorruptPacketError:
                # Quarantined and reported by the journal; exporting damaged bytes helps no one.
                skipped.append(info.packet_id)
                continue
            if size != info.size or sha != info.sha256:
                path.unlink(missing_ok=True)
                skipped.append(info.packet_id)
                continue
            total += size
            entries.append({
                "packet_id": info.packet_id, "file": path.name, "size": size, "sha256": sha,
                "station_id": info.station_id, "created_at": info.created_at,
                "priority": info.priority, "state": info.state,
            })
        _fsync_dir(folder)
        manifest = {
            "format": FORMAT, "v": VERSION, "station_id": station_id, "created_at": iso(when),
            "packet_count": len(entries), "total_bytes": total, "packets": entries,
        }
        text = json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False).encode()
        _write_durably(folder / MANIFEST, iter([text]))
        _fsync_dir(folder)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise ExportError(
                f"{dest}: removable media is full after {len(entries)} of {len(infos)} packets "
                f"({total} bytes); nothing was exported, use a larger stick",
                f"{dest}: media lepas penuh; tidak ada yang diekspor, pakai media yang lebih besar",
            ) from exc
        raise ExportError(f"{folder}: export failed: {exc.strerror}; nothing was exported",
                          f"{folder}: ekspor gagal; tidak ada yang diekspor") from exc
    for e in entries:
        journal.mark_exported(e["packet_id"])
    log.info("exported %d packets (%d bytes) to %s; %d skipped as corrupt",
             len(entries), total, folder, len(skipped))
    return ExportResult(folder=folder, packets=len(entries), total_bytes=total,
                        skipped_corrupt=tuple(skipped))


# ---------------------------------------------------------------------------- import


@dataclass(frozen=True)
class ImportedPacket:
    """One packet file of an export folder, checked against the manifest."""

    packet_id: str
    station_id: str
    created_at: str
    size: int
    sha256: str
    path: Path

    def open(self) -> BinaryIO:
        """Open the packet file for reading (head office streams it into storage)."""
        return open(self.path, "rb")


@dataclass(frozen=True)
class ExportFolder:
    """A verified export folder: manifest read, every file present with the right size."""

    folder: Path
    station_id: str
    created_at: str
    packets: tuple[ImportedPacket, ...]
    extra_files: tuple[str, ...] = field(default=())

    def __iter__(self) -> Iterator[ImportedPacket]:
        """Yield each packet after re-hashing it; raise on the first mismatch."""
        return self.iter_packets()

    def iter_packets(
        self, verify: Callable[[BinaryIO, ImportedPacket], object] | None = None,
    ) -> Iterator[ImportedPacket]:
        """Yield packets whose SHA-256 matches; ``verify`` may check signatures on the way."""
        for p in self.packets:
            if _sha256_file(p.path, p.size) != p.sha256:
                raise TamperedExportError(f"{p.path.name}: SHA-256 differs from the manifest")
            if verify is not None:
                with p.open() as fh:
                    try:
                        verify(fh, p)
                    except ImportFolderError:
                        raise
                    except Exception as exc:  # any verifier failure rejects the packet
                        raise PacketRejectedError(p.packet_id, f"{type(exc).__name__}: {exc}") from exc
            yield p


def _sha256_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_READ):
            digest.update(block)
    return digest.hexdigest()


def _strict_json(data: bytes) -> Any:
    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise ManifestError(f"{MANIFEST}: duplicate key {k!r}")
            out[k] = v
        return out

    def no_constants(name: str) -> Any:
        raise ManifestError(f"{MANIFEST}: {name} is not allowed")

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=no_dupes,
                          parse_constant=no_constants)
    except ManifestError:
        raise
    except RecursionError:
        raise ManifestError(f"{MANIFEST}: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        # A manifest cut short (a copy that stopped) fails here, so say so.
        raise TruncatedExportError(
            f"{MANIFEST}: not complete JSON ({type(exc).__name__}); the folder was copied "
            "incompletely or the export did not finish") from None


def _field(entry: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    value = entry.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ManifestError(f"{where}: {name} must be a {kind.__name__}")
    return value


def open_export(folder: Path, *, station_id: str | None = None) -> ExportFolder:
    """Check an export folder: manifest, safe names, every file present at its listed size."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TruncatedExportError(f"{folder}: not a folder")
    mpath = folder / MANIFEST
    if mpath.is_symlink():
        raise UnsafePathError(f"{mpath}: is a symlink")
    if not mpath.is_file():
        parts = sorted(p.name for p in folder.iterdir())
        raise TruncatedExportError(
            f"{folder}: {MANIFEST} missing; the export did not finish or the folder was copied "
            f"incompletely ({len(parts)} other files present)")
    if mpath.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{mpath}: larger than {MAX_MANIFEST_BYTES} bytes")
    doc = _strict_json(mpath.read_bytes())
    if not isinstance(doc, dict):
        raise ManifestError(f"{MANIFEST}: root must be an object")
    if doc.get("format") != FORMAT:
        raise ManifestError(f"{MANIFEST}: format is not {FORMAT!r}")
    if doc.get("v") != VERSION:
        raise ManifestError(f"{MANIFEST}: unsupported version {doc.get('v')!r} (this reader: {VERSION})")
    station = _field(doc, "station_id", str, MANIFEST)
    created = _field(doc, "created_at", str, MANIFEST)
    entries = doc.get("packets")
    if not isinstance(entries, list):
        raise ManifestError(f"{MANIFEST}: packets must be a list")
    if station_id is not None and station != station_id:
        raise ForeignStationError(f"{MANIFEST}: station {station!r}, expected {station_id!r}")
    packets: list[ImportedPacket] = []
    seen: set[str] = set()
    total = 0
    for n, entry in enumerate(entries):
        where = f"{MANIFEST}: packets[{n}]"
        if not isinstance(entry, dict):
            raise ManifestError(f"{where}: must be an object")
        pid = _field(entry, "packet_id", str, where)
        name = _field(entry, "file", str, where)
        size = _field(entry, "size", int, where)
        sha = _field(entry, "sha256", str, where)
        pstation = _field(entry, "station_id", str, where)
        pcreated = _field(entry, "created_at", str, where)
        # The name must be exactly "<id>.rkp" with a safe id: no separators, no "..",
        # no absolute path, nothing that resolves outside the folder.
        if not _SAFE_ID.fullmatch(pid) or name != f"{pid}{SUFFIX}":
            raise UnsafePathError(f"{where}: unsafe or unexpected file name {name[:80]!r}")
        if pid in seen:
            raise ManifestError(f"{where}: packet {pid} listed twice")
        seen.add(pid)
        if size < 0 or not _HEX64.fullmatch(sha):
            raise ManifestError(f"{where}: size must be >= 0 and sha256 64 lowercase hex digits")
        if pstation != station:
            raise ForeignStationError(f"{where}: packet of station {pstation!r} in {station!r}'s export")
        path = folder / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise UnsafePathError(f"{path}: not a regular file")
        if not path.exists():
            raise TruncatedExportError(
                f"{folder}: {name} is listed but missing; the folder was copied incompletely")
        actual = path.stat().st_size
        if actual < size:
            raise TruncatedExportError(f"{name}: {actual} bytes, manifest says {size}: truncated copy")
        if actual > size:
            raise TamperedExportError(f"{name}: {actual} bytes, manifest says {size}")
        total += size
        packets.append(ImportedPacket(packet_id=pid, station_id=pstation, created_at=pcreated,
                                      size=size, sha256=sha, path=path))
    if doc.get("packet_count") != len(packets) or doc.get("total_bytes") != total:
        raise ManifestError(f"{MANIFEST}: packet_count/total_bytes do not match the list")
    listed = {p.path.name for p in packets} | {MANIFEST}
    extra = tuple(sorted(p.name for p in folder.iterdir() if p.name not in listed))
    if extra:
        log.warning("export folder %s: %d files not in the manifest are ignored", folder, len(extra))
    return ExportFolder(folder=folder, station_id=station, created_at=created,
                        packets=tuple(packets), extra_files=extra)


def packet_verifier(*, headoffice_private_key: Any,
                    station_public_keys: Mapping[str, Any]) -> Callable[[BinaryIO, ImportedPacket], None]:
    """A ``verify`` callback: full signature + decryption check with ``agent.packet``."""
    from agent.packet import verify_packet

    def verify(fh: BinaryIO, p: ImportedPacket) -> None:
        header, _manifest = verify_packet(fh, headoffice_private_key=headoffice_private_key,
                                          station_public_keys=station_public_keys)
        if header.packet_id != p.packet_id or header.station_id != p.station_id:
            raise PacketRejectedError(p.packet_id, "packet header names another packet or station")

    return verify


def import_export(folder: Path, *, station_id: str | None = None,
                  verify: Callable[[BinaryIO, ImportedPacket], object] | None = None,
                  ) -> Iterator[ImportedPacket]:
    """Check the folder at once (truncation, paths), then yield each hash-checked packet."""
    checked = open_export(folder, station_id=station_id)
    return checked.iter_packets(verify)
