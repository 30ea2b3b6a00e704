"""Driver name -> factory: how ``[devices.NAME] driver = "..."`` becomes a driver object.

A factory takes a :class:`DeviceSpec` (anything with ``driver``, ``url`` and ``options``, such as
``agent.config.DeviceConfig``; this layer cannot import ``agent``) and returns an unopened
:class:`drivers.base.Device`. Families register theirs with :func:`register`, or are listed in
``_LAZY`` as ``"module:function"`` so that naming one driver does not import every family (and a
family whose optional dependency is missing fails only when it is configured).

Unknown names raise :class:`UnknownDriverError`, listing the known ones.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Protocol
from urllib.parse import parse_qsl, urlparse

from drivers.base import Device
from drivers.errors import DeviceError

Scalar = str | int | float | bool


class DeviceSpec(Protocol):
    """The part of a device's configuration a factory reads."""

    @property
    def driver(self) -> str:
        """Driver name."""

    @property
    def url(self) -> str:
        """Where the device is."""

    @property
    def options(self) -> Mapping[str, Scalar]:
        """Driver-specific options."""


Factory = Callable[[DeviceSpec], Device]


class UnknownDriverError(DeviceError):
    """The configuration names a driver that does not exist."""

    hint_id = "Nama driver di konfigurasi salah. Hubungi teknisi."
    hint_en = "The configured driver name is wrong. Call the technician."


class BadDeviceSpecError(DeviceError):
    """The url or options do not suit the driver."""

    hint_id = "Pengaturan perangkat di konfigurasi salah. Hubungi teknisi."
    hint_en = "The device settings in the configuration are wrong. Call the technician."


_FACTORIES: dict[str, Factory] = {}
_LAZY: dict[str, str] = {
    "tenprint-emulator": "drivers.registry:_tenprint_emulator",
    "tenprint-sdk": "drivers.registry:_tenprint_sdk",
    "zfm": "drivers.registry:_zfm",
    # Other families' factories (their modules, their options; see each module's docstring).
    "v4l2": "drivers.camera.factory:from_spec",
    "iris-emulator": "drivers.iris.factory:emulator",
    "iris-sdk": "drivers.iris.factory:vendor_sdk",
    "evdev": "drivers.signature.factory:from_spec",
    # Add "name": "package.module:factory" here, or call register() at import time.
}
_LOCK = threading.Lock()


def register(name: str, factory: Factory) -> None:
    """Make ``driver = name`` build devices with ``factory``."""
    with _LOCK:
        _FACTORIES[name] = factory


def known() -> list[str]:
    """Every driver name that can be configured."""
    with _LOCK:
        return sorted({*_FACTORIES, *_LAZY})


def _resolve(name: str) -> Factory:
    with _LOCK:
        factory = _FACTORIES.get(name)
        target = _LAZY.get(name)
    if factory is not None:
        return factory
    if target is None:
        raise UnknownDriverError(f"unknown driver {name!r} (known: {', '.join(known())})")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        loaded: Factory = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownDriverError(f"driver {name!r} is not available here: {exc}") from exc
    register(name, loaded)
    return loaded


def build(spec: DeviceSpec) -> Device:
    """An unopened driver for ``spec``."""
    return _resolve(spec.driver)(spec)


def option(spec: DeviceSpec, key: str, kind: type[Scalar], default: Scalar) -> Scalar:
    """``spec.options[key]`` checked against ``kind`` (ints accepted for floats)."""
    value = spec.options.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadDeviceSpecError(
            f"option {key} of driver {spec.driver} must be {kind.__name__}, got {value!r}"
        )
    return value


def emu_url(spec: DeviceSpec, kind: str) -> dict[str, str]:
    """The query of an ``emu://KIND?name=...`` URL (the emulator naming convention)."""
    parsed = urlparse(spec.url or f"emu://{kind}")
    if parsed.scheme != "emu" or parsed.netloc != kind:
        raise BadDeviceSpecError(
            f"driver {spec.driver} needs url emu://{kind}?name=..., got {spec.url!r}"
        )
    return dict(parse_qsl(parsed.query))


# --------------------------------------------------------------------------- built-ins


def _tenprint_emulator(spec: DeviceSpec) -> Device:
    """``tenprint-emulator``: url ``emu://tenprint?name=NAME``; options person_seed, reject_below."""
    from drivers.emulators.tenprint import EmulatedTenPrintBackend, hardware
    from drivers.fingerprint.tenprint import TenPrintScanner

    query = emu_url(spec, "tenprint")
    seed = option(spec, "person_seed", int, 1)
    hw = hardware(query.get("name", "default"), person_seed=seed)
    reject = option(spec, "reject_below", int, 0)
    return TenPrintScanner(EmulatedTenPrintBackend(hw), reject_below=int(reject))


def _tenprint_sdk(spec: DeviceSpec) -> Device:
    """``tenprint-sdk``: options sdk_library (path of the vendor shim), reject_below."""
    from drivers.fingerprint.tenprint import TenPrintScanner, VendorLibraryBackend

    library = option(spec, "sdk_library", str, "")
    if not library:
        raise BadDeviceSpecError(
            "driver tenprint-sdk needs options.sdk_library (path of the vendor shim)"
        )
    reject = option(spec, "reject_below", int, 0)
    return TenPrintScanner(VendorLibraryBackend(str(library)), reject_below=int(reject))


def _zfm(spec: DeviceSpec) -> Device:
    """``zfm``: url a serial path or ``emu://zfm?name=...``; options as ``ZfmOptions``."""
    from drivers.fingerprint.zfm import from_config

    if not spec.url:
        raise BadDeviceSpecError(
            "driver zfm needs a url (/dev/ttyUSB0, /dev/serial/by-id/..., emu://zfm)"
        )
    return from_config(spec.url, spec.options)
