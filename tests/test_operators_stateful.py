"""Sign-in as a state machine: any sequence of sign-ins, sign-outs, idle time, wall-clock steps
(across midnight either way), removals and re-enrolments keeps the shift table consistent."""

from __future__ import annotations

import itertools
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from agent.config import Config, JournalConfig, OperatorsConfig, StationConfig
from agent.journal import Journal
from agent.operators._db import query
from agent.operators.errors import NotSignedInError, UnknownFingerError
from agent.operators.registry import DirectAccess, OperatorRegistry
from agent.operators.signin import SignIn
from drivers.emulators import protocol_emu
from drivers.emulators.zfm import ZfmEmulator
from drivers.fingerprint.zfm import ZfmOptions, ZfmScanner

FAST = ZfmOptions(reply_timeout=0.3, poll_interval=0.01, finger_timeout=0.05, retry_delay=0.01)
STAFF = ("a", "b", "c")
_names = itertools.count()


class SignInMachine(RuleBasedStateMachine):
    """The model: who should be signed in, given the moves so far."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.journal = Journal.open(Path(self.tmp.name), JournalConfig(free_disk_floor_bytes=0, reserve_bytes=0))
        self.emu = ZfmEmulator("r503", seed=1)
        self.name = f"sm{next(_names)}"
        protocol_emu.attach("zfm", self.name, self.emu)
        self.scanner = ZfmScanner(f"emu://zfm?name={self.name}", FAST)
        self.scanner.open()
        self.access = DirectAccess(self.scanner)
        self.mono = 0.0
        self.wall = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 09:00 Makassar
        self.registry = OperatorRegistry(self.journal)
        cfg = Config(station=StationConfig(timezone="Asia/Makassar"),
                     operators=OperatorsConfig(idle_signout_seconds=600))
        self.signin = SignIn(self.journal, self.registry, cfg, access=self.access,
                             clock=lambda: self.mono, wall=lambda: self.wall)
        self.enrolled: set[str] = set()
        self.expected: str | None = None
        self.since_activity = 0.0
        self.day = self._day()

    def _day(self) -> str:
        return (self.wall + timedelta(hours=8)).date().isoformat()

    def teardown(self) -> None:
        self.scanner.close()
        protocol_emu.detach("zfm", self.name)
        self.journal.close()
        self.tmp.cleanup()

    @rule(who=st.sampled_from(STAFF))
    def enrol(self, who: str) -> None:
        if who in self.enrolled:
            return
        self.emu.place_finger(f"{who}-f")
        self.registry.enroll(who, who, "operator", self.access, timeout=0.3, require_lift=False)
        self.enrolled.add(who)

    @rule(who=st.sampled_from((*STAFF, "stranger")))
    def sign_in(self, who: str) -> None:
        self.emu.place_finger(f"{who}-f")
        if who in self.enrolled:
            assert self.signin.sign_in_fingerprint(timeout=0.3).staff_id == who
            self.expected, self.since_activity, self.day = who, 0.0, self._day()
        else:
            with pytest.raises(UnknownFingerError):
                self.signin.sign_in_fingerprint(timeout=0.3)

    @rule()
    def sign_out(self) -> None:
        gone = self.signin.sign_out()
        assert (gone.staff_id if gone else None) == self._model_current()
        self.expected = None

    @rule(who=st.sampled_from(STAFF))
    def remove(self, who: str) -> None:
        if who in self.enrolled:
            self.registry.remove(who, self.access)
            self.enrolled.discard(who)

    @rule(seconds=st.integers(1, 900))
    def idle(self, seconds: int) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)
        self.since_activity += seconds

    @rule(hours=st.integers(-30, 30))
    def step_wall_clock(self, hours: int) -> None:
        self.wall += timedelta(hours=hours)

    def _model_current(self) -> str | None:
        if self.expected is None:
            return None
        if self.since_activity > 600 or self._day() != self.day or self.expected not in self.enrolled:
            return None
        return self.expected

    @rule()
    def use(self) -> None:
        want = self._model_current()
        if want is None:
            with pytest.raises(NotSignedInError):
                self.signin.require()
            self.expected = None
        else:
            assert self.signin.require().staff_id == want
            self.since_activity = 0.0

    @invariant()
    def shifts_consistent(self) -> None:
        rows = query(self.journal, "SELECT staff_id, signed_out_at, mono_seconds FROM operator_shifts")
        open_rows = [r for r in rows if r[1] is None]
        peek = self.signin.peek()
        assert len(open_rows) == (1 if peek else 0)
        if peek:
            assert open_rows[0][0] == peek.staff_id
        assert all(r[2] is None or r[2] >= 0 for r in rows)


TestSignInMachine = SignInMachine.TestCase
TestSignInMachine.settings = settings(stateful_step_count=15)  # examples from the loaded profile
