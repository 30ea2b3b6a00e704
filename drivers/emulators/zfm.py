"""An emulated ZFM / R30x / R503 fingerprint module that speaks the UART protocol byte for byte.

It holds what a module holds (address, password, system parameters, an image buffer, character
buffers, a flash library of template slots), answers every instruction of
:data:`firmware_protocols.zfm.INSTRUCTIONS` through the same codec the driver uses for the
other direction, and serves synthetic 4-bit finger images (a simple ridge-like pattern, seeded
by a made-up finger identity: never a real person's print).

Scenarios and faults a test (or ``rekam demo``) can set:

* a finger on the glass: :meth:`ZfmEmulator.place_finger` with a condition (``good``, ``wet``,
  ``dry``, ``partial``, ``smudge``, or ``faint``: accepted by the module but a poor image) or
  none (:meth:`ZfmEmulator.lift_finger`);
* a wrong password: build the emulator with ``password=`` other than the driver's;
* one-shot line faults (:meth:`ZfmEmulator.inject`): garbage before the next reply, a bad
  checksum, a dropped byte, silence, or an unplug in the middle of the next upload.

Profiles (:data:`PROFILES`) differ by image size, library size, template size and whether the
Aura ring LED exists. Their numbers come from the research note (protocols.md §1.1); the R503
figures are unverified against hardware.

Like the other image emulators it has an asset mode (``REKAM_EMULATOR_ASSETS=DIR``,
:mod:`drivers.emulators.assets`): the finger image is rendered once by a child process and
later uploads read the file, so a daemon emulating the module never imports numpy. A directory
that cannot be used makes the upload fail as a module's does (``UPLOAD_IMAGE_FAIL``).
"""

from __future__ import annotations

import enum
import functools
import hashlib
import logging
import random
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from drivers.emulators import assets, install, protocol_emu
from firmware_protocols.errors import CodecError
from firmware_protocols.zfm import (
    DEFAULT_ADDRESS,
    PACKET_SIZES,
    SOFT_RESET_HANDSHAKE,
    AckPacket,
    CommandPacket,
    ConfirmationCode,
    DataPacket,
    DataStreamReceiver,
    Garbage,
    Instruction,
    PacketDecoder,
    SysPara,
    encode_data_stream,
    encode_reply,
    parse_command,
)

_log = logging.getLogger(__name__)

C = ConfirmationCode
Condition = Literal["good", "wet", "dry", "partial", "smudge", "faint"]
CONDITIONS: tuple[Condition, ...] = ("good", "wet", "dry", "partial", "smudge", "faint")


@dataclass(frozen=True)
class ZfmProfile:
    """The numbers that make one module model differ from another."""

    name: str
    image_width: int
    image_height: int
    library_size: int
    template_size: int
    char_buffers: int
    has_aura: bool
    system_id: int

    @property
    def image_bytes(self) -> int:
        """Bytes of one 4-bit image upload."""
        return self.image_width * self.image_height // 2


PROFILES: Mapping[str, ZfmProfile] = {
    # R307 / R305 / AS608 class: 256x288 sensor, 512-byte templates (R307 sheet), 1000 slots.
    "r307": ZfmProfile("r307", 256, 288, 1000, 512, 2, False, 0x0009),
    # R503 class: 192x192, 200 slots, 6 buffers, Aura LED; template size from [ZR502] (R502A).
    "r503": ZfmProfile("r503", 192, 192, 200, 768, 6, True, 0x0009),
}


class Fault(enum.Enum):
    """One-shot faults applied to the emulator's next reply."""

    GARBAGE = "garbage"  # random line noise before the reply
    BAD_CHECKSUM = "bad-checksum"  # the reply's checksum is wrong
    DROP_BYTE = "drop-byte"  # one byte of the reply is lost on the line
    SILENCE = "silence"  # the command is swallowed: no reply at all
    UNPLUG_MID_UPLOAD = "unplug"  # the next upload stops half-way and the device vanishes


@dataclass(frozen=True)
class Finger:
    """A synthetic finger: an identity (any string) and how it lies on the glass."""

    identity: str
    condition: Condition = "good"


_MAGIC = b"RKEMU1"  # marks emulator templates so a downloaded foreign template is "invalid"


def _digest(identity: str) -> bytes:
    return hashlib.sha256(identity.encode()).digest()[:16]


def make_template(identity: str, size: int) -> bytes:
    """A deterministic synthetic template of ``size`` bytes for ``identity``."""
    head = _MAGIC + _digest(identity)
    body = hashlib.shake_256(head).digest(size - len(head))
    return head + body


def template_identity(template: bytes) -> bytes | None:
    """The finger digest inside an emulator template, or None for anything else."""
    if template[: len(_MAGIC)] != _MAGIC or len(template) < len(_MAGIC) + 16:
        return None
    return template[len(_MAGIC) : len(_MAGIC) + 16]


@functools.lru_cache(maxsize=32)
def finger_image(identity: str, condition: Condition, width: int, height: int) -> bytes:
    """A packed 4-bit synthetic finger image (high nibble = left pixel).

    Concentric, slightly twisted ridges around a per-finger centre inside an elliptic pad on a
    light background; ``wet`` darkens and blurs it, ``dry``/``partial`` break it up. Enough for
    the data path and for a person to see which finger is which, not a realistic print.
    """
    return finger_image_seeded(finger_seed(identity), condition, width, height)


def finger_seed(identity: str) -> int:
    """The random seed of ``identity``'s finger image (all the image knows of the identity)."""
    return int.from_bytes(_digest(identity)[:8], "big")


def finger_image_seeded(seed: int, condition: Condition, width: int, height: int) -> bytes:
    """:func:`finger_image` from the identity's seed (what the asset renderer is given)."""
    # Synthesis only: in asset mode a child process runs this and the daemon never loads numpy.
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx = width * (0.4 + 0.2 * rng.random())
    cy = height * (0.4 + 0.2 * rng.random())
    period = 6.0 + 3.0 * rng.random()
    twist = 2.0 * rng.random() - 1.0
    dx, dy = x - cx, y - cy
    r = np.hypot(dx, dy * 0.85)
    theta = np.arctan2(dy, dx)
    ridges = 0.5 + 0.5 * np.cos(2 * np.pi * r / period + twist * theta * 3)
    pad = ((dx / (0.42 * width)) ** 2 + (dy / (0.45 * height)) ** 2) < 1.0
    grey = np.where(pad, 1.0 - 0.85 * ridges, 1.0)
    if condition == "wet":
        grey = np.where(pad, 0.15 + 0.3 * grey, grey)
    elif condition in ("dry", "partial"):
        keep = rng.random((height, width)) < 0.35 if condition == "dry" else y < height * 0.35
        grey = np.where(pad & ~keep, 1.0, grey)
    elif condition == "smudge":
        grey = np.full_like(grey, 0.6)
    elif condition == "faint":
        # Pressed too lightly: the module still extracts features, the ridges are barely there.
        keep = rng.random((height, width)) < 0.5
        grey = np.where(pad & ~keep, 0.85, 0.7 + 0.3 * grey)
    nibbles = np.clip(np.rint(grey * 15), 0, 15).astype(np.uint8)
    flat = nibbles.reshape(-1)
    packed = (flat[0::2] << 4) | flat[1::2]
    return bytes(packed.tobytes())


def blank_image(width: int, height: int) -> bytes:
    """What the image buffer holds before any capture: the empty, light sensor."""
    return b"\xff" * (width * height // 2)


class ZfmEmulator:
    """The module's state and behaviour; thread-safe (transports call it from their threads)."""

    def __init__(
        self,
        profile: str | ZfmProfile = "r307",
        *,
        password: int = 0,
        address: int = DEFAULT_ADDRESS,
        packet_size_code: int = 2,
        seed: int = 0,
    ) -> None:
        self.profile = PROFILES[profile] if isinstance(profile, str) else profile
        self.password = password
        self.address = address
        self.security_level = 3
        self.packet_size_code = packet_size_code
        self.baud_multiplier = 6
        self.verified = False
        self.library: dict[int, bytes] = {}
        # A real module keeps its template library in flash across power cycles; with a flash
        # file the emulator does too (so a CLI enrolment and a later daemon see one library).
        self.flash_path: str | None = None
        self.buffers: dict[int, bytes] = {}
        self._image: bytes = blank_image(self.profile.image_width, self.profile.image_height)
        # GenImg only notes which finger it saw; the pixels are made when the host uploads them
        # (synthesised, or replayed from an asset file). A sign-in (GenImg, Img2Tz, Search) never
        # uploads, so it costs no synthesis arrays and starts no asset child.
        self._image_pending: tuple[str, Condition, int, int] | None = None
        self.image_finger: Finger | None = None
        self.finger: Finger | None = None
        self.led: tuple[int, int, int, int] | None = None
        self.commands_seen = 0
        self._uploading = False
        self._unplugged = False
        self._decoder = PacketDecoder()
        self._down: tuple[str, int, DataStreamReceiver, bytearray] | None = None
        self._faults: deque[tuple[Fault, int]] = deque()
        self._rng = random.Random(seed)
        self._lock = threading.RLock()

    @property
    def image(self) -> bytes:
        """The module's image buffer (what UpImage sends).

        Raises:
            assets.AssetError: asset mode is on and the finger image could not be rendered or
                read (the pending image stays pending, so a later upload tries again).
        """
        with self._lock:
            if self._image_pending is not None:
                self._image = _pending_pixels(*self._image_pending)
                self._image_pending = None
            return self._image

    @image.setter
    def image(self, value: bytes) -> None:
        with self._lock:
            self._image = value
            self._image_pending = None

    # ------------------------------------------------------------ scenario controls

    def place_finger(self, identity: str, condition: Condition = "good") -> None:
        """Put a synthetic finger on the glass."""
        with self._lock:
            self.finger = Finger(identity, condition)

    def lift_finger(self) -> None:
        """Nothing on the glass."""
        with self._lock:
            self.finger = None

    def inject(self, fault: Fault, *, packet: int = 0) -> None:
        """Queue a one-shot fault for the next reply (faults apply in order).

        ``packet`` picks which packet of that reply is hit (0 = the acknowledge; 5 = the fifth
        data packet of an upload), for garbage, bad checksum and dropped byte. An upload
        fault waits for the next reply long enough to have that packet.
        """
        with self._lock:
            self._faults.append((fault, packet))

    def clear_faults(self) -> None:
        """Forget queued faults."""
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """Faults not yet applied."""
        with self._lock:
            return len(self._faults)

    @property
    def unplugged(self) -> bool:
        """True after an unplug fault (until :meth:`replug`)."""
        return self._unplugged

    def unplug(self) -> None:
        """Pull the cable now."""
        self._unplugged = True

    def replug(self) -> None:
        """Plug the module back in: it boots with a fresh session (password not verified)."""
        with self._lock:
            self._unplugged = False
            self.verified = False
            self.buffers.clear()
            self._decoder = PacketDecoder()
            self._down = None

    def slots(self) -> frozenset[int]:
        """Library slots holding a template."""
        with self._lock:
            return frozenset(self.library)

    def sys_para(self) -> SysPara:
        """The current system parameters."""
        status = (0x4 if self.verified or self.password == 0 else 0) | (0x8 if self.image_finger else 0)
        return SysPara(
            status_register=status,
            system_id=self.profile.system_id,
            library_size=self.profile.library_size,
            security_level=self.security_level,
            device_address=self.address,
            packet_size_code=self.packet_size_code,
            baud_multiplier=self.baud_multiplier,
        )

    # ------------------------------------------------------------ the wire

    def receive(self, data: bytes) -> list[Iterator[bytes]]:
        """Bytes from the host in; for each complete command, an iterator of reply bytes."""
        with self._lock:
            if self._unplugged:
                return []
            out: list[Iterator[bytes]] = []
            for event in self._decoder.feed(data):
                self._uploading = False
                reply = self._on_event(event)
                if reply is not None:
                    out.append(self._shape(reply, upload=self._uploading))
            return out

    def _on_event(self, event: object) -> Iterator[bytes] | None:
        if isinstance(event, Garbage):
            # A corrupted command earns "error receiving the package", as the manuals describe.
            if event.reason == "bad checksum":
                return iter([encode_reply("GenImg", C.PACKET_RECEIVE_ERROR, self.address)])
            return None
        if isinstance(event, DataPacket):
            self._on_data(event)
            return None
        if isinstance(event, AckPacket):
            return None  # a module never acts on acknowledges
        if not isinstance(event, CommandPacket):
            return None
        self.commands_seen += 1
        if event.address != self.address:
            return iter([encode_reply("GenImg", C.ADDRESS_ERROR, self.address)])
        try:
            cmd = parse_command(event)
        except CodecError:
            return iter([encode_reply("GenImg", C.PACKET_RECEIVE_ERROR, self.address)])
        self._down = None  # a new command ends any download the host abandoned
        if (
            self.password != 0
            and not self.verified
            and cmd.instruction.name not in ("VfyPwd", "HandShake", "GetEcho")
        ):
            return self._ack(cmd.instruction, C.PASSWORD_REQUIRED)
        handler = getattr(self, f"_do_{cmd.instruction.name}")
        result: Iterator[bytes] = handler(cmd.instruction, cmd.params)
        return result

    def _shape(self, reply: Iterator[bytes], *, upload: bool) -> Iterator[bytes]:
        """Apply the next queued fault to one reply, lazily."""
        if self._faults:
            fault, packet = self._faults[0]
            if (fault is Fault.UNPLUG_MID_UPLOAD or packet > 0) and not upload:
                return reply  # a fault about an upload waits for the next upload
        if not self._faults:
            return reply
        fault, packet = self._faults.popleft()
        if fault is Fault.SILENCE:
            return iter(())
        if fault is Fault.UNPLUG_MID_UPLOAD:
            return self._unplug_after(reply, 3)
        return self._damage(reply, fault, packet)

    def _damage(self, reply: Iterator[bytes], fault: Fault, packet: int) -> Iterator[bytes]:
        for index, chunk in enumerate(reply):
            if index == packet and chunk:
                if fault is Fault.GARBAGE:
                    noise = bytes(self._rng.randrange(256) for _ in range(self._rng.randrange(1, 24)))
                    chunk = noise + chunk
                elif fault is Fault.BAD_CHECKSUM:
                    chunk = chunk[:-1] + bytes([chunk[-1] ^ 0x5A])
                elif fault is Fault.DROP_BYTE:
                    pos = self._rng.randrange(len(chunk))
                    chunk = chunk[:pos] + chunk[pos + 1 :]
            yield chunk

    def _unplug_after(self, reply: Iterator[bytes], packets: int) -> Iterator[bytes]:
        # The acknowledge and a few data packets get through, then the cable is gone.
        for i, chunk in enumerate(reply):
            if i >= packets:
                break
            yield chunk
        self._unplugged = True

    def _ack(self, spec: Instruction, code: int, **fields: int | bytes) -> Iterator[bytes]:
        return iter([encode_reply(spec, code, self.address, **fields)])

    def _stream(self, spec: Instruction, data: bytes) -> Iterator[bytes]:
        self._uploading = True
        return _chain(
            encode_reply(spec, C.OK, self.address),
            encode_data_stream(data, PACKET_SIZES[self.packet_size_code], self.address),
        )

    def _on_data(self, packet: DataPacket) -> None:
        if self._down is None:
            return
        kind, target, receiver, buf = self._down
        try:
            receiver.add(packet)
        except CodecError:
            self._down = None  # the download is broken; the host finds out from the next command
            return
        buf += packet.data
        if receiver.done:
            self._down = None
            if kind == "image":
                self.image = bytes(buf)
                self.image_finger = Finger(f"downloaded:{hashlib.sha256(buf).hexdigest()}")
            else:
                self.buffers[target] = bytes(buf)

    # ------------------------------------------------------------ instructions

    def _buffer_ok(self, buffer_id: int | bytes) -> bool:
        return isinstance(buffer_id, int) and 1 <= buffer_id <= self.profile.char_buffers

    def _do_GenImg(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        if self.finger is None:
            return self._ack(spec, C.NO_FINGER)
        if self.finger.condition == "smudge":
            return self._ack(spec, C.IMAGE_FAIL)
        w, h = self.profile.image_width, self.profile.image_height
        self._image_pending = (self.finger.identity, self.finger.condition, w, h)
        self.image_finger = self.finger
        return self._ack(spec, C.OK)

    def _do_Img2Tz(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        if not self._buffer_ok(p["BufferID"]):
            return self._ack(spec, C.PACKET_RECEIVE_ERROR)
        if self.image_finger is None:
            return self._ack(spec, C.NO_VALID_IMAGE)
        if self.image_finger.condition == "wet":
            return self._ack(spec, C.IMAGE_MESSY)
        if self.image_finger.condition in ("dry", "partial"):
            return self._ack(spec, C.FEATURE_FAIL)
        buffer_id = int(p["BufferID"])
        self.buffers[buffer_id] = make_template(self.image_finger.identity, self.profile.template_size)
        return self._ack(spec, C.OK)

    def _same(self, a: bytes | None, b: bytes | None) -> bool:
        ia = template_identity(a) if a else None
        return ia is not None and b is not None and ia == template_identity(b)

    def _score(self, template: bytes) -> int:
        return 60 + (template[len(_MAGIC)] % 140)

    def _do_Match(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        a, b = self.buffers.get(1), self.buffers.get(2)
        if self._same(a, b) and a is not None:
            return self._ack(spec, C.OK, MatchScore=self._score(a))
        return self._ack(spec, C.NO_MATCH, MatchScore=0)

    def _do_Search(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        if not self._buffer_ok(p["BufferID"]):
            return self._ack(spec, C.PACKET_RECEIVE_ERROR)
        probe = self.buffers.get(int(p["BufferID"]))
        start, count = int(p["StartPage"]), int(p["PageNum"])
        if probe is None:
            return self._ack(spec, C.NOT_FOUND, PageID=0, MatchScore=0)
        for slot in sorted(self.library):
            if start <= slot < start + count and self._same(probe, self.library[slot]):
                return self._ack(spec, C.OK, PageID=slot, MatchScore=self._score(probe))
        return self._ack(spec, C.NOT_FOUND, PageID=0, MatchScore=0)

    _do_HighSpeedSearch = _do_Search

    def _do_RegModel(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        a, b = self.buffers.get(1), self.buffers.get(2)
        if not (self._same(a, b) and a is not None):
            return self._ack(spec, C.ENROLL_MISMATCH)
        # The combined template lands in both buffers, as on the real modules.
        self.buffers[1] = self.buffers[2] = a
        return self._ack(spec, C.OK)

    def _do_Store(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        page = int(p["PageID"])
        if not self._buffer_ok(p["BufferID"]):
            return self._ack(spec, C.PACKET_RECEIVE_ERROR)
        if page >= self.profile.library_size:
            return self._ack(spec, C.BAD_LOCATION)
        template = self.buffers.get(int(p["BufferID"]))
        if template is None:
            return self._ack(spec, C.INVALID_TEMPLATE)
        self.library[page] = template
        self._save_flash()
        return self._ack(spec, C.OK)

    def _do_LoadChar(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        page = int(p["PageID"])
        if not self._buffer_ok(p["BufferID"]):
            return self._ack(spec, C.PACKET_RECEIVE_ERROR)
        if page >= self.profile.library_size:
            return self._ack(spec, C.BAD_LOCATION)
        if page not in self.library:
            return self._ack(spec, C.INVALID_TEMPLATE)
        self.buffers[int(p["BufferID"])] = self.library[page]
        return self._ack(spec, C.OK)

    def _do_UpChar(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        if not self._buffer_ok(p["BufferID"]):
            return self._ack(spec, C.PACKET_RECEIVE_ERROR)
        template = self.buffers.get(int(p["BufferID"]))
        if template is None:
            return self._ack(spec, C.UPLOAD_TEMPLATE_FAIL)
        return self._stream(spec, template)

    def _do_DownChar(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        if not self._buffer_ok(p["BufferID"]):
            return self._ack(spec, C.PACKET_RECEIVE_ERROR)
        size = PACKET_SIZES[self.packet_size_code]
        self._down = ("char", int(p["BufferID"]), DataStreamReceiver(size, 4096), bytearray())
        return self._ack(spec, C.OK)

    def _do_UpImage(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        try:
            image = self.image
        except assets.AssetError as exc:
            # What a module whose image transfer fails answers; the driver reports a device fault.
            _log.warning("emulated ZFM: finger image unavailable: %s", exc)
            return self._ack(spec, C.UPLOAD_IMAGE_FAIL)
        return self._stream(spec, image)

    def _do_DownImage(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        size = PACKET_SIZES[self.packet_size_code]
        self._down = ("image", 0, DataStreamReceiver(size, self.profile.image_bytes), bytearray())
        return self._ack(spec, C.OK)

    def _do_DeleteChar(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        page, count = int(p["PageID"]), int(p["N"])
        if count == 0 or page + count > self.profile.library_size:
            return self._ack(spec, C.DELETE_FAIL)
        for slot in range(page, page + count):
            self.library.pop(slot, None)
        self._save_flash()
        return self._ack(spec, C.OK)

    def _do_Empty(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        self.library.clear()
        self._save_flash()
        return self._ack(spec, C.OK)

    def load_flash(self, path: str) -> None:
        """Keep the template library in ``path`` (JSON, slot -> hex), loading what is there."""
        import json
        import os

        self.flash_path = path
        if os.path.exists(path):
            with open(path, encoding="ascii") as fh:
                stored = json.load(fh)
            self.library = {int(k): bytes.fromhex(v) for k, v in stored.items()}

    def _save_flash(self) -> None:
        if self.flash_path is None:
            return
        import json
        import os

        tmp = self.flash_path + ".tmp"
        with open(tmp, "w", encoding="ascii") as fh:
            json.dump({str(k): v.hex() for k, v in sorted(self.library.items())}, fh)
        os.replace(tmp, self.flash_path)

    def _do_SetSysPara(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        number, value = int(p["ParameterNo"]), int(p["Contents"])
        if number == 4 and 1 <= value <= 12:
            self.baud_multiplier = value
        elif number == 5 and 1 <= value <= 5:
            self.security_level = value
        elif number == 6 and 0 <= value <= 3:
            self.packet_size_code = value
        else:
            return self._ack(spec, C.INVALID_REGISTER)
        return self._ack(spec, C.OK)

    def _do_ReadSysPara(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        return self._ack(spec, C.OK, SysPara=self.sys_para().serialize())

    def _do_SetPwd(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        self.password = int(p["Password"])
        return self._ack(spec, C.OK)

    def _do_VfyPwd(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        if int(p["Password"]) != self.password:
            self.verified = False
            return self._ack(spec, C.WRONG_PASSWORD)
        self.verified = True
        return self._ack(spec, C.OK)

    def _do_GetRandomCode(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        return self._ack(spec, C.OK, RandomCode=self._rng.getrandbits(32))

    def _do_SetAdder(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        # The acknowledge already comes from the new address (unverified against a manual).
        self.address = int(p["Address"])
        return self._ack(spec, C.OK)

    def _do_TempleteNum(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        return self._ack(spec, C.OK, N=len(self.library))

    def _do_ReadIndexTable(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        page = int(p["IndexPage"])
        table = bytearray(32)
        for slot in self.library:
            if slot // 256 == page:
                j, i = divmod(slot % 256, 8)
                table[j] |= 1 << i
        return self._ack(spec, C.OK, IndexTable=bytes(table))

    def _do_AuraLedConfig(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        if not self.profile.has_aura:
            return self._ack(spec, C.PACKET_RECEIVE_ERROR)
        ctrl, speed, colour, times = (int(p[k]) for k in ("Ctrl", "Speed", "ColorIndex", "Times"))
        self.led = (ctrl, speed, colour, times)
        return self._ack(spec, C.OK)

    def _do_CheckSensor(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        return self._ack(spec, C.OK)

    def _do_SoftReset(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        self.verified = False
        self.buffers.clear()
        return iter([encode_reply(spec, C.OK, self.address), bytes([SOFT_RESET_HANDSHAKE])])

    def _do_HandShake(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        return self._ack(spec, C.OK)

    def _do_GetEcho(self, spec: Instruction, p: Mapping[str, int | bytes]) -> Iterator[bytes]:
        return self._ack(spec, C.HANDSHAKE_OK)


def _pending_pixels(identity: str, condition: Condition, width: int, height: int) -> bytes:
    if assets.asset_dir() is None:
        return finger_image(identity, condition, width, height)
    # The seed, not the identity, goes to the child's command line and the file name's hash.
    params = {"seed": finger_seed(identity), "condition": condition, "width": width, "height": height}
    return assets.replay("zfm_finger", params)[0]


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def from_url_options(options: Mapping[str, str]) -> ZfmEmulator:
    """Build an emulator from ``emu://zfm?profile=r503&password=7&finger=alice&condition=wet``.

    ``flash=/path/file.json`` keeps the template library in that file across opens and processes.
    """
    try:
        emulator = ZfmEmulator(
            options.get("profile", "r307"),
            password=int(options.get("password", "0"), 0),
            seed=int(options.get("seed", "0")),
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"bad emu://zfm options {dict(options)}: {exc}") from exc
    if "flash" in options:
        emulator.load_flash(options["flash"])
    if "finger" in options:
        condition = options.get("condition", "good")
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")
        emulator.place_finger(options["finger"], condition)
    return emulator


protocol_emu.register_kind("zfm", from_url_options)
install()  # importing the emulator is enough for serial_for_url("emu://zfm?...") to work


__all__ = [
    "CONDITIONS",
    "PROFILES",
    "Fault",
    "Finger",
    "ZfmEmulator",
    "ZfmProfile",
    "blank_image",
    "finger_image",
    "finger_image_seeded",
    "finger_seed",
    "from_url_options",
    "make_template",
    "template_identity",
]
