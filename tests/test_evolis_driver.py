"""Evolis driver against the emulated printer through real pyusb (custom backend) and a pty."""

from __future__ import annotations

import os
import threading
import tty
from collections.abc import Iterator

import numpy as np
import pytest
import usb.core
import usb.util

from drivers.base import Device
from drivers.emulators.evolis import EVOLIS_VID, EvolisModel, EvolisUsbPrinter, emulated_usb_printer
from drivers.emulators.pyusb_backend import EmulatedBackend
from drivers.errors import DeviceMissingError, DeviceTimeoutError
from drivers.printer.evolis import EvolisPrinter
from drivers.printer.lp import LpTransport
from drivers.printer.status import (
    PrinterFaultError,
    PrinterJamError,
    PrinterMediaError,
    PrinterState,
    card_consumed_of,
)
from drivers.printer.usb import UsbTransport
from firmware_protocols import evolis as ev


def blank_job() -> Iterator[bytes]:
    zeros = np.zeros(ev.PANEL_PIXELS, dtype=np.uint8)
    panels = [ev.PanelData(p, 32, zeros) for p in "ymc"] + [ev.PanelData(p, 2, zeros) for p in "ko"]
    return ev.job_frames(panels)


def open_printer(model: EvolisModel | None = None) -> tuple[EvolisPrinter, EvolisUsbPrinter, EmulatedBackend]:
    backend, emu = emulated_usb_printer(model)
    drv = EvolisPrinter(UsbTransport(vid=EVOLIS_VID, backend=backend), timeout_s=0.2,
                        print_timeout_s=0.2, emulated=True)
    drv.open()
    return drv, emu, backend


def test_pyusb_sees_a_printer_class_device_with_strings() -> None:
    backend, _ = emulated_usb_printer()
    dev = usb.core.find(idVendor=EVOLIS_VID, backend=backend)
    assert dev is not None
    assert usb.util.get_string(dev, dev.iManufacturer) == "Evolis"
    assert usb.util.get_string(dev, dev.iSerialNumber) == "EMU0000001"
    intf = dev[0][(0, 0)]
    assert intf.bInterfaceClass == 7
    assert {e.bEndpointAddress for e in intf} == {0x01, 0x82}


def test_identify_and_device_id() -> None:
    drv, _, _ = open_printer()
    assert isinstance(drv, Device)
    ident = drv.identify()
    assert (ident.make, ident.model, ident.serial, ident.firmware) == (
        "Evolis", "Evolis Dualys 3 (emulated)", "EMU0000001", "EMU-1.0")
    assert ident.evidence == "public protocol" and ident.emulated
    dev_id = drv.device_id()
    assert dev_id is not None and dev_id.startswith("MFG:Evolis;CMD:ESC;")
    assert drv.self_test().ok
    drv.close()
    drv.close()


def test_missing_printer() -> None:
    drv = EvolisPrinter(UsbTransport(vid=EVOLIS_VID, backend=EmulatedBackend()), timeout_s=0.1)
    with pytest.raises(DeviceMissingError):
        drv.open()


def test_blank_job_prints_and_counts() -> None:
    drv, emu, _ = open_printer()
    report = drv.print_job(blank_job())
    assert report.frames == 9
    assert emu.model.steps == ["Pr", "Ss", "Sr", "Db:y", "Db:m", "Db:c", "Db:k", "Db:o", "Se"]
    assert emu.model.cards == 99 and emu.model.ribbon_left == 199
    assert len(emu.model.printed) == 1 and emu.model.printed[0][:8] == b"\x89PNG\r\n\x1a\n"
    assert drv.status().states == {PrinterState.READY}


@pytest.mark.parametrize(
    ("step", "fault", "error", "state", "consumed"),
    [
        ("Ss", "no_card", PrinterMediaError, PrinterState.FEEDER_EMPTY, False),
        ("Ss", "cover_open", PrinterMediaError, PrinterState.COVER_OPEN, False),
        ("Ss", "ribbon_end", PrinterMediaError, PrinterState.RIBBON_ENDED, False),
        ("Ss", "jam", PrinterJamError, PrinterState.CARD_JAM, None),
        ("Db:m", "ribbon_end", PrinterMediaError, PrinterState.RIBBON_ENDED, True),
        ("Db:k", "cover_open", PrinterMediaError, PrinterState.COVER_OPEN, True),
        ("Db:y", "jam", PrinterJamError, PrinterState.CARD_JAM, True),
        ("Se", "jam", PrinterJamError, PrinterState.CARD_JAM, True),
    ],
)
def test_nack_faults_at_each_step(step: str, fault: str, error: type[PrinterFaultError],
                                  state: PrinterState, consumed: bool | None) -> None:
    drv, emu, _ = open_printer(EvolisModel(faults={step: fault}))
    with pytest.raises(error) as info:
        drv.print_job(blank_job())
    assert info.value.state is state
    assert info.value.step == step
    assert info.value.card_consumed is consumed
    assert info.value.hint("id") and info.value.hint("en")
    assert emu.model.printed == []


@pytest.mark.parametrize(("step", "consumed"), [("Pr", False), ("Ss", None), ("Db:c", True), ("Se", True)])
def test_unplug_mid_job(step: str, consumed: bool | None) -> None:
    drv, emu, _ = open_printer(EvolisModel(faults={step: "unplug"}))
    with pytest.raises((DeviceMissingError, DeviceTimeoutError)) as info:
        drv.print_job(blank_job())
    assert card_consumed_of(info.value) is consumed
    with pytest.raises(DeviceMissingError):
        drv.query("Rtp")


@pytest.mark.parametrize(("step", "consumed"), [("Ss", None), ("Se", True)])
def test_silent_printer_times_out(step: str, consumed: bool | None) -> None:
    drv, emu, _ = open_printer(EvolisModel(faults={step: "silent"}))
    with pytest.raises(DeviceTimeoutError) as info:
        drv.print_job(blank_job())
    assert card_consumed_of(info.value) is consumed


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (EvolisModel(cards=0), {PrinterState.FEEDER_EMPTY}),
        (EvolisModel(jammed=True), {PrinterState.CARD_JAM}),
        (EvolisModel(ribbon_left=0), {PrinterState.RIBBON_ENDED}),
        (EvolisModel(ribbon_left=5), {PrinterState.RIBBON_LOW, PrinterState.READY}),
        (EvolisModel(needs_cleaning=True), {PrinterState.NEEDS_CLEANING, PrinterState.READY}),
    ],
)
def test_status_model(model: EvolisModel, expected: set[PrinterState]) -> None:
    drv, _, _ = open_printer(model)
    st = drv.status()
    assert st.states == expected
    assert st.ready == (PrinterState.READY in expected)
    assert st.as_dict()["ribbon_cards_left"] == model.ribbon_left


def test_garbage_and_stale_replies_are_not_answers() -> None:
    drv, emu, _ = open_printer()
    emu._out += b"\x01\x02"  # line noise before the reply
    assert drv.query("Rtp") == "Evolis Dualys 3 (emulated)"
    emu._out += b"LATE\r"  # a reply nobody asked for is pending when the next query reads
    assert drv.query("Rsn") in ("LATE", "EMU0000001")
    # whichever was read, the decoder stays in step for the following request
    assert drv.query("Rfv") in ("EMU0000001", "EMU-1.0")


def test_nack_to_a_query_is_a_fault() -> None:
    drv, _, _ = open_printer()
    with pytest.raises(PrinterFaultError) as info:
        drv.query("Rco", "z")
    assert info.value.state is PrinterState.UNKNOWN


def test_not_open_is_refused() -> None:
    backend, _ = emulated_usb_printer()
    drv = EvolisPrinter(UsbTransport(vid=EVOLIS_VID, backend=backend))
    with pytest.raises(Exception) as info:
        drv.query("Rtp")
    assert "not open" in str(info.value)


# ------------------------------------------------------------------------ /dev/usb/lp over a pty


def serve_pty(master: int, emu: EvolisUsbPrinter, stop: threading.Event) -> None:
    import select

    while not stop.is_set():
        r, _, _ = select.select([master], [], [], 0.05)
        if not r:
            continue
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        emu.bulk_out(0x01, data)
        while emu._out:
            os.write(master, emu.bulk_in(0x82, 4096))


def test_lp_transport_over_a_pty() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)  # before anyone writes: no echo, no CR translation
    path = os.ttyname(slave)
    emu = EvolisUsbPrinter()
    stop = threading.Event()
    server = threading.Thread(target=serve_pty, args=(master, emu, stop), daemon=True)
    server.start()
    drv = EvolisPrinter(LpTransport(path), timeout_s=2.0, print_timeout_s=5.0)
    try:
        drv.open()
        assert drv.device_id() is None  # a pty has no IEEE 1284 id
        assert drv.identify().serial == "EMU0000001"
        drv.print_job(blank_job())
        assert len(emu.model.printed) == 1
    finally:
        drv.close()
        stop.set()
        server.join(timeout=2)
        os.close(slave)
        os.close(master)


def test_lp_transport_missing_path(tmp_path: object) -> None:
    drv = EvolisPrinter(LpTransport("/nonexistent/usb/lp9"))
    with pytest.raises(DeviceMissingError):
        drv.open()


K_ONLY = ev.PanelData("k", 2, np.zeros(ev.PANEL_PIXELS, dtype=np.uint8))


@pytest.mark.parametrize("fault", ["no_card", "ribbon_end", "cover_open", "jam", "silent", "unplug"])
@pytest.mark.parametrize("step", ["Pr", "Ss", "Sr", "Db:k", "Se"])
def test_every_fault_at_every_step_is_reported_truthfully(step: str, fault: str) -> None:
    drv, emu, _ = open_printer(EvolisModel(faults={step: fault}))
    try:
        drv.print_job(ev.job_frames([K_ONLY], ribbon="k"))
    except PrinterFaultError as exc:
        assert emu.model.printed == []
        fed = emu.model.cards_inserted == 1
        assert exc.card_consumed in (fed, None)
        assert exc.hint("id") != exc.hint("en")
    except (DeviceMissingError, DeviceTimeoutError) as exc:
        assert fault in ("silent", "unplug")
        assert emu.model.printed == []
        assert card_consumed_of(exc) in ((False,) if step == "Pr" else (True, None))
    else:
        # Only an empty feeder after this card was fed lets the card through, and then
        # exactly one card came out.
        assert fault == "no_card" and step not in ("Pr", "Ss")
        assert len(emu.model.printed) == 1
