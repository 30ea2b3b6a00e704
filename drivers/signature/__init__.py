"""Signature capture from evdev pen tablets (Wacom STU / Topaz protocols are not public)."""

from drivers.signature.pad import EvdevSignaturePad, Signature

__all__ = ["EvdevSignaturePad", "Signature"]
