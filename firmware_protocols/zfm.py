"""Sans-IO codec of the ZFM / R30x / R307 / R503 / AS608 ("GROW") UART fingerprint protocol.

Evidence level: public protocol (vendor user manuals; four open implementations agree; see
``/work/shared/research/protocols.md`` §1.1). Not verified against hardware here.

Wire format of every packet (all fields big-endian)::

    offset size field
    0      2    start code EF 01
    2      4    module address (default FF FF FF FF)
    6      1    package identifier (PID): 01 command, 02 data (more follows),
                07 acknowledge, 08 last data packet
    7      2    length = len(payload) + 2 (the checksum is counted, the header is not)
    9      N    payload
    9+N    2    checksum = (PID + both length bytes + every payload byte) & 0xFFFF

What lives here, and nothing else (no I/O, no clocks, no logging):

* :class:`Packet` subclasses (:class:`CommandPacket`, :class:`AckPacket`, :class:`DataPacket`),
  frozen dataclasses with ``serialize()`` and ``Packet.deserialize(data) -> (packet, rest)``;
* :class:`PacketDecoder`, an incremental decoder fed arbitrary slices, which resynchronises on the
  start code and reports discarded bytes as :class:`Garbage` events;
* the instruction table :data:`INSTRUCTIONS` as data (code, parameters, reply fields), with
  :func:`encode_command`, :func:`parse_command`, :func:`encode_reply` and :func:`parse_reply`;
* :class:`ConfirmationCode` with each code's meaning and who must act (:class:`Outcome`);
* data-packet streams: :func:`encode_data_stream` (DownChar / DownImage / an emulator's UpImage)
  and :class:`DataStreamReceiver` which turns data packets into :class:`Chunk` events;
* :class:`SysPara` (the ReadSysPara reply) and 4-bit image packing (:class:`ImageAssembler`).

Errors raised here are all :class:`firmware_protocols.errors.CodecError` subclasses.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Final, Literal

from firmware_protocols.errors import BufferOverflowError, CodecError, EncodeError, FrameError

START_CODE: Final = b"\xef\x01"
DEFAULT_ADDRESS: Final = 0xFFFFFFFF
HEADER_LEN: Final = 9  # start code 2 + address 4 + PID 1 + length 2
CHECKSUM_LEN: Final = 2
MIN_PACKET_LEN: Final = HEADER_LEN + 1 + CHECKSUM_LEN  # an ack with only its confirmation code
# Command and acknowledge payloads are short in every manual (the longest, ReadIndexTable's
# reply, is 33 bytes). A length field above this on such a packet is line noise, not a frame,
# and refusing it early keeps the decoder from waiting for bytes that will never come.
MAX_CONTROL_PAYLOAD: Final = 64
# The largest data-packet size a module can be configured for (packet-size code 3).
MAX_DATA_PAYLOAD: Final = 256
SOFT_RESET_HANDSHAKE: Final = 0x55  # the single byte a module sends after power-up / SoftReset


class PID(enum.IntEnum):
    """Package identifier: what kind of packet follows."""

    COMMAND = 0x01
    DATA = 0x02
    ACK = 0x07
    END_DATA = 0x08


def checksum(pid: int, payload: bytes | bytearray | memoryview) -> int:
    """The 16-bit packet checksum: PID + length bytes + payload, carry beyond 16 bits dropped."""
    length = len(payload) + CHECKSUM_LEN
    return (pid + (length >> 8) + (length & 0xFF) + sum(payload)) & 0xFFFF


def _frame(address: int, pid: int, payload: bytes) -> bytes:
    length = len(payload) + CHECKSUM_LEN
    return b"".join(
        (
            START_CODE,
            address.to_bytes(4, "big"),
            bytes((pid,)),
            length.to_bytes(2, "big"),
            payload,
            checksum(pid, payload).to_bytes(2, "big"),
        )
    )


def _check_address(address: int) -> None:
    if not 0 <= address <= 0xFFFFFFFF:
        raise EncodeError(f"module address must fit in 4 bytes, got {address}")


# --------------------------------------------------------------------------- packets


@dataclass(frozen=True)
class Packet:
    """One validated packet; use a subclass. ``address`` is the module address."""

    address: int
    pid: ClassVar[PID]

    @property
    def payload(self) -> bytes:
        """The payload bytes as they go on the wire."""
        raise NotImplementedError

    def serialize(self) -> bytes:
        """The full packet: start code, address, PID, length, payload, checksum."""
        return _frame(self.address, self.pid, self.payload)

    @staticmethod
    def deserialize(data: bytes) -> tuple[Packet, bytes]:
        """Parse exactly one packet at the start of ``data``; return it and the rest.

        Raises:
            FrameError: ``data`` does not start with a whole valid packet.
        """
        decoder = PacketDecoder()
        result = decoder.parse_one(data)
        if isinstance(result, int):
            raise FrameError(f"incomplete packet: {len(data)} bytes, need {result}")
        if isinstance(result, Garbage):
            raise FrameError(f"not a packet: {result.reason}")
        packet, used = result
        return packet, bytes(data[used:])


@dataclass(frozen=True)
class CommandPacket(Packet):
    """Host -> module: an instruction code and its raw parameter bytes."""

    instruction: int
    params: bytes = b""
    pid: ClassVar[PID] = PID.COMMAND

    def __post_init__(self) -> None:
        _check_address(self.address)
        if not 0 <= self.instruction <= 0xFF:
            raise EncodeError(f"instruction code must be one byte, got {self.instruction}")
        if len(self.params) + 1 > MAX_CONTROL_PAYLOAD:
            raise EncodeError(f"command parameters too long: {len(self.params)} bytes")

    @property
    def payload(self) -> bytes:
        """Instruction code followed by the parameters."""
        return bytes((self.instruction,)) + self.params


@dataclass(frozen=True)
class AckPacket(Packet):
    """Module -> host: a confirmation code and the instruction's return data."""

    code: int
    data: bytes = b""
    pid: ClassVar[PID] = PID.ACK

    def __post_init__(self) -> None:
        _check_address(self.address)
        if not 0 <= self.code <= 0xFF:
            raise EncodeError(f"confirmation code must be one byte, got {self.code}")
        if len(self.data) + 1 > MAX_CONTROL_PAYLOAD:
            raise EncodeError(f"acknowledge data too long: {len(self.data)} bytes")

    @property
    def payload(self) -> bytes:
        """Confirmation code followed by the return data."""
        return bytes((self.code,)) + self.data


@dataclass(frozen=True)
class DataPacket(Packet):
    """Either direction: one chunk of an image or template stream; ``last`` for PID 0x08."""

    data: bytes
    last: bool = False

    def __post_init__(self) -> None:
        _check_address(self.address)
        if not 1 <= len(self.data) <= MAX_DATA_PAYLOAD:
            raise EncodeError(f"data packet must carry 1-{MAX_DATA_PAYLOAD} bytes, got {len(self.data)}")

    @property
    def pid(self) -> PID:  # type: ignore[override]
        """DATA, or END_DATA for the last packet of a stream."""
        return PID.END_DATA if self.last else PID.DATA

    @property
    def payload(self) -> bytes:
        """The raw stream bytes."""
        return self.data


@dataclass(frozen=True)
class Garbage:
    """Bytes the decoder dropped while resynchronising, and why (never handed up as a frame)."""

    size: int
    reason: Literal["no start code", "bad pid", "bad length", "bad checksum"]


#: What :meth:`PacketDecoder.feed` returns, in wire order.
Event = CommandPacket | AckPacket | DataPacket | Garbage


class PacketDecoder:
    """Incremental decoder: feed it any slices of the byte stream, get packets back in order.

    Design (h11 / zigpy-znp style): one ``bytearray`` that only ever holds the unparsed tail;
    consumed bytes are deleted in place. Anything that cannot start a valid packet (wrong start
    code, unknown PID, a length no packet of that kind can have, a checksum that does not add up)
    is dropped up to the next ``EF 01`` and reported as :class:`Garbage`, so the caller can count
    line noise but never sees an unvalidated frame. Lengths are checked before waiting for the
    body, so the buffer never holds more than one maximal packet plus the slice being fed
    (``max_buffer``); input is consumed in slices of that size to keep the bound during a
    large ``feed``.
    """

    def __init__(self, *, max_data_payload: int = MAX_DATA_PAYLOAD) -> None:
        if not 1 <= max_data_payload <= MAX_DATA_PAYLOAD:
            raise EncodeError(f"max_data_payload must be 1-{MAX_DATA_PAYLOAD}")
        self._buf = bytearray()
        self._max_data = max_data_payload
        self.max_frame = HEADER_LEN + max(max_data_payload, MAX_CONTROL_PAYLOAD) + CHECKSUM_LEN
        # A slice is at most one frame long, and the tail left after parsing is shorter than one
        # frame, so the buffer is always below two frames.
        self.max_buffer = 2 * self.max_frame
        self._need = 0  # total bytes the packet at the front needs before it can be decided

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete packet."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Add bytes and return every packet (and garbage report) now complete.

        ``b""`` means end of stream: a partial packet still buffered is reported as garbage.

        Raises:
            BufferOverflowError: only if the internal bound were broken (a bug, never input).
        """
        buf = self._buf
        if 0 < len(data) <= self.max_frame:
            # The common case (a UART read is small): no slicing needed to keep the bound. This
            # path runs once per byte when the driver reads byte by byte, so it does the least
            # it can: no events list until a packet may be complete.
            buf += data
            if len(buf) < self._need:
                return []
            events: list[Event] = []
            self._drain(events)
            return events
        events = []
        if not data:
            if buf:
                events.append(Garbage(len(buf), "no start code"))
                buf.clear()
            self._need = 0
            return events
        view = memoryview(data)
        for start in range(0, len(view), self.max_frame):
            self._buf += view[start : start + self.max_frame]
            if len(self._buf) > self.max_buffer:  # pragma: no cover - guarded by construction
                raise BufferOverflowError(f"decoder buffer reached {len(self._buf)} bytes")
            # Remembering how many bytes the pending packet needs makes byte-at-a-time feeding
            # cost O(1) a byte instead of re-parsing the header each time (h11's trick).
            if len(self._buf) >= self._need:
                self._drain(events)
        return events

    def _drain(self, events: list[Event]) -> None:
        buf = self._buf
        self._need = 0
        while buf:
            result = self.parse_one(buf)
            if isinstance(result, int):
                self._need = result
                return
            if isinstance(result, Garbage):
                del buf[: result.size]
                events.append(result)
                continue
            packet, used = result
            del buf[:used]
            events.append(packet)

    def parse_one(
        self, buf: bytes | bytearray
    ) -> int | Garbage | tuple[CommandPacket | AckPacket | DataPacket, int]:
        """Three-way decode of the start of ``buf``.

        Returns:
            an ``int``: need that many bytes in total before deciding;
            :class:`Garbage`: drop ``size`` bytes from the front and try again;
            ``(packet, n)``: a valid packet made of the first ``n`` bytes.
        """
        if buf[:2] != START_CODE:
            if buf[:1] == START_CODE[:1] and len(buf) < 2:
                return 2
            nxt = buf.find(START_CODE, 1)
            if nxt < 0:
                # Keep a trailing EF: it may be the first half of the next start code.
                nxt = len(buf) - 1 if buf[-1] == START_CODE[0] else len(buf)
                if nxt == 0:
                    return 2
            return Garbage(nxt, "no start code")
        if len(buf) < HEADER_LEN:
            return HEADER_LEN
        pid = buf[6]
        length = (buf[7] << 8) | buf[8]
        if pid in (PID.COMMAND, PID.ACK):
            max_payload = MAX_CONTROL_PAYLOAD
        elif pid in (PID.DATA, PID.END_DATA):
            max_payload = self._max_data
        else:
            return self._resync(buf, "bad pid")
        if not CHECKSUM_LEN + 1 <= length <= max_payload + CHECKSUM_LEN:
            return self._resync(buf, "bad length")
        total = HEADER_LEN + length
        if len(buf) < total:
            return total
        payload = bytes(buf[HEADER_LEN : total - CHECKSUM_LEN])
        got = (buf[total - 2] << 8) | buf[total - 1]
        if got != checksum(pid, payload):
            return self._resync(buf, "bad checksum")
        address = int.from_bytes(buf[2:6], "big")
        packet: CommandPacket | AckPacket | DataPacket
        if pid == PID.COMMAND:
            packet = CommandPacket(address, payload[0], payload[1:])
        elif pid == PID.ACK:
            packet = AckPacket(address, payload[0], payload[1:])
        else:
            packet = DataPacket(address, payload, last=pid == PID.END_DATA)
        return packet, total

    @staticmethod
    def _resync(
        buf: bytes | bytearray, reason: Literal["bad pid", "bad length", "bad checksum"]
    ) -> Garbage:
        # The false start may hide the real next packet inside it, so search from byte 1, not
        # from the end of what the bad length claimed.
        nxt = buf.find(START_CODE, 1)
        return Garbage(nxt if nxt > 0 else len(buf), reason)


# --------------------------------------------------------------------------- confirmation codes


class Outcome(enum.Enum):
    """Who must act on a confirmation code (libfprint's RETRY vs ERROR split)."""

    OK = "ok"
    NO_MATCH = "no match"  # a valid answer ("not this finger"), not an error
    USER_RETRY = "user retry"  # the applicant places the finger again; the device is fine
    FAULT = "fault"  # the module, its configuration or the host's sequencing is wrong


class ConfirmationCode(enum.IntEnum):
    """Confirmation codes in acknowledge packets (union of the manuals and [ZR502], [ADA], [PYF])."""

    OK = 0x00
    PACKET_RECEIVE_ERROR = 0x01
    NO_FINGER = 0x02
    IMAGE_FAIL = 0x03
    IMAGE_MESSY = 0x06
    FEATURE_FAIL = 0x07
    NO_MATCH = 0x08
    NOT_FOUND = 0x09
    ENROLL_MISMATCH = 0x0A
    BAD_LOCATION = 0x0B
    INVALID_TEMPLATE = 0x0C
    UPLOAD_TEMPLATE_FAIL = 0x0D
    PACKET_RESPONSE_FAIL = 0x0E
    UPLOAD_IMAGE_FAIL = 0x0F
    DELETE_FAIL = 0x10
    DB_CLEAR_FAIL = 0x11
    WRONG_PASSWORD = 0x13
    NO_VALID_IMAGE = 0x15
    FLASH_ERROR = 0x18
    INVALID_REGISTER = 0x1A
    BAD_REGISTER_CONFIG = 0x1B
    ADDRESS_ERROR = 0x20
    PASSWORD_REQUIRED = 0x21
    HANDSHAKE_OK = 0x55  # GetEcho's "module OK" [ADA]; unverified against a manual

    @property
    def meaning(self) -> str:
        """The manual's meaning of this code, in English."""
        return _CODE_INFO[self][0]

    @property
    def outcome(self) -> Outcome:
        """Who must act on this code."""
        return _CODE_INFO[self][1]

    @classmethod
    def describe(cls, code: int) -> tuple[str, Outcome]:
        """Meaning and outcome of any byte; unknown codes are faults."""
        try:
            member = cls(code)
        except ValueError:
            return f"unknown confirmation code 0x{code:02X}", Outcome.FAULT
        return member.meaning, member.outcome


_CODE_INFO: dict[ConfirmationCode, tuple[str, Outcome]] = {
    ConfirmationCode.OK: ("OK", Outcome.OK),
    ConfirmationCode.PACKET_RECEIVE_ERROR: ("error receiving the package", Outcome.FAULT),
    ConfirmationCode.NO_FINGER: ("no finger on the sensor", Outcome.USER_RETRY),
    ConfirmationCode.IMAGE_FAIL: ("failed to collect the image", Outcome.USER_RETRY),
    ConfirmationCode.IMAGE_MESSY: (
        "image too disorderly to make a character file (wet, smudged or moved)",
        Outcome.USER_RETRY,
    ),
    ConfirmationCode.FEATURE_FAIL: ("too few feature points / image too small", Outcome.USER_RETRY),
    ConfirmationCode.NO_MATCH: ("finger does not match", Outcome.NO_MATCH),
    ConfirmationCode.NOT_FOUND: ("no matching finger found", Outcome.NO_MATCH),
    # Two captures of different fingers (or a finger moved between them) cannot be combined:
    # the applicant repeats the enrolment, nothing is broken.
    ConfirmationCode.ENROLL_MISMATCH: ("failed to combine character files", Outcome.USER_RETRY),
    ConfirmationCode.BAD_LOCATION: ("PageID beyond the library", Outcome.FAULT),
    ConfirmationCode.INVALID_TEMPLATE: ("error reading the template / invalid template", Outcome.FAULT),
    ConfirmationCode.UPLOAD_TEMPLATE_FAIL: ("error uploading the template", Outcome.FAULT),
    ConfirmationCode.PACKET_RESPONSE_FAIL: (
        "module cannot receive the following data packages",
        Outcome.FAULT,
    ),
    ConfirmationCode.UPLOAD_IMAGE_FAIL: ("error uploading the image", Outcome.FAULT),
    ConfirmationCode.DELETE_FAIL: ("failed to delete the template", Outcome.FAULT),
    ConfirmationCode.DB_CLEAR_FAIL: ("failed to clear the library", Outcome.FAULT),
    ConfirmationCode.WRONG_PASSWORD: ("wrong password", Outcome.FAULT),
    ConfirmationCode.NO_VALID_IMAGE: ("no valid primary image", Outcome.FAULT),
    ConfirmationCode.FLASH_ERROR: ("flash write error", Outcome.FAULT),
    ConfirmationCode.INVALID_REGISTER: ("invalid register number", Outcome.FAULT),
    ConfirmationCode.BAD_REGISTER_CONFIG: ("incorrect register configuration", Outcome.FAULT),
    ConfirmationCode.ADDRESS_ERROR: ("address code error", Outcome.FAULT),
    ConfirmationCode.PASSWORD_REQUIRED: ("password must be verified first", Outcome.FAULT),
    ConfirmationCode.HANDSHAKE_OK: ("module OK (echo)", Outcome.OK),
}


# --------------------------------------------------------------------------- instruction table


@dataclass(frozen=True)
class Field:
    """One big-endian field of a command or reply; ``secret`` fields never appear in summaries."""

    name: str
    size: int
    description: str
    secret: bool = False

    @property
    def maximum(self) -> int:
        """The largest value the field holds (raw-bytes fields report their size only)."""
        return (1 << (8 * self.size)) - 1


@dataclass(frozen=True)
class Instruction:
    """One instruction as data: code, manual name, parameters, reply fields, data stream.

    ``stream`` says whether data packets follow the acknowledge: ``"up"`` module -> host
    (UpImage, UpChar), ``"down"`` host -> module (DownImage, DownChar). ``raw_reply`` names a
    reply field returned as bytes instead of an integer (bitmaps).
    """

    code: int
    name: str
    description: str
    params: tuple[Field, ...] = ()
    reply: tuple[Field, ...] = ()
    stream: Literal["up", "down"] | None = None
    raw_reply: frozenset[str] = frozenset()
    models: str = "all"

    @property
    def params_size(self) -> int:
        """Bytes of parameters after the instruction code."""
        return sum(f.size for f in self.params)

    @property
    def reply_size(self) -> int:
        """Bytes of return data after the confirmation code."""
        return sum(f.size for f in self.reply)


_BUFFER = Field("BufferID", 1, "character buffer number (1-2 on R30x, 1-6 on R503)")
_PAGE = Field("PageID", 2, "template slot in the flash library")
_SCORE = Field("MatchScore", 2, "matching score")
_SEARCH_PARAMS = (_BUFFER, Field("StartPage", 2, "first slot to search"), Field("PageNum", 2, "slots to search"))

#: Every instruction of the research table (protocols.md §1.1), keyed by its manual name.
INSTRUCTIONS: Final[Mapping[str, Instruction]] = {
    i.name: i
    for i in (
        Instruction(0x01, "GenImg", "capture a finger image into the image buffer (0x02 = no finger)"),
        Instruction(0x02, "Img2Tz", "make a character file from the image into a buffer", (_BUFFER,)),
        Instruction(0x03, "Match", "compare character buffers 1 and 2", reply=(_SCORE,)),
        Instruction(0x04, "Search", "search the library for the buffer's finger", _SEARCH_PARAMS, (_PAGE, _SCORE)),
        Instruction(0x05, "RegModel", "combine buffers 1 and 2 into a template"),
        Instruction(0x06, "Store", "store a buffer into a library slot", (_BUFFER, _PAGE)),
        Instruction(0x07, "LoadChar", "load a library slot into a buffer", (_BUFFER, _PAGE)),
        Instruction(0x08, "UpChar", "upload a buffer to the host (data packets follow)", (_BUFFER,), stream="up"),
        Instruction(0x09, "DownChar", "download a template into a buffer (host sends data)", (_BUFFER,), stream="down"),
        Instruction(0x0A, "UpImage", "upload the image buffer (4-bit, data packets follow)", stream="up"),
        Instruction(0x0B, "DownImage", "download an image into the image buffer (host sends data)", stream="down"),
        Instruction(
            0x0C,
            "DeleteChar",
            "delete templates from the library",
            (_PAGE, Field("N", 2, "number of templates to delete")),
        ),
        Instruction(0x0D, "Empty", "delete every template in the library"),
        Instruction(
            0x0E,
            "SetSysPara",
            "set a system parameter (4 baud N, 5 security level, 6 packet-size code)",
            (Field("ParameterNo", 1, "parameter number"), Field("Contents", 1, "new value")),
        ),
        Instruction(
            0x0F,
            "ReadSysPara",
            "read the 16 bytes of system parameters",
            reply=(Field("SysPara", 16, "system parameters, see SysPara"),),
            raw_reply=frozenset({"SysPara"}),
        ),
        Instruction(0x12, "SetPwd", "set the module password", (Field("Password", 4, "new password", secret=True),)),
        Instruction(0x13, "VfyPwd", "verify the module password", (Field("Password", 4, "password", secret=True),)),
        Instruction(0x14, "GetRandomCode", "ask for a random number", reply=(Field("RandomCode", 4, "random number"),)),
        Instruction(0x15, "SetAdder", "set the module address", (Field("Address", 4, "new module address"),)),
        Instruction(0x1B, "HighSpeedSearch", "fast search of the library", _SEARCH_PARAMS, (_PAGE, _SCORE)),
        Instruction(0x1D, "TempleteNum", "count the stored templates", reply=(Field("N", 2, "template count"),)),
        Instruction(
            0x1F,
            "ReadIndexTable",
            "read which slots of one 256-slot page are used",
            (Field("IndexPage", 1, "index page (slots page*256 ..)"),),
            (Field("IndexTable", 32, "bit i of byte j = slot page*256 + 8j + i"),),
            raw_reply=frozenset({"IndexTable"}),
        ),
        Instruction(
            0x35,
            "AuraLedConfig",
            "control the ring LED (R502/R503 only)",
            (
                Field("Ctrl", 1, "1 breathing, 2 flashing, 3 on, 4 off, 5 fade on, 6 fade off"),
                Field("Speed", 1, "effect speed"),
                Field("ColorIndex", 1, "1 red, 2 blue, 3 purple"),
                Field("Times", 1, "cycles, 0 = infinite"),
            ),
            models="R502, R503",
        ),
        Instruction(0x36, "CheckSensor", "check that the sensor works", models="R502A"),
        Instruction(0x3D, "SoftReset", "restart the module; it then sends one 0x55 byte", models="R502A, R503"),
        Instruction(0x40, "HandShake", "check that the module answers", models="R502A"),
        Instruction(0x53, "GetEcho", "echo check; confirmation 0x55 means OK (unverified)", models="[ADA] only"),
    )
}
INSTRUCTIONS_BY_CODE: Final[Mapping[int, Instruction]] = {i.code: i for i in INSTRUCTIONS.values()}


def _pack_fields(fields: tuple[Field, ...], values: Mapping[str, int | bytes], what: str) -> bytes:
    unknown = set(values) - {f.name for f in fields}
    if unknown:
        raise EncodeError(f"{what}: unknown field(s) {sorted(unknown)}")
    out = bytearray()
    for f in fields:
        if f.name not in values:
            raise EncodeError(f"{what}: missing field {f.name}")
        value = values[f.name]
        if isinstance(value, bytes | bytearray):
            if len(value) != f.size:
                raise EncodeError(f"{what}: {f.name} must be {f.size} bytes, got {len(value)}")
            out += value
        else:
            if isinstance(value, bool) or not 0 <= value <= f.maximum:
                raise EncodeError(f"{what}: {f.name} must be 0-{f.maximum}, got {value!r}")
            out += value.to_bytes(f.size, "big")
    return bytes(out)


def _unpack_fields(
    fields: tuple[Field, ...], raw: frozenset[str], data: bytes
) -> dict[str, int | bytes]:
    values: dict[str, int | bytes] = {}
    pos = 0
    for f in fields:
        chunk = data[pos : pos + f.size]
        values[f.name] = bytes(chunk) if f.name in raw else int.from_bytes(chunk, "big")
        pos += f.size
    return values


def _lookup(instruction: str | Instruction) -> Instruction:
    if isinstance(instruction, Instruction):
        return instruction
    try:
        return INSTRUCTIONS[instruction]
    except KeyError:
        raise EncodeError(f"unknown instruction {instruction!r}") from None


def encode_params(instruction: str | Instruction, **params: int | bytes) -> bytes:
    """The parameter bytes of a command (after the instruction code), checked against the table.

    Raises:
        EncodeError: unknown instruction, missing/unknown parameter or a value out of range.
    """
    spec = _lookup(instruction)
    return _pack_fields(spec.params, params, spec.name)


def encode_command(
    instruction: str | Instruction, address: int = DEFAULT_ADDRESS, **params: int | bytes
) -> bytes:
    """Wire bytes of one command, parameters checked against the instruction table.

    Raises:
        EncodeError: unknown instruction, missing/unknown parameter or a value out of range.
    """
    spec = _lookup(instruction)
    return CommandPacket(address, spec.code, _pack_fields(spec.params, params, spec.name)).serialize()


@dataclass(frozen=True)
class Command:
    """A parsed command (module side): its instruction and parameter values."""

    instruction: Instruction
    params: Mapping[str, int | bytes]


def parse_command(packet: CommandPacket) -> Command:
    """Decode a command packet's parameters (what a module, or an emulator, does).

    Raises:
        FrameError: unknown instruction or wrong parameter length.
    """
    spec = INSTRUCTIONS_BY_CODE.get(packet.instruction)
    if spec is None:
        raise FrameError(f"unknown instruction 0x{packet.instruction:02X}")
    if len(packet.params) != spec.params_size:
        raise FrameError(f"{spec.name}: {len(packet.params)} parameter bytes, expected {spec.params_size}")
    return Command(spec, _unpack_fields(spec.params, frozenset(), packet.params))


@dataclass(frozen=True)
class Reply:
    """A parsed acknowledge: the code, its meaning, and the reply fields (empty unless OK)."""

    instruction: Instruction
    code: int
    fields: Mapping[str, int | bytes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True for confirmation code 0x00 (or GetEcho's 0x55)."""
        return ConfirmationCode.describe(self.code)[1] is Outcome.OK

    @property
    def outcome(self) -> Outcome:
        """Who must act on this reply."""
        return ConfirmationCode.describe(self.code)[1]

    @property
    def meaning(self) -> str:
        """The manual's meaning of the code."""
        return ConfirmationCode.describe(self.code)[0]

    def int_field(self, name: str) -> int:
        """A numeric reply field.

        Raises:
            FrameError: the field is missing (the reply was not OK) or holds bytes.
        """
        value = self.fields.get(name)
        if not isinstance(value, int):
            raise FrameError(f"{self.instruction.name} reply has no numeric field {name}")
        return value

    def bytes_field(self, name: str) -> bytes:
        """A raw-bytes reply field (bitmaps, SysPara).

        Raises:
            FrameError: the field is missing (the reply was not OK) or holds a number.
        """
        value = self.fields.get(name)
        if not isinstance(value, bytes):
            raise FrameError(f"{self.instruction.name} reply has no byte field {name}")
        return value


def parse_reply(instruction: str | Instruction, ack: AckPacket) -> Reply:
    """Decode an acknowledge of ``instruction``.

    Fields are parsed when the length fits the table. Modules differ on failure: some send the
    reply fields zero-filled, some only the code, so a short failure reply is accepted with no
    fields. A success reply with the wrong length is refused.

    Raises:
        FrameError: an OK reply whose return data has the wrong length.
    """
    spec = _lookup(instruction)
    ok = ConfirmationCode.describe(ack.code)[1] is Outcome.OK
    if len(ack.data) == spec.reply_size:
        fields = _unpack_fields(spec.reply, spec.raw_reply, ack.data) if ok else {}
        return Reply(spec, ack.code, fields)
    if ok:
        raise FrameError(f"{spec.name} reply: {len(ack.data)} data bytes, expected {spec.reply_size}")
    return Reply(spec, ack.code, {})


def encode_reply(
    instruction: str | Instruction,
    code: int,
    address: int = DEFAULT_ADDRESS,
    **fields: int | bytes,
) -> bytes:
    """Wire bytes of an acknowledge (module side): fields only when ``code`` is OK.

    Raises:
        EncodeError: unknown instruction, missing/unknown field or a value out of range.
    """
    spec = _lookup(instruction)
    data = _pack_fields(spec.reply, fields, spec.name) if fields or code == ConfirmationCode.OK else b""
    return AckPacket(address, code, data).serialize()


# --------------------------------------------------------------------------- system parameters

PACKET_SIZES: Final = (32, 64, 128, 256)  # data-packet-size code 0..3


@dataclass(frozen=True)
class SysPara:
    """The 16-byte ReadSysPara reply, with the manual's field names."""

    status_register: int
    system_id: int
    library_size: int
    security_level: int
    device_address: int
    packet_size_code: int
    baud_multiplier: int

    _LAYOUT: ClassVar[tuple[tuple[str, int], ...]] = (
        ("status_register", 2),
        ("system_id", 2),
        ("library_size", 2),
        ("security_level", 2),
        ("device_address", 4),
        ("packet_size_code", 2),
        ("baud_multiplier", 2),
    )

    def __post_init__(self) -> None:
        for name, size in self._LAYOUT:
            value = getattr(self, name)
            if not 0 <= value < 1 << (8 * size):
                raise EncodeError(f"SysPara.{name} out of range: {value}")

    @property
    def packet_size(self) -> int:
        """Data-packet payload size in bytes.

        Raises:
            FrameError: a size code the manuals do not define.
        """
        if self.packet_size_code >= len(PACKET_SIZES):
            raise FrameError(f"unknown data-packet-size code {self.packet_size_code}")
        return PACKET_SIZES[self.packet_size_code]

    @property
    def baudrate(self) -> int:
        """Line rate: 9600 times the multiplier N."""
        return 9600 * self.baud_multiplier

    @property
    def busy(self) -> bool:
        """Status register bit 0: the module is executing a command."""
        return bool(self.status_register & 0x1)

    @property
    def password_verified(self) -> bool:
        """Status register bit 2 (PWD): the handshake password was verified."""
        return bool(self.status_register & 0x4)

    def serialize(self) -> bytes:
        """The 16 bytes as the module sends them."""
        return b"".join(getattr(self, name).to_bytes(size, "big") for name, size in self._LAYOUT)

    @classmethod
    def deserialize(cls, data: bytes) -> SysPara:
        """Parse the 16 bytes after the confirmation code.

        Raises:
            FrameError: not 16 bytes.
        """
        if len(data) != 16:
            raise FrameError(f"SysPara must be 16 bytes, got {len(data)}")
        values: dict[str, int] = {}
        pos = 0
        for name, size in cls._LAYOUT:
            values[name] = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        return cls(**values)


# --------------------------------------------------------------------------- data streams


def encode_data_stream(
    data: bytes | bytearray | memoryview, packet_size: int, address: int = DEFAULT_ADDRESS
) -> Iterator[bytes]:
    """Wire bytes of a data stream, one packet at a time; the last has PID 0x08.

    A trailing partial chunk is sent as the (shorter) last packet, never dropped (the
    Adafruit library's bug #27/#47 lesson).

    Raises:
        EncodeError: empty data or a packet size the module cannot use.
    """
    if packet_size not in PACKET_SIZES:
        raise EncodeError(f"packet size must be one of {PACKET_SIZES}, got {packet_size}")
    if not data:
        raise EncodeError("a data stream needs at least one byte")
    view = memoryview(data)
    for start in range(0, len(view), packet_size):
        chunk = bytes(view[start : start + packet_size])
        last = start + packet_size >= len(view)
        yield DataPacket(address, chunk, last=last).serialize()


@dataclass(frozen=True)
class Chunk:
    """One data packet of a stream, placed: its bytes, index, offset, and whether it ended it."""

    data: bytes
    index: int
    offset: int
    last: bool


class DataStreamReceiver:
    """Turns the data packets of one UpImage/UpChar (or DownChar/DownImage) stream into chunks.

    Bounded: a stream longer than ``max_bytes`` is refused, so a babbling module cannot make the
    host buffer without limit. Every packet but the last must be exactly ``packet_size`` long,
    which is how the manuals describe it and how a dropped byte inside a stream is caught even
    when its checksum happens to be repaired by a resync.
    """

    def __init__(self, packet_size: int, max_bytes: int) -> None:
        if packet_size not in PACKET_SIZES:
            raise EncodeError(f"packet size must be one of {PACKET_SIZES}, got {packet_size}")
        if max_bytes < 1:
            raise EncodeError("max_bytes must be positive")
        self.packet_size = packet_size
        self.max_bytes = max_bytes
        self.received = 0
        self.index = 0
        self.done = False

    def add(self, packet: DataPacket) -> Chunk:
        """Account for one data packet and return it as a chunk.

        Raises:
            FrameError: data after the end, a short middle packet, or more than ``max_bytes``.
        """
        if self.done:
            raise FrameError("data packet after the end of the stream")
        size = len(packet.data)
        if size > self.packet_size or (not packet.last and size != self.packet_size):
            raise FrameError(f"data packet of {size} bytes in a stream of {self.packet_size}-byte packets")
        if self.received + size > self.max_bytes:
            raise FrameError(f"data stream longer than {self.max_bytes} bytes")
        chunk = Chunk(packet.data, self.index, self.received, packet.last)
        self.received += size
        self.index += 1
        self.done = packet.last
        return chunk


# --------------------------------------------------------------------------- images

# Each image byte holds two 4-bit pixels, high nibble first (left pixel). Scaling by 17 maps
# 0..15 onto 0..255 exactly ([PYF] downloadImage).
_HIGH = bytes((b >> 4) * 17 for b in range(256))
_LOW = bytes((b & 0x0F) * 17 for b in range(256))

#: Known sensor geometries by pixel count (width, height). R307/R305/AS608: 256x288 ([PYF]);
#: R503: 192x192 (R503 manual; unverified against hardware). Anything else needs a width hint.
KNOWN_GEOMETRIES: Final[Mapping[int, tuple[int, int]]] = {256 * 288: (256, 288), 192 * 192: (192, 192)}


def image_geometry(pixels: int, width_hint: int | None = None) -> tuple[int, int]:
    """(width, height) of an uploaded image from its pixel count.

    Raises:
        FrameError: the count fits neither the hint nor a known sensor.
    """
    if width_hint:
        if pixels % width_hint or pixels == 0:
            raise FrameError(f"{pixels} pixels do not fill rows of {width_hint}")
        return width_hint, pixels // width_hint
    try:
        return KNOWN_GEOMETRIES[pixels]
    except KeyError:
        raise FrameError(f"image of {pixels} pixels matches no known sensor; set the width") from None


class ImageAssembler:
    """Expands the 4-bit stream of UpImage into 8-bit greyscale pixels as chunks arrive.

    Holds only the growing 8-bit image (pre-sized when the expected size is known), never the
    packed stream, so a capture costs one image plus one packet.
    """

    def __init__(self, expected_pixels: int | None = None, max_pixels: int = 1 << 20) -> None:
        self.max_pixels = max_pixels
        self.pixels = bytearray(expected_pixels or 0)
        self.filled = 0

    def add(self, chunk: bytes) -> None:
        """Append one chunk of packed pixels.

        Raises:
            FrameError: the image would exceed ``max_pixels``.
        """
        n = 2 * len(chunk)
        end = self.filled + n
        if end > self.max_pixels:
            raise FrameError(f"image larger than {self.max_pixels} pixels")
        if end > len(self.pixels):
            self.pixels.extend(bytes(end - len(self.pixels)))
        self.pixels[self.filled : end : 2] = chunk.translate(_HIGH)
        self.pixels[self.filled + 1 : end : 2] = chunk.translate(_LOW)
        self.filled = end

    def finish(self) -> bytearray:
        """The 8-bit pixels received (trimmed if fewer than expected arrived)."""
        if self.filled < len(self.pixels):
            del self.pixels[self.filled :]
        return self.pixels


def pack_4bit(pixels: bytes | bytearray) -> bytes:
    """Pack 8-bit pixels into the module's 4-bit format (top nibble of each pixel kept).

    Raises:
        EncodeError: an odd number of pixels.
    """
    if len(pixels) % 2:
        raise EncodeError("4-bit images need an even number of pixels")
    high = bytes(pixels[0::2])
    low = bytes(pixels[1::2])
    return bytes((h & 0xF0) | (lo >> 4) for h, lo in zip(high, low, strict=True))


# --------------------------------------------------------------------------- summaries


def summarize(packet: Packet) -> str:
    """One-line description for frame logs: names and codes, payloads and secrets elided."""
    if isinstance(packet, CommandPacket):
        spec = INSTRUCTIONS_BY_CODE.get(packet.instruction)
        if spec is None:
            return f"cmd 0x{packet.instruction:02X} ({len(packet.params)}B params)"
        if len(packet.params) != spec.params_size:
            return f"cmd {spec.name} (malformed, {len(packet.params)}B params)"
        values = _unpack_fields(spec.params, frozenset(), packet.params)
        shown = ", ".join(
            f"{f.name}=<redacted>" if f.secret else f"{f.name}={values[f.name]!r}" for f in spec.params
        )
        return f"cmd {spec.name}({shown})"
    if isinstance(packet, AckPacket):
        meaning = ConfirmationCode.describe(packet.code)[0]
        extra = f" +{len(packet.data)}B" if packet.data else ""
        return f"ack 0x{packet.code:02X} {meaning}{extra}"
    if isinstance(packet, DataPacket):
        return f"{'end' if packet.last else 'data'} <{len(packet.data)}B elided>"
    return repr(packet)  # pragma: no cover - every subclass is handled above


def trace_bytes(packet: Packet) -> str:
    """Hex of the wire bytes for TRACE logs; data payloads and secret parameters elided."""
    if isinstance(packet, DataPacket):
        head = _frame(packet.address, packet.pid, packet.data)[:HEADER_LEN]
        return f"{head.hex(' ')} <{len(packet.data)}B elided> ..."
    if isinstance(packet, CommandPacket):
        spec = INSTRUCTIONS_BY_CODE.get(packet.instruction)
        if spec is not None and any(f.secret for f in spec.params):
            head = packet.serialize()[: HEADER_LEN + 1]
            return f"{head.hex(' ')} <{len(packet.params)}B secret elided> .."
    return packet.serialize().hex(" ")


__all__ = [
    "DEFAULT_ADDRESS",
    "INSTRUCTIONS",
    "INSTRUCTIONS_BY_CODE",
    "KNOWN_GEOMETRIES",
    "PACKET_SIZES",
    "PID",
    "START_CODE",
    "AckPacket",
    "Chunk",
    "CodecError",
    "Command",
    "CommandPacket",
    "ConfirmationCode",
    "DataPacket",
    "DataStreamReceiver",
    "Event",
    "Field",
    "Garbage",
    "ImageAssembler",
    "Instruction",
    "Outcome",
    "Packet",
    "PacketDecoder",
    "Reply",
    "SysPara",
    "checksum",
    "encode_command",
    "encode_data_stream",
    "encode_params",
    "encode_reply",
    "image_geometry",
    "pack_4bit",
    "parse_command",
    "parse_reply",
    "summarize",
    "trace_bytes",
]
