"""Evolis ESC command language, sans-IO (Programming Guide A5013 Rev. E subset).

Evidence: verified against the public guide (restated in ``shared/research/protocols.md`` §2.1)
and against the open Dualys 3 tools of dpavlin/Printer-EVOLIS; **not** against Primacy or
Zenius hardware. No binary status command is emitted: those are not public.

Wire format, host to printer::

    [0x00 padding]* ESC name [";" param]* CR                     ordinary command
    ESC "Db"  ";" panel ";" levels ";" <packed panel> CR         panel download
    ESC "Dbc" ";" panel ";" levels ";" first ";" n ";" <n bytes> CR   compressed download

A download's length follows from its header (``levels`` or ``n``), never from a CR search,
because packed pixels contain 0x0D bytes. The guide says the start character is "not
compulsory after the CR"; this decoder nevertheless requires ESC (our encoder always sends
it), so a stray byte can never be mistaken for a command.

Printer to host (choices, see "Doubts"): a text reply ended by CR (or NUL, which the Dualys
tools read up to), ``ACK`` (0x06), or ``NACK`` (0x15) followed by one code character from
:data:`NACK_CODES`.

Panels are 1016 lines of 648 dots (300 dpi): a line runs across the card's short side in the
printing direction. Pixel values are ink amounts: 0 = no ink, ``levels - 1`` = full ink;
for K and O a 1 bit prints. Packing is continuous and MSB first: pixel 0 takes the highest
bits of byte 0, 8 pixels of 5 bits fill exactly 5 bytes, and so on.

Doubts, written down so nobody mistakes a choice for a fact:

* The bit order inside packed 5/6/7-bit Y/M/C data is shown only in a figure of the guide.
  We chose MSB-first continuous packing (the same order the guide states for K/O, and the
  one the Dualys tools confirm for K). Verify on hardware before relying on colour output.
* Whether 0 means "no ink" or "full ink" for Y/M/C is likewise unverified.
* The ACK/NACK byte values (ASCII 0x06 / 0x15) are our reading of "ACK"/"NACK"; the guide
  describes them for the parallel port.
* ``Dbc`` carries ``levels`` in Rev. E; the Dualys simulator parses it without. We follow
  Rev. E. Only the K/O compression (per 81-byte line) is implemented; Y/M/C compression is
  refused with :class:`EncodeError` rather than guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Final

from firmware_protocols.errors import CodecError, EncodeError, FrameError

if TYPE_CHECKING:
    # Annotations only: the codec runs in the station daemon, which does not load numpy.
    import numpy as np
    import numpy.typing as npt
    from typing_extensions import Buffer

ESC: Final = 0x1B
CR: Final = 0x0D
SEP: Final = 0x3B  # ";"
NUL: Final = 0x00
ACK: Final = 0x06
NACK: Final = 0x15

PANEL_LINES: Final = 1016  # lines per panel, along the card's long side
LINE_DOTS: Final = 648  # dots per line, across the card's short side
PANEL_PIXELS: Final = PANEL_LINES * LINE_DOTS
KO_LINE_BYTES: Final = LINE_DOTS // 8  # 81

# levels parameter of Db -> bits per pixel (guide §4 table).
LEVEL_BITS: Final[dict[int, int]] = {2: 1, 32: 5, 64: 6, 128: 7}
PANELS: Final = ("y", "m", "c", "k", "o")
# K (resin black) and O (overlay) are always 1 bit per pixel.
MONO_PANELS: Final = frozenset({"k", "o"})

# Longest ordinary command or text reply we accept; anything longer is garbage, not a frame
# to keep buffering (a printer that never sends CR must not grow our buffer without bound).
MAX_COMMAND_BYTES: Final = 256
MAX_REPLY_BYTES: Final = 256
# Pixels per packing group: 8 pixels of ``bits`` bits fill exactly ``bits`` bytes.
_GROUP: Final = 8
_GROUPS: Final = PANEL_PIXELS // _GROUP


def panel_bytes(levels: int) -> int:
    """Bytes of one uncompressed panel at ``levels`` (82,296 at 2 levels: 1016 lines of 81)."""
    try:
        bits = LEVEL_BITS[levels]
    except KeyError:
        raise EncodeError(f"levels must be one of {sorted(LEVEL_BITS)}, got {levels}") from None
    return PANEL_PIXELS * bits // 8


# --------------------------------------------------------------------------- command table


@dataclass(frozen=True)
class CommandSpec:
    """One command of the guide: its name, parameter count range and what it does."""

    name: str
    min_params: int
    max_params: int
    query: bool  # True: the reply carries a value; False: the reply is OK/ACK
    description: str


def _spec(name: str, lo: int, hi: int, query: bool, description: str) -> CommandSpec:
    return CommandSpec(name, lo, hi, query, description)


# The Rev. E subset this project speaks. Data, not if/elif chains, so it can be checked
# against the guide line by line.
COMMANDS: Final[dict[str, CommandSpec]] = {
    s.name: s
    for s in (
        _spec("Rtp", 0, 0, True, "printer model"),
        _spec("Rsn", 0, 0, True, "serial number"),
        _spec("Rkn", 0, 0, True, "print-head kit number"),
        _spec("Rfv", 0, 0, True, "firmware version"),
        _spec("Rck", 0, 0, True, "firmware checksum"),
        _spec("Rco", 1, 1, True, "counters: p panels, c cards, a/m cleaning freq, n cleanings, l cards left on ribbon"),
        _spec("Rr", 0, 0, True, "ribbon type"),
        _spec("Rcr", 0, 0, True, "OK unless the ribbon is on its black end mark"),
        _spec("Rlr", 1, 1, True, "last reply: p card presence (NO CARD / ERR CARD), r cleaning (ERR NEED CLEANING)"),
        _spec("Rse", 1, 1, True, "sensor voltage: c colour, m feeder stop, o cover, p card presence, r rotation"),
        _spec("Rem", 0, 0, True, "error-management mode"),
        _spec("Pem", 1, 1, False, "set error-management mode"),
        _spec("Pr", 1, 1, False, "set ribbon type (ymcko, ymckos, ymckok, ko, k...)"),
        _spec("Pc", 3, 3, False, "contrast of a panel: panel;+|-|=;value"),
        _spec("Pmi", 1, 1, False, "insertion mode F|M|B"),
        _spec("Psc", 0, 3, False, "change or restore delimiters"),
        _spec("Ss", 0, 0, False, "sequence start"),
        _spec("Sr", 0, 0, False, "recto (front) side"),
        _spec("Sv", 0, 0, False, "verso (back) side"),
        _spec("Se", 0, 0, False, "sequence end: print the last panel and eject"),
        _spec("Si", 0, 0, False, "insert a card"),
        _spec("Sp", 1, 1, False, "print one panel"),
        _spec("Ssd", 1, 1, False, "simulate a download"),
        _spec("Sc", 0, 0, False, "copy the last sequence"),
        _spec("Scp", 0, 0, False, "cleaning sequence"),
        _spec("Srs", 0, 0, False, "soft reset"),
        _spec("St", 0, 0, False, "print a test card"),
        _spec("Sa", 0, 0, False, "self-adjust"),
    )
}

RIBBONS: Final = frozenset({"ymcko", "ymckos", "ymckok", "ko", "k", "kb", "kw", "h", "ho"})

# NACK / error codes of guide §5: code -> (name, meaning).
NACK_CODES: Final[dict[str, tuple[str, str]]] = {
    "1": ("command", "command error"),
    "2": ("parameter", "parameter error"),
    "T": ("timeout", "time-out or mechanical error (card jam)"),
    "C": ("cover", "cover open"),
    "F": ("feeder", "feeder error (no card)"),
    "R": ("ribbon", "ribbon error (ended or missing)"),
    "K": ("mag_checksum", "magnetic checksum error"),
    "D": ("mag_data", "magnetic data error"),
    "W": ("mag_write", "magnetic write error"),
}


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Command:
    """An ordinary command: name and its text parameters."""

    name: str
    params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        spec = COMMANDS.get(self.name)
        if spec is None:
            raise EncodeError(f"unknown Evolis command {self.name!r}")
        if not spec.min_params <= len(self.params) <= spec.max_params:
            raise EncodeError(
                f"{self.name} takes {spec.min_params}-{spec.max_params} parameters, got {len(self.params)}"
            )
        for p in self.params:
            if not p or not p.isascii() or any(c in p for c in "\x1b\r;\x00") or not p.isprintable():
                raise EncodeError(f"{self.name}: parameter {p!r} is empty or holds a delimiter")

    def serialize(self) -> bytes:
        """Wire bytes: ESC name[;param]* CR."""
        body = ";".join((self.name, *self.params)).encode("ascii")
        return bytes([ESC]) + body + bytes([CR])


@dataclass(frozen=True)
class Download:
    """A panel download (``Db``, or ``Dbc`` when ``compressed``); ``data`` as on the wire."""

    panel: str
    levels: int
    data: bytes
    compressed: bool = False
    first_line: int = 0

    def __post_init__(self) -> None:
        if self.panel not in PANELS:
            raise EncodeError(f"panel must be one of {PANELS}, got {self.panel!r}")
        if self.levels not in LEVEL_BITS:
            raise EncodeError(f"levels must be one of {sorted(LEVEL_BITS)}, got {self.levels}")
        if self.panel in MONO_PANELS and self.levels != 2:
            raise EncodeError(f"panel {self.panel} is 1 bit: levels must be 2, got {self.levels}")
        if self.compressed:
            if self.panel not in MONO_PANELS:
                raise EncodeError("only K/O compression (Dbc) is implemented")
            if not 0 <= self.first_line < PANEL_LINES:
                raise EncodeError(f"first line must be 0-{PANEL_LINES - 1}, got {self.first_line}")
            if not self.data:
                raise EncodeError("compressed download without data")
        elif len(self.data) != panel_bytes(self.levels):
            raise EncodeError(
                f"panel {self.panel} at {self.levels} levels needs {panel_bytes(self.levels)} bytes,"
                f" got {len(self.data)}"
            )

    def serialize(self) -> bytes:
        """Wire bytes of the download."""
        if self.compressed:
            head = f"Dbc;{self.panel};{self.levels};{self.first_line};{len(self.data)};"
        else:
            head = f"Db;{self.panel};{self.levels};"
        return bytes([ESC]) + head.encode("ascii") + self.data + bytes([CR])

    def summary(self) -> str:
        """A log-safe description (no pixel data)."""
        kind = "Dbc" if self.compressed else "Db"
        return f"{kind};{self.panel};{self.levels};<{len(self.data)} bytes>"


@dataclass(frozen=True)
class Reply:
    """A text reply from the printer."""

    text: str


@dataclass(frozen=True)
class Ack:
    """The printer accepted the command (ACK/NACK mode)."""


@dataclass(frozen=True)
class Nack:
    """The printer refused the command; ``code`` is a key of :data:`NACK_CODES` (or unknown)."""

    code: str

    @property
    def meaning(self) -> str:
        """The guide's meaning of the code, or "unknown"."""
        return NACK_CODES.get(self.code, ("unknown", "unknown code"))[1]


@dataclass(frozen=True)
class Garbage:
    """Bytes dropped while resynchronising."""

    length: int


HostEvent = Command | Download | Garbage
PrinterEvent = Reply | Ack | Nack | Garbage


def encode_command(name: str, *params: str | int) -> bytes:
    """Wire bytes of one ordinary command, checked against :data:`COMMANDS`."""
    return Command(name, tuple(str(p) for p in params)).serialize()


def encode_reply(text: str) -> bytes:
    """Wire bytes of a text reply (printer side, for the emulator)."""
    if not text.isascii() or not text.isprintable() or len(text) > MAX_REPLY_BYTES:
        raise EncodeError("a reply is printable ASCII of at most 256 characters")
    return text.encode("ascii") + bytes([CR])


def encode_nack(code: str) -> bytes:
    """Wire bytes of a NACK with its code (printer side)."""
    if len(code) != 1 or not code.isascii() or not code.isprintable():
        raise EncodeError(f"a NACK code is one printable ASCII character, got {code!r}")
    return bytes([NACK]) + code.encode("ascii")


def encode_ack() -> bytes:
    """Wire bytes of an ACK (printer side)."""
    return bytes([ACK])


# --------------------------------------------------------------------------- pixel packing


def _pixel_bytes(values: Buffer) -> bytes:
    """One byte a pixel, in order, from any one-byte-per-item buffer (bytes, a uint8 ndarray)."""
    if isinstance(values, bytes):
        return values
    try:
        view = memoryview(values)
    except TypeError:
        raise EncodeError(f"pixel values must be a bytes-like buffer, got {type(values).__name__}") from None
    with view:
        if view.itemsize != 1:
            raise EncodeError(f"pixel values are one byte each, got items of {view.itemsize} bytes")
        return view.tobytes()  # C order, also for a strided or 2-D view


@lru_cache(maxsize=8)
def _pack_plan(bits: int) -> tuple[tuple[tuple[int, bytes], ...], ...]:
    """For each byte of a packed group: (pixel index, 256-byte table giving its bits there)."""
    # A group is one integer of 8 * bits bits, pixel 0 in the highest bits. Output byte j holds
    # bits [8j, 8j + 8) counted from the top; a pixel of 5-7 bits reaches into at most 3 bytes.
    # The table of (byte j, pixel k) maps a pixel value to its share of byte j, so bytes.translate
    # does the shifting for a whole strided column of pixels at C speed.
    width = _GROUP * bits
    plan = []
    for j in range(bits):
        shift = width - 8 * (j + 1)
        parts = []
        for k in range(_GROUP):
            top, low = bits * k, bits * (k + 1)
            if low <= 8 * j or top >= 8 * (j + 1):
                continue
            at = width - low
            table = bytes((((v & ((1 << bits) - 1)) << at) >> shift) & 0xFF for v in range(256))
            parts.append((k, table))
        plan.append(tuple(parts))
    return tuple(plan)


@lru_cache(maxsize=8)
def _unpack_plan(bits: int) -> tuple[tuple[tuple[int, bytes], ...], ...]:
    """For each pixel of a group: (byte index, 256-byte table giving that byte's share of it)."""
    width = _GROUP * bits
    mask = (1 << bits) - 1
    plan = []
    for k in range(_GROUP):
        at = width - bits * (k + 1)
        parts = []
        for j in range(bits):
            top, low = 8 * j, 8 * (j + 1)
            if low <= bits * k or top >= bits * (k + 1):
                continue
            shift = width - 8 * (j + 1)
            table = bytes(((b << shift) >> at) & mask for b in range(256))
            parts.append((j, table))
        plan.append(tuple(parts))
    return tuple(plan)


def _or_columns(columns: list[bytes]) -> bytes:
    """Bytewise OR of equal-length byte strings (the shares hold disjoint bits)."""
    if len(columns) == 1:
        return columns[0]
    acc = 0
    for col in columns:
        acc |= int.from_bytes(col, "big")
    return acc.to_bytes(len(columns[0]), "big")


def _pack_bits(flat: bytes) -> bytes:
    """Pack 0/1 bytes eight to a byte, MSB first, as three shifts of one big integer."""
    # Read as one big-endian integer, pixel i is bit 0 of byte i. Shifted right by 7, each
    # pixel lands in bit 1 of the next byte, so after the OR byte i holds pixels i-1 and i in
    # bits 1 and 0; by 14, the pair before that in bits 3-2; by 28, the four before those in
    # bits 7-4. The last byte of each group of eight then holds the group, its first pixel
    # highest; keeping only every eighth byte drops the others (and what spilled across groups).
    x = int.from_bytes(flat, "big")
    x |= x >> 7
    x |= x >> 14
    x |= x >> 28
    return x.to_bytes(len(flat), "big")[_GROUP - 1 :: _GROUP]


def pack_pixels(values: Buffer, levels: int) -> bytes:
    """Pack one panel of ink values (``PANEL_PIXELS`` bytes, 0..levels-1) MSB first."""
    bits = LEVEL_BITS.get(levels)
    if bits is None:
        raise EncodeError(f"levels must be one of {sorted(LEVEL_BITS)}, got {levels}")
    flat = _pixel_bytes(values)
    if len(flat) != PANEL_PIXELS:
        raise EncodeError(f"a panel has {PANEL_PIXELS} pixels, got {len(flat)}")
    too_big = flat.translate(None, bytes(range(levels)))
    if too_big:
        raise EncodeError(f"pixel value {max(too_big)} out of range for {levels} levels")
    if bits == 1:
        return _pack_bits(flat)
    # Column k of the panel (every 8th pixel from k) feeds fixed bits of fixed bytes of each
    # group, so the panel packs as a few whole-column operations instead of a loop per pixel.
    columns = [flat[k::_GROUP] for k in range(_GROUP)]
    out = bytearray(PANEL_PIXELS * bits // 8)
    for j, parts in enumerate(_pack_plan(bits)):
        out[j::bits] = _or_columns([columns[k].translate(table) for k, table in parts])
    return bytes(out)


def unpack_pixels(data: bytes, levels: int) -> bytearray:
    """Inverse of :func:`pack_pixels`: ink values of one panel in printer order, a byte each."""
    bits = LEVEL_BITS.get(levels)
    if bits is None:
        raise FrameError(f"levels must be one of {sorted(LEVEL_BITS)}, got {levels}")
    if len(data) != PANEL_PIXELS * bits // 8:
        raise FrameError(f"panel at {levels} levels needs {PANEL_PIXELS * bits // 8} bytes, got {len(data)}")
    src = bytes(data)
    columns = [src[j::bits] for j in range(bits)]
    out = bytearray(PANEL_PIXELS)
    for k, parts in enumerate(_unpack_plan(bits)):
        out[k::_GROUP] = _or_columns([columns[j].translate(table) for j, table in parts])
    return out


def landscape_to_panel(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Printer order from a landscape card raster (an ndarray) of shape (648, 1016).

    The card turns 90 degrees counter-clockwise (the Dualys tools rotate their PBM by 270
    degrees clockwise, the same thing): line 0 is the card's right-hand edge, and each line
    runs from the card's top to its bottom. Unverified on Primacy hardware.
    """
    # An ndarray in, an ndarray out: numpy is already loaded by the caller, so importing it
    # here costs nothing, and the print path (which rotates with Pillow) never comes here.
    import numpy as np

    if image.shape != (LINE_DOTS, PANEL_LINES):
        raise EncodeError(f"a card raster is {LINE_DOTS}x{PANEL_LINES}, got {image.shape}")
    out: npt.NDArray[np.uint8] = np.ascontiguousarray(np.rot90(image, 1))
    return out


def panel_to_landscape(values: npt.NDArray[np.uint8] | Buffer) -> npt.NDArray[np.uint8]:
    """Inverse of :func:`landscape_to_panel` for a flat or (1016, 648) panel, as an ndarray."""
    import numpy as np  # for tests and tools that look at panels as arrays; not the print path

    arr = values if isinstance(values, np.ndarray) else np.frombuffer(memoryview(values), dtype=np.uint8)
    if arr.size != PANEL_PIXELS:
        raise FrameError(f"a panel has {PANEL_PIXELS} pixels, got {arr.size}")
    out: npt.NDArray[np.uint8] = np.rot90(arr.reshape(PANEL_LINES, LINE_DOTS), -1)
    return out


def compress_ko(packed: bytes) -> bytes:
    """``Dbc`` K/O compression of a packed 1-bit panel: per 81-byte line, 0x00 / 0xFF / N+bytes."""
    if len(packed) != KO_LINE_BYTES * PANEL_LINES:
        raise EncodeError(f"a 1-bit panel has {KO_LINE_BYTES * PANEL_LINES} bytes, got {len(packed)}")
    data = bytes(packed)
    white = bytes(KO_LINE_BYTES)
    black = b"\xff" * KO_LINE_BYTES
    out = bytearray()
    for start in range(0, len(data), KO_LINE_BYTES):
        line = data[start : start + KO_LINE_BYTES]
        if line == white:
            out.append(0x00)
        elif line == black:
            out.append(0xFF)
        else:
            # Bytes up to the last inked one; trailing white bytes are implied by the count.
            inked = line.rstrip(b"\x00")
            out.append(len(inked))
            out += inked
    return bytes(out)


def decompress_ko(data: bytes, first_line: int = 0) -> bytes:
    """Inverse of :func:`compress_ko`; lines before ``first_line`` and after the data are white."""
    if not 0 <= first_line < PANEL_LINES:
        raise FrameError(f"first line {first_line} outside 0-{PANEL_LINES - 1}")
    out = bytearray(KO_LINE_BYTES * first_line)
    i = 0
    while i < len(data):
        if len(out) >= KO_LINE_BYTES * PANEL_LINES:
            raise FrameError("compressed panel has more than 1016 lines")
        head = data[i]
        i += 1
        if head == 0x00:
            out += bytes(KO_LINE_BYTES)
        elif head == 0xFF:
            out += b"\xff" * KO_LINE_BYTES
        elif head <= KO_LINE_BYTES:
            if i + head > len(data):
                raise FrameError("compressed line is truncated")
            out += data[i : i + head] + bytes(KO_LINE_BYTES - head)
            i += head
        else:
            raise FrameError(f"compressed line count {head} exceeds {KO_LINE_BYTES}")
    out += bytes(KO_LINE_BYTES * PANEL_LINES - len(out))
    return bytes(out)


# --------------------------------------------------------------------------- job builder


@dataclass(frozen=True)
class PanelData:
    """One panel ready to send: ink values in printer order, a byte a pixel (bytes, or an ndarray)."""

    panel: str
    levels: int
    values: Buffer


def job_frames(
    panels: Iterable[PanelData],
    *,
    ribbon: str = "ymcko",
    compress_mono: bool = True,
    contrast: Iterable[tuple[str, str, int]] = (),
) -> Iterator[bytes]:
    """Frames of one single-sided card job (guide §21), yielded one at a time.

    Pr, Pc*, Ss, Sr, one download per panel, Se. Each panel is packed only when its frame is
    requested, so a sender that writes each frame before asking for the next holds at most
    one packed panel besides the caller's own rasters.
    """
    if ribbon not in RIBBONS:
        raise EncodeError(f"unknown ribbon {ribbon!r}")
    yield encode_command("Pr", ribbon)
    for panel, sign, value in contrast:
        yield encode_command("Pc", panel, sign, value)
    yield encode_command("Ss")
    yield encode_command("Sr")
    for p in panels:
        packed = pack_pixels(p.values, p.levels)
        if compress_mono and p.panel in MONO_PANELS:
            yield Download(p.panel, p.levels, compress_ko(packed), compressed=True).serialize()
        else:
            yield Download(p.panel, p.levels, packed).serialize()
    yield encode_command("Se")


# --------------------------------------------------------------------------- decoders


class CommandDecoder:
    """Host-to-printer stream decoder (the emulator's side): bytes in, commands out.

    Feed any split of the stream; ``feed(b"")`` is a no-op (the USB stream has no EOF).
    Malformed frames come out as :class:`Garbage` and decoding resumes at the next ESC.
    """

    def __init__(self, *, max_download: int = PANEL_PIXELS) -> None:
        self._buf = bytearray()
        # Bound on a compressed download's declared size: it can never exceed an
        # uncompressed 1-bit panel plus one count byte per line.
        self._max_dbc = max_download // 8 + PANEL_LINES

    def feed(self, data: bytes) -> list[HostEvent]:
        """Add bytes; return every complete event they finish."""
        self._buf += data
        events: list[HostEvent] = []
        while True:
            ev = self._next()
            if ev is None:
                return events
            events.append(ev)

    def pending(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buf)

    def _drop(self, n: int) -> Garbage:
        del self._buf[:n]
        return Garbage(n)

    def _next(self) -> HostEvent | None:
        buf = self._buf
        # Leading NULs are padding the Dualys tools send; skip silently.
        skip = 0
        while skip < len(buf) and buf[skip] == NUL:
            skip += 1
        if skip:
            del buf[:skip]
        if not buf:
            return None
        if buf[0] != ESC:
            nxt = buf.find(bytes([ESC]))
            return self._drop(nxt if nxt > 0 else len(buf))
        # Header: ESC name[;field]... up to the point where we know the frame's shape.
        if buf[1:3] == b"Db":
            return self._download()
        end = buf.find(bytes([CR]), 1, MAX_COMMAND_BYTES + 1)
        if end < 0:
            if len(buf) > MAX_COMMAND_BYTES:
                return self._drop(self._resync_point())
            return None
        body = bytes(buf[1:end])
        try:
            text = body.decode("ascii")
            name, *params = text.split(";")
            cmd = Command(name, tuple(params))
        except (UnicodeDecodeError, CodecError):
            return self._drop(end + 1)
        del buf[: end + 1]
        return cmd

    def _resync_point(self) -> int:
        nxt = self._buf.find(bytes([ESC]), 1)
        return nxt if nxt > 0 else len(self._buf)

    def _download(self) -> HostEvent | None:
        buf = self._buf
        compressed = buf[3:4] == b"c"
        nfields = 5 if compressed else 3  # Dbc;panel;levels;first;n;  /  Db;panel;levels;
        # Find the separators of the header (bounded: the header is short text).
        seps: list[int] = []
        pos = 1
        limit = min(len(buf), 40)
        while len(seps) < nfields and pos < limit:
            if buf[pos] == SEP:
                seps.append(pos)
            elif buf[pos] in (CR, ESC):
                return self._drop(pos + 1 if buf[pos] == CR else pos)
            pos += 1
        if len(seps) < nfields:
            if len(buf) >= 40:
                return self._drop(self._resync_point())
            return None
        try:
            fields = bytes(buf[1 : seps[-1]]).decode("ascii").split(";")
            name = fields[0]
            if name != ("Dbc" if compressed else "Db"):
                raise FrameError(name)
            panel, levels = fields[1], int(fields[2])
            if compressed:
                first, size = int(fields[3]), int(fields[4])
                if not 0 < size <= self._max_dbc:
                    raise FrameError("bad compressed size")
            else:
                first, size = 0, panel_bytes(levels)
        except (UnicodeDecodeError, ValueError, CodecError):
            return self._drop(seps[-1] + 1)
        start = seps[-1] + 1
        if len(buf) < start + size + 1:
            return None
        if buf[start + size] != CR:
            return self._drop(start + size)
        data = bytes(buf[start : start + size])
        try:
            ev = Download(panel, levels, data, compressed=compressed, first_line=first)
        except CodecError:
            return self._drop(start + size + 1)
        del buf[: start + size + 1]
        return ev


class ReplyDecoder:
    """Printer-to-host stream decoder (the driver's side): bytes in, replies out."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[PrinterEvent]:
        """Add bytes; return every complete reply they finish."""
        self._buf += data
        events: list[PrinterEvent] = []
        buf = self._buf
        while buf:
            b = buf[0]
            if b in (CR, NUL, 0x0A):
                # Empty line or terminator padding between replies.
                del buf[:1]
                continue
            if b == ACK:
                del buf[:1]
                events.append(Ack())
                continue
            if b == NACK:
                if len(buf) < 2:
                    break
                code = buf[1]
                del buf[:2]
                if 0x20 <= code < 0x7F:
                    events.append(Nack(chr(code)))
                else:
                    events.append(Garbage(2))
                continue
            end = -1
            bad = -1
            for i, c in enumerate(buf[: MAX_REPLY_BYTES + 1]):
                if c in (CR, NUL, 0x0A):
                    end = i
                    break
                if not 0x20 <= c < 0x7F:
                    bad = i
                    break
            if bad >= 0:
                # A control byte inside text: the text so far (or the byte itself) is garbage;
                # the loop then looks at what follows, which may be an ACK/NACK.
                n = max(bad, 1)
                del buf[:n]
                events.append(Garbage(n))
                continue
            if end < 0:
                if len(buf) > MAX_REPLY_BYTES:
                    n = len(buf)
                    del buf[:]
                    events.append(Garbage(n))
                break
            text = bytes(buf[:end]).decode("ascii")
            del buf[: end + 1]
            events.append(Reply(text))
        return events

    def pending(self) -> int:
        """Bytes held for an incomplete reply."""
        return len(self._buf)

