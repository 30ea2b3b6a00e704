"""The daemon's wiring: the operator layer through the device manager's owner thread, the
diagnostics check, and properties of the approval rule and attendance arithmetic."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import Config, OperatorsConfig, parse_config
from agent.devices import DeviceBusyError, DeviceManager
from agent.diagnostics import FAIL, OK, WARN
from agent.journal import Journal
from agent.operators import approvals
from agent.operators.attendance import Attendance, Shift
from agent.operators.diag import operators_checks
from agent.operators.errors import ApprovalError, UnknownFingerError
from agent.operators.registry import DeviceAccess, Operator
from agent.operators.routes import OperatorService
from drivers.emulators import protocol_emu
from drivers.emulators.zfm import ZfmEmulator


@pytest.fixture
def daemon_parts(tmp_path: Path) -> Iterator[tuple[Config, Journal, DeviceManager, ZfmEmulator]]:
    emu = ZfmEmulator("r307", seed=4)
    name = f"w-{uuid.uuid4().hex[:8]}"
    protocol_emu.attach("zfm", name, emu)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    cfg = parse_config({
        "station": {"state_dir": str(state)},
        "journal": {"free_disk_floor_bytes": 0, "reserve_bytes": 0},
        "operators": {"scanner": "opscan", "sign_in_timeout_seconds": 1.0},
        "devices": {"opscan": {"driver": "zfm", "url": f"emu://zfm?name={name}", "role": "fingerprint",
                               "options": {"reply_timeout": 0.2, "poll_interval": 0.01, "retry_delay": 0.01},
                               "retry_min_seconds": 0.01, "retry_max_seconds": 0.05, "probe_seconds": 0.05}},
    })
    manager = DeviceManager(cfg.devices)
    manager.start()
    journal = Journal.open(state, cfg.journal)
    try:
        assert manager.wait_ready("opscan", 20)
        yield cfg, journal, manager, emu
    finally:
        journal.close()
        manager.stop()
        protocol_emu.detach("zfm", name)


def test_sign_in_through_the_device_manager_and_diagnostics(
        daemon_parts: tuple[Config, Journal, DeviceManager, ZfmEmulator]) -> None:
    cfg, journal, manager, emu = daemon_parts
    service = OperatorService.for_daemon(cfg, journal, manager)
    assert isinstance(service.access, DeviceAccess)
    names = [c.name for c in operators_checks(cfg)]
    assert names[0] == "operator scanner"
    failing = {c.name: c for c in operators_checks(cfg)}
    assert failing["operators"].status == FAIL and "rekam operators enroll" in failing["operators"].hint_en
    for staff, role in (("sup1", "supervisor"), ("op1", "operator")):
        emu.place_finger(f"{staff}-f")
        service.registry.enroll(staff, staff, role, service.access, timeout=1.0, require_lift=False)
    assert len(emu.slots()) == 2
    emu.place_finger("op1-f")
    assert service.signin.sign_in_fingerprint().staff_id == "op1"
    emu.place_finger("nobody")
    with pytest.raises(UnknownFingerError):
        service.signin.sign_in_fingerprint()
    # While an applicant's capture holds the scanner, a sign-in is refused at once, not queued.
    emu.lift_finger()
    device = manager.device("opscan")  # the owner runs one job at a time
    release = threading.Event()
    holder = threading.Thread(target=lambda: device.call(lambda d, c: release.wait(5), timeout=5, label="hold"))
    holder.start()
    try:
        deadline = time.monotonic() + 10
        while device.state.value != "busy" and time.monotonic() < deadline:
            release.wait(0.005)
        with pytest.raises(DeviceBusyError):
            service.signin.sign_in_fingerprint()
    finally:
        release.set()
        holder.join(5)
    checks = {c.name: c for c in operators_checks(cfg)}
    assert checks["operator scanner"].status == OK and checks["operators"].status == OK
    assert checks["supervisors"].status == WARN  # only one supervisor: approvals may be impossible
    assert checks["PIN fallback"].status == OK
    assert "1 operators signed in" in checks["today's indicators"].detail
    wrong = parse_config({"station": {"state_dir": str(cfg.state_dir)},
                          "journal": {"free_disk_floor_bytes": 0, "reserve_bytes": 0}})
    assert {c.name: c.status for c in operators_checks(wrong)}["operator scanner"] == FAIL


class FakeItem:
    def __init__(self, key: str, status: str, operator_id: str | None) -> None:
        self.key, self.status, self.operator_id, self.approved_by = key, status, operator_id, None


class FakeState:
    value = "review"


class FakeSession:
    """Plain data with the attributes approvals reads (the rule under test is approvals')."""

    def __init__(self, operator_id: str | None, item: FakeItem, trail: list[dict[str, Any]]) -> None:
        self.id = "s1"
        self.operator_id = operator_id
        self.audit = trail
        self.items = {item.key: item}
        self.state = FakeState()


STAFF = st.sampled_from(["a", "b", "c"])


@given(status=st.sampled_from(["accepted", "force_accepted", "excepted", "missing", "retry"]),
       role=st.sampled_from(["operator", "supervisor", "technician"]), removed=st.booleans(),
       approver=STAFF, session_op=st.none() | STAFF, item_op=st.none() | STAFF,
       trail_ops=st.lists(STAFF, max_size=3))
def test_approval_rule_property(status: str, role: str, removed: bool, approver: str, session_op: str | None,
                                item_op: str | None, trail_ops: list[str]) -> None:
    item = FakeItem("finger.2", status, item_op)
    trail = [{"action": "capture", "item": "finger.2", "operator": o} for o in trail_ops]
    session = FakeSession(session_op, item, trail)
    sup = Operator(approver, "n", role, 1, "2026-11-01T00:00:00+00:00",
                   "2026-11-02T00:00:00+00:00" if removed else None)
    doers = set(trail_ops) | ({item_op} if item_op else set())
    if not doers and session_op:
        doers = {session_op}
    allowed = status in ("force_accepted", "excepted") and role == "supervisor" and not removed \
        and approver not in doers
    if allowed:
        approvals.approve(session, "finger.2", sup)
        assert item.approved_by == approver and session.audit[-1]["action"] == "approve"
        assert approvals.pending(session, OperatorsConfig()) == []
    else:
        with pytest.raises(ApprovalError):
            approvals.approve(session, "finger.2", sup)
        assert item.approved_by is None and len(session.audit) == len(trail_ops)


class NoJournal:
    def register_schema(self, name: str, ddl_sql: str) -> None:
        pass

    def transaction(self) -> Any:
        raise AssertionError("not used")

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        raise AssertionError("not used")


@given(start_min=st.integers(0, 24 * 60 - 1), length=st.none() | st.floats(0, 86400),
       wall_out_delta=st.none() | st.integers(-86400, 86400))
def test_attendance_office_time_is_bounded_and_never_negative(start_min: int, length: float | None,
                                                              wall_out_delta: int | None) -> None:
    att = Attendance(NoJournal(), Config())
    day = "2026-11-02"
    start = datetime(2026, 11, 2, tzinfo=UTC) - timedelta(hours=8) + timedelta(minutes=start_min)
    out = None if wall_out_delta is None else (start + timedelta(seconds=wall_out_delta)).isoformat()
    shift = Shift("a", day, start.isoformat(), out, length, "manual")
    row = att.day_of("a", day, [shift], now=start + timedelta(days=2))
    assert row is not None
    # 07:30-12:00 and 13:00-15:00: at most 6.5 hours inside office hours.
    assert 0 <= row.office_seconds <= 6.5 * 3600
    assert row.late_minutes == (max(0, start_min - (7 * 60 + 30)) if start_min > 7 * 60 + 30 else 0)
