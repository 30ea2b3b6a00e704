"""The iris scanner interface the enrollment workflow uses, whatever the make.

Evidence: emulator only. No iris scanner we know of has a public wire protocol: IriTech
IriShield ships the IDDK SDK, Mantra a local "RDService" HTTP API (research note
protocols.md section 4). So there is no wire codec here; a vendor SDK is wrapped behind
:class:`drivers.iris.sdk.IrisSdk` and this interface sits on top.

Images are what ISO/IEC 19794-6 calls a raw monochrome iris image: 640x480, 8-bit,
near-infrared, one per eye. Quality is measured by the agent (``agent.quality.iris``) on
these images; ``sdk_quality`` carries the vendor's own score when the SDK reports one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from PIL import Image

from drivers.base import Device

Eye = Literal["left", "right"]
EyeSelection = Literal["left", "right", "both"]

IRIS_WIDTH = 640
IRIS_HEIGHT = 480


def eyes_of(selection: EyeSelection) -> tuple[Eye, ...]:
    """The eyes a selection asks for, left first."""
    if selection == "both":
        return ("left", "right")
    if selection in ("left", "right"):
        return (selection,)
    raise ValueError(f"eye selection must be left, right or both, not {selection!r}")


@dataclass(frozen=True)
class IrisImage:
    """One eye's image: 8-bit grey pixels, row by row."""

    eye: Eye
    width: int
    height: int
    pixels: bytes
    sdk_quality: int | None = None  # the vendor SDK's own 0-100 score, when it gives one

    def __post_init__(self) -> None:
        if len(self.pixels) != self.width * self.height:
            raise ValueError(f"{len(self.pixels)} bytes for {self.width}x{self.height} 8-bit pixels")

    def to_image(self) -> Image.Image:
        """The image as a Pillow "L" image."""
        return Image.frombytes("L", (self.width, self.height), self.pixels)

    def __repr__(self) -> str:
        # Never print biometric pixels (logs, tracebacks).
        return f"IrisImage(eye={self.eye!r}, {self.width}x{self.height}, sdk_quality={self.sdk_quality})"


@runtime_checkable
class IrisScanner(Device, Protocol):
    """An iris scanner: capture one or both eyes within a bounded time, or cancel."""

    def capture(self, eyes: EyeSelection, timeout_s: float | None = None) -> tuple[IrisImage, ...]:
        """Capture the selected eyes (left first).

        Raises:
            UserRetryError: no eye found, eyes closed, too near or far, moved (hints ID/EN).
            DeviceTimeoutError: the device did not finish within the bound.
            DeviceFaultError / DeviceMissingError / DeviceProtocolError: device trouble.
        """

    def cancel(self) -> None:
        """Abort a capture in progress (from another thread)."""
