"""The session's rules: gates, retries, force-accept, exceptions, retake, seal only when complete.

These tests drive the session with a scripted capture source so each rule can be hit exactly;
tests/test_workflow_station.py runs the same flow through the API against emulated devices,
the real journal and real packets.
"""

from __future__ import annotations

from collections import deque
from datetime import date
from typing import Any

import pytest

from agent.config import parse_config
from agent.workflow.manager import SessionManager
from agent.workflow.session import Capture, Session, WorkflowError
from agent.workflow.states import State
from agent.workflow.synthetic import applicant
from drivers.errors import DeviceMissingError, UserRetryError

TODAY = date(2026, 11, 29)
CFG = parse_config({"station": {"district_code": "647201", "language": "en"}})


class Scripted:
    """Answers captures from a queue of qualities (or exceptions), else a good capture."""

    def __init__(self, *script: Any) -> None:
        self.script: deque[Any] = deque(script)
        self.calls: list[str] = []

    def capture(self, item: str, *, language: str, context: Any = None) -> Capture:
        self.calls.append(item)
        step = self.script.popleft() if self.script else 90
        if isinstance(step, Exception):
            raise step
        return Capture(b"img", "png", int(step), 10, 10, {"model": "test"})


class Recorder:
    def __init__(self, fail: WorkflowError | None = None) -> None:
        self.sealed: list[Session] = []
        self.fail = fail

    def seal(self, session: Session) -> str:
        if self.fail:
            raise self.fail
        self.sealed.append(session)
        return "0190-test"


def ready_session(provider: Scripted | None = None) -> Session:
    s = Session(CFG)
    s.set_biodata(applicant(1, today=TODAY), today=TODAY)
    s.next()
    return s


def complete(s: Session, provider: Scripted) -> None:
    s.capture("face", provider)
    s.next()
    for p in range(1, 11):
        s.capture(f"finger.{p}", provider)
    s.next()
    s.capture("iris.right", provider)
    s.capture("iris.left", provider)
    s.next()
    s.capture("signature", provider)
    s.next()


def test_happy_path_seals_and_drops_images() -> None:
    s = ready_session()
    provider = Scripted()
    complete(s, provider)
    assert s.state is State.REVIEW
    sealer = Recorder()
    assert s.seal(sealer) == "0190-test"
    assert s.state is State.SEALED
    assert all(it.best is None for it in s.items.values())
    stages = [st["stage"] for st in s.stages]
    assert stages[0] == "started" and stages[-1] == "sealed"


def test_invalid_biodata_is_refused_and_state_unchanged() -> None:
    s = Session(CFG)
    bad = applicant(1, today=TODAY)
    bad["sex"] = "F" if bad["sex"] == "M" else "M"
    with pytest.raises(WorkflowError) as exc:
        s.set_biodata(bad, today=TODAY)
    assert exc.value.code == "invalid_biodata"
    assert {p["code"] for p in exc.value.details["problems"]} == {"nik_sex_mismatch"}
    assert s.state is State.BIODATA and s.biodata == {}


def test_wrong_district_nik() -> None:
    s = Session(CFG)
    with pytest.raises(WorkflowError) as exc:
        s.set_biodata(applicant(2, district_code="317101", today=TODAY), today=TODAY)
    assert "nik_district_mismatch" in {p["code"] for p in exc.value.details["problems"]}


def test_out_of_order_calls_are_refused() -> None:
    s = Session(CFG)
    with pytest.raises(WorkflowError) as exc:
        s.capture("face", Scripted())
    assert exc.value.status == 409
    with pytest.raises(WorkflowError):
        s.seal(Recorder())
    with pytest.raises(WorkflowError):
        s.next()  # no biodata yet
    assert s.state is State.BIODATA


def test_quality_gate_retries_then_force_accept() -> None:
    s = ready_session()
    provider = Scripted(10, 20, 15)
    answers = [s.capture("face", provider) for _ in range(3)]
    assert [a["accepted"] for a in answers] == [False, False, False]
    assert answers[-1]["force_accept_offered"] is True
    assert answers[0]["force_accept_offered"] is False
    with pytest.raises(WorkflowError):
        s.next()
    s.force_accept("face", "applicant cannot keep still")
    assert s.items["face"].status == "force_accepted"
    assert s.items["face"].best is not None and s.items["face"].best.quality == 20  # the best kept
    s.next()
    assert s.state is State.FINGERS


def test_force_accept_needs_retries_used_and_a_reason() -> None:
    s = ready_session()
    s.capture("face", Scripted(10))
    with pytest.raises(WorkflowError) as exc:
        s.force_accept("face", "x")
    assert exc.value.code == "retries_left"
    s.capture("face", Scripted(10))
    s.capture("face", Scripted(10))
    with pytest.raises(WorkflowError):
        s.force_accept("face", "   ")


def test_user_retry_is_not_a_fault_and_device_fault_is() -> None:
    s = ready_session()
    answer = s.capture("face", Scripted(UserRetryError("eyes closed", hint_en="Open your eyes")))
    assert answer["accepted"] is False and "Open your eyes" in answer["message"]["en"]
    with pytest.raises(WorkflowError) as exc:
        s.capture("face", Scripted(DeviceMissingError("gone")))
    assert exc.value.code == "device_error" and exc.value.status == 503
    assert s.state is State.FACE and s.fault_seconds >= 0


def test_exceptions_need_a_known_reason_and_cover_an_item() -> None:
    s = ready_session()
    provider = Scripted()
    s.capture("face", provider)
    s.next()
    with pytest.raises(WorkflowError):
        s.record_exception("finger.3", "lost", "", provider)
    with pytest.raises(WorkflowError):
        s.record_exception("face", "damaged", "", provider)
    s.record_exception("finger.3", "amputated", "since 2019", provider)
    assert provider.calls[-1] == "exception.finger.3"
    for p in (1, 2, 4, 5, 6, 7, 8, 9, 10):
        s.capture(f"finger.{p}", provider)
    s.next()
    assert s.items["finger.3"].status == "excepted"


def test_cannot_seal_with_an_item_neither_captured_nor_excepted() -> None:
    s = ready_session()
    provider = Scripted()
    complete(s, provider)
    s.items["iris.left"].status = "missing"  # as if its capture had been lost
    with pytest.raises(WorkflowError) as exc:
        s.seal(Recorder())
    assert exc.value.details["pending"] == ["iris.left"]


def test_retake_from_review() -> None:
    s = ready_session()
    provider = Scripted()
    complete(s, provider)
    answer = s.capture("finger.2", Scripted(95))
    assert answer["accepted"] and s.state is State.REVIEW
    assert s.items["finger.2"].attempts == 2


def test_failed_seal_keeps_everything() -> None:
    s = ready_session()
    complete(s, Scripted())
    full = WorkflowError("journal_full", 507, "penuh", "full")
    with pytest.raises(WorkflowError):
        s.seal(Recorder(fail=full))
    assert s.state is State.REVIEW
    assert all(it.best is not None for it in s.items.values())
    assert s.seal(Recorder()) == "0190-test"


def test_idle_sessions_expire_and_drop_images() -> None:
    now = [0.0]
    manager = SessionManager(CFG, clock=lambda: now[0])
    s = manager.start()
    s.set_biodata(applicant(3, today=TODAY), today=TODAY)
    now[0] += CFG.session.idle_timeout_seconds + 1
    assert manager.reap() == 1
    assert s.state is State.EXPIRED
    with pytest.raises(WorkflowError) as exc:
        manager.get(s.id)
    assert exc.value.status == 404


def test_start_refused_when_journal_would_not_hold_the_packet() -> None:
    class Full:
        ok = False
        message_id = "Penyimpanan penuh: 12 paket menunggu sejak 2026-11-28."
        message_en = "Storage full: 12 packets waiting since 2026-11-28."

    manager = SessionManager(CFG, headroom=lambda: Full())
    with pytest.raises(WorkflowError) as exc:
        manager.start()
    assert exc.value.status == 507 and "12 packets" in exc.value.message_en


def test_service_record_has_no_identity() -> None:
    s = ready_session()
    complete(s, Scripted())
    s.seal(Recorder())
    record = s.service_record()
    text = repr(record)
    assert s.biodata["nik"] not in text and s.biodata["name"] not in text
    assert record["first_time_pass"] == 14 and record["record_seconds"] is not None


class SlapScripted:
    """A ten-print source: per slap, the qualities of its fingers."""

    def __init__(self, qualities: dict[int, int]) -> None:
        self.qualities = qualities
        self.skips: list[tuple[int, ...]] = []

    def capture_slap(self, slap: str, *, skip: tuple[int, ...], language: str) -> dict[int, Capture]:
        from agent.workflow.session import SLAPS

        self.skips.append(skip)
        return {p: Capture(b"img", "png", self.qualities.get(p, 90), 10, 10, {"model": "tp"})
                for p in SLAPS[slap] if p not in skip}


def test_slaps_fill_four_four_two_fingers() -> None:
    s = ready_session()
    s.capture("face", Scripted())
    s.next()
    provider = SlapScripted({4: 12})
    s.record_exception("finger.9", "bandaged", "", Scripted())
    right = s.capture_slap("right_four", provider)
    assert not right["accepted"] and [f["item"] for f in right["fingers"] if not f["accepted"]] == ["finger.4"]
    left = s.capture_slap("left_four", provider)
    assert provider.skips[-1] == (9,)
    assert left["accepted"] and s.items["finger.9"].status == "excepted"
    s.capture_slap("two_thumbs", provider)
    with pytest.raises(WorkflowError):
        s.next()  # finger.4 still below the gate
    s.capture("finger.4", Scripted(80))
    s.next()
    assert s.state is State.IRISES
    with pytest.raises(WorkflowError) as exc:
        s.capture_slap("both_hands", provider)
    assert exc.value.status == 404
