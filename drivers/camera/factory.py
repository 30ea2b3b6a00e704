"""``driver = "v4l2"``: build a camera from ``[devices.NAME]`` (see ``drivers.registry``).

url: a V4L2 node (``/dev/video0``, ``/dev/v4l/by-id/...``) or ``emu://camera?name=NAME`` for the
emulated camera (the same driver code over the fake V4L2 hardware of that name).
"""

from __future__ import annotations

from drivers.camera import v4l2
from drivers.camera.driver import V4l2Camera
from drivers.registry import BadDeviceSpecError, DeviceSpec, emu_url, option

_CAMERA_OPTIONS = {"width", "height", "formats", "buffers", "timeout_s", "min_sharpness",
                   "min_brightness", "fps", *v4l2.CONTROL_IDS}
_EMULATOR_OPTIONS = {"blur", "exposure", "background", "offset_x", "scale"}


def from_spec(spec: DeviceSpec) -> V4l2Camera:
    """An unopened :class:`V4l2Camera` for the configured device."""
    emulated = spec.url.startswith("emu:")
    allowed = _CAMERA_OPTIONS | (_EMULATOR_OPTIONS if emulated else set())
    unknown = set(spec.options) - allowed
    if unknown:
        raise BadDeviceSpecError(
            f"driver v4l2: unknown option(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(allowed))})"
        )
    formats = str(option(spec, "formats", str, "MJPG,YUYV")).split(",")
    if not all(len(f.strip()) == 4 for f in formats):
        raise BadDeviceSpecError(f"driver v4l2: formats must be fourccs like MJPG,YUYV, got {formats}")
    buffers = int(option(spec, "buffers", int, 4))
    if not 2 <= buffers <= 4:
        raise BadDeviceSpecError("driver v4l2: buffers must be 2-4")
    # Asked of the camera (VIDIOC_S_PARM); what it grants is kept. The emulator paces at it.
    fps = float(option(spec, "fps", float, 0.0)) if "fps" in spec.options else None
    if fps is not None and not 0 < fps <= 1000:
        raise BadDeviceSpecError("driver v4l2: fps must be > 0 and <= 1000")
    controls = {name: int(option(spec, name, int, 0)) for name in v4l2.CONTROL_IDS if name in spec.options}
    syscalls: v4l2.Syscalls | None = None
    path = spec.url or "/dev/video0"
    if emulated:
        from drivers.emulators.camera import BACKGROUNDS, Portrait, PortraitSource, hardware

        query = emu_url(spec, "camera")
        background = str(option(spec, "background", str, "blue"))
        if background not in BACKGROUNDS:
            raise BadDeviceSpecError(f"driver v4l2: background must be one of {sorted(BACKGROUNDS)}")
        portrait = Portrait(
            background=BACKGROUNDS[background],
            blur=float(option(spec, "blur", float, 0.0)),
            exposure=float(option(spec, "exposure", float, 1.0)),
            offset_x=float(option(spec, "offset_x", float, 0.0)),
            scale=float(option(spec, "scale", float, 1.0)),
        )
        fake = hardware(query.get("name", "default"), fps=fps if fps is not None else 30.0)
        fake.source = PortraitSource(portrait, blur_sequence=(2.0, 0.0, 1.0))
        syscalls = fake
        path = "/dev/video0"
    return V4l2Camera(
        path,
        width=int(option(spec, "width", int, 1920)),
        height=int(option(spec, "height", int, 1080)),
        formats=tuple(f.strip() for f in formats),
        buffers=buffers,
        fps=fps,
        timeout_s=float(option(spec, "timeout_s", float, 2.0)),
        controls=controls,
        min_sharpness=float(option(spec, "min_sharpness", float, 0.0)),
        min_brightness=float(option(spec, "min_brightness", float, 8.0)),
        syscalls=syscalls,
        emulated=emulated,
    )
