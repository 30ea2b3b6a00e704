"""An emulated ten-print (4-4-2 slap) scanner behind the ``TenPrintBackend`` seam.

There is no public wire protocol to emulate (research note §1.2), so the emulator sits where a
vendor SDK would: :class:`EmulatedTenPrintBackend` implements ``TenPrintBackend`` and the real
:class:`~drivers.fingerprint.tenprint.TenPrintScanner` runs on top of it unchanged.

:class:`TenPrintHardware` is the emulated *physical* device. It outlives any one open, like real
hardware, and is found by name (``emu://tenprint/NAME``), so a test can unplug the scanner that
the device manager is using. Its knobs:

* ``person_seed`` -- which synthetic person is in front of the scanner;
* ``queue(*scenarios)`` -- what the next captures meet, one scenario each: ``good``, ``dry``,
  ``wet``, ``smudge``, ``partial`` (image conditions), ``no_finger`` (nothing is ever placed),
  ``moved`` (the SDK reports the finger moved), ``fault`` (a hardware fault code), ``hang`` (the
  device starts acquiring and never finishes), ``corrupt`` (a result whose size is wrong);
* ``unplug()`` / ``plug()`` -- every call on an unplugged scanner raises ``DeviceMissingError``,
  including the poll of a capture in progress;
* ``capture_started`` -- an event set when a capture is armed, so tests need no sleeps.

Images come from ``drivers/emulators/fingerprint_synth.py``: synthetic, never real prints.
"""

from __future__ import annotations

import threading
import zlib
from collections import deque
from dataclasses import asdict
from typing import Any

from drivers.emulators import assets
from drivers.emulators.fingerprint_conditions import PRESETS, PlacedFinger
from drivers.errors import DeviceFaultError, DeviceMissingError
from drivers.fingerprint.base import FingerQualityError, Slap
from drivers.fingerprint.tenprint import BackendInfo, Poll, RawCapture, Segment

SCENARIOS = frozenset({*PRESETS, "no_finger", "moved", "fault", "hang", "corrupt"})
FAULT_CODE = 0x2F  # the emulator's "sensor fault" code (invented for the emulator, not a vendor's)


class TenPrintHardware:
    """The emulated scanner itself: plugged or not, who is in front of it, what happens next."""

    def __init__(
        self,
        name: str,
        *,
        person_seed: int = 1,
        platen: tuple[int, int] = (1600, 1000),
        ppi: int = 500,
        rolled: bool = True,
        sdk_segments: bool = True,
    ) -> None:
        self.name = name
        # False: behave like an SDK that returns only the platen image (no finger boxes).
        self.sdk_segments = sdk_segments
        self.last_placed: tuple[Segment, ...] = ()  # where the last slap's fingers really are
        self.person_seed = person_seed
        self.platen = platen
        self.ppi = ppi
        self.rolled = rolled
        self.serial = f"EMU-TP-{zlib.crc32(name.encode()) % 100000:05d}"  # stable across runs
        self.capture_started = threading.Event()
        self.opens = 0  # how many times a backend opened it (hotplug tests count re-opens)
        self._lock = threading.Lock()
        self._plugged = True
        self._scenarios: deque[str] = deque()
        self._captures = 0

    def plug(self) -> None:
        """Connect the scanner."""
        with self._lock:
            self._plugged = True

    def unplug(self) -> None:
        """Pull the cable: every later call fails with DeviceMissingError."""
        with self._lock:
            self._plugged = False

    @property
    def plugged(self) -> bool:
        """Whether the cable is in."""
        with self._lock:
            return self._plugged

    def queue(self, *scenarios: str) -> None:
        """What the next captures meet, in order (then ``good``)."""
        unknown = set(scenarios) - SCENARIOS
        if unknown:
            raise ValueError(f"unknown scenarios {sorted(unknown)} (known: {sorted(SCENARIOS)})")
        with self._lock:
            self._scenarios.extend(scenarios)

    def _next_scenario(self) -> tuple[str, int]:
        with self._lock:
            self._captures += 1
            return (self._scenarios.popleft() if self._scenarios else "good"), self._captures

    def check(self) -> None:
        """Raise DeviceMissingError when unplugged (what every SDK call sees)."""
        if not self.plugged:
            raise DeviceMissingError(f"emulated ten-print scanner {self.name} unplugged")


_HARDWARE: dict[str, TenPrintHardware] = {}
_HARDWARE_LOCK = threading.Lock()


def hardware(name: str, **kwargs: object) -> TenPrintHardware:
    """The emulated scanner called ``name``, created on first use (kwargs apply then only)."""
    with _HARDWARE_LOCK:
        if name not in _HARDWARE:
            _HARDWARE[name] = TenPrintHardware(name, **kwargs)  # type: ignore[arg-type]
        return _HARDWARE[name]


def forget(name: str) -> None:
    """Remove an emulated scanner (tests call this to start fresh)."""
    with _HARDWARE_LOCK:
        _HARDWARE.pop(name, None)


class EmulatedTenPrintBackend:
    """``TenPrintBackend`` served by a :class:`TenPrintHardware`."""

    def __init__(self, hw: TenPrintHardware) -> None:
        self._hw = hw
        self._open = False
        # code, rolled, missing fingers, scenario, capture number
        self._armed: tuple[int, bool, frozenset[int], str, int] | None = None

    def open(self) -> None:
        """Open the scanner (fails while unplugged)."""
        self._hw.check()
        self._open = True
        self._hw.opens += 1

    def _need_open(self) -> None:
        self._hw.check()
        if not self._open:
            raise DeviceMissingError("emulated ten-print scanner is not open")

    def info(self) -> BackendInfo:
        """The emulator's description."""
        self._need_open()
        return BackendInfo(
            make="Rekam",
            model="Ten-print emulator",
            serial=self._hw.serial,
            firmware="emu-1",
            ppi=self._hw.ppi,
            platen=self._hw.platen,
            slaps=True,
            rolled=self._hw.rolled,
            emulated=True,
        )

    def start(self, iso_code: int, *, rolled: bool, missing: frozenset[int] = frozenset()) -> None:
        """Arm a capture and draw its scenario."""
        self._need_open()
        if not (1 <= iso_code <= 10 or iso_code in (13, 14, 15)):
            raise DeviceFaultError(f"emulator refuses capture code {iso_code}", code="bad-code")
        scenario, number = self._hw._next_scenario()
        self._armed = (iso_code, rolled, missing, scenario, number)
        self._hw.capture_started.set()

    def poll(self) -> Poll:
        """The armed capture's status, following its scenario."""
        self._need_open()
        if self._armed is None:
            raise DeviceFaultError("poll without an armed capture", code="not-armed")
        scenario = self._armed[3]
        if scenario == "no_finger":
            return Poll.WAITING
        if scenario == "hang":
            return Poll.CAPTURING
        if scenario == "moved":
            self._armed = None
            raise FingerQualityError("finger moved during capture", reason="smudge")
        if scenario == "fault":
            self._armed = None
            raise DeviceFaultError(
                "sensor fault",
                code=FAULT_CODE,
                hint_id="Pemindai mengalami kerusakan. Cabut dan pasang lagi; "
                "bila berulang, hubungi teknisi.",
                hint_en="The scanner reported a fault. Unplug and replug it; "
                "if it happens again, call the technician.",
            )
        # Done at the first poll: an outcome that hangs on a second poll would turn into a
        # timeout on a loaded machine whenever the first poll alone outlasts a short test timeout.
        # ("hang" covers a device stuck in "capturing".)
        return Poll.DONE

    def result(self) -> RawCapture:
        """The synthetic image (and, for slaps, where each finger was put)."""
        self._need_open()
        if self._armed is None:
            raise DeviceFaultError("result without a finished capture", code="not-armed")
        code, rolled, missing, scenario, number = self._armed
        self._armed = None
        conditions = PRESETS.get(scenario, PRESETS["good"])
        seed = self._hw.person_seed
        if code <= 10:
            size = (512, 448) if rolled else (352, 448)
            if assets.asset_dir() is not None:
                pixels = self._replay("finger", {
                    "person_seed": seed, "position": code, "width": size[0], "height": size[1],
                    "conditions": asdict(conditions), "capture_seed": number, "rolled": rolled})[0]
            else:
                # numpy only where an image is synthesised: a replaying emulator (asset mode)
                # stands in for hardware in the daemon and must not load it.
                from drivers.emulators.fingerprint_synth import synth_finger

                pixels = synth_finger(
                    seed,
                    code,
                    width=size[0],
                    height=size[1],
                    conditions=conditions,
                    capture_seed=number,
                    rolled=rolled,
                ).tobytes()
            if scenario == "corrupt":
                pixels = pixels[:-7]
            return RawCapture(width=size[0], height=size[1], ppi=self._hw.ppi, pixels=pixels)
        slap = Slap(code)
        positions = tuple(int(f) for f in slap.fingers)
        # The emulator's platen is for four fingers; thumbs use the same glass.
        if assets.asset_dir() is not None:
            pixels, meta = self._replay("slap", {
                "person_seed": seed, "positions": list(positions), "platen": list(self._hw.platen),
                "conditions": asdict(conditions), "capture_seed": number, "skip": sorted(missing)})
            placed = [PlacedFinger(int(p), (int(left), int(top), int(right), int(bottom)))
                      for p, left, top, right, bottom in meta["placed"]]
        else:
            from drivers.emulators.fingerprint_synth import synth_slap

            image, placed = synth_slap(
                seed,
                positions,
                platen=self._hw.platen,
                conditions={p: conditions for p in positions},
                capture_seed=number,
                skip=missing,
            )
            pixels = image.tobytes()
            del image
        if scenario == "corrupt":
            pixels = pixels[:-7]
        truth = tuple(Segment(p.position, p.bbox) for p in placed)
        self._hw.last_placed = truth
        return RawCapture(
            width=self._hw.platen[0],
            height=self._hw.platen[1],
            ppi=self._hw.ppi,
            pixels=pixels,
            segments=truth if self._hw.sdk_segments else (),
        )

    @staticmethod
    def _replay(kind: str, params: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        try:
            return assets.replay(kind, params)
        except assets.AssetError as exc:
            raise DeviceFaultError(f"emulated ten-print scanner: {exc}", code="asset") from exc

    def abort(self) -> None:
        """Disarm."""
        self._armed = None
        self._hw.check()

    def close(self) -> None:
        """Close; safe twice, and safe while unplugged."""
        self._open = False
        self._armed = None
