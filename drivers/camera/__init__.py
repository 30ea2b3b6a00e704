"""Station camera: a thin V4L2 layer, the camera driver and the best-frame picker."""

from drivers.camera.driver import Capture, ControlInfo, FormatInfo, V4l2Camera
from drivers.camera.picker import BestFramePicker, Frame, sharpness

__all__ = ["BestFramePicker", "Capture", "ControlInfo", "FormatInfo", "Frame", "V4l2Camera", "sharpness"]
