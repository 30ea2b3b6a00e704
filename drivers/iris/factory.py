"""``driver = "iris-emulator"`` and ``driver = "iris-sdk"``: iris scanners from ``[devices.NAME]``.

* ``iris-emulator``: url ``emu://iris?name=NAME``; options blur, occlusion, pupil_ratio,
  timeout_s. Evidence: emulator only.
* ``iris-sdk``: options ``adapter = "package.module:factory"``, a callable returning an
  object that satisfies :class:`drivers.iris.sdk.IrisSdk` (the vendor SDK wrapper a site
  installs), and timeout_s. No adapter ships with the project.
"""

from __future__ import annotations

import importlib

from drivers.iris.sdk import IrisSdk, SdkIrisScanner
from drivers.registry import BadDeviceSpecError, DeviceSpec, emu_url, option


def _check(spec: DeviceSpec, allowed: set[str]) -> None:
    unknown = set(spec.options) - allowed
    if unknown:
        raise BadDeviceSpecError(
            f"driver {spec.driver}: unknown option(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(allowed))})"
        )


def emulator(spec: DeviceSpec) -> SdkIrisScanner:
    """The SDK-seam driver over the emulated SDK called ``name``."""
    from drivers.emulators.iris import IrisScene, hardware

    _check(spec, {"blur", "occlusion", "pupil_ratio", "timeout_s"})
    query = emu_url(spec, "iris")
    sdk = hardware(query.get("name", "default"))
    sdk.scene = IrisScene(
        blur=float(option(spec, "blur", float, 0.0)),
        occlusion=float(option(spec, "occlusion", float, 0.0)),
        pupil_ratio=float(option(spec, "pupil_ratio", float, 0.4)),
    )
    return SdkIrisScanner(sdk, timeout_s=float(option(spec, "timeout_s", float, 10.0)), emulated=True)


def vendor_sdk(spec: DeviceSpec) -> SdkIrisScanner:
    """The SDK-seam driver over a site-installed vendor adapter."""
    _check(spec, {"adapter", "timeout_s"})
    target = str(option(spec, "adapter", str, ""))
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise BadDeviceSpecError(
            "driver iris-sdk needs options.adapter = \"package.module:factory\" (the vendor SDK wrapper)"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise BadDeviceSpecError(f"iris SDK adapter {target!r} cannot be loaded: {exc}") from exc
    sdk: IrisSdk = factory()
    return SdkIrisScanner(sdk, timeout_s=float(option(spec, "timeout_s", float, 10.0)))
