"""One applicant's enrollment session: biodata, captures behind quality gates, exceptions, seal.

The session owns the captured images in memory only (a stolen disk must reveal nothing, and a
session that is cancelled or expires leaves nothing behind); sealing hands them to a
:class:`Sealer`, which writes the signed, encrypted packet to the journal and returns only after
the journal commit is durable.

Every change goes through :func:`agent.workflow.states.next_state`; an event the table refuses
raises before anything is touched, so a refused call leaves the session exactly as it was.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from agent.config import Config
from agent.workflow import guidance
from agent.workflow.nik import NikProblem, check_biodata_against_nik
from agent.workflow.states import CAPTURE_ORDER, Event, InvalidTransition, State, next_state

FINGER_POSITIONS = tuple(range(1, 11))  # ISO/IEC 19794-4: 1 right thumb ... 10 left little
FINGER_NAMES = {
    1: "right thumb", 2: "right index", 3: "right middle", 4: "right ring", 5: "right little",
    6: "left thumb", 7: "left index", 8: "left middle", 9: "left ring", 10: "left little",
}
EYES = ("right", "left")
EXCEPTION_REASONS = ("amputated", "bandaged", "damaged", "other")
# ISO/IEC 19794-4 slaps of a 4-4-2 capture and the finger positions each covers.
SLAPS: dict[str, tuple[int, ...]] = {"right_four": (2, 3, 4, 5), "left_four": (7, 8, 9, 10),
                                     "two_thumbs": (1, 6)}
# Signature captures score 50 at exactly the configured minimum ink share ([quality] signature_min_ink).
SIGNATURE_GATE = 50

ITEMS_BY_STATE: dict[State, tuple[str, ...]] = {
    State.FACE: ("face",),
    State.FINGERS: tuple(f"finger.{p}" for p in FINGER_POSITIONS),
    State.IRISES: tuple(f"iris.{e}" for e in EYES),
    State.SIGNATURE: ("signature",),
}
ALL_ITEMS: tuple[str, ...] = tuple(k for keys in ITEMS_BY_STATE.values() for k in keys)
_CAPTURE_EVENT = {"face": Event.CAPTURE_FACE, "finger": Event.CAPTURE_FINGER,
                  "iris": Event.CAPTURE_IRIS, "signature": Event.CAPTURE_SIGNATURE}
_RETAKE_EVENT = {"face": Event.RETAKE_FACE, "finger": Event.RETAKE_FINGER,
                 "iris": Event.RETAKE_IRIS, "signature": Event.RETAKE_SIGNATURE}
_HOME_STATE = {"face": State.FACE, "finger": State.FINGERS, "iris": State.IRISES,
               "signature": State.SIGNATURE}
REQUIRED_BIODATA = (
    "nik", "name", "birth_place", "birth_date", "sex", "blood_type", "address", "rt", "rw",
    "kelurahan", "kecamatan", "religion", "marital_status", "occupation", "citizenship",
)
_CHOICES = {
    "sex": ("M", "F"),
    "blood_type": ("A", "B", "AB", "O", "-"),
    "religion": ("Islam", "Kristen", "Katolik", "Hindu", "Buddha", "Khonghucu",
                 "Kepercayaan terhadap Tuhan YME"),
    "marital_status": ("Belum Kawin", "Kawin", "Cerai Hidup", "Cerai Mati"),
    "citizenship": ("WNI", "WNA"),
}


class WorkflowError(Exception):
    """A refused request: ``code`` for programs, ``status`` for HTTP, messages for people."""

    def __init__(self, code: str, status: int, message_id: str, message_en: str,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message_en)
        self.code = code
        self.status = status
        self.message_id = message_id
        self.message_en = message_en
        self.details = dict(details or {})


@dataclass(frozen=True)
class Capture:
    """One encoded capture from a device (what a :class:`CaptureProvider` returns)."""

    data: bytes
    format: str  # jpeg | png | wsq
    quality: int  # 0-100
    width: int
    height: int
    device: Mapping[str, Any]
    details: Mapping[str, Any] = field(default_factory=dict)
    ppi: int | None = None


class CaptureProvider(Protocol):
    """Whatever turns "capture finger 2" into a :class:`Capture` (devices, or a test double)."""

    def capture(self, item: str, *, language: str, context: Mapping[str, Any] | None = None) -> Capture:
        """Capture ``item`` ("face", "finger.N", "iris.left", "signature", "exception.<item>").

        ``context`` carries what a quality check may need (the birth year for the photo
        background rule); it is never logged or kept.
        """


class SlapProvider(Protocol):
    """A capture source that can take a 4-4-2 slap (a ten-print scanner)."""

    def capture_slap(self, slap: str, *, skip: tuple[int, ...], language: str) -> dict[int, Capture]:
        """Capture one slap; return a capture per finger position found."""


class Sealer(Protocol):
    """Writes a sealed session as a packet and returns its id after the journal commit."""

    def seal(self, session: Session) -> str:
        """Write the packet durably; raise WorkflowError (e.g. journal full) on failure."""


@dataclass
class Item:
    """The state of one biometric item in a session."""

    key: str
    status: str = "missing"  # missing | retry | accepted | force_accepted | excepted
    attempts: int = 0
    best: Capture | None = None
    captured_at: str | None = None
    force_reason: str | None = None
    exception_reason: str | None = None
    exception_note: str | None = None
    exception_photo: Capture | None = None
    operator_id: str | None = None
    approved_by: str | None = None

    @property
    def modality(self) -> str:
        """face, finger, iris or signature."""
        return self.key.split(".")[0]

    @property
    def done(self) -> bool:
        """Captured well enough, force-accepted or excepted."""
        return self.status in ("accepted", "force_accepted", "excepted")

    def summary(self) -> dict[str, Any]:
        """JSON view without image bytes."""
        return {
            "item": self.key,
            "status": self.status,
            "attempts": self.attempts,
            "quality": self.best.quality if self.best else None,
            "format": self.best.format if self.best else None,
            "force_reason": self.force_reason,
            "exception_reason": self.exception_reason,
        }


def utc_now() -> str:
    """Wall-clock time as ISO 8601 UTC."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Session:
    """One applicant's enrollment, driven by the station API."""

    def __init__(self, config: Config, *, operator_id: str | None = None,
                 ticket_at: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.id = uuid.uuid4().hex
        self.config = config
        self.language = config.station.language
        self.operator_id = operator_id
        self.clock = clock
        self.state = State.BIODATA
        self.biodata: dict[str, str] = {}
        self.items: dict[str, Item] = {k: Item(k) for k in ALL_ITEMS}
        self.stages: list[dict[str, Any]] = []
        self.retry_seconds = 0.0
        self.fault_seconds = 0.0
        self.packet_id: str | None = None
        self.satisfaction: int | None = None
        self.audit: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.last_activity = clock()
        self.started_mono = clock()
        if ticket_at:
            self.stages.append({"stage": "ticket", "at": ticket_at, "mono": None})
        self._stamp("started")

    # ------------------------------------------------------------------ helpers

    def _stamp(self, stage: str) -> None:
        self.stages.append({"stage": stage, "at": utc_now(), "mono": round(self.clock() - self.started_mono, 3)})

    def _audit(self, action: str, outcome: str, item: str | None = None) -> None:
        # Ids, times and outcomes only: never images, names or the NIK.
        self.audit.append({"action": action, "item": item, "operator": self.operator_id,
                           "at": utc_now(), "outcome": outcome})

    def _fire(self, event: Event) -> None:
        self.state = next_state(self.state, event)
        self.last_activity = self.clock()

    def _check(self, event: Event) -> None:
        try:
            next_state(self.state, event)
        except InvalidTransition as exc:
            raise WorkflowError(
                "invalid_state", 409,
                f"Langkah ini tidak bisa dilakukan sekarang (tahap: {self.state.value}).",
                f"{event.value} is not possible now (step: {self.state.value}).",
                {"state": self.state.value},
            ) from exc

    def _context(self) -> dict[str, Any]:
        birth = self.biodata.get("birth_date", "")
        return {"birth_year": int(birth[:4]) if birth[:4].isdigit() else None}

    def _item(self, key: str) -> Item:
        item = self.items.get(key)
        if item is None:
            raise WorkflowError("unknown_item", 404, f"Item {key!r} tidak dikenal.",
                                f"Unknown item {key!r} (known: face, finger.1-10, iris.left, iris.right, signature).")
        return item

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the session for one call; a second front-end racing it gets "busy"."""
        if not self.lock.acquire(timeout=0.5):
            raise WorkflowError("session_busy", 409, "Sesi sedang dipakai oleh layar lain.",
                                "The session is busy with another request.")
        try:
            yield
        finally:
            self.lock.release()

    # ------------------------------------------------------------------ biodata

    def set_biodata(self, data: Mapping[str, Any], *, today: date) -> None:
        """Validate and store the applicant's biodata; problems are returned all at once."""
        event = Event.SET_BIODATA
        self._check(event)
        problems = validate_biodata(data, district_code=self.config.station.district_code, today=today)
        if problems:
            raise WorkflowError(
                "invalid_biodata", 422,
                "; ".join(p.message_id for p in problems),
                "; ".join(p.message_en for p in problems),
                {"problems": [{"code": p.code, "field": p.field, "id": p.message_id, "en": p.message_en}
                              for p in problems]},
            )
        self._fire(event)
        self.biodata = {k: str(data[k]) for k in REQUIRED_BIODATA}
        self._stamp("biodata")
        self._audit("biodata", "ok")

    # ------------------------------------------------------------------ captures

    def capture(self, key: str, provider: CaptureProvider) -> dict[str, Any]:
        """Capture ``key`` through ``provider`` and judge it against its quality gate."""
        from drivers.errors import DeviceError, UserRetryError

        item = self._item(key)
        retake = item.status != "missing" and self.state is not _HOME_STATE[item.modality]
        event = _RETAKE_EVENT[item.modality] if retake else _CAPTURE_EVENT[item.modality]
        self._check(event)
        started = self.clock()
        try:
            cap = provider.capture(key, language=self.language, context=self._context())
        except UserRetryError as exc:
            self.retry_seconds += self.clock() - started
            item.attempts += 1
            if item.status == "missing":
                item.status = "retry"
            self.last_activity = self.clock()
            self._audit("capture", "user_retry", key)
            return self._retry_answer(item, exc.hint_id, exc.hint_en, None)
        except DeviceError as exc:
            self.fault_seconds += self.clock() - started
            self.last_activity = self.clock()
            self._audit("capture", "device_fault", key)
            raise WorkflowError("device_error", 503, exc.hint_id, exc.hint_en,
                                {"device_error": type(exc).__name__}) from exc
        self._fire(event)
        item.attempts += 1
        threshold = self.threshold(item.modality)
        # Keep the best attempt: force-accept takes it, as MOSIP's client does.
        if item.best is None or cap.quality >= item.best.quality:
            item.best = cap
            item.captured_at = utc_now()
        item.operator_id = self.operator_id
        item.exception_reason = item.exception_note = None
        item.exception_photo = None
        self._stamp(f"capture.{key}")
        if cap.quality >= threshold:
            item.status = "accepted"
            item.force_reason = None
            self._audit("capture", "accepted", key)
            return {"item": key, "accepted": True, "quality": cap.quality, "threshold": threshold,
                    "attempts": item.attempts, "details": dict(cap.details),
                    "message": guidance.both("accepted", score=cap.quality)}
        self.retry_seconds += self.clock() - started
        if item.status != "force_accepted":
            item.status = "retry"
        self._audit("capture", "below_threshold", key)
        hint = guidance.TEXTS[f"{item.modality}.hint"]
        return self._retry_answer(item, hint[0], hint[1], cap)

    def capture_slap(self, slap: str, provider: SlapProvider) -> dict[str, Any]:
        """Capture a whole slap (4-4-2) and judge each finger in it against the finger gate.

        Fingers already excepted are skipped (the scanner is told, so it does not wait for
        them); fingers already accepted are kept unless the slap scores them higher.
        """
        from drivers.errors import DeviceError, UserRetryError

        positions = SLAPS.get(slap)
        if positions is None:
            raise WorkflowError("unknown_item", 404, f"Slap {slap!r} tidak dikenal.",
                                f"Unknown slap {slap!r} (known: {', '.join(SLAPS)}).")
        keys = [f"finger.{p}" for p in positions]
        retake = self.state is not State.FINGERS
        event = Event.RETAKE_FINGER if retake else Event.CAPTURE_FINGER
        self._check(event)
        skip = tuple(p for p in positions if self.items[f"finger.{p}"].status == "excepted")
        started = self.clock()
        try:
            caps = provider.capture_slap(slap, skip=skip, language=self.language)
        except UserRetryError as exc:
            self.retry_seconds += self.clock() - started
            self._audit("capture_slap", "user_retry", slap)
            return {"slap": slap, "accepted": False, "fingers": [],
                    "message": {"id": exc.hint_id, "en": exc.hint_en}}
        except DeviceError as exc:
            self.fault_seconds += self.clock() - started
            self._audit("capture_slap", "device_fault", slap)
            raise WorkflowError("device_error", 503, exc.hint_id, exc.hint_en,
                                {"device_error": type(exc).__name__}) from exc
        self._fire(event)
        threshold = self.threshold("finger")
        results: list[dict[str, Any]] = []
        for key, position in zip(keys, positions, strict=True):
            item = self.items[key]
            cap = caps.get(position)
            if cap is None or position in skip:
                continue
            item.attempts += 1
            if item.best is None or cap.quality >= item.best.quality:
                item.best = cap
                item.captured_at = utc_now()
            item.operator_id = self.operator_id
            if cap.quality >= threshold:
                item.status = "accepted"
                item.force_reason = None
            elif item.status not in ("accepted", "force_accepted"):
                item.status = "retry"
            results.append({"item": key, "quality": cap.quality, "accepted": item.status == "accepted",
                            "attempts": item.attempts,
                            "force_accept_offered": item.status == "retry"
                            and item.attempts >= self.config.quality.retries})
        self._stamp(f"capture.slap.{slap}")
        self._audit("capture_slap", "done", slap)
        pending = [str(r["item"]) for r in results if not r["accepted"]]
        if pending:
            hint = guidance.TEXTS["finger.hint"]
            message = {"id": guidance.say("incomplete", "id", items=", ".join(pending)) + " " + hint[0],
                       "en": guidance.say("incomplete", "en", items=", ".join(pending)) + " " + hint[1]}
        else:
            message = guidance.both("accepted", score=min((int(r["quality"]) for r in results), default=0))
        return {"slap": slap, "accepted": not pending, "threshold": threshold, "fingers": results,
                "message": message}

    def _retry_answer(self, item: Item, hint_id: str, hint_en: str, cap: Capture | None) -> dict[str, Any]:
        threshold = self.threshold(item.modality)
        score = cap.quality if cap else 0
        force_offered = item.attempts >= self.config.quality.retries
        message = (guidance.both("retry.force_offered", attempts=item.attempts) if force_offered else {
            "id": guidance.say("retry.quality", "id", score=score, threshold=threshold, hint=hint_id),
            "en": guidance.say("retry.quality", "en", score=score, threshold=threshold, hint=hint_en),
        })
        return {"item": item.key, "accepted": False, "quality": score, "threshold": threshold,
                "attempts": item.attempts, "force_accept_offered": force_offered and item.best is not None,
                "details": dict(cap.details) if cap else {}, "message": message}

    def threshold(self, modality: str) -> int:
        """The configured quality gate of a modality."""
        q = self.config.quality
        return {"face": q.face_threshold, "finger": q.finger_threshold, "iris": q.iris_threshold,
                "signature": SIGNATURE_GATE}[modality]

    def force_accept(self, key: str, reason: str, *, approved_by: str | None = None) -> None:
        """Accept the best capture so far after the retries are used up, with a reason."""
        item = self._item(key)
        self._check(Event.FORCE_ACCEPT)
        if not reason.strip():
            raise WorkflowError("reason_required", 422, "Alasan wajib diisi.", "A reason is required.")
        if item.best is None:
            raise WorkflowError("nothing_captured", 409, "Belum ada hasil rekam untuk diterima.",
                                "Nothing has been captured for this item yet.")
        if item.attempts < self.config.quality.retries:
            raise WorkflowError("retries_left", 409,
                                f"Masih ada kesempatan ulang ({item.attempts}/{self.config.quality.retries}).",
                                f"Retries are left ({item.attempts}/{self.config.quality.retries}); retry first.")
        if CAPTURE_ORDER.index(_HOME_STATE[item.modality]) > CAPTURE_ORDER.index(self.state):
            raise WorkflowError("invalid_state", 409, "Item ini belum pada tahapnya.",
                                "This item's step has not been reached yet.")
        self._fire(Event.FORCE_ACCEPT)
        item.status = "force_accepted"
        item.force_reason = reason.strip()[:200]
        item.approved_by = approved_by
        self._stamp(f"force_accept.{key}")
        self._audit("force_accept", "ok", key)

    def record_exception(self, key: str, reason: str, note: str, provider: CaptureProvider | None,
                         *, approved_by: str | None = None) -> None:
        """Record a missing or unusable finger, eye or signature, with an exception photo."""
        item = self._item(key)
        self._check(Event.EXCEPTION)
        if item.modality == "face":
            raise WorkflowError("face_required", 422, "Foto wajah wajib, tidak bisa dikecualikan.",
                                "The face photo is mandatory and cannot be excepted.")
        if reason not in EXCEPTION_REASONS:
            raise WorkflowError("bad_reason", 422, f"Alasan harus salah satu dari: {', '.join(EXCEPTION_REASONS)}.",
                                f"Reason must be one of: {', '.join(EXCEPTION_REASONS)}.")
        if CAPTURE_ORDER.index(_HOME_STATE[item.modality]) > CAPTURE_ORDER.index(self.state):
            raise WorkflowError("invalid_state", 409, "Item ini belum pada tahapnya.",
                                "This item's step has not been reached yet.")
        photo = (provider.capture(f"exception.{key}", language=self.language, context=self._context())
                 if provider else None)
        self._fire(Event.EXCEPTION)
        item.status = "excepted"
        item.exception_reason = reason
        item.exception_note = note.strip()[:200] or None
        item.exception_photo = photo
        item.best = None
        item.approved_by = approved_by
        self._stamp(f"exception.{key}")
        self._audit("exception", reason, key)

    # ------------------------------------------------------------------ flow

    def next(self) -> None:
        """Move to the next step once every item of this step is done."""
        self._check(Event.NEXT)
        if self.state is State.BIODATA and not self.biodata:
            raise WorkflowError("incomplete", 409, "Data penduduk belum diisi.", "Biodata has not been entered.")
        pending = [k for k in ITEMS_BY_STATE.get(self.state, ()) if not self.items[k].done]
        if pending:
            raise WorkflowError("incomplete", 409,
                                guidance.say("incomplete", "id", items=", ".join(pending)),
                                guidance.say("incomplete", "en", items=", ".join(pending)),
                                {"pending": pending})
        self._fire(Event.NEXT)
        self._stamp(f"enter.{self.state.value}")

    def seal(self, sealer: Sealer) -> str:
        """Write the packet durably; only then is the session sealed and "saved" answered."""
        self._check(Event.SEAL)
        pending = [k for k, it in self.items.items() if not it.done]
        if pending:
            raise WorkflowError("incomplete", 409,
                                guidance.say("incomplete", "id", items=", ".join(pending)),
                                guidance.say("incomplete", "en", items=", ".join(pending)),
                                {"pending": pending})
        self._stamp("sealing")
        self._audit("seal", "requested")
        packet_id = sealer.seal(self)  # raises on failure: state stays REVIEW, nothing lost
        self._fire(Event.SEAL)
        self.packet_id = packet_id
        self._stamp("sealed")
        self.release_images()
        return packet_id

    def cancel(self) -> None:
        """Abandon the session; its images are dropped."""
        self._fire_or_refuse(Event.CANCEL)
        self._stamp("cancelled")
        self.release_images()

    def expire(self) -> None:
        """Expire an idle session; its images are dropped."""
        self._fire_or_refuse(Event.EXPIRE)
        self._stamp("expired")
        self.release_images()

    def _fire_or_refuse(self, event: Event) -> None:
        self._check(event)
        self._fire(event)

    def release_images(self) -> None:
        """Drop every image this session holds (after sealing, cancelling or expiring)."""
        for item in self.items.values():
            item.best = None
            item.exception_photo = None

    # ------------------------------------------------------------------ views

    def view(self) -> dict[str, Any]:
        """The session as the API shows it: no images, no NIK (the front-end entered it)."""
        step_key = f"step.{self.state.value}"
        return {
            "session_id": self.id,
            "state": self.state.value,
            "operator_id": self.operator_id,
            "packet_id": self.packet_id,
            "items": [it.summary() for it in self.items.values()],
            "guidance": guidance.both(step_key) if step_key in guidance.TEXTS else None,
            "stages": self.stages,
        }

    def service_record(self) -> dict[str, Any]:
        """What the KPI module keeps of this session (no biometrics, no NIK, no name)."""
        sealed = next((s for s in self.stages if s["stage"] == "sealed"), None)
        return {
            "session_id": self.id,
            "packet_id": self.packet_id,
            "kelurahan": self.biodata.get("kelurahan", ""),
            "operator_id": self.operator_id,
            "started_at": self.stages[0]["at"] if self.stages else None,
            "sealed_at": sealed["at"] if sealed else None,
            "record_seconds": sealed["mono"] if sealed else None,
            "retry_seconds": round(self.retry_seconds, 3),
            "fault_seconds": round(self.fault_seconds, 3),
            "first_time_pass": sum(1 for it in self.items.values() if it.status == "accepted" and it.attempts == 1),
            "captures": sum(it.attempts for it in self.items.values()),
            "force_accepts": sum(1 for it in self.items.values() if it.status == "force_accepted"),
            "exceptions": sum(1 for it in self.items.values() if it.status == "excepted"),
            "satisfaction": self.satisfaction,
            "ticket_at": next((s["at"] for s in self.stages if s["stage"] == "ticket"), None),
        }


def validate_biodata(data: Mapping[str, Any], *, district_code: str, today: date) -> list[NikProblem]:
    """Every problem with the entered biodata: missing fields, bad choices, NIK inconsistencies."""
    problems: list[NikProblem] = []
    for name in REQUIRED_BIODATA:
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            problems.append(NikProblem("missing_field", name, f"Kolom {name} wajib diisi.",
                                       f"The field {name} is required."))
        elif len(value) > 200:
            problems.append(NikProblem("too_long", name, f"Kolom {name} terlalu panjang.",
                                       f"The field {name} is too long."))
        elif name in _CHOICES and value not in _CHOICES[name]:
            problems.append(NikProblem("bad_choice", name,
                                       f"Kolom {name} harus salah satu dari: {', '.join(_CHOICES[name])}.",
                                       f"The field {name} must be one of: {', '.join(_CHOICES[name])}."))
    unknown = sorted(set(data) - set(REQUIRED_BIODATA) - {"photo_background"})
    if unknown:
        problems.append(NikProblem("unknown_field", unknown[0], f"Kolom tidak dikenal: {', '.join(unknown)}.",
                                   f"Unknown fields: {', '.join(unknown)}."))
    if problems:
        return problems
    try:
        birth = date.fromisoformat(str(data["birth_date"]))
    except ValueError:
        return [NikProblem("bad_date", "birth_date", "Tanggal lahir harus berformat YYYY-MM-DD.",
                           "The birth date must be YYYY-MM-DD.")]
    problems.extend(
        NikProblem("bad_number", name, f"{name.upper()} harus angka (maks. 3 digit).",
                   f"{name.upper()} must be a number (up to 3 digits).")
        for name in ("rt", "rw")
        if not (str(data[name]).isascii() and str(data[name]).isdigit() and len(str(data[name])) <= 3)
    )
    problems += check_biodata_against_nik(str(data["nik"]), birth_date=birth, sex=str(data["sex"]),
                                          district_code=district_code, today=today)
    return problems
