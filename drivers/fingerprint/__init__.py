"""Fingerprint scanner drivers: the common interface, the ZFM UART module and the ten-print seam."""

from drivers.fingerprint.base import (
    CaptureArgumentError,
    CaptureCancelledError,
    CaptureNotSupportedError,
    FingerCapture,
    FingerPosition,
    FingerprintScanner,
    FingerQualityError,
    Impression,
    NoFingerError,
    ScannerCapabilities,
    Slap,
    SlapCapture,
)

__all__ = [
    "CaptureArgumentError",
    "CaptureCancelledError",
    "CaptureNotSupportedError",
    "FingerCapture",
    "FingerPosition",
    "FingerQualityError",
    "FingerprintScanner",
    "Impression",
    "NoFingerError",
    "ScannerCapabilities",
    "Slap",
    "SlapCapture",
]
