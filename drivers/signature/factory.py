"""``driver = "evdev"``: a signature pad from ``[devices.NAME]`` (see ``drivers.registry``).

url: an event node (``/dev/input/eventN``, better ``/dev/input/by-id/...-event-mouse`` or a
udev symlink) or ``emu://signature?name=NAME`` for the emulated tablet over a pipe
(``&autosign=1``: a simulated applicant signs whenever a capture starts; demo and e2e tests).
"""

from __future__ import annotations

from drivers.registry import BadDeviceSpecError, DeviceSpec, emu_url, option
from drivers.signature.pad import EvdevSignaturePad

_OPTIONS = {"box_width", "box_height", "min_ink", "min_extent", "idle_end_s", "max_duration_s",
            "grab", "layout"}


def from_spec(spec: DeviceSpec) -> EvdevSignaturePad:
    """An unopened :class:`EvdevSignaturePad` for the configured device."""
    unknown = set(spec.options) - _OPTIONS
    if unknown:
        raise BadDeviceSpecError(
            f"driver evdev: unknown option(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_OPTIONS))})"
        )
    layout = str(option(spec, "layout", str, ""))
    if layout not in ("", "64", "32"):
        raise BadDeviceSpecError("driver evdev: layout must be 64 or 32 (default: this machine's)")
    path = spec.url
    syscalls = None
    emulated = path.startswith("emu:")
    if emulated:
        from drivers.emulators.signature import hardware

        query = emu_url(spec, "signature")
        tablet = hardware(query.get("name", "default"))
        tablet.autosign = query.get("autosign", "") in ("1", "true", "yes")
        syscalls = tablet
        path = tablet.path
    elif not path:
        raise BadDeviceSpecError("driver evdev needs a url (/dev/input/by-id/...-event-mouse)")
    return EvdevSignaturePad(
        path,
        box=(int(option(spec, "box_width", int, 600)), int(option(spec, "box_height", int, 200))),
        min_ink=float(option(spec, "min_ink", float, 0.005)),
        min_extent=float(option(spec, "min_extent", float, 0.10)),
        idle_end_s=float(option(spec, "idle_end_s", float, 2.0)),
        max_duration_s=float(option(spec, "max_duration_s", float, 60.0)),
        grab=bool(option(spec, "grab", bool, True)),
        layout="64" if layout == "64" else "32" if layout == "32" else None,
        syscalls=syscalls,
        emulated=emulated,
    )
