"""Rekam: the edge agent of an e-KTP biometric recording station."""

__version__ = "0.1.0"
