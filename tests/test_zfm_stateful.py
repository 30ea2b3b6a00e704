"""Driver against emulator as a Hypothesis state machine: enrol, search, delete, empty, upload
an image, inject line faults, unplug mid-upload.

Invariants: the emulator's library equals the test's model after every step, the driver's own
view (ReadIndexTable, TempleteNum) equals the emulator's whenever it is read, and no driver call
outlives its bound (each call runs in a worker thread joined with a generous limit, so a hang
fails the test instead of blocking it; nothing here measures speed).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from drivers.emulators import protocol_emu
from drivers.emulators.zfm import Fault, ZfmEmulator
from drivers.errors import DeviceMissingError
from drivers.fingerprint.zfm import ZfmOptions, ZfmScanner

T = TypeVar("T")
OPTIONS = ZfmOptions(reply_timeout=0.1, poll_interval=0.005, retry_delay=0.005, retries=1)
SLOTS = st.integers(0, 199)  # the r503 profile's library
FINGERS = st.sampled_from([f"person{p}-finger{f}" for p in range(3) for f in range(2)])
LINE_FAULTS = st.sampled_from([Fault.GARBAGE, Fault.BAD_CHECKSUM, Fault.DROP_BYTE, Fault.SILENCE])
_names = itertools.count()


def bounded(fn: Callable[[], T], calls: int = 1) -> T:
    """Run ``fn`` in a worker and fail if it is still running well past its bound."""
    limit = calls * (OPTIONS.call_bound + OPTIONS.stream_bound(OPTIONS.max_image_bytes)) + 5.0
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the test thread below
            box["error"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"driver call still running after {limit:.1f} s"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


class DriverVersusEmulator(RuleBasedStateMachine):
    """One emulator, one driver, and the library the test expects."""

    def __init__(self) -> None:
        super().__init__()
        self.emu = ZfmEmulator("r503", seed=11)
        self.name = f"sm{next(_names)}"
        protocol_emu.attach("zfm", self.name, self.emu)
        self.scanner = ZfmScanner(f"emu://zfm?name={self.name}", OPTIONS)
        bounded(self.scanner.open, calls=2)
        self.model: dict[int, str] = {}  # slot -> finger identity

    def teardown(self) -> None:
        self.scanner.close()
        protocol_emu.detach("zfm", self.name)

    @rule(slot=SLOTS, finger=FINGERS)
    def enroll(self, slot: int, finger: str) -> None:
        self.emu.place_finger(finger)
        bounded(lambda: self.scanner.enroll(slot, timeout=1.0, require_lift=False), calls=6)
        self.model[slot] = finger

    @rule(finger=FINGERS)
    def search(self, finger: str) -> None:
        self.emu.place_finger(finger)
        hit = bounded(lambda: self.scanner.find(timeout=1.0), calls=3)
        holders = sorted(s for s, f in self.model.items() if f == finger)
        if holders:
            assert hit is not None and hit.slot == holders[0]
        else:
            assert hit is None

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(sorted(self.model)))
        bounded(lambda: self.scanner.delete(slot))
        del self.model[slot]

    @rule()
    def empty(self) -> None:
        bounded(self.scanner.empty)
        self.model.clear()

    @rule(finger=st.none() | FINGERS)
    def upload_image(self, finger: str | None) -> None:
        if finger is None:
            self.emu.lift_finger()
        else:
            self.emu.place_finger(finger)
            bounded(lambda: self.scanner.wait_finger(timeout=1.0))
        image = bounded(self.scanner.upload_image)
        assert image.size == (192, 192) and image.mode == "L"

    @precondition(lambda self: self.emu.pending_faults == 0)
    @rule(fault=LINE_FAULTS, packet=st.sampled_from([0, 0, 1, 40]))
    def inject_fault(self, fault: Fault, packet: int) -> None:
        # One fault at a time: with one retry configured, each is survivable by design. A
        # packet above 0 hits a data packet of the next image upload.
        self.emu.inject(fault, packet=0 if fault is Fault.SILENCE else packet)

    @precondition(lambda self: self.emu.pending_faults == 0)
    @rule()
    def unplug_mid_upload(self) -> None:
        self.emu.inject(Fault.UNPLUG_MID_UPLOAD)
        try:
            bounded(self.scanner.upload_image)
        except DeviceMissingError:
            pass
        else:
            raise AssertionError("an upload cut by an unplug must not succeed")
        self.emu.replug()  # flash survives a power cycle; the library must be intact
        bounded(self.scanner.open, calls=2)

    @rule()
    def compare_views(self) -> None:
        slots = bounded(self.scanner.template_slots)
        count = bounded(self.scanner.template_count)
        assert slots == self.emu.slots() == frozenset(self.model)
        assert count == len(self.model)

    @invariant()
    def emulator_matches_model(self) -> None:
        assert self.emu.slots() == frozenset(self.model)


# Modest on purpose (CI budget); inherits the profile loaded in tests/conftest.py.
DriverVersusEmulator.TestCase.settings = settings(max_examples=30, stateful_step_count=20)
TestDriverVersusEmulator = DriverVersusEmulator.TestCase
