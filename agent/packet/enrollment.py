"""From an enrollment session to a packet: ISO records per capture, manifest, journal commit.

:func:`write_enrollment` maps a sealed session's captures to standard records (face ->
ISO/IEC 19794-5 with the JPEG inside, each finger -> 19794-4 with WSQ/PNG, each iris -> 19794-6
with PNG/JPEG/JPEG 2000; the signature and exception photos stay image files) and writes the
packet into any sink. :class:`JournalSealer` implements ``agent.workflow.session.Sealer``: it
streams the packet into the journal and returns the packet id only after the durable commit.

The session is read through small protocols (duck typing), so this module does not depend on
the workflow's internals beyond the fields named below.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.envelope import utc_iso
from agent.faults import crash_point
from agent.packet.format import DEFAULT_CHUNK_SIZE, PacketError
from agent.packet.ids import new_packet_id
from agent.packet.writer import PacketSummary, PacketWriter, Sink
from agent.records import QualityBlock, RecordError
from agent.records import iso19794_4 as fir
from agent.records import iso19794_5 as fac
from agent.records import iso19794_6 as iir

log = logging.getLogger(__name__)

FINGER_COMPRESSION = {"wsq": fir.Compression.WSQ, "png": fir.Compression.PNG,
                      "jpeg": fir.Compression.JPEG, "jp2": fir.Compression.JPEG2000_LOSSLESS}
FACE_DATA_TYPE = {"jpeg": fac.ImageDataType.JPEG, "png": fac.ImageDataType.PNG,
                  "jp2": fac.ImageDataType.JPEG2000_LOSSLESS}
EYE_LABEL = {"right": iir.EyeLabel.RIGHT, "left": iir.EyeLabel.LEFT}


class CaptureLike(Protocol):
    """What a capture carries (agent.workflow.session.Capture)."""

    @property
    def data(self) -> bytes: ...

    @property
    def format(self) -> str: ...

    @property
    def quality(self) -> int: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def device(self) -> Mapping[str, Any]: ...

    @property
    def ppi(self) -> int | None: ...


class ItemLike(Protocol):
    """One session item (agent.workflow.session.Item)."""

    @property
    def key(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def attempts(self) -> int: ...

    @property
    def best(self) -> CaptureLike | None: ...

    @property
    def captured_at(self) -> str | None: ...

    @property
    def force_reason(self) -> str | None: ...

    @property
    def exception_reason(self) -> str | None: ...

    @property
    def exception_note(self) -> str | None: ...

    @property
    def exception_photo(self) -> CaptureLike | None: ...

    @property
    def operator_id(self) -> str | None: ...

    @property
    def approved_by(self) -> str | None: ...


class SessionLike(Protocol):
    """The sealed session (agent.workflow.session.Session)."""

    @property
    def id(self) -> str: ...

    @property
    def operator_id(self) -> str | None: ...

    @property
    def biodata(self) -> Mapping[str, str]: ...

    @property
    def items(self) -> Mapping[str, ItemLike]: ...

    @property
    def stages(self) -> Sequence[Mapping[str, Any]]: ...


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _quality(cap: CaptureLike) -> tuple[QualityBlock, ...]:
    # Vendor/algorithm 0: the station's own heuristic, not a registered algorithm.
    return (QualityBlock(max(0, min(100, int(cap.quality)))),)


def _iris_format(cap: CaptureLike) -> int:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(cap.data)) as img:  # reads the header only
            grey = img.mode in ("L", "I;16", "1")
    except (OSError, ValueError, SyntaxError):
        raise RecordError("iris image does not decode") from None
    table = {
        "png": (iir.ImageFormat.MONO_PNG, iir.ImageFormat.RGB_PNG),
        "jpeg": (iir.ImageFormat.MONO_JPEG, iir.ImageFormat.RGB_JPEG),
        "jp2": (iir.ImageFormat.MONO_JPEG2000, iir.ImageFormat.RGB_JPEG2000),
    }
    if cap.format not in table:
        raise RecordError(f"iris image format {cap.format!r} has no 19794-6 code")
    mono, rgb = table[cap.format]
    return mono if grey else rgb


def record_for(key: str, cap: CaptureLike, captured_at: datetime | None) -> tuple[bytes, str]:
    """(record bytes, manifest format string) for one capture of item ``key``."""
    modality, _, detail = key.partition(".")
    ppi = cap.ppi or 500
    if modality == "finger":
        if cap.format not in FINGER_COMPRESSION:
            raise RecordError(f"finger image format {cap.format!r} has no 19794-4 code")
        rep = fir.FingerImage(position=int(detail), image=cap.data,
                              compression=FINGER_COMPRESSION[cap.format], width=cap.width,
                              height=cap.height, captured_at=captured_at, quality=_quality(cap),
                              capture_ppi=(ppi, ppi), image_ppi=(ppi, ppi))
        return fir.encode([rep]), "iso19794-4"
    if modality == "face":
        if cap.format not in FACE_DATA_TYPE:
            raise RecordError(f"face image format {cap.format!r} has no 19794-5 code")
        face = fac.FaceImage(image=cap.data, data_type=FACE_DATA_TYPE[cap.format],
                             width=cap.width, height=cap.height, captured_at=captured_at,
                             quality=_quality(cap))
        return fac.encode([face]), "iso19794-5"
    if modality == "iris":
        iris = iir.IrisImage(eye=EYE_LABEL.get(detail, iir.EyeLabel.UNDEFINED), image=cap.data,
                             image_format=_iris_format(cap), width=cap.width, height=cap.height,
                             captured_at=captured_at, quality=_quality(cap))
        return iir.encode([iris]), "iso19794-6"
    return cap.data, cap.format  # signature and anything else: the image file itself


def _device_name(device: Mapping[str, Any]) -> str | None:
    for k in ("name", "serial", "model"):
        if device.get(k):
            return str(device[k])
    return None


def _audit_trail(session: SessionLike) -> list[dict[str, Any]]:
    # Who did each stage (ids, times, outcomes only), so head office sees it in the packet.
    from agent.operators.audit import manifest_trail

    return manifest_trail(session)  # type: ignore[arg-type]  # a workflow Session satisfies both


def write_enrollment(sink: Sink, session: SessionLike, *, station_id: str, packet_id: str,
                     station_signing_key: Ed25519PrivateKey,
                     headoffice_encryption_key: X25519PublicKey,
                     created_at: datetime | None = None,
                     chunk_size: int = DEFAULT_CHUNK_SIZE) -> PacketSummary:
    """Write one session as a packet into ``sink`` (records, manifest, signature, encryption)."""
    w = PacketWriter(sink, station_id=station_id, packet_id=packet_id,
                     station_signing_key=station_signing_key,
                     headoffice_encryption_key=headoffice_encryption_key,
                     created_at=created_at, chunk_size=chunk_size)
    devices: dict[str, dict[str, Any]] = {}
    exceptions: list[dict[str, Any]] = []
    for key, item in session.items.items():
        modality, _, detail = key.partition(".")
        if item.status == "excepted":
            exc: dict[str, Any] = {"item": key, "reason": item.exception_reason,
                                   "note": item.exception_note, "operator_id": item.operator_id,
                                   "approved_by": item.approved_by, "photo": None}
            if item.exception_photo is not None:
                photo = item.exception_photo
                exc["photo"] = f"exception.{key}"
                w.add_item(f"exception.{key}", photo.data, kind="exception_photo",
                           format=photo.format, quality=photo.quality,
                           device=_device_name(photo.device),
                           meta={"width": photo.width, "height": photo.height})
            exceptions.append(exc)
            continue
        cap = item.best
        if cap is None:
            raise PacketError(f"item {key} has no capture and no exception")
        when = _when(item.captured_at)
        data, fmt = record_for(key, cap, when)
        dev = _device_name(cap.device)
        if dev is not None:
            devices.setdefault(dev, dict(cap.device))
        w.add_item(key, data, kind=modality, format=fmt, quality=cap.quality,
                   retries=max(0, item.attempts - 1),
                   force_accept_reason=item.force_reason if item.status == "force_accepted" else None,
                   captured_at=when, position=detail or None, device=dev,
                   meta={"image_format": cap.format, "width": cap.width, "height": cap.height,
                         "status": item.status, "approved_by": item.approved_by})
    stages = {str(s.get("stage")): s.get("at") for s in session.stages}
    return w.finish(biodata=dict(session.biodata), devices=list(devices.values()),
                    operator_id=session.operator_id, exceptions=exceptions, stages=stages,
                    extra={"session_id": session.id, "audit": _audit_trail(session)})


class JournalSealer:
    """``Sealer`` for the workflow: packet streamed into the journal, id returned after commit."""

    def __init__(self, journal: Any, *, station_id: str, station_signing_key: Ed25519PrivateKey,
                 headoffice_encryption_key: X25519PublicKey,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        """Hold the journal and keys; the keys come from agent.keys (see from_keys_dir)."""
        self.journal = journal
        self.station_id = station_id
        self.signing_key = station_signing_key
        self.ho_key = headoffice_encryption_key
        self.clock = clock
        self.chunk_size = chunk_size

    @classmethod
    def from_keys_dir(cls, journal: Any, station_id: str, kdir: Any) -> JournalSealer:
        """Load the station key and head office's encryption key from ``<state_dir>/keys``."""
        from agent.keys import load_headoffice_public, load_station_signing_key

        return cls(journal, station_id=station_id,
                   station_signing_key=load_station_signing_key(kdir),
                   headoffice_encryption_key=load_headoffice_public(kdir).encryption)

    def seal(self, session: SessionLike) -> str:
        """Write and commit the packet; raise WorkflowError when it cannot be stored."""
        from agent.journal import JournalError, JournalFullError
        from agent.workflow.session import WorkflowError

        packet_id = new_packet_id()
        now = self.clock()
        try:
            sink = self.journal.begin_packet(packet_id, station_id=self.station_id,
                                             created_at=utc_iso(now))
        except JournalFullError as exc:
            raise WorkflowError("journal_full", 507, exc.message_id, str(exc)) from exc
        except JournalError as exc:
            raise WorkflowError("journal_error", 503, exc.message_id, str(exc)) from exc
        try:
            write_enrollment(sink, session, station_id=self.station_id, packet_id=packet_id,
                             station_signing_key=self.signing_key,
                             headoffice_encryption_key=self.ho_key, created_at=now,
                             chunk_size=self.chunk_size)
            sink.commit()
            crash_point("commit-to-answer")
        except BaseException as exc:
            sink.abort()
            if isinstance(exc, JournalFullError):
                raise WorkflowError("journal_full", 507, exc.message_id, str(exc)) from exc
            if isinstance(exc, JournalError):
                raise WorkflowError("journal_error", 503, exc.message_id, str(exc)) from exc
            if isinstance(exc, (PacketError, RecordError)):
                log.error("packet %s not written: %s", packet_id, type(exc).__name__)
                raise WorkflowError("packet_error", 500,
                                    "Paket tidak dapat dibuat; hubungi teknisi.",
                                    f"The packet could not be built: {exc}") from exc
            raise
        log.info("packet %s sealed for session %s", packet_id, session.id)
        return packet_id
