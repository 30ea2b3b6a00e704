"""Operator records and the mapping of each operator to a slot of the ZFM module's template library.

The module holds the templates and does the 1:N search (its own flash, its own matcher); the
journal holds who owns which slot, the role, and an encrypted copy of the template
(:mod:`agent.operators.vault`). A slot the module holds but no active operator owns (left over
from a removal while the module was unplugged) matches nobody: such a finger is refused.

Every scanner job runs through a :class:`FingerAccess`: in the daemon the device manager's
owner thread (:class:`DeviceAccess`), in the command line or a test a directly opened driver
(:class:`DirectAccess`). The operator layer never opens the port itself.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from agent.operators._db import JournalLike, query
from agent.operators.audit import AuditLog
from agent.operators.errors import (
    BadOperatorInput,
    DuplicateOperatorError,
    LibraryFullError,
    OperatorError,
    UnknownFingerError,
)
from agent.operators.vault import TemplateVault, VaultError
from drivers.errors import DeviceError, DeviceFaultError

if TYPE_CHECKING:
    # The driver module pulls numpy and Pillow; the daemon loads it with the scanner, not at start.
    from drivers.fingerprint.zfm import SearchHit, ZfmScanner

log = logging.getLogger(__name__)

T = TypeVar("T")

ROLES = ("operator", "supervisor", "technician")
STAFF_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS operators (
    staff_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    slot INTEGER,
    enrolled_at TEXT NOT NULL,
    removed_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS operators_active_slot ON operators (slot) WHERE removed_at IS NULL;
CREATE TABLE IF NOT EXISTS operator_templates (
    staff_id TEXT PRIMARY KEY,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL,
    stored_at TEXT NOT NULL
)
"""
_COLUMNS = ("staff_id", "name", "role", "slot", "enrolled_at", "removed_at")


@dataclass(frozen=True)
class Operator:
    """One operator record (the name stays on the station: never logged, never published)."""

    staff_id: str
    name: str
    role: str
    slot: int | None
    enrolled_at: str
    removed_at: str | None

    @property
    def active(self) -> bool:
        """Not removed."""
        return self.removed_at is None

    def public(self) -> dict[str, Any]:
        """What the station API and the CLI show (no template; the name only locally)."""
        return {"staff_id": self.staff_id, "name": self.name, "role": self.role, "slot": self.slot,
                "enrolled_at": self.enrolled_at, "removed_at": self.removed_at}


class FingerAccess(Protocol):
    """Runs one job on the ZFM module, alone, with a bound."""

    def __call__(self, fn: Callable[[ZfmScanner, threading.Event], T], *, timeout: float, label: str) -> T:
        """Run ``fn(scanner, cancel)``; raise DeviceError subclasses on trouble."""


class DirectAccess:
    """A driver the caller opened itself (command line, tests)."""

    def __init__(self, scanner: ZfmScanner) -> None:
        self.scanner = scanner
        self._lock = threading.Lock()

    def __call__(self, fn: Callable[[ZfmScanner, threading.Event], T], *, timeout: float, label: str) -> T:
        """Run ``fn`` here; the driver's own timeouts bound it."""
        if not self._lock.acquire(timeout=timeout):
            raise OperatorError("Pemindai sedang dipakai.", f"The scanner is busy ({label}).")
        try:
            return fn(self.scanner, threading.Event())
        finally:
            self._lock.release()


class DeviceAccess:
    """The daemon's device manager: the job runs on the scanner's owner thread."""

    def __init__(self, devices: Any, name: str) -> None:
        self.devices = devices
        self.name = name

    def __call__(self, fn: Callable[[ZfmScanner, threading.Event], T], *, timeout: float, label: str) -> T:
        """Run ``fn`` through ``DeviceManager.call``."""
        return self.devices.call(self.name, lambda d, cancel: fn(_zfm(d, self.name), cancel),  # type: ignore[no-any-return]
                                 timeout=timeout, label=label)


def _zfm(driver: object, name: str) -> ZfmScanner:
    from drivers.fingerprint.zfm import ZfmScanner

    if not isinstance(driver, ZfmScanner):
        raise DeviceFaultError(
            f"{name} has no template library", code="no-library", device=name,
            hint_id="Pemindai ini tidak menyimpan sidik jari petugas. Atur [operators] scanner ke modul ZFM.",
            hint_en="This scanner keeps no operator templates. Set [operators] scanner to a ZFM module.",
        )
    return driver


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def check_staff_id(staff_id: object) -> str:
    """A valid staff id, or BadOperatorInput."""
    if not isinstance(staff_id, str) or not STAFF_ID_RE.fullmatch(staff_id):
        raise BadOperatorInput("NIP/ID petugas tidak sah (huruf, angka, . _ -; maks. 32).",
                               "Bad staff id (letters, digits, . _ -; at most 32).")
    return staff_id


class OperatorRegistry:
    """Operators in the journal, their templates on the module."""

    def __init__(self, journal: JournalLike, *, audit: AuditLog | None = None,
                 vault: TemplateVault | None = None, clock: Callable[[], str] = _now) -> None:
        self.journal = journal
        self.audit = audit
        self.vault = vault
        self.clock = clock
        journal.register_schema("operators", SCHEMA)

    # ------------------------------------------------------------------ reads

    def _select(self, where: str, params: list[Any]) -> list[Operator]:
        rows = query(self.journal, f"SELECT {', '.join(_COLUMNS)} FROM operators {where}", params)
        return [Operator(*r) for r in rows]

    def get(self, staff_id: str) -> Operator | None:
        """The operator with this staff id (removed ones too), or None."""
        found = self._select("WHERE staff_id = ?", [staff_id])
        return found[0] if found else None

    def active(self, staff_id: str) -> Operator | None:
        """The operator when enrolled and not removed, else None."""
        op = self.get(staff_id)
        return op if op is not None and op.active else None

    def by_slot(self, slot: int) -> Operator | None:
        """The active operator owning library slot ``slot``."""
        found = self._select("WHERE slot = ? AND removed_at IS NULL", [slot])
        return found[0] if found else None

    def operators(self, *, include_removed: bool = False) -> list[Operator]:
        """Operators by staff id."""
        where = "" if include_removed else "WHERE removed_at IS NULL"
        return self._select(f"{where} ORDER BY staff_id", [])

    def _require(self, staff_id: str) -> Operator:
        op = self.get(staff_id)
        if op is None:
            raise OperatorError(f"Petugas {staff_id} tidak terdaftar.", f"No operator {staff_id}.")
        return op

    def _mapped_slots(self) -> set[int]:
        return {int(r[0]) for r in query(self.journal,
                "SELECT slot FROM operators WHERE removed_at IS NULL AND slot IS NOT NULL")}

    # ------------------------------------------------------------------ enrol / remove

    def enroll(self, staff_id: str, name: str, role: str, access: FingerAccess, *, timeout: float,
               require_lift: bool = True, by: str | None = None) -> Operator:
        """Two captures of the operator's finger -> a template in a free slot -> a record here.

        Raises:
            BadOperatorInput, DuplicateOperatorError (staff id taken, or the finger already
            belongs to another operator), LibraryFullError, and DeviceError subclasses.
        """
        check_staff_id(staff_id)
        if not isinstance(name, str) or not name.strip() or len(name) > 80 or not name.isprintable():
            raise BadOperatorInput("Nama petugas wajib (maks. 80 karakter).", "A name of at most 80 characters is required.")
        if role not in ROLES:
            raise BadOperatorInput(f"Peran harus salah satu dari: {', '.join(ROLES)}.",
                                   f"Role must be one of: {', '.join(ROLES)}.")
        if self.active(staff_id) is not None:
            raise DuplicateOperatorError(f"Petugas {staff_id} sudah terdaftar.", f"Operator {staff_id} is already enrolled.")
        mapped = self._mapped_slots()

        def job(s: ZfmScanner, cancel: threading.Event) -> tuple[int, bytes]:
            if s.params is None:
                raise DeviceFaultError("scanner not open", code="not-open", device=s.name)
            free = [n for n in range(s.params.library_size) if n not in mapped]
            on_module = s.template_slots()
            # A slot on the module that no active operator owns is an orphan: reusable.
            empty = [n for n in free if n not in on_module]
            if not free:
                raise LibraryFullError(
                    f"Pustaka sidik jari modul penuh ({s.params.library_size} slot). Hapus petugas yang tidak aktif.",
                    f"The module's template library is full ({s.params.library_size} slots). Remove inactive operators.",
                    {"library_size": s.params.library_size})
            s.wait_finger(timeout=timeout, cancel=cancel)
            s.image_to_template(1)
            hit = s.search(1)
            if hit is not None and hit.slot in mapped:
                return -1 - hit.slot, b""
            slot = hit.slot if hit is not None else (empty[0] if empty else free[0])
            if require_lift:
                s.wait_lift(cancel=cancel)
            s.wait_finger(timeout=timeout, cancel=cancel)
            s.image_to_template(2)
            s.create_model()
            s.store(slot, 1)
            return slot, s.upload_template(1)

        slot, template = access(job, timeout=3 * timeout, label="operator enroll")
        if slot < 0:
            owner = self.by_slot(-1 - slot)
            raise DuplicateOperatorError(
                f"Sidik jari ini sudah terdaftar untuk petugas {owner.staff_id if owner else '?'}.",
                f"This finger is already enrolled for operator {owner.staff_id if owner else '?'}.",
                {"staff_id": owner.staff_id if owner else None})
        now = self.clock()
        try:
            with self.journal.transaction() as db:
                db.execute("DELETE FROM operators WHERE staff_id = ?", [staff_id])  # a removed record is replaced
                db.execute("INSERT INTO operators (staff_id, name, role, slot, enrolled_at, removed_at) "
                           "VALUES (?, ?, ?, ?, ?, NULL)", [staff_id, name.strip(), role, slot, now])
                if self.vault is not None and template:
                    nonce, sealed = self.vault.seal(staff_id, template)
                    db.execute("INSERT OR REPLACE INTO operator_templates VALUES (?, ?, ?, ?)",
                               [staff_id, nonce, sealed, now])
        except BaseException:
            # Undo the module side so no orphan template answers to a finger.
            try:
                access(lambda s, _c: s.delete(slot), timeout=timeout, label="operator enroll undo")
            except DeviceError:
                log.warning("operator enrolment undo: slot %d left on the module", slot)
            raise
        if self.audit is not None:
            self.audit.record("operator.enroll", "ok", operator_id=by, details={"staff_id": staff_id,
                              "role": role, "slot": slot})
        log.info("operator %s enrolled in slot %d (%s)", staff_id, slot, role)
        return self._require(staff_id)

    def remove(self, staff_id: str, access: FingerAccess | None, *, timeout: float = 5.0,
               by: str | None = None) -> Operator:
        """Mark the operator removed, drop the encrypted copy, and free the module's slot.

        The record is removed even when the module cannot be reached: the slot is then an
        orphan that matches nobody (sign-in refuses it), and is reused by a later enrolment.
        """
        op = self.active(staff_id)
        if op is None:
            raise OperatorError(f"Petugas {staff_id} tidak terdaftar.", f"No active operator {staff_id}.")
        with self.journal.transaction() as db:
            db.execute("UPDATE operators SET removed_at = ? WHERE staff_id = ?", [self.clock(), staff_id])
            db.execute("DELETE FROM operator_templates WHERE staff_id = ?", [staff_id])
        slot_freed = False
        if access is not None and op.slot is not None:
            slot = op.slot
            try:
                access(lambda s, _c: s.delete(slot), timeout=timeout, label="operator remove")
                slot_freed = True
            except DeviceError as exc:
                log.warning("operator %s removed; slot %d not freed on the module: %s", staff_id, slot,
                            type(exc).__name__)
        if self.audit is not None:
            self.audit.record("operator.remove", "ok" if slot_freed else "slot_left", operator_id=by,
                              details={"staff_id": staff_id, "slot": op.slot})
        return self._require(staff_id)

    # ------------------------------------------------------------------ identify

    def identify(self, access: FingerAccess, *, timeout: float) -> tuple[Operator, int]:
        """Capture the finger now on the glass and name its operator: (operator, match score).

        Raises:
            UnknownFingerError: no slot matched, or the slot belongs to no active operator.
            UserRetryError (no finger, bad image) and other DeviceErrors from the scanner.
        """
        def job(s: ZfmScanner, cancel: threading.Event) -> SearchHit | None:
            s.wait_finger(timeout=timeout, cancel=cancel)
            s.image_to_template(1)
            return s.search(1)

        hit = access(job, timeout=timeout, label="operator identify")
        op = self.by_slot(hit.slot) if hit is not None else None
        if op is None or hit is None:
            raise UnknownFingerError(
                "Sidik jari tidak dikenal sebagai petugas. Masuk ditolak.",
                "This finger is not an enrolled operator. Sign-in refused.")
        return op, hit.score

    def restore(self, access: FingerAccess, *, timeout: float = 5.0) -> tuple[int, list[str]]:
        """Write every stored template back into its slot (after a module swap).

        Returns (how many were written, staff ids whose stored copy did not open).
        """
        if self.vault is None:
            raise OperatorError("Kunci templat tidak tersedia.", "No template key: cannot restore.")
        rows = query(self.journal, "SELECT o.staff_id, o.slot, t.nonce, t.sealed FROM operators o "
                     "JOIN operator_templates t USING (staff_id) WHERE o.removed_at IS NULL AND o.slot IS NOT NULL")
        done = 0
        skipped: list[str] = []
        for staff_id, slot, nonce, sealed in rows:
            try:
                template = self.vault.open(staff_id, bytes(nonce), bytes(sealed))
            except VaultError:
                log.warning("template of operator %s does not open; skipped", staff_id)
                skipped.append(staff_id)
                continue

            def job(s: ZfmScanner, _c: threading.Event, t: bytes = template, n: int = int(slot)) -> None:
                s.download_template(t, 1)
                s.store(n, 1)

            access(job, timeout=timeout, label="operator restore")
            done += 1
        return done, skipped
