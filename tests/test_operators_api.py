"""Operator routes and the sign-in guard on the real station API (HTTP on 127.0.0.1).

Operators sign in with the emulated ZFM module (real driver over ``emu://zfm``) and the real
journal. The applicant's captures come from a scripted provider, as in the workflow's own
tests: the subject here is who may do what, not capture quality.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from agent.api.client import ApiError, StationClient
from agent.api.server import StationApi
from agent.config import parse_config
from agent.journal import Journal
from agent.operators._db import query
from agent.operators.audit import manifest_trail
from agent.operators.pin import PinFile
from agent.operators.registry import DirectAccess
from agent.operators.routes import OperatorService, install_routes
from agent.workflow.manager import SessionManager
from agent.workflow.session import Capture, Session
from agent.workflow.synthetic import applicant
from drivers.emulators import protocol_emu
from drivers.emulators.zfm import ZfmEmulator
from drivers.fingerprint.zfm import ZfmOptions, ZfmScanner

TODAY = date(2026, 11, 29)
FAST = ZfmOptions(reply_timeout=0.3, poll_interval=0.01, finger_timeout=0.2, retry_delay=0.01)
_names = itertools.count()


class Scripted:
    """Applicant captures: qualities from a queue, else a good one."""

    def __init__(self) -> None:
        self.script: deque[int] = deque()
        self.calls: list[str] = []

    def capture(self, item: str, *, language: str, context: Any = None) -> Capture:
        self.calls.append(item)
        q = self.script.popleft() if self.script else 90
        return Capture(b"img", "png", q, 10, 10, {"model": "test"})


class Recorder:
    def __init__(self) -> None:
        self.sealed: list[Session] = []

    def seal(self, session: Session) -> str:
        self.sealed.append(session)
        return f"pkt-{len(self.sealed)}"


class Station:
    def __init__(self, tmp: Path, **operators: Any) -> None:
        self.cfg = parse_config({
            "station": {"district_code": "647201", "language": "en", "state_dir": str(tmp)},
            "quality": {"retries": 1},
            "operators": {"sign_in_timeout_seconds": 1.0, **operators},
            "journal": {"free_disk_floor_bytes": 0, "reserve_bytes": 0},
        })
        self.journal = Journal.open(tmp, self.cfg.journal)
        self.emu = ZfmEmulator("r503", seed=5)
        self.name = f"api{next(_names)}"
        protocol_emu.attach("zfm", self.name, self.emu)
        self.scanner = ZfmScanner(f"emu://zfm?name={self.name}", FAST)
        self.scanner.open()
        self.pins = PinFile(tmp / "pins")
        self.service = OperatorService(self.cfg, self.journal, access=DirectAccess(self.scanner), pins=self.pins)
        self.provider = Scripted()
        self.sealer = Recorder()
        self.sessions = SessionManager(self.cfg)
        self.api = StationApi(self.cfg, sessions=self.sessions, provider=self.provider, sealer=self.sealer,
                              token="t" * 32, port=0, today=lambda: TODAY)
        install_routes(self.api, self.service)
        self.api.start()
        self.client = StationClient(self.api.port, "t" * 32, timeout=10)
        for staff, role in (("op1", "operator"), ("op2", "operator"), ("sup1", "supervisor"),
                            ("sup2", "supervisor"), ("tech1", "technician")):
            self.emu.place_finger(f"{staff}-finger")
            self.service.registry.enroll(staff, f"Name {staff}", role, DirectAccess(self.scanner),
                                         timeout=0.5, require_lift=False)
        self.emu.lift_finger()

    def close(self) -> None:
        self.api.stop()
        self.scanner.close()
        protocol_emu.detach("zfm", self.name)
        self.journal.close()

    def finger(self, who: str) -> None:
        self.emu.place_finger(f"{who}-finger")

    def sign_in(self, who: str) -> dict[str, Any]:
        self.finger(who)
        return self.client.call("POST", "/v1/operators/sign-in", {"method": "fingerprint"})


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Station]:
    s = Station(tmp_path)
    try:
        yield s
    finally:
        s.close()


def error_code(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str | None]:
    return exc.value.status, exc.value.code


def to_fingers(st: Station) -> str:
    sid = st.client.call("POST", "/v1/sessions", {})["session_id"]
    st.client.call("PUT", f"/v1/sessions/{sid}/biodata", applicant(3, today=TODAY))
    st.client.call("POST", f"/v1/sessions/{sid}/next")
    st.client.call("POST", f"/v1/sessions/{sid}/capture/face")
    st.client.call("POST", f"/v1/sessions/{sid}/next")
    return str(sid)


def finish(st: Station, sid: str, skip: tuple[str, ...] = ()) -> None:
    for p in range(1, 11):
        if f"finger.{p}" not in skip:
            st.client.call("POST", f"/v1/sessions/{sid}/capture/finger.{p}")
    st.client.call("POST", f"/v1/sessions/{sid}/next")
    st.client.call("POST", f"/v1/sessions/{sid}/capture/iris.right")
    st.client.call("POST", f"/v1/sessions/{sid}/capture/iris.left")
    st.client.call("POST", f"/v1/sessions/{sid}/next")
    st.client.call("POST", f"/v1/sessions/{sid}/capture/signature")
    st.client.call("POST", f"/v1/sessions/{sid}/next")


def test_enrollment_calls_need_a_signed_in_operator(station: Station) -> None:
    st = station
    with pytest.raises(ApiError) as info:
        st.client.call("POST", "/v1/sessions", {})
    assert error_code(info) == (401, "not_signed_in")
    assert st.client.call("GET", "/v1/operators/current") == {"operator": None}
    with pytest.raises(ApiError) as info:
        st.client.call("GET", "/v1/operators")  # names are for a signed-in operator's screen only
    assert error_code(info) == (401, "not_signed_in")
    # An unknown finger (an applicant's) is refused, and signs nobody in.
    st.finger("applicant")
    with pytest.raises(ApiError) as info:
        st.client.call("POST", "/v1/operators/sign-in", {"method": "fingerprint"})
    assert error_code(info) == (403, "unknown_finger")
    st.emu.lift_finger()
    with pytest.raises(ApiError) as info:
        st.client.call("POST", "/v1/operators/sign-in", {"method": "fingerprint"})
    assert error_code(info) == (422, "finger_retry")
    with pytest.raises(ApiError) as info:
        st.client.call("POST", "/v1/operators/sign-in", {"method": "iris"})
    assert error_code(info) == (422, "bad_operator_input")
    answer = st.sign_in("op1")
    assert answer["operator"]["staff_id"] == "op1" and answer["name"] == "Name op1"
    with pytest.raises(ApiError) as info:
        st.client.call("POST", "/v1/sessions", {"operator_id": "op2"})  # recording under a colleague's id
    assert error_code(info) == (401, "not_signed_in")
    view = st.client.call("POST", "/v1/sessions", {})
    assert view["operator_id"] == "op1"
    assert st.client.call("POST", "/v1/operators/sign-out", {}) == {"signed_out": "op1"}
    with pytest.raises(ApiError) as info:
        st.client.call("PUT", f"/v1/sessions/{view['session_id']}/biodata", applicant(3, today=TODAY))
    assert error_code(info) == (401, "not_signed_in")
    with pytest.raises(ApiError) as info:
        st.client.call("GET", f"/v1/sessions/{view['session_id']}/review")  # shows the biodata back
    assert error_code(info) == (401, "not_signed_in")
    # Reads and the applicant's own satisfaction answer stay open.
    st.client.call("GET", f"/v1/sessions/{view['session_id']}")
    st.client.call("POST", f"/v1/sessions/{view['session_id']}/satisfaction", {"score": 4})


def test_applicant_finger_on_capture_route_never_signs_in(station: Station) -> None:
    st = station
    st.sign_in("op1")
    sid = to_fingers(st)
    st.finger("op2")  # an operator's finger on the glass during an applicant's capture
    st.client.call("POST", f"/v1/sessions/{sid}/capture/finger.1")
    assert st.client.call("GET", "/v1/operators/current")["operator"]["staff_id"] == "op1"


def test_pin_route_for_technician_only(station: Station) -> None:
    st = station
    st.pins.set("tech1", "246810")
    st.pins.set("op1", "135790")
    with pytest.raises(ApiError) as info:
        st.client.call("POST", "/v1/operators/sign-in", {"method": "pin", "staff_id": "op1", "pin": "135790"})
    assert error_code(info) == (401, "pin_refused")
    with pytest.raises(ApiError) as info:
        st.client.call("POST", "/v1/operators/sign-in", {"method": "pin", "staff_id": "tech1"})
    assert error_code(info) == (422, "bad_operator_input")
    out = st.client.call("POST", "/v1/operators/sign-in", {"method": "pin", "staff_id": "tech1", "pin": "246810"})
    assert out["operator"]["method"] == "pin"
    listed = st.client.call("GET", "/v1/operators")["operators"]
    assert [o["staff_id"] for o in listed] == ["op1", "op2", "sup1", "sup2", "tech1"]


def test_force_accept_needs_another_supervisor_before_seal(station: Station) -> None:
    st = station
    st.sign_in("sup1")  # a supervisor recording an applicant themselves
    sid = to_fingers(st)
    st.provider.script.append(10)  # finger.3 below the gate once; retries = 1 -> force-accept offered
    assert st.client.call("POST", f"/v1/sessions/{sid}/capture/finger.3")["accepted"] is False
    st.client.call("POST", f"/v1/sessions/{sid}/force-accept/finger.3", {"reason": "worn ridges"})
    finish(st, sid, skip=("finger.3",))
    with pytest.raises(ApiError) as info:
        st.client.call("POST", f"/v1/sessions/{sid}/seal")
    assert error_code(info) == (409, "approval_required")
    assert info.value.body["error"]["details"]["items"] == ["finger.3"]
    # Their own capture: refused, even though they are a supervisor.
    st.finger("sup1")
    with pytest.raises(ApiError) as info:
        st.client.call("POST", f"/v1/sessions/{sid}/approve", {"item": "finger.3"})
    assert error_code(info) == (403, "approval_refused")
    assert info.value.body["error"]["details"]["reason"] == "own_capture"
    # An operator is no supervisor.
    st.finger("op2")
    with pytest.raises(ApiError) as info:
        st.client.call("POST", f"/v1/sessions/{sid}/approve", {"item": "finger.3"})
    assert info.value.body["error"]["details"]["reason"] == "not_supervisor"
    # An item that was captured normally needs nothing.
    st.finger("sup2")
    with pytest.raises(ApiError) as info:
        st.client.call("POST", f"/v1/sessions/{sid}/approve", {"item": "finger.4"})
    assert info.value.body["error"]["details"]["reason"] == "nothing_to_approve"
    with pytest.raises(ApiError) as info:
        st.client.call("POST", f"/v1/sessions/{sid}/approve", {"item": "finger.99"})
    assert error_code(info) == (422, "bad_operator_input")
    ok = st.client.call("POST", f"/v1/sessions/{sid}/approve", {"item": "finger.3"})
    assert ok == {"item": "finger.3", "approved_by": "sup2", "pending": []}
    assert st.client.call("GET", "/v1/operators/current")["operator"]["staff_id"] == "sup1"
    assert st.client.call("POST", f"/v1/sessions/{sid}/seal")["saved"] is True
    sealed = st.sealer.sealed[0]
    assert sealed.items["finger.3"].approved_by == "sup2"
    trail = manifest_trail(sealed)
    assert {"action": "force_accept", "item": "finger.3", "operator": "sup1", "approved_by": "sup2"}.items() <= \
        next(e for e in trail if e["action"] == "force_accept").items()
    assert set(trail[0]) == {"action", "item", "operator", "approved_by", "at", "outcome"}  # no biodata, no images
    # The trail went to the journal when the session finished: who did each step, who approved.
    rows = query(st.journal, "SELECT action, item, operator_id, approved_by FROM audit_trail "
                 "WHERE session_id = ? ORDER BY seq", [sid])
    assert ("session.force_accept", "finger.3", "sup1", "sup2") in rows
    assert ("session.approve", "finger.3", "sup2", "sup2") in rows
    assert all(r[2] == "sup1" for r in rows if r[0] == "session.capture")
    refusals = query(st.journal, "SELECT outcome FROM audit_trail WHERE action = 'session.approve_refused'")
    assert sorted(r[0] for r in refusals) == ["not_supervisor", "nothing_to_approve", "own_capture"]


def test_exception_approval_and_handover_credit_each_stage(station: Station) -> None:
    st = station
    st.sign_in("op1")
    sid = to_fingers(st)
    for p in range(1, 6):
        st.client.call("POST", f"/v1/sessions/{sid}/capture/finger.{p}")
    st.sign_in("op2")  # hand-over in the middle of the fingers
    st.client.call("POST", f"/v1/sessions/{sid}/exception/finger.10", {"reason": "amputated", "note": ""})
    for p in range(6, 10):
        st.client.call("POST", f"/v1/sessions/{sid}/capture/finger.{p}")
    st.client.call("POST", f"/v1/sessions/{sid}/next")
    for item in ("iris.right", "iris.left"):
        st.client.call("POST", f"/v1/sessions/{sid}/capture/{item}")
    st.client.call("POST", f"/v1/sessions/{sid}/next")
    st.client.call("POST", f"/v1/sessions/{sid}/capture/signature")
    st.client.call("POST", f"/v1/sessions/{sid}/next")
    with pytest.raises(ApiError) as info:
        st.client.call("POST", f"/v1/sessions/{sid}/seal")
    assert info.value.body["error"]["details"]["items"] == ["finger.10"]
    st.finger("sup1")
    st.client.call("POST", f"/v1/sessions/{sid}/approve", {"item": "finger.10"})
    assert st.client.call("GET", f"/v1/sessions/{sid}/review")["state"] == "review"
    st.client.call("POST", f"/v1/sessions/{sid}/seal")
    assert query(st.journal, "SELECT operator_id FROM audit_trail WHERE session_id = ? AND action = 'session.review'",
                 [sid]) == [("op2",)]
    # Station actions by whoever is signed in (the printing and stock code call this).
    st.service.station_action("print.confirm", "ok", packet_id="pkt-1")
    st.client.call("POST", "/v1/operators/sign-out", {})
    st.service.station_action("stock.recount", "ok", details={"counted": 40})
    assert query(st.journal, "SELECT action, operator_id, packet_id FROM audit_trail "
                 "WHERE action IN ('print.confirm', 'stock.recount') ORDER BY id") == [
        ("print.confirm", "op2", "pkt-1"), ("stock.recount", None, None)]
    rows = query(st.journal, "SELECT item, operator_id FROM audit_trail WHERE session_id = ? "
                 "AND action = 'session.capture'", [sid])
    by_item = dict(rows)
    assert by_item["finger.1"] == "op1" and by_item["finger.6"] == "op2" and by_item["signature"] == "op2"
    shifts = query(st.journal, "SELECT staff_id, out_reason FROM operator_shifts ORDER BY id")
    assert shifts == [("op1", "handover"), ("op2", "manual")]


def test_without_required_sign_in_approvals_still_gate_the_seal(tmp_path: Path) -> None:
    st = Station(tmp_path, require_sign_in=False, require_supervisor_for_force_accept=False)
    try:
        sid = to_fingers(st)  # nobody signed in: allowed by this configuration
        st.client.call("POST", f"/v1/sessions/{sid}/exception/finger.1", {"reason": "bandaged", "note": ""})
        st.provider.script.append(10)
        st.client.call("POST", f"/v1/sessions/{sid}/capture/finger.2")
        st.client.call("POST", f"/v1/sessions/{sid}/force-accept/finger.2", {"reason": "scar"})
        finish(st, sid, skip=("finger.1", "finger.2"))
        with pytest.raises(ApiError) as info:
            st.client.call("POST", f"/v1/sessions/{sid}/seal")
        # Exceptions still need a supervisor; force-accepts do not in this configuration.
        assert info.value.body["error"]["details"]["items"] == ["finger.1"]
        st.finger("sup1")
        st.client.call("POST", f"/v1/sessions/{sid}/approve", {"item": "finger.1"})
        assert st.client.call("POST", f"/v1/sessions/{sid}/seal")["saved"] is True
    finally:
        st.close()
