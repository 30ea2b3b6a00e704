"""What every device driver offers the device manager, whatever its family.

A driver is opened, identifies itself, runs a self-test and is closed; the family
interfaces (fingerprint, camera, iris, signature, printer) add their captures on top.
``DeviceIdentity.evidence`` states honestly how much of the driver was checked against the
real device: nothing emulated is ever called real.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Evidence = Literal[
    "public protocol",  # implemented from a published specification, byte for byte
    "reverse-engineered",  # implemented from observed traffic of real devices
    "emulator only",  # no public protocol: interface + SDK seam + emulator; needs the vendor SDK
]


@dataclass(frozen=True)
class DeviceIdentity:
    """Who a device is, for packets and diagnostics."""

    kind: str  # fingerprint, tenprint, camera, iris, signature, printer
    make: str
    model: str
    serial: str
    firmware: str
    evidence: Evidence
    emulated: bool = False

    def as_dict(self) -> dict[str, str | bool]:
        """JSON form (no secrets in here by construction)."""
        return {
            "kind": self.kind,
            "make": self.make,
            "model": self.model,
            "serial": self.serial,
            "firmware": self.firmware,
            "evidence": self.evidence,
            "emulated": self.emulated,
        }


@dataclass(frozen=True)
class SelfTestResult:
    """Outcome of a device self-test; ``image`` is an optional PNG for the technician."""

    ok: bool
    steps: tuple[tuple[str, bool, str], ...]  # (step, passed, detail)
    image_png: bytes | None = None


@runtime_checkable
class Device(Protocol):
    """The part of every driver the device manager uses."""

    def open(self) -> None:
        """Open the transport and bring the device to a known state."""

    def identify(self) -> DeviceIdentity:
        """Read make, model, serial and firmware from the device."""

    def self_test(self) -> SelfTestResult:
        """Run the device's own checks (and one capture where that is harmless)."""

    def close(self) -> None:
        """Release the transport; safe to call twice."""


@dataclass
class FrameLog:
    """A ring buffer of the last frames exchanged with one device, for fault dumps.

    Entries are already-redacted text (drivers elide image and template payloads before
    recording), so dumping them to the log at TRACE leaks nothing.
    """

    size: int = 64
    _entries: deque[tuple[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        self._entries = deque(maxlen=self.size)

    def record(self, direction: str, summary: str) -> None:
        """Remember one frame: direction is "tx" or "rx"."""
        self._entries.append((direction, summary))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
