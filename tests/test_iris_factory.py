"""``iris-emulator`` and ``iris-sdk`` from configuration."""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from drivers.emulators.iris import EmulatedIrisSdk, forget, hardware
from drivers.errors import DeviceMissingError
from drivers.iris.factory import emulator, vendor_sdk
from drivers.registry import BadDeviceSpecError


@dataclass
class Spec:
    driver: str = "iris-emulator"
    url: str = "emu://iris?name=t"
    options: Mapping[str, str | int | float | bool] = field(default_factory=dict)


def test_emulator_from_config() -> None:
    forget("t")
    dev = emulator(Spec(options={"blur": 0.0, "timeout_s": 5.0}))
    dev.open()
    try:
        (img,) = dev.capture("right")
        assert img.eye == "right" and dev.identify().evidence == "emulator only"
        hardware("t").disconnected = True
        with pytest.raises(DeviceMissingError):
            dev.capture("left")
    finally:
        dev.close()
        forget("t")


def test_bad_options() -> None:
    with pytest.raises(BadDeviceSpecError):
        emulator(Spec(options={"blurr": 1.0}))
    with pytest.raises(BadDeviceSpecError):
        emulator(Spec(url="/dev/iris0"))
    with pytest.raises(BadDeviceSpecError):
        vendor_sdk(Spec(driver="iris-sdk", url="", options={}))
    with pytest.raises(BadDeviceSpecError):
        vendor_sdk(Spec(driver="iris-sdk", url="", options={"adapter": "no.such.module:make"}))


def test_vendor_adapter_is_loaded_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("site_iris_adapter")
    module.make = EmulatedIrisSdk  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "site_iris_adapter", module)
    dev = vendor_sdk(Spec(driver="iris-sdk", url="", options={"adapter": "site_iris_adapter:make"}))
    dev.open()
    assert len(dev.capture("both")) == 2
    assert not dev.identify().emulated  # the driver does not know what is behind a vendor adapter
    dev.close()
