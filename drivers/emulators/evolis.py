"""An emulated Evolis card printer: media state, faults, and a PNG of every printed card.

:class:`EvolisModel` answers decoded ESC commands from in-memory state (ribbon, cards in the
feeder, cover, jam, cleaning counter). :class:`EvolisUsbPrinter` puts it behind the
printer-class USB interface of :mod:`drivers.emulators.pyusb_backend`, so the real pyusb
driver code runs against it. Faults are planned per job step ("Ss", "Sr", "Db:y" ... "Se"):
``no_card``, ``ribbon_end``, ``cover_open``, ``jam``, ``silent`` (no answer) and ``unplug``.

Replies follow the choices documented in :mod:`firmware_protocols.evolis`: text + CR for
queries, "OK" for accepted commands, NACK + code for refusals.

The printed card is composited with Pillow (no numpy), so a station or test harness that runs
the emulator in-process does not load numpy for it.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import Image

from drivers.emulators.pyusb_backend import (
    ConfigDesc,
    DeviceDesc,
    EmulatedBackend,
    EndpointDesc,
    InterfaceDesc,
    NoData,
)
from firmware_protocols import evolis as ev
from firmware_protocols.errors import CodecError

log = logging.getLogger(__name__)

# Evolis' USB vendor id as commonly given (unverified, see research note); the product id is
# the emulator's own.
EVOLIS_VID = 0x0F49
EMULATOR_PID = 0x0E01
EP_OUT = 0x01
EP_IN = 0x82
FAULTS = ("no_card", "ribbon_end", "cover_open", "jam", "silent", "unplug")


@dataclass
class EvolisModel:
    """The printer's state machine, fed decoded commands; replies are wire bytes."""

    model_name: str = "Evolis Dualys 3 (emulated)"
    serial: str = "EMU0000001"
    firmware: str = "EMU-1.0"
    ribbon: str = "ymcko"
    ribbon_left: int = 200
    cards: int = 100
    cover_open: bool = False
    jammed: bool = False
    needs_cleaning: bool = False
    faults: dict[str, str] = field(default_factory=dict)  # step -> fault name
    on_unplug: Callable[[], None] | None = None
    printed: list[bytes] = field(default_factory=list)  # PNG of each ejected card
    render: bool = True  # False: record b"" per card (fast state-machine tests)
    output_dir: str | None = None  # also write each printed card as card-NNNN.png here (demo)
    cards_inserted: int = 0
    panels_printed: int = 0
    steps: list[str] = field(default_factory=list)  # every step name seen, for tests
    _in_sequence: bool = False
    _panels: dict[str, tuple[int, bytes | bytearray]] = field(default_factory=dict)

    def handle(self, event: ev.Command | ev.Download) -> bytes:
        """Answer one decoded command (after applying any fault planned for its step)."""
        step = f"Db:{event.panel}" if isinstance(event, ev.Download) else event.name
        self.steps.append(step)
        fault = self.faults.pop(step, None)
        if fault is not None:
            log.debug("emulated printer fault %s at %s", fault, step)
            if fault == "unplug":
                if self.on_unplug is not None:
                    self.on_unplug()
                return b""
            if fault == "silent":
                return b""
            if fault == "no_card":
                self.cards = 0
            elif fault == "ribbon_end":
                self.ribbon_left = 0
            elif fault == "cover_open":
                self.cover_open = True
            elif fault == "jam":
                self.jammed = True
        if isinstance(event, ev.Download):
            return self._download(event)
        return self._command(event)

    # -- commands ------------------------------------------------------------------------

    def _command(self, cmd: ev.Command) -> bytes:
        name, p = cmd.name, cmd.params
        queries: dict[str, Callable[[], str]] = {
            "Rtp": lambda: self.model_name,
            "Rsn": lambda: self.serial,
            "Rfv": lambda: self.firmware,
            "Rkn": lambda: "KIT-EMU",
            "Rck": lambda: "0000",
            "Rr": lambda: self.ribbon,
            "Rcr": lambda: "OK" if self.ribbon_left > 0 else "END",
            "Rem": lambda: "0",
        }
        if name in queries:
            return ev.encode_reply(queries[name]())
        if name == "Rco":
            counters = {"l": self.ribbon_left, "c": self.cards_inserted, "p": self.panels_printed,
                        "a": 1000, "m": 1000, "n": 0}
            if p[0] not in counters:
                return ev.encode_nack("2")
            return ev.encode_reply(str(counters[p[0]]))
        if name == "Rlr":
            if p[0] == "p":
                return ev.encode_reply("ERR CARD" if self.jammed else "NO CARD" if self.cards <= 0 else "OK")
            if p[0] == "r":
                return ev.encode_reply("ERR NEED CLEANING" if self.needs_cleaning else "OK")
            return ev.encode_nack("2")
        if name == "Rse":
            # Sensor voltages: an open cover reads high; values are emulator inventions.
            volts = {"o": "4.80" if self.cover_open else "0.20", "p": "0.10", "c": "2.50",
                     "m": "0.30", "r": "1.00"}
            return ev.encode_reply(volts.get(p[0], "0.00"))
        if name == "Pr":
            if p[0] not in ev.RIBBONS:
                return ev.encode_nack("2")
            self.ribbon = p[0]
            return ev.encode_reply("OK")
        if name == "Srs":
            self._in_sequence = False
            self._panels.clear()
            return ev.encode_reply("OK")
        if name in ("Ss", "Si", "St"):
            refusal = self._can_feed()
            if refusal:
                return refusal
            self.cards -= 1
            self.cards_inserted += 1
            if name == "St":
                self.ribbon_left -= 1
                self._keep(_render_png({}) if self.render else b"")
                return ev.encode_reply("OK")
            self._in_sequence = True
            self._panels.clear()
            return ev.encode_reply("OK")
        if name in ("Sr", "Sv"):
            return ev.encode_reply("OK") if self._in_sequence else ev.encode_nack("1")
        if name == "Se":
            if not self._in_sequence:
                return ev.encode_nack("1")
            if self.jammed:
                self._in_sequence = False
                return ev.encode_nack("T")
            if self.cover_open:
                return ev.encode_nack("C")
            if self.ribbon_left <= 0:
                # Se prints the last panel (the overlay): no ribbon, no card.
                self._in_sequence = False
                return ev.encode_nack("R")
            self.ribbon_left -= 1
            self._keep(_render_png(self._panels) if self.render else b"")
            self._in_sequence = False
            return ev.encode_reply("OK")
        return ev.encode_reply("OK")

    def _keep(self, png: bytes) -> None:
        self.printed.append(png)
        if self.output_dir is not None and png:
            out = Path(self.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            # Written under a temporary name and renamed, so a watcher never sees half a card.
            tmp = out / f".card-{len(self.printed):04d}.png.tmp"
            tmp.write_bytes(png)
            tmp.rename(out / f"card-{len(self.printed):04d}.png")

    def _can_feed(self) -> bytes:
        if self.cover_open:
            return ev.encode_nack("C")
        if self.jammed:
            return ev.encode_nack("T")
        if self.cards <= 0:
            return ev.encode_nack("F")
        if self.ribbon_left <= 0:
            return ev.encode_nack("R")
        return b""

    def _download(self, dl: ev.Download) -> bytes:
        if not self._in_sequence:
            return ev.encode_nack("1")
        if self.cover_open:
            return ev.encode_nack("C")
        if self.jammed:
            return ev.encode_nack("T")
        if self.ribbon_left <= 0:
            return ev.encode_nack("R")
        try:
            packed = ev.decompress_ko(dl.data, dl.first_line) if dl.compressed else dl.data
            values = ev.unpack_pixels(packed, dl.levels)
        except CodecError:
            return ev.encode_nack("2")
        self._panels[dl.panel] = (dl.levels, values)
        self.panels_printed += 1
        return ev.encode_reply("OK")


def _f32(x: float) -> float:
    """``x`` rounded to float32 (the compositing was defined in float32 arithmetic)."""
    value: float = struct.unpack("f", struct.pack("f", x))[0]
    return value


@lru_cache(maxsize=8)
def _light_lut(levels: int) -> list[int]:
    """Channel value left by each ink value: 255 * (1 - ink / (levels - 1)) in float32, truncated."""
    # Each step is rounded to float32 as the original float32 array code did (a double result
    # rounded once to float32 equals the float32 operation for +, -, *, /), so the PNG of a
    # card keeps its exact pixels.
    top = levels - 1
    return [int(_f32(255.0 * _f32(1.0 - _f32(v / top)))) if v <= top else 0 for v in range(256)]


def _landscape(values: bytes | bytearray) -> Image.Image:
    """A panel (printer order) as a landscape "L" image (the inverse of the codec's turn)."""
    panel = Image.frombytes("L", (ev.LINE_DOTS, ev.PANEL_LINES), values)
    return panel.transpose(Image.Transpose.ROTATE_270)


def _render_png(panels: dict[str, tuple[int, bytes | bytearray]]) -> bytes:
    """Composite received panels (printer order) into an RGB PNG of the card, landscape."""
    # Subtractive inks: C absorbs red, M green, Y blue.
    bands = []
    for panel in ("c", "m", "y"):
        if panel in panels:
            levels, values = panels[panel]
            bands.append(_landscape(values).point(_light_lut(levels)))
        else:
            bands.append(Image.new("L", (ev.PANEL_LINES, ev.LINE_DOTS), 255))
    img = Image.merge("RGB", bands)
    if "k" in panels:
        img.paste((0, 0, 0), mask=_landscape(panels["k"][1]).point(lambda v: 255 if v else 0))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


class EvolisUsbPrinter:
    """The model behind a USB printer-class interface (class 7, bidirectional)."""

    def __init__(self, model: EvolisModel | None = None, *, pid: int = EMULATOR_PID) -> None:
        self.model = model or EvolisModel()
        self.device = DeviceDesc(idVendor=EVOLIS_VID, idProduct=pid)
        self.configuration = ConfigDesc(interfaces=[
            InterfaceDesc(0, 0x07, 0x01, 0x02, [EndpointDesc(EP_OUT), EndpointDesc(EP_IN)]),
        ])
        self.strings = {1: "Evolis", 2: self.model.model_name, 3: self.model.serial}
        self._decoder = ev.CommandDecoder()
        self._out = bytearray()
        self.garbage = 0

    def device_id(self) -> str:
        """The IEEE 1284 device id string."""
        return (f"MFG:Evolis;CMD:ESC;MDL:{self.model.model_name};CLS:PRINTER;"
                f"DES:Evolis card printer (emulated);SN:{self.model.serial};")

    def control(self, bm_request_type: int, b_request: int, w_value: int, w_index: int,
                data: bytes | int) -> bytes | int:
        """USB printer class requests: GET_DEVICE_ID, GET_PORT_STATUS, SOFT_RESET."""
        if bm_request_type == 0xA1 and b_request == 0:
            body = self.device_id().encode("ascii")
            return (len(body) + 2).to_bytes(2, "big") + body
        if bm_request_type == 0xA1 and b_request == 1:
            # Port status: bit 4 selected, bit 3 not-error; bit 5 paper empty.
            return bytes([0x18 | (0x20 if self.model.cards <= 0 else 0)])
        if bm_request_type == 0x21 and b_request == 2:
            self._decoder = ev.CommandDecoder()
            self._out.clear()
            return 0
        return b""

    def bulk_out(self, endpoint: int, data: bytes) -> int:
        """Decode host bytes and queue the model's replies."""
        for event in self._decoder.feed(data):
            if isinstance(event, ev.Garbage):
                self.garbage += event.length
                continue
            self._out += self.model.handle(event)
        return len(data)

    def bulk_in(self, endpoint: int, size: int) -> bytes:
        """Queued reply bytes, or no data (a timeout)."""
        if not self._out:
            raise NoData
        chunk = bytes(self._out[:size])
        del self._out[:size]
        return chunk


def emulated_usb_printer(model: EvolisModel | None = None) -> tuple[EmulatedBackend, EvolisUsbPrinter]:
    """A backend with one emulated Evolis printer whose ``unplug`` fault really unplugs it."""
    printer = EvolisUsbPrinter(model)
    backend = EmulatedBackend(printer)
    printer.model.on_unplug = lambda: backend.unplug(printer)
    return backend, printer
