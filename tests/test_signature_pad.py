"""The evdev signature driver against the emulated pen tablet over a real pipe."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from agent.config import QualityConfig
from drivers.base import Device
from drivers.emulators.signature import (
    ABS_X,
    ABS_Y,
    EV_ABS,
    EV_KEY,
    EV_SYN,
    SYN_DROPPED,
    SYN_REPORT,
    EmulatedPenTablet,
    TabletSpec,
    dot_strokes,
    pack_events,
    pen_strokes_events,
    signature_strokes,
)
from drivers.errors import DeviceFaultError, DeviceMissingError, DeviceProtocolError, UserRetryError
from drivers.signature import EvdevSignaturePad
from drivers.signature.render import ink_extent, ink_share, render_strokes
from firmware_protocols.evdev import AbsRange, PenPoint, Stroke


@pytest.fixture
def tablet() -> Iterator[EmulatedPenTablet]:
    tab = EmulatedPenTablet()
    yield tab
    assert not tab.open_fds, "pad left open"


def pad_for(tab: EmulatedPenTablet, **kwargs: object) -> EvdevSignaturePad:
    opts: dict[str, object] = {"idle_end_s": 0.2, "poll_s": 0.02, "emulated": True,
                               "min_ink": QualityConfig().signature_min_ink}
    opts.update(kwargs)
    return EvdevSignaturePad(tab.path, syscalls=tab, **opts)  # type: ignore[arg-type]


def capture_with(pad: EvdevSignaturePad, feed: object, **kwargs: float) -> object:
    """Open, then feed the tablet once the capture has drained stale input."""
    pad.open()
    threading.Timer(0.05, feed).start()  # type: ignore[arg-type]
    return pad.capture(timeout_s=kwargs.get("timeout_s", 5.0))


@pytest.mark.parametrize("chunk", [None, 1, 7, 24, 100])
def test_signature_captured_in_any_chunking(tablet: EmulatedPenTablet, chunk: int | None) -> None:
    pad = pad_for(tablet)
    sig = capture_with(pad, lambda: tablet.sign(chunk=chunk))
    pad.close()
    assert len(sig.strokes) == 3  # type: ignore[attr-defined]
    assert [len(s.points) for s in sig.strokes] == [120, 60, 31]  # type: ignore[attr-defined]
    img = Image.open(io.BytesIO(sig.png))  # type: ignore[attr-defined]
    assert img.format == "PNG" and img.size == (600, 200) and img.mode == "L"
    assert sig.ink_share >= 0.005  # type: ignore[attr-defined]
    assert "strokes" in repr(sig) and "PenPoint" not in repr(sig)


def test_identity_ranges_and_grab(tablet: EmulatedPenTablet) -> None:
    pad = pad_for(tablet)
    assert isinstance(pad, Device)
    pad.open()
    ident = pad.identify()
    assert ident.kind == "signature" and ident.evidence == "public protocol" and ident.emulated
    assert "Rekam Emulated Pen Tablet" in ident.model and "ffff:0001" in ident.model
    assert pad.x_range == AbsRange(0, 15200, 4, 0, 100)
    assert pad.p_range is not None and pad.p_range.maximum == 1023
    assert tablet.grabbed
    assert pad.self_test().ok
    pad.close()
    pad.close()
    assert not tablet.grabbed


def test_too_little_ink_asks_to_sign_again(tablet: EmulatedPenTablet) -> None:
    pad = pad_for(tablet)
    with pytest.raises(UserRetryError) as err:
        capture_with(pad, lambda: tablet.sign(dot_strokes()))
    assert "tanda tangan lagi" in err.value.hint_id and err.value.hint_en
    pad.close()


def test_nothing_signed_is_a_bounded_user_retry(tablet: EmulatedPenTablet) -> None:
    pad = pad_for(tablet)
    pad.open()
    with pytest.raises(UserRetryError, match="no pen input"):
        pad.capture(timeout_s=0.2)
    pad.close()


def test_stale_input_before_capture_is_drained(tablet: EmulatedPenTablet) -> None:
    pad = pad_for(tablet)
    pad.open()
    tablet.sign(dot_strokes())
    tablet.join()
    threading.Timer(0.05, lambda: tablet.sign()).start()
    sig = pad.capture(timeout_s=5)
    assert len(sig.strokes) == 3
    pad.close()


def test_operator_stop_ends_capture(tablet: EmulatedPenTablet) -> None:
    pad = pad_for(tablet, idle_end_s=30.0)
    pad.open()
    stop = threading.Event()

    def feed() -> None:
        tablet.sign()
        tablet.join()
        stop.set()

    threading.Timer(0.05, feed).start()
    sig = pad.capture(timeout_s=5, stop=stop)
    assert sig.strokes
    pad.close()


def test_syn_dropped_asks_to_sign_again(tablet: EmulatedPenTablet) -> None:
    events = pen_strokes_events(signature_strokes())
    events.insert(40, (events[40][0], EV_SYN, SYN_DROPPED, 0))
    pad = pad_for(tablet)
    with pytest.raises(UserRetryError, match="SYN_DROPPED"):
        capture_with(pad, lambda: tablet.play(events))
    pad.close()


def test_garbage_stream_is_a_protocol_error(tablet: EmulatedPenTablet) -> None:
    pad = pad_for(tablet)
    bad = pack_events([(1.0, EV_ABS, ABS_X, 5)])
    bad = bad[:8] + (2_000_000).to_bytes(8, "little") + bad[16:]  # tv_usec out of range
    with pytest.raises(DeviceProtocolError):
        capture_with(pad, lambda: tablet.write_bytes(bad))
    pad.close()


def test_unplug_mid_capture(tablet: EmulatedPenTablet) -> None:
    pad = pad_for(tablet)

    def feed() -> None:
        tablet.play(pen_strokes_events(signature_strokes())[:50])
        tablet.join()
        tablet.unplug()

    with pytest.raises(DeviceMissingError):
        capture_with(pad, feed)
    pad.close()
    with pytest.raises(DeviceMissingError):
        pad_for(tablet).open()


def test_health_probe(tablet: EmulatedPenTablet) -> None:
    pad = pad_for(tablet)
    with pytest.raises(DeviceMissingError):
        pad.health()
    pad.open()
    pad.health()
    tablet.unplug()
    with pytest.raises(DeviceMissingError):
        pad.health()
    pad.close()


def test_not_a_pen_and_busy(tablet: EmulatedPenTablet) -> None:
    keyboardish = EmulatedPenTablet(TabletSpec(has_xy=False, has_pressure=False))
    with pytest.raises(DeviceFaultError) as err:
        pad_for(keyboardish).open()
    assert err.value.code == "NOT_PEN"
    assert not keyboardish.open_fds  # a failed open closes again
    tablet.grab_busy = True
    with pytest.raises(DeviceFaultError) as err:
        pad_for(tablet).open()
    assert err.value.code == "EBUSY"
    pad = pad_for(tablet, grab=False)  # grab off: a busy grab does not matter
    assert pad.self_test().ok
    pad.close()


def test_pressure_less_tablet(tablet: EmulatedPenTablet) -> None:
    tab = EmulatedPenTablet(TabletSpec(has_pressure=False))
    pad = pad_for(tab)
    sig = capture_with(pad, lambda: tab.sign())
    assert pad.p_range is None and len(sig.strokes) == 3  # type: ignore[attr-defined]
    pad.close()


def test_32bit_layout(tablet: EmulatedPenTablet) -> None:
    tab = EmulatedPenTablet(layout="32")
    pad = pad_for(tab, layout="32")
    sig = capture_with(pad, lambda: tab.sign(chunk=5))
    assert len(sig.strokes) == 3  # type: ignore[attr-defined]
    pad.close()


def test_touch_key_and_sync_values_match_kernel_names() -> None:
    # the emulator's constants are the kernel's (checked against the header in the codec tests)
    assert (EV_SYN, EV_KEY, EV_ABS, SYN_REPORT, ABS_X, ABS_Y) == (0, 1, 3, 0, 0, 1)


# ------------------------------------------------------------------ rendering


def test_render_is_clean_and_ink_measures() -> None:
    xr, yr = AbsRange(0, 1000), AbsRange(0, 500)
    line = Stroke(tuple(PenPoint(100 + i * 8, 250, 500, 0.0) for i in range(101)))
    img = render_strokes([line], xr, yr, (400, 200), AbsRange(0, 1000))
    a = np.asarray(img)
    assert set(np.unique(a)) <= set(range(256)) and a[0, 0] == 255  # white paper
    w, h = ink_extent(img)
    assert w == pytest.approx(0.8, abs=0.03) and h < 0.05
    assert 0.005 < ink_share(img) < 0.05
    assert ink_share(render_strokes([], xr, yr)) == 0.0
    dot = render_strokes([Stroke((PenPoint(500, 250, 0, 0.0),))], xr, yr)
    assert ink_share(dot) > 0
    heavy = render_strokes([line], xr, yr, (400, 200), AbsRange(0, 500))
    assert ink_share(heavy) > ink_share(img)  # more pressure, wider line


def test_real_syscalls_on_a_file_that_is_not_an_event_node() -> None:
    pad = EvdevSignaturePad("/dev/null")  # real open(2), ioctl(2) answers ENOTTY
    with pytest.raises(DeviceProtocolError):
        pad.open()
    assert pad.fd is None
    with pytest.raises(DeviceMissingError):
        EvdevSignaturePad("/dev/input/event-none-here").open()


@pytest.mark.hardware
def test_real_pen_tablet() -> None:
    import os

    path = os.environ.get("REKAM_PEN", "/dev/input/event0")
    pad = EvdevSignaturePad(path)
    try:
        pad.open()
        assert pad.identify().kind == "signature"
        print("sign on the pad now")
        sig = pad.capture(timeout_s=30)
        assert sig.strokes
    finally:
        pad.close()
