"""``driver = "evdev"`` from configuration."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from drivers.emulators.signature import forget, hardware
from drivers.errors import DeviceMissingError
from drivers.registry import BadDeviceSpecError
from drivers.signature.factory import from_spec


@dataclass
class Spec:
    driver: str = "evdev"
    url: str = "emu://signature?name=t"
    options: Mapping[str, str | int | float | bool] = field(default_factory=dict)


def test_emulated_pad_from_config() -> None:
    forget("t")
    pad = from_spec(Spec(options={"idle_end_s": 0.2, "box_width": 300, "box_height": 100}))
    pad.open()
    try:
        assert pad.box == (300, 100) and pad.identify().emulated
        threading.Timer(0.05, hardware("t").sign).start()
        sig = pad.capture(timeout_s=5)
        assert len(sig.strokes) == 3
    finally:
        pad.close()
    hardware("t").unplug()
    with pytest.raises(DeviceMissingError):
        from_spec(Spec()).open()
    hardware("t").replug()
    pad = from_spec(Spec())
    pad.open()
    pad.close()
    forget("t")


@pytest.mark.parametrize(
    ("url", "options"),
    [("", {}), ("/dev/input/event3", {"inkk": 1}), ("/dev/input/event3", {"layout": "16"}),
     ("emu://camera", {})],
)
def test_bad_specs(url: str, options: dict[str, object]) -> None:
    with pytest.raises(BadDeviceSpecError):
        from_spec(Spec(url=url, options=options))  # type: ignore[arg-type]
