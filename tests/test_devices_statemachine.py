"""Hypothesis drives the device manager and the ten-print emulator through random histories.

Rules: capture under every emulator scenario, unplug, plug. Invariants: every call returns within
its bound with the error the scenario calls for; the owner thread stays alive; and over the whole
history each "went down" log line ("absent" or "faulted") is matched by exactly one "back" line.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from agent.config import DeviceConfig
from agent.devices import DeviceManager, DeviceState, DeviceUnavailableError
from drivers.emulators.tenprint import forget, hardware
from drivers.errors import DeviceFaultError, DeviceProtocolError, DeviceTimeoutError
from drivers.fingerprint.base import FingerPosition, FingerQualityError, NoFingerError

OUTCOME: dict[str, type[Exception] | None] = {
    "good": None,
    "dry": None,
    "wet": None,
    "no_finger": NoFingerError,
    "moved": FingerQualityError,
    "fault": DeviceFaultError,
    "hang": DeviceTimeoutError,
    "corrupt": DeviceProtocolError,
}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _wait(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.003)


class ManagerMachine(RuleBasedStateMachine):
    """One managed emulated scanner under random use and abuse."""

    def __init__(self) -> None:
        super().__init__()
        self.name = f"sm-{uuid.uuid4().hex[:8]}"
        self.hw = hardware(self.name, person_seed=4)
        self.lines = _Lines()
        self.logger = logging.getLogger("agent.devices")
        self.logger.addHandler(self.lines)
        self.previous_level = self.logger.level
        self.logger.setLevel(logging.INFO)
        cfg = DeviceConfig(
            driver="tenprint-emulator",
            url=f"emu://tenprint?name={self.name}",
            role="tenprint",
            retry_min_seconds=0.01,
            retry_max_seconds=0.03,
            probe_seconds=0.01,
        )
        self.manager = DeviceManager({"tp": cfg})
        self.dev = self.manager.devices["tp"]
        self.manager.start()
        assert self.manager.wait_ready("tp", 20)

    @rule(scenario=st.sampled_from(sorted(OUTCOME)), position=st.sampled_from(list(FingerPosition)))
    def capture(self, scenario: str, position: FingerPosition) -> None:
        if not self.hw.plugged:
            with pytest.raises(DeviceUnavailableError):
                self.manager.capture_finger("tp", position, timeout=0.05)
            return
        assert self.manager.wait_ready("tp", 20)
        self.hw.queue(scenario)
        expected = OUTCOME[scenario]
        if expected is None:
            assert self.manager.capture_finger("tp", position, timeout=0.05).position == position
        else:
            with pytest.raises(expected):
                self.manager.capture_finger("tp", position, timeout=0.05)

    @rule()
    def unplug(self) -> None:
        self.hw.unplug()
        _wait(lambda: self.dev.state is DeviceState.ABSENT)

    @rule()
    def plug(self) -> None:
        self.hw.plug()
        assert self.manager.wait_ready("tp", 20)

    @invariant()
    def owner_alive(self) -> None:
        assert self.manager.healthy()

    def teardown(self) -> None:
        try:
            self.hw.plug()
            assert self.manager.wait_ready("tp", 20)
            down = [m for m in self.lines.messages if " absent: " in m or " faulted: " in m]
            back = [m for m in self.lines.messages if " back: " in m]
            assert len(down) == len(back), self.lines.messages
        finally:
            self.manager.stop()
            self.logger.removeHandler(self.lines)
            self.logger.setLevel(self.previous_level)
            forget(self.name)


ManagerMachine.TestCase.settings = settings(
    ManagerMachine.TestCase.settings, max_examples=12, stateful_step_count=8
)
test_manager_state_machine = ManagerMachine.TestCase
