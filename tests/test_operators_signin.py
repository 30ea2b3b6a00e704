"""Operator enrolment, fingerprint and PIN sign-in, idle/removed/midnight sign-out.

Real parts: the ZFM driver over the ``emu://zfm`` URL handler (the module's own template
library and 1:N search, emulated byte for byte) and the real journal in a temporary directory.
"""

from __future__ import annotations

import itertools
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config import Config, JournalConfig, OperatorsConfig, StationConfig
from agent.journal import Journal
from agent.operators._db import query
from agent.operators.audit import AuditLog
from agent.operators.errors import (
    BadOperatorInput,
    DuplicateOperatorError,
    LibraryFullError,
    NotSignedInError,
    PinError,
    UnknownFingerError,
)
from agent.operators.pin import PinFile, PinFileError
from agent.operators.registry import DirectAccess, OperatorRegistry
from agent.operators.signin import SignIn, SignInWatcher
from agent.operators.vault import TemplateVault, VaultError, load_or_create_key
from drivers.emulators import protocol_emu
from drivers.emulators.zfm import ZfmEmulator, ZfmProfile
from drivers.errors import UserRetryError
from drivers.fingerprint.zfm import ZfmOptions, ZfmScanner

FAST = ZfmOptions(reply_timeout=0.3, poll_interval=0.01, finger_timeout=0.2, lift_timeout=0.2, retry_delay=0.01)
_names = itertools.count()
TINY = ZfmProfile("tiny", 192, 192, 3, 512, 2, False, 0x0009)


class Clocks:
    """A monotonic clock and a wall clock the test moves by hand."""

    def __init__(self, wall: datetime) -> None:
        self.mono = 1000.0
        self.now = wall

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path, JournalConfig(free_disk_floor_bytes=0, reserve_bytes=0))
    try:
        yield j
    finally:
        j.close()


def open_rig(profile: str | ZfmProfile = "r503") -> tuple[ZfmEmulator, ZfmScanner, str]:
    emu = ZfmEmulator(profile, seed=3)
    name = f"op{next(_names)}"
    protocol_emu.attach("zfm", name, emu)
    scanner = ZfmScanner(f"emu://zfm?name={name}", FAST)
    scanner.open()
    return emu, scanner, name


@pytest.fixture
def rig() -> Iterator[tuple[ZfmEmulator, DirectAccess]]:
    emu, scanner, name = open_rig()
    try:
        yield emu, DirectAccess(scanner)
    finally:
        scanner.close()
        protocol_emu.detach("zfm", name)


def config(**operators: object) -> Config:
    return Config(station=StationConfig(timezone="Asia/Makassar"), operators=OperatorsConfig(**operators))  # type: ignore[arg-type]


def enroll(reg: OperatorRegistry, emu: ZfmEmulator, access: DirectAccess, staff: str, role: str = "operator") -> int:
    emu.place_finger(f"{staff}-right-index")
    op = reg.enroll(staff, f"Nama {staff}", role, access, timeout=0.5, require_lift=False)
    emu.lift_finger()
    assert op.slot is not None
    return op.slot


def test_enrol_stores_template_on_module_and_encrypted_copy(journal: Journal, rig: tuple[ZfmEmulator, DirectAccess],
                                                            tmp_path: Path) -> None:
    emu, access = rig
    vault = TemplateVault.from_keys_dir(tmp_path / "keys")
    reg = OperatorRegistry(journal, vault=vault, audit=AuditLog(journal, tz="Asia/Makassar"))
    slot_a = enroll(reg, emu, access, "199001")
    slot_b = enroll(reg, emu, access, "199002", "supervisor")
    assert slot_a != slot_b and emu.slots() == {slot_a, slot_b}
    assert [o.staff_id for o in reg.operators()] == ["199001", "199002"]
    key_file = tmp_path / "keys" / "operator_templates.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    (nonce, sealed), = query(journal, "SELECT nonce, sealed FROM operator_templates WHERE staff_id = '199001'")
    # The stored copy is not the template in clear, but opens to exactly the module's template.
    assert emu.library[slot_a] not in bytes(sealed)
    assert vault.open("199001", bytes(nonce), bytes(sealed)) == emu.library[slot_a]
    with pytest.raises(VaultError):
        vault.open("199002", bytes(nonce), bytes(sealed))  # bound to the staff id
    # The audit trail names ids and the slot, never the operator's name.
    rows = query(journal, "SELECT action, details FROM audit_trail")
    assert [r[0] for r in rows] == ["operator.enroll", "operator.enroll"]
    assert all("Nama" not in str(r[1]) for r in rows)


def test_enrol_refuses_duplicates_and_bad_input(journal: Journal, rig: tuple[ZfmEmulator, DirectAccess]) -> None:
    emu, access = rig
    reg = OperatorRegistry(journal)
    enroll(reg, emu, access, "199001")
    with pytest.raises(DuplicateOperatorError):
        enroll(reg, emu, access, "199001")  # staff id taken
    emu.place_finger("199001-right-index")  # the same finger under a new staff id
    with pytest.raises(DuplicateOperatorError) as info:
        reg.enroll("199009", "Other", "operator", access, timeout=0.5, require_lift=False)
    assert info.value.details["staff_id"] == "199001"
    assert len(emu.slots()) == 1
    for staff, name, role in (("bad id!", "N", "operator"), ("199003", "", "operator"),
                              ("199003", "N", "janitor"), ("199003", "x" * 81, "operator")):
        with pytest.raises(BadOperatorInput):
            reg.enroll(staff, name, role, access, timeout=0.5)


def test_library_full_is_a_clear_error_before_any_capture(journal: Journal) -> None:
    emu, scanner, name = open_rig(TINY)
    try:
        access = DirectAccess(scanner)
        reg = OperatorRegistry(journal)
        for n in range(3):
            enroll(reg, emu, access, f"19900{n}")
        emu.place_finger("someone-else")
        commands = emu.commands_seen
        with pytest.raises(LibraryFullError) as info:
            reg.enroll("199009", "N", "operator", access, timeout=0.5, require_lift=False)
        assert info.value.status == 507 and "full" in info.value.message_en
        assert emu.commands_seen - commands == 1  # ReadIndexTable only: no finger was captured
        assert reg.active("199009") is None
        # Removing one frees its slot on the module, and the next enrolment reuses it.
        freed = reg.remove("199001", access)
        assert freed.slot not in emu.slots()
        assert enroll(reg, emu, access, "199009") == freed.slot
    finally:
        scanner.close()
        protocol_emu.detach("zfm", name)


def test_enrol_without_lift_times_out_as_user_retry(journal: Journal, rig: tuple[ZfmEmulator, DirectAccess]) -> None:
    emu, access = rig
    reg = OperatorRegistry(journal)
    emu.place_finger("199001-right-index")
    with pytest.raises(UserRetryError):
        reg.enroll("199001", "N", "operator", access, timeout=0.3, require_lift=True)
    assert reg.active("199001") is None and emu.slots() == frozenset()


def test_fingerprint_sign_in_unknown_finger_and_handover(journal: Journal, rig: tuple[ZfmEmulator, DirectAccess]) -> None:
    emu, access = rig
    clocks = Clocks(datetime(2026, 11, 2, 0, 0, tzinfo=UTC))  # 08:00 in Makassar
    audit = AuditLog(journal, tz="Asia/Makassar", clock=clocks.wall)
    reg = OperatorRegistry(journal, audit=audit)
    enroll(reg, emu, access, "199001")
    enroll(reg, emu, access, "199002")
    signin = SignIn(journal, reg, config(), audit=audit, access=access, clock=clocks.monotonic, wall=clocks.wall)
    with pytest.raises(NotSignedInError):
        signin.require()
    emu.place_finger("applicant-left-thumb")
    with pytest.raises(UnknownFingerError) as info:
        signin.sign_in_fingerprint(timeout=0.3)
    assert info.value.status == 403 and signin.current() is None
    emu.lift_finger()
    with pytest.raises(UserRetryError):
        signin.sign_in_fingerprint(timeout=0.05)  # nobody on the glass
    emu.place_finger("199001-right-index")
    assert signin.sign_in_fingerprint(timeout=0.3).staff_id == "199001"
    clocks.advance(600)
    emu.place_finger("199002-right-index")
    assert signin.sign_in_fingerprint(timeout=0.3).staff_id == "199002"
    rows = query(journal, "SELECT staff_id, out_reason, mono_seconds FROM operator_shifts ORDER BY id")
    assert rows == [("199001", "handover", 600.0), ("199002", None, None)]
    refused = query(journal, "SELECT outcome FROM audit_trail WHERE action = 'operator.sign_in_refused'")
    assert refused == [("unknown_finger",)]


def test_idle_sign_out_uses_the_monotonic_clock(journal: Journal, rig: tuple[ZfmEmulator, DirectAccess]) -> None:
    emu, access = rig
    clocks = Clocks(datetime(2026, 11, 2, 0, 0, tzinfo=UTC))
    reg = OperatorRegistry(journal)
    enroll(reg, emu, access, "199001")
    signin = SignIn(journal, reg, config(idle_signout_seconds=60), access=access,
                    clock=clocks.monotonic, wall=clocks.wall)
    emu.place_finger("199001-right-index")
    signin.sign_in_fingerprint(timeout=0.3)
    clocks.advance(50)
    signin.require()  # activity
    clocks.now += timedelta(hours=2)  # an NTP step forward of the wall clock is not idleness
    assert signin.current() is not None
    clocks.mono += 61
    assert signin.current() is None
    (reason, length), = query(journal, "SELECT out_reason, mono_seconds FROM operator_shifts")
    # The shift ends when the idle limit ran out (50 s + 60 s), not when it was noticed.
    assert reason == "idle" and length == 110.0


def test_midnight_and_clock_jump_back_end_the_shift(journal: Journal, rig: tuple[ZfmEmulator, DirectAccess]) -> None:
    emu, access = rig
    # 23:50 local (Asia/Makassar = UTC+8): the day changes ten minutes later.
    clocks = Clocks(datetime(2026, 11, 2, 15, 50, tzinfo=UTC))
    reg = OperatorRegistry(journal)
    enroll(reg, emu, access, "199001")
    signin = SignIn(journal, reg, config(idle_signout_seconds=3600), access=access,
                    clock=clocks.monotonic, wall=clocks.wall)
    emu.place_finger("199001-right-index")
    signin.sign_in_fingerprint(timeout=0.3)
    clocks.advance(9 * 60)
    assert signin.current() is not None
    clocks.advance(2 * 60)  # 00:01 next day
    assert signin.current() is None
    signin.sign_in_fingerprint(timeout=0.3)
    clocks.mono += 30
    clocks.now -= timedelta(hours=1)  # the wall clock is stepped back across midnight again
    assert signin.current() is None
    rows = query(journal, "SELECT day, out_reason, mono_seconds, signed_in_at, signed_out_at FROM operator_shifts ORDER BY id")
    assert [(r[0], r[1], r[2]) for r in rows] == [("2026-11-02", "day_changed", 660.0), ("2026-11-03", "day_changed", 30.0)]
    assert rows[1][4] < rows[1][3]  # wall times went backwards; the kept length did not


def test_removed_operator_is_signed_out_at_next_check(journal: Journal, rig: tuple[ZfmEmulator, DirectAccess]) -> None:
    emu, access = rig
    reg = OperatorRegistry(journal)
    enroll(reg, emu, access, "199001")
    signin = SignIn(journal, reg, config(), access=access)
    emu.place_finger("199001-right-index")
    signin.sign_in_fingerprint(timeout=0.3)
    reg.remove("199001", access)  # e.g. from `rekam operators remove` while signed in
    with pytest.raises(NotSignedInError):
        signin.require()
    assert query(journal, "SELECT out_reason FROM operator_shifts") == [("removed",)]
    # The removed finger no longer signs in, on the module or through a stale slot mapping.
    with pytest.raises(UnknownFingerError):
        signin.sign_in_fingerprint(timeout=0.3)


def test_removed_while_module_unplugged_leaves_an_orphan_that_matches_nobody(
        journal: Journal, rig: tuple[ZfmEmulator, DirectAccess]) -> None:
    emu, access = rig
    reg = OperatorRegistry(journal, audit=AuditLog(journal, tz="Asia/Makassar"))
    slot = enroll(reg, emu, access, "199001")
    emu.unplug()
    reg.remove("199001", access, timeout=0.3)
    emu.replug()
    access.scanner.close()
    access.scanner.open()
    assert slot in emu.slots()  # still on the module
    assert query(journal, "SELECT outcome FROM audit_trail WHERE action = 'operator.remove'") == [("slot_left",)]
    signin = SignIn(journal, reg, config(), access=access)
    emu.place_finger("199001-right-index")
    with pytest.raises(UnknownFingerError):
        signin.sign_in_fingerprint(timeout=0.3)
    # A new enrolment of that finger takes the orphan slot over.
    assert enroll(reg, emu, access, "199001") == slot


def test_pin_fallback_roles_lockout_and_file(journal: Journal, rig: tuple[ZfmEmulator, DirectAccess], tmp_path: Path) -> None:
    emu, access = rig
    clocks = Clocks(datetime(2026, 11, 2, 0, 0, tzinfo=UTC))
    reg = OperatorRegistry(journal)
    enroll(reg, emu, access, "tech01", "technician")
    enroll(reg, emu, access, "199001", "operator")
    pins = PinFile(tmp_path / "pins")
    pins.set("tech01", "482913")
    pins.set("199001", "111222")
    assert stat.S_IMODE((tmp_path / "pins").stat().st_mode) == 0o600
    text = (tmp_path / "pins").read_text()
    assert "482913" not in text and "111222" not in text
    signin = SignIn(journal, reg, config(pin_max_failures=2, pin_lock_seconds=60), pins=pins,
                    clock=clocks.monotonic, wall=clocks.wall)
    with pytest.raises(PinError) as info:
        signin.sign_in_pin("199001", "111222")  # right PIN, but operators must use the finger
    assert "fingerprint" in info.value.message_en
    with pytest.raises(PinError):
        signin.sign_in_pin("nobody", "123456")
    with pytest.raises(PinError):
        signin.sign_in_pin("tech01", "000000")
    with pytest.raises(PinError):
        signin.sign_in_pin("tech01", "000001")  # second failure: locked now
    with pytest.raises(PinError) as info:
        signin.sign_in_pin("tech01", "482913")
    assert "locked" in info.value.message_en
    clocks.advance(61)
    assert signin.sign_in_pin("tech01", "482913").method == "pin"
    assert pins.remove("tech01") and not pins.has("tech01")
    with pytest.raises(BadOperatorInput):
        pins.set("tech01", "12")
    (tmp_path / "pins").chmod(0o644)
    with pytest.raises(PinFileError):
        pins.verify("199001", "111222")
    (tmp_path / "pins").chmod(0o600)
    (tmp_path / "pins").write_text("199001:scrypt:3:8:1:AAAA:AAAA\n")
    with pytest.raises(PinFileError, match=":1: malformed"):
        pins.verify("199001", "111222")


def test_restart_closes_open_shift_and_vault_key_checks(journal: Journal, rig: tuple[ZfmEmulator, DirectAccess],
                                                        tmp_path: Path) -> None:
    emu, access = rig
    reg = OperatorRegistry(journal)
    enroll(reg, emu, access, "199001")
    signin = SignIn(journal, reg, config(), access=access)
    emu.place_finger("199001-right-index")
    signin.sign_in_fingerprint(timeout=0.3)
    SignIn(journal, reg, config(), access=access)  # the daemon restarted
    assert query(journal, "SELECT out_reason, mono_seconds FROM operator_shifts") == [("restart", None)]
    keys = tmp_path / "k"
    load_or_create_key(keys)
    (keys / "operator_templates.key").chmod(0o644)
    with pytest.raises(VaultError, match="chmod 600"):
        load_or_create_key(keys)


def test_restore_refills_a_replaced_module(journal: Journal, rig: tuple[ZfmEmulator, DirectAccess], tmp_path: Path) -> None:
    emu, access = rig
    reg = OperatorRegistry(journal, vault=TemplateVault.from_keys_dir(tmp_path / "keys"))
    slot = enroll(reg, emu, access, "199001")
    original = emu.library[slot]
    emu.library.clear()  # a new, empty module in its place
    assert reg.restore(access) == (1, [])
    assert emu.library[slot] == original
    signin = SignIn(journal, reg, config(), access=access)
    emu.place_finger("199001-right-index")
    assert signin.sign_in_fingerprint(timeout=0.3).staff_id == "199001"


def test_watcher_signs_out_an_idle_operator_without_api_calls(journal: Journal,
                                                              rig: tuple[ZfmEmulator, DirectAccess]) -> None:
    emu, access = rig
    clocks = Clocks(datetime(2026, 11, 2, 0, 0, tzinfo=UTC))
    reg = OperatorRegistry(journal)
    enroll(reg, emu, access, "199001")
    signin = SignIn(journal, reg, config(idle_signout_seconds=60), access=access,
                    clock=clocks.monotonic, wall=clocks.wall)
    emu.place_finger("199001-right-index")
    signin.sign_in_fingerprint(timeout=0.3)
    watcher = SignInWatcher(signin, period=0.01)
    assert watcher.status() == "operator 199001"
    watcher.start()
    try:
        clocks.mono += 61
        for _ in range(1000):  # bounded wait for the watcher's next tick
            if signin.peek() is None:
                break
            threading.Event().wait(0.01)
        assert signin.peek() is None and watcher.healthy()
    finally:
        watcher.stop()
    assert query(journal, "SELECT out_reason FROM operator_shifts") == [("idle",)]
    assert watcher.status() == "no operator"


def test_pin_guessing_across_staff_ids_locks_station_wide(journal: Journal, rig: tuple[ZfmEmulator, DirectAccess],
                                                          tmp_path: Path) -> None:
    emu, access = rig
    clocks = Clocks(datetime(2026, 11, 2, 0, 0, tzinfo=UTC))
    reg = OperatorRegistry(journal)
    enroll(reg, emu, access, "tech01", "technician")
    pins = PinFile(tmp_path / "pins")
    pins.set("tech01", "482913")
    signin = SignIn(journal, reg, config(pin_max_failures=2, pin_lock_seconds=60), pins=pins,
                    clock=clocks.monotonic, wall=clocks.wall)
    for n in range(6):  # 3 x pin_max_failures, each on a different (unknown) staff id
        with pytest.raises(PinError) as info:
            signin.sign_in_pin(f"guess{n}", "000000")
        assert "locked" not in info.value.message_en
    with pytest.raises(PinError) as info:
        signin.sign_in_pin("tech01", "482913")
    assert "locked" in info.value.message_en
    assert len(signin._pin_failures) == 1  # unknown ids are not remembered one by one
    clocks.advance(61)
    assert signin.sign_in_pin("tech01", "482913").staff_id == "tech01"


def test_late_sign_out_keeps_the_earlier_idle_end(journal: Journal, rig: tuple[ZfmEmulator, DirectAccess]) -> None:
    emu, access = rig
    clocks = Clocks(datetime(2026, 11, 2, 0, 0, tzinfo=UTC))
    reg = OperatorRegistry(journal)
    enroll(reg, emu, access, "199001")
    signin = SignIn(journal, reg, config(idle_signout_seconds=60), access=access,
                    clock=clocks.monotonic, wall=clocks.wall)
    emu.place_finger("199001-right-index")
    signin.sign_in_fingerprint(timeout=0.3)
    clocks.advance(3 * 3600)  # left the desk; taps "sign out" three hours later
    assert signin.sign_out() is None
    assert query(journal, "SELECT out_reason, mono_seconds FROM operator_shifts") == [("idle", 60.0)]


def test_names_and_pins_never_reach_the_log(journal: Journal, rig: tuple[ZfmEmulator, DirectAccess],
                                            tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    emu, access = rig
    caplog.set_level(1)
    audit = AuditLog(journal, tz="Asia/Makassar")
    reg = OperatorRegistry(journal, audit=audit, vault=TemplateVault.from_keys_dir(tmp_path / "keys"))
    emu.place_finger("canary-finger")
    reg.enroll("tech77", "Canary Q7XZ", "technician", access, timeout=0.5, require_lift=False)
    pins = PinFile(tmp_path / "pins")
    pins.set("tech77", "90817263")
    signin = SignIn(journal, reg, config(), audit=audit, pins=pins, access=access)
    signin.sign_in_fingerprint(timeout=0.3)
    with pytest.raises(PinError):
        signin.sign_in_pin("tech77", "11223344")
    signin.sign_in_pin("tech77", "90817263")
    signin.sign_out()
    reg.remove("tech77", access)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "tech77" in text  # ids are logged ...
    assert "Canary" not in text and "Q7XZ" not in text  # ... names are not
    assert "90817263" not in text and "11223344" not in text
    rows = query(journal, "SELECT * FROM audit_trail")
    assert "Q7XZ" not in str(rows) and "90817263" not in str(rows)
