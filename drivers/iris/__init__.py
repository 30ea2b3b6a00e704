"""Iris scanners: the IrisScanner interface and the vendor-SDK seam (no public wire protocol)."""

from drivers.iris.base import IRIS_HEIGHT, IRIS_WIDTH, Eye, EyeSelection, IrisImage, IrisScanner
from drivers.iris.sdk import IrisSdk, SdkCapture, SdkDeviceInfo, SdkIrisScanner, SdkStatus

__all__ = [
    "IRIS_HEIGHT", "IRIS_WIDTH", "Eye", "EyeSelection", "IrisImage", "IrisScanner", "IrisSdk",
    "SdkCapture", "SdkDeviceInfo", "SdkIrisScanner", "SdkStatus",
]
