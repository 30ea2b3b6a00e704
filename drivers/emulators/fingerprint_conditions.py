"""What the fingerprint emulators' synthesiser is asked for, without the synthesiser.

The capture conditions and where a slap's fingers landed are plain data: the ten-print
emulator needs them on every capture, also when it only replays finished images
(``drivers.emulators.assets``); the synthesiser itself (``fingerprint_synth``) needs numpy, which a
station daemon does not otherwise load (issue 7's memory target).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GOOD", "PRESETS", "Conditions", "PlacedFinger"]


@dataclass(frozen=True)
class Conditions:
    """How the finger meets the glass; each knob 0 (none) to 1 (severe)."""

    dry: float = 0.0  # broken, faint ridges
    wet: float = 0.0  # ridges merge into dark blots
    smudge: float = 0.0  # the finger slid: ridges smeared along one direction
    partial: float = 0.0  # fraction of the fingertip off the glass
    noise: float = 0.03  # sensor noise (standard deviation as a fraction of full scale)

    def __post_init__(self) -> None:
        for name in ("dry", "wet", "smudge", "partial", "noise"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"condition {name} must be within 0..1, got {value}")


GOOD = Conditions()
PRESETS: dict[str, Conditions] = {
    "good": GOOD,
    "dry": Conditions(dry=0.6),
    "wet": Conditions(wet=0.85),
    "smudge": Conditions(smudge=1.0),
    "partial": Conditions(partial=0.8),
}


@dataclass(frozen=True)
class PlacedFinger:
    """Where the synthesiser put one finger in a slap image."""

    position: int
    bbox: tuple[int, int, int, int]  # left, top, right, bottom
