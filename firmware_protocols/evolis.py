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
from typing import Final

import numpy as np
import numpy.typing as npt

from firmware_protocols.errors import CodecError, EncodeError, FrameError

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
# Lines packed or unpacked at a time: bounds the scratch memory of colour panels.
_BLOCK_LINES: Final = 64


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


def pack_pixels(values: npt.NDArray[np.uint8], levels: int) -> bytes:
    """Pack one panel of ink values (``PANEL_PIXELS`` of them, 0..levels-1) MSB first."""
    bits = LEVEL_BITS.get(levels)
    if bits is None:
        raise EncodeError(f"levels must be one of {sorted(LEVEL_BITS)}, got {levels}")
    flat = np.ascontiguousarray(values, dtype=np.uint8).reshape(-1)
    if flat.size != PANEL_PIXELS:
        raise EncodeError(f"a panel has {PANEL_PIXELS} pixels, got {flat.size}")
    if flat.size and int(flat.max()) >= levels:
        raise EncodeError(f"pixel value {int(flat.max())} out of range for {levels} levels")
    if bits == 1:
        return np.packbits(flat).tobytes()
    # 8 pixels of `bits` bits fill exactly `bits` bytes: build each group as one integer
    # (at most 56 bits) and cut it into bytes. Done in blocks of lines so the 64-bit scratch
    # arrays stay small; a line (648 pixels) is a multiple of 8, so blocks pack alone.
    value_shifts = np.array([bits * (7 - k) for k in range(8)], dtype=np.uint64)
    byte_shifts = np.array([8 * (bits - 1 - i) for i in range(bits)], dtype=np.uint64)
    out = bytearray()
    step = _BLOCK_LINES * LINE_DOTS
    for start in range(0, flat.size, step):
        groups = flat[start : start + step].reshape(-1, 8).astype(np.uint64)
        words = np.bitwise_or.reduce(groups << value_shifts, axis=1)
        out += ((words[:, None] >> byte_shifts) & 0xFF).astype(np.uint8).tobytes()
    return bytes(out)


def unpack_pixels(data: bytes, levels: int) -> npt.NDArray[np.uint8]:
    """Inverse of :func:`pack_pixels`: ink values of one panel in printer order."""
    bits = LEVEL_BITS.get(levels)
    if bits is None:
        raise FrameError(f"levels must be one of {sorted(LEVEL_BITS)}, got {levels}")
    if len(data) != PANEL_PIXELS * bits // 8:
        raise FrameError(f"panel at {levels} levels needs {PANEL_PIXELS * bits // 8} bytes, got {len(data)}")
    src = np.frombuffer(data, dtype=np.uint8)
    if bits == 1:
        raw: npt.NDArray[np.uint8] = np.unpackbits(src)
        return raw
    # Inverse of pack_pixels: `bits` bytes -> one integer -> 8 pixels, in blocks of lines.
    value_shifts = np.array([bits * (7 - k) for k in range(8)], dtype=np.uint64)
    byte_shifts = np.array([8 * (bits - 1 - i) for i in range(bits)], dtype=np.uint64)
    mask = np.uint64((1 << bits) - 1)
    out = np.empty(PANEL_PIXELS, dtype=np.uint8)
    step = _BLOCK_LINES * LINE_DOTS
    for start in range(0, PANEL_PIXELS, step):
        n = min(step, PANEL_PIXELS - start)
        groups = src[start * bits // 8 : (start + n) * bits // 8].reshape(-1, bits).astype(np.uint64)
        words = np.bitwise_or.reduce(groups << byte_shifts, axis=1)
        out[start : start + n] = ((words[:, None] >> value_shifts) & mask).astype(np.uint8).reshape(-1)
    return out


def landscape_to_panel(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Printer order from a landscape card raster of shape (648, 1016).

    The card turns 90 degrees counter-clockwise (the Dualys tools rotate their PBM by 270
    degrees clockwise, the same thing): line 0 is the card's right-hand edge, and each line
    runs from the card's top to its bottom. Unverified on Primacy hardware.
    """
    if image.shape != (LINE_DOTS, PANEL_LINES):
        raise EncodeError(f"a card raster is {LINE_DOTS}x{PANEL_LINES}, got {image.shape}")
    out: npt.NDArray[np.uint8] = np.ascontiguousarray(np.rot90(image, 1))
    return out


def panel_to_landscape(values: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Inverse of :func:`landscape_to_panel` for a flat or (1016, 648) panel."""
    if values.size != PANEL_PIXELS:
        raise FrameError(f"a panel has {PANEL_PIXELS} pixels, got {values.size}")
    out: npt.NDArray[np.uint8] = np.rot90(values.reshape(PANEL_LINES, LINE_DOTS), -1)
    return out


def compress_ko(packed: bytes) -> bytes:
    """``Dbc`` K/O compression of a packed 1-bit panel: per 81-byte line, 0x00 / 0xFF / N+bytes."""
    if len(packed) != KO_LINE_BYTES * PANEL_LINES:
        raise EncodeError(f"a 1-bit panel has {KO_LINE_BYTES * PANEL_LINES} bytes, got {len(packed)}")
    lines = np.frombuffer(packed, dtype=np.uint8).reshape(PANEL_LINES, KO_LINE_BYTES)
    inked: npt.NDArray[np.bool_] = np.any(lines, axis=1)
    black: npt.NDArray[np.bool_] = np.all(lines == 0xFF, axis=1)
    # Bytes up to the last inked one; trailing white bytes are implied by the count.
    last = KO_LINE_BYTES - np.argmax(lines[:, ::-1] != 0, axis=1)
    out = bytearray()
    for i in range(PANEL_LINES):
        if not inked[i]:
            out.append(0x00)
        elif black[i]:
            out.append(0xFF)
        else:
            n = int(last[i])
            out.append(n)
            out += lines[i, :n].tobytes()
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
    """One panel ready to send: ink values in printer order (lazily produced by the caller)."""

    panel: str
    levels: int
    values: npt.NDArray[np.uint8]


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

