"""Driver of the ZFM / R30x / R307 / R503 / AS608 UART fingerprint modules.

Evidence level: **public protocol** (vendor user manuals, four open implementations agree;
research note protocols.md §1.1). Not verified against hardware in this project: every test
runs against :mod:`drivers.emulators.zfm`. The module is not enrollment grade (one flat finger,
256x288 at about 500 ppi, 4-bit), so it serves development, demos and 1:N duplicate checks.

Layers (zigpy-znp style): pyserial transport opened with ``serial_for_url`` (``/dev/ttyUSB0``,
``/dev/serial/by-id/...``, ``/dev/ttyAMA0`` or ``emu://zfm?...``) -> :mod:`firmware_protocols.zfm`
codec -> this request/response layer -> the :class:`~drivers.fingerprint.base.FingerprintScanner`
and :class:`~drivers.base.Device` interfaces.

Request discipline: one request in flight (a lock, acquired with a bound); stale input is
flushed before each command, because the protocol has no sequence numbers and a late reply
would otherwise answer the next question; every read has a deadline; a corrupted or missing
reply is retried ``retries`` times with doubling delays, then raised.

Errors (drivers/errors.py and drivers/fingerprint/base.py)::

    NoFingerError, FingerQualityError (wet, smudge, features, moved)  -> the applicant retries
    DeviceFaultError(code=confirmation code)                          -> module said no
    DeviceMissingError                                                -> port gone / cannot open
    DeviceTimeoutError                                                -> no reply in time
    DeviceProtocolError(response=...)                                 -> corrupt or unexpected reply
    CaptureArgumentError / CaptureNotSupportedError                   -> caller's mistake, before I/O
    BadDeviceSpecError (drivers/registry.py)                          -> bad options in the config
"""

from __future__ import annotations

import io
import logging
import termios
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import serial
from PIL import Image

from drivers.base import DeviceIdentity, FrameLog, SelfTestResult
from drivers.errors import (
    DeviceError,
    DeviceFaultError,
    DeviceMissingError,
    DeviceProtocolError,
    DeviceTimeoutError,
    UserRetryError,
)
from drivers.fingerprint.base import (
    QUALITY_METHOD,
    CaptureArgumentError,
    CaptureCancelledError,
    CaptureNotSupportedError,
    FingerCapture,
    FingerPosition,
    FingerQualityError,
    NoFingerError,
    ScannerCapabilities,
    Slap,
    SlapCapture,
    estimate_quality,
)
from drivers.registry import BadDeviceSpecError
from firmware_protocols.errors import CodecError
from firmware_protocols.zfm import (
    DEFAULT_ADDRESS,
    AckPacket,
    CommandPacket,
    ConfirmationCode,
    DataPacket,
    DataStreamReceiver,
    Event,
    Garbage,
    ImageAssembler,
    Packet,
    PacketDecoder,
    Reply,
    SysPara,
    encode_data_stream,
    encode_params,
    image_geometry,
    pack_4bit,
    parse_reply,
    summarize,
    trace_bytes,
)
from firmware_protocols.zfm import INSTRUCTIONS as _SPEC
from firmware_protocols.zfm import Instruction as _Instruction

_log = logging.getLogger(__name__)

TRACE = 5  # the agent's TRACE level (agent/logs.py); drivers may not import agent
_READ_SLICE = 0.02  # port timeout: how long one read may block before deadlines are re-checked
C = ConfirmationCode
# What a vanished port raises: pyserial's own error, the OS error under it, and termios.error
# from tcdrain/tcflush, which is not an OSError.
_PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, termios.error)
_OPEN_ERRORS: tuple[type[BaseException], ...] = (*_PORT_ERRORS, ValueError)  # ValueError: bad URL


class FingerMovedError(FingerQualityError):
    """Two captures of one enrolment do not agree: the finger moved or another finger was used."""

    _HINTS = {
        **FingerQualityError._HINTS,
        "moved": (
            "Jari bergeser atau jari yang berbeda. Letakkan jari yang sama dengan posisi yang sama.",
            "The finger moved or a different finger was used. Place the same finger the same way.",
        ),
    }


# Confirmation codes that mean "the applicant tries again", with the hint each gets. Kept as
# data so the mapping can be read against the manual's table in one place.
_RETRY: Mapping[int, tuple[type[UserRetryError], str]] = {
    C.NO_FINGER: (NoFingerError, ""),
    C.IMAGE_FAIL: (FingerQualityError, "smudge"),
    C.IMAGE_MESSY: (FingerQualityError, "wet"),
    C.FEATURE_FAIL: (FingerQualityError, "features"),
    C.ENROLL_MISMATCH: (FingerMovedError, "moved"),
}

# Plain-language hints for the faults staff can do something about.
_FAULT_HINTS: Mapping[int, tuple[str, str]] = {
    C.WRONG_PASSWORD: (
        "Kata sandi modul sidik jari salah. Hubungi teknisi untuk memeriksa konfigurasi.",
        "The fingerprint module password is wrong. Ask the technician to check the configuration.",
    ),
    C.PASSWORD_REQUIRED: (
        "Modul sidik jari terkunci kata sandi. Hubungi teknisi.",
        "The fingerprint module is password-locked. Ask the technician.",
    ),
    C.FLASH_ERROR: (
        "Memori modul sidik jari rusak. Ganti modul.",
        "The fingerprint module's memory failed. Replace the module.",
    ),
    C.ADDRESS_ERROR: (
        "Alamat modul sidik jari tidak cocok. Hubungi teknisi.",
        "The fingerprint module address does not match. Ask the technician.",
    ),
}


@dataclass(frozen=True)
class ZfmOptions:
    """Driver options (``[devices.NAME] options`` in the agent's configuration)."""

    baudrate: int = 57600  # 9600 x N; modules ship with N = 6
    address: int = DEFAULT_ADDRESS
    password: int = 0
    reply_timeout: float = 1.0  # seconds for an acknowledge, and the longest gap inside a stream
    finger_timeout: float = 10.0  # default wait for a finger when the caller gives none
    poll_interval: float = 0.1  # GenImg polling period while waiting for a finger
    lift_timeout: float = 10.0  # enrolment: wait for the finger to be lifted between captures
    retries: int = 1  # extra attempts after a corrupt or missing reply
    retry_delay: float = 0.05  # first retry delay; doubles each time
    lock_timeout: float = 30.0  # how long a caller waits while another request is in flight
    image_width: int = 0  # 0 = infer from the pixel count (256x288, 192x192)
    # Longest image upload accepted (4-bit bytes); the default is the largest known sensor
    # (256x288). The 8-bit image is pre-sized from it, so a capture costs one image.
    max_image_bytes: int = 256 * 288 // 2
    ppi: int = 500
    reject_below: int = 0  # refuse captures scoring below this (0 = leave it to the workflow)

    def __post_init__(self) -> None:
        if self.baudrate % 9600 or not 1 <= self.baudrate // 9600 <= 12:
            raise BadDeviceSpecError(f"baudrate must be 9600 x N with N 1-12, got {self.baudrate}")
        if not 0 <= self.address <= 0xFFFFFFFF or not 0 <= self.password <= 0xFFFFFFFF:
            raise BadDeviceSpecError("address and password must fit in 4 bytes")
        for name in ("reply_timeout", "finger_timeout", "poll_interval", "lift_timeout", "lock_timeout"):
            if not getattr(self, name) > 0:
                raise BadDeviceSpecError(f"{name} must be positive")
        if self.retries < 0 or self.retry_delay < 0 or self.image_width < 0 or self.max_image_bytes < 1:
            raise BadDeviceSpecError("retries, retry_delay and image_width must not be negative")
        if not 0 <= self.reject_below <= 100:
            raise BadDeviceSpecError(f"reject_below must be 0-100, got {self.reject_below}")

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> ZfmOptions:
        """Build from a configuration table; unknown keys and wrong types are refused.

        Raises:
            BadDeviceSpecError: with the offending key in the message.
        """
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in options.items():
            if key not in known:
                raise BadDeviceSpecError(f"unknown zfm option {key!r} (known: {', '.join(sorted(known))})")
            default = known[key].default
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not type(default):
                raise BadDeviceSpecError(f"zfm option {key!r} must be {type(default).__name__}, got {value!r}")
            values[key] = value
        return cls(**values)

    @property
    def call_bound(self) -> float:
        """Longest a simple request can take: every attempt times out, plus the back-off."""
        attempts = self.retries + 1
        backoff = sum(self.retry_delay * float(2**i) for i in range(self.retries))
        return attempts * self.reply_timeout + backoff

    def stream_bound(self, nbytes: int) -> float:
        """Longest an upload of ``nbytes`` can take at this baud rate (10 bits a byte, 1.5x slack)."""
        on_wire = nbytes * (1 + 12 / 32)  # worst case: 12 bytes of framing per 32-byte packet
        return self.reply_timeout + 1.5 * on_wire * 10 / self.baudrate


@dataclass(frozen=True)
class SearchHit:
    """A library slot whose template matched, with the module's score."""

    slot: int
    score: int


class ZfmScanner:
    """A ZFM-protocol fingerprint module on a serial port: a FingerprintScanner and a Device."""

    def __init__(self, url: str, options: ZfmOptions | None = None, *, name: str = "fingerprint") -> None:
        self.url = url
        self.options = options or ZfmOptions()
        self.name = name
        self.frames = FrameLog()
        self.params: SysPara | None = None
        self.retries_used = 0
        self.garbage_bytes = 0
        self.has_led: bool | None = None  # learnt from the first AuraLedConfig
        self._port: serial.Serial | None = None
        self._decoder = PacketDecoder()
        self._backlog: deque[Event] = deque()
        self._lock = threading.Lock()

    # ------------------------------------------------------------ Device

    def open(self) -> None:
        """Open the port, verify the password and read the system parameters.

        Raises:
            DeviceMissingError, DeviceTimeoutError, DeviceProtocolError, DeviceFaultError.
        """
        with self._locked():
            self._close_port()
            if self.url.startswith("emu://"):
                # Only emulator URLs load the emulators; real ports never do.
                from drivers.emulators import install

                install()
            try:
                self._port = serial.serial_for_url(
                    self.url,
                    baudrate=self.options.baudrate,
                    timeout=_READ_SLICE,
                    write_timeout=self.options.reply_timeout,
                )
            except _OPEN_ERRORS as exc:
                raise DeviceMissingError(
                    f"{self.name}: cannot open {self.url}: {exc}", device=self.name
                ) from exc
            try:
                reply = self._transact("VfyPwd", Password=self.options.password)
                self._check(reply)
                params_reply = self._transact("ReadSysPara")
                self._check(params_reply)
                self.params = SysPara.deserialize(params_reply.bytes_field("SysPara"))
                _ = self.params.packet_size  # refuse a size code we cannot stream with
            except CodecError as exc:
                self._close_port()
                raise DeviceProtocolError(f"{self.name}: bad system parameters: {exc}", device=self.name) from exc
            except DeviceError:
                self._close_port()
                raise
        _log.info("%s: ZFM module ready (%d slots)", self.name, self.params.library_size)

    def close(self) -> None:
        """Close the port; safe to call twice, and from another thread during a capture."""
        self._close_port()

    def health(self) -> None:
        """Cheap liveness probe for the device manager's idle checks (one ReadSysPara).

        Raises:
            DeviceMissingError (unplugged or not open), DeviceTimeoutError, DeviceProtocolError,
            DeviceFaultError.
        """
        with self._locked():
            if self._port is None:
                raise DeviceMissingError(f"{self.name}: not open", device=self.name)
            reply = self._transact("ReadSysPara")
        self._check(reply)

    def identify(self) -> DeviceIdentity:
        """What the protocol can tell: no serial or firmware number exists in it."""
        params = self._require_params()
        return DeviceIdentity(
            kind="fingerprint",
            make="ZhianTec / Hangzhou Grow (ZFM protocol)",
            model=(
                f"ZFM-compatible module, system id 0x{params.system_id:04X}, "
                f"address {params.device_address:08X}, {params.library_size} slots"
            ),
            serial="not reported by the protocol",
            firmware="not reported by the protocol",
            evidence="public protocol",
            emulated=self.url.startswith("emu://"),
        )

    def capabilities(self) -> ScannerCapabilities:
        """One flat finger at a time, 8-bit images (expanded from the module's 4 bits)."""
        return ScannerCapabilities(single_finger=True, slaps=frozenset(), rolled=False, ppi=self.options.ppi)

    def self_test(self) -> SelfTestResult:
        """Handshake, system parameters and one image upload, each reported as a step.

        A finger on the glass is never kept: the PNG is attached only when the sensor was empty.
        """
        steps: list[tuple[str, bool, str]] = []
        png: bytes | None = None
        try:
            with self._locked():
                if self._port is None:
                    raise DeviceMissingError(f"{self.name}: not open", device=self.name)
                self._check(self._transact("VfyPwd", Password=self.options.password))
            steps.append(("handshake", True, "password verified"))
        except DeviceError as exc:
            steps.append(("handshake", False, f"{exc} - {exc.hint_en}"))
            return SelfTestResult(False, tuple(steps))
        try:
            with self._locked():
                reply = self._transact("ReadSysPara")
                self._check(reply)
                self.params = SysPara.deserialize(reply.bytes_field("SysPara"))
            p = self.params
            steps.append(
                ("parameters", True, f"{p.library_size} slots, {p.packet_size}-byte packets, {p.baudrate} baud")
            )
        except (DeviceError, CodecError) as exc:
            steps.append(("parameters", False, str(exc)))
            return SelfTestResult(False, tuple(steps))
        try:
            finger = self._gen_img_once()
            image = self.upload_image()
            detail = f"{image.width}x{image.height} image uploaded"
            if finger:
                detail += "; a finger was on the glass, image not kept"
            else:
                buf = io.BytesIO()
                image.save(buf, format="PNG")
                png = buf.getvalue()
            steps.append(("image", True, detail))
        except DeviceError as exc:
            steps.append(("image", False, f"{exc} - {exc.hint_en}"))
        return SelfTestResult(all(ok for _, ok, _ in steps), tuple(steps), png)

    # ------------------------------------------------------------ FingerprintScanner

    def capture_finger(
        self,
        position: FingerPosition,
        *,
        timeout: float,
        rolled: bool = False,
        cancel: threading.Event | None = None,
    ) -> FingerCapture:
        """Wait for a finger, upload its image, and check that the module can extract features.

        The feature check uses character buffer 1, so a capture in the middle of a manual
        enrolment sequence overwrites it.

        Raises:
            CaptureNotSupportedError: ``rolled`` (this module has no rolled capture).
            NoFingerError, FingerQualityError, CaptureCancelledError: the applicant retries.
            DeviceMissingError, DeviceTimeoutError, DeviceFaultError, DeviceProtocolError.
        """
        if rolled:
            raise CaptureNotSupportedError(f"{self.name}: ZFM modules cannot capture rolled prints")
        if timeout <= 0:
            raise CaptureArgumentError(f"{self.name}: timeout must be positive, got {timeout}")
        try:
            position = FingerPosition(position)
        except ValueError as exc:
            raise CaptureArgumentError(f"{self.name}: not a finger position: {position!r}") from exc
        self.wait_finger(timeout=timeout, cancel=cancel)
        image = self.upload_image()
        self.image_to_template(1)  # the module's own feature extraction is the first gate
        # The module's window is small, so the expected print area is a share of the window
        # rather than the ten-print default for a whole fingertip.
        window_in2 = (image.width / self.options.ppi) * (image.height / self.options.ppi)
        report = estimate_quality(image, ppi=self.options.ppi, expected_area_in2=0.6 * window_in2)
        if report.score < self.options.reject_below:
            raise FingerQualityError(
                f"{self.name}: quality {report.score} below {self.options.reject_below}",
                reason=report.likely_problem(),
                quality=report.score,
                device=self.name,
            )
        return FingerCapture(
            position=position,
            image=image,
            ppi=self.options.ppi,
            quality=report.score,
            quality_method=QUALITY_METHOD,
        )

    def capture_slap(
        self,
        slap: Slap,
        *,
        timeout: float,
        skip: Collection[FingerPosition] = (),
        cancel: threading.Event | None = None,
    ) -> SlapCapture:
        """Not possible on a single-finger module.

        Raises:
            CaptureNotSupportedError: always, before touching the wire.
        """
        raise CaptureNotSupportedError(f"{self.name}: ZFM modules capture one finger at a time")

    # ------------------------------------------------------------ fingers and images

    def wait_finger(self, *, timeout: float | None = None, cancel: threading.Event | None = None) -> None:
        """Poll GenImg until a finger is imaged, the timeout passes or ``cancel`` is set.

        Raises:
            NoFingerError, FingerQualityError, CaptureCancelledError, and device errors.
        """
        limit = self.options.finger_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            if cancel is not None and cancel.is_set():
                raise CaptureCancelledError(f"{self.name}: capture cancelled", device=self.name)
            if self._gen_img_once():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoFingerError(f"{self.name}: no finger within {limit:g} s", device=self.name)
            pause = min(self.options.poll_interval, remaining)
            if cancel is not None:
                cancel.wait(pause)
            else:
                time.sleep(pause)

    def wait_lift(self, *, timeout: float | None = None, cancel: threading.Event | None = None) -> None:
        """Poll until the sensor is empty (between the two captures of an enrolment).

        Raises:
            UserRetryError: the finger stayed on the glass; CaptureCancelledError; device errors.
        """
        limit = self.options.lift_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while self._gen_img_once():
            if cancel is not None and cancel.is_set():
                raise CaptureCancelledError(f"{self.name}: capture cancelled", device=self.name)
            if time.monotonic() >= deadline:
                raise UserRetryError(
                    f"{self.name}: finger not lifted",
                    hint_id="Angkat jari dari pemindai, lalu letakkan lagi.",
                    hint_en="Lift the finger off the scanner, then place it again.",
                    device=self.name,
                )
            time.sleep(self.options.poll_interval)

    def _gen_img_once(self) -> bool:
        with self._locked():
            reply = self._transact("GenImg")
        if reply.code == C.NO_FINGER:
            return False
        self._check(reply)
        return True

    def upload_image(self) -> Image.Image:
        """UpImage: stream the image buffer into an 8-bit greyscale image.

        The size comes from the bytes received (and ``image_width`` when set), never from a
        constant. Memory: one image plus one packet.

        Raises:
            DeviceProtocolError: a stream that breaks off, loses a byte, or fits no geometry.
        """
        expected = self.options.max_image_bytes * 2
        assembler: ImageAssembler | None = None

        def start() -> Callable[[bytes], None]:
            nonlocal assembler
            assembler = ImageAssembler(expected_pixels=expected, max_pixels=expected)
            return assembler.add

        with self._locked():
            self._upload("UpImage", {}, start, self.options.max_image_bytes)
        if assembler is None:  # pragma: no cover - _upload calls start() or raises
            raise DeviceProtocolError(f"{self.name}: UpImage produced no stream", device=self.name)
        pixels = assembler.finish()
        try:
            width, height = image_geometry(len(pixels), self.options.image_width or None)
        except CodecError as exc:
            raise DeviceProtocolError(f"{self.name}: {exc}", response=len(pixels), device=self.name) from exc
        # frombuffer shares the bytearray: no second copy of the image.
        return Image.frombuffer("L", (width, height), pixels, "raw", "L", 0, 1)

    def download_image(self, image: Image.Image) -> None:
        """DownImage: send an 8-bit greyscale image (reduced to 4 bits) into the image buffer."""
        if image.mode != "L":
            raise CaptureArgumentError(f"{self.name}: images must be mode L, got {image.mode}")
        with self._locked():
            self._download("DownImage", {}, pack_4bit(image.tobytes()))

    # ------------------------------------------------------------ templates

    def image_to_template(self, buffer_id: int = 1) -> None:
        """Img2Tz: extract features of the image buffer into a character buffer."""
        self._simple("Img2Tz", BufferID=buffer_id)

    def create_model(self) -> None:
        """RegModel: combine character buffers 1 and 2 into a template."""
        self._simple("RegModel")

    def store(self, slot: int, buffer_id: int = 1) -> None:
        """Store a character buffer into library slot ``slot``."""
        self._check_slot(slot)
        self._simple("Store", BufferID=buffer_id, PageID=slot)

    def load_template(self, slot: int, buffer_id: int = 1) -> None:
        """LoadChar: load library slot ``slot`` into a character buffer."""
        self._check_slot(slot)
        self._simple("LoadChar", BufferID=buffer_id, PageID=slot)

    def search(self, buffer_id: int = 1, start: int = 0, count: int | None = None) -> SearchHit | None:
        """Search the library for the buffer's finger; None when no slot matches."""
        params = self._require_params()
        n = params.library_size - start if count is None else count
        with self._locked():
            reply = self._transact("Search", BufferID=buffer_id, StartPage=start, PageNum=n)
        if reply.code == C.NOT_FOUND:
            return None
        self._check(reply)
        return SearchHit(reply.int_field("PageID"), reply.int_field("MatchScore"))

    def match(self) -> int | None:
        """Match buffers 1 and 2: the score, or None when they differ."""
        with self._locked():
            reply = self._transact("Match")
        if reply.code == C.NO_MATCH:
            return None
        self._check(reply)
        return reply.int_field("MatchScore")

    def delete(self, slot: int, count: int = 1) -> None:
        """DeleteChar: free ``count`` slots starting at ``slot``."""
        self._check_slot(slot)
        if count < 1:
            raise CaptureArgumentError(f"{self.name}: count must be at least 1")
        self._simple("DeleteChar", PageID=slot, N=count)

    def empty(self) -> None:
        """Empty: delete every template in the library."""
        self._simple("Empty")

    def template_count(self) -> int:
        """TempleteNum: how many templates the library holds."""
        with self._locked():
            reply = self._transact("TempleteNum")
        self._check(reply)
        return reply.int_field("N")

    def template_slots(self) -> frozenset[int]:
        """ReadIndexTable over every page: the slots that hold a template."""
        params = self._require_params()
        used: set[int] = set()
        for page in range((params.library_size + 255) // 256):
            with self._locked():
                reply = self._transact("ReadIndexTable", IndexPage=page)
            self._check(reply)
            for j, byte in enumerate(reply.bytes_field("IndexTable")):
                used.update(page * 256 + 8 * j + i for i in range(8) if byte >> i & 1)
        return frozenset(s for s in used if s < params.library_size)

    def upload_template(self, buffer_id: int = 1) -> bytes:
        """UpChar: the character buffer's bytes (size as the module sends it)."""
        out = bytearray()

        def start() -> Callable[[bytes], None]:
            out.clear()
            return out.extend

        with self._locked():
            self._upload("UpChar", {"BufferID": buffer_id}, start, 4096)
        return bytes(out)

    def download_template(self, template: bytes, buffer_id: int = 1) -> None:
        """DownChar: send a template into a character buffer."""
        if not template:
            raise CaptureArgumentError(f"{self.name}: empty template")
        with self._locked():
            self._download("DownChar", {"BufferID": buffer_id}, template)

    def set_led(self, ctrl: int, colour: int, *, speed: int = 100, cycles: int = 0) -> bool:
        """AuraLedConfig where the module has the ring LED; False (and remembered) where not."""
        if self.has_led is False:
            return False
        with self._locked():
            reply = self._transact("AuraLedConfig", Ctrl=ctrl, Speed=speed, ColorIndex=colour, Times=cycles)
        if reply.code == C.PACKET_RECEIVE_ERROR:
            self.has_led = False  # modules without the LED refuse the instruction
            return False
        self._check(reply)
        self.has_led = True
        return True

    def enroll(
        self,
        slot: int,
        *,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
        require_lift: bool = True,
    ) -> None:
        """Two captures -> RegModel -> Store into ``slot`` (the manual's enrolment sequence)."""
        self._check_slot(slot)
        self.wait_finger(timeout=timeout, cancel=cancel)
        self.image_to_template(1)
        if require_lift:
            self.wait_lift(cancel=cancel)
        self.wait_finger(timeout=timeout, cancel=cancel)
        self.image_to_template(2)
        self.create_model()
        self.store(slot, 1)

    def find(self, *, timeout: float | None = None, cancel: threading.Event | None = None) -> SearchHit | None:
        """Capture and search the whole library (the duplicate-finger check)."""
        self.wait_finger(timeout=timeout, cancel=cancel)
        self.image_to_template(1)
        return self.search(1)

    # ------------------------------------------------------------ request layer

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if not self._lock.acquire(timeout=self.options.lock_timeout):
            raise DeviceTimeoutError(f"{self.name}: busy with another request", device=self.name)
        try:
            yield
        finally:
            self._lock.release()

    def _require_params(self) -> SysPara:
        if self.params is None:
            raise DeviceMissingError(f"{self.name}: not open", device=self.name)
        return self.params

    def _check_slot(self, slot: int) -> None:
        # Argument misuse is refused before anything touches the wire.
        size = self._require_params().library_size
        if not 0 <= slot < size:
            raise CaptureArgumentError(f"{self.name}: slot {slot} outside the library (0-{size - 1})")

    def _simple(self, name: str, **params: int) -> None:
        with self._locked():
            reply = self._transact(name, **params)
        self._check(reply)

    def _check(self, reply: Reply) -> None:
        """Turn a non-OK confirmation code into the right error class."""
        if reply.ok:
            return
        meaning = reply.meaning
        what = f"{self.name}: {reply.instruction.name}: {meaning} (0x{reply.code:02X})"
        retry = _RETRY.get(reply.code)
        if retry is not None:
            cls, reason = retry
            if issubclass(cls, FingerQualityError):
                raise cls(what, reason=reason, device=self.name)
            raise cls(what, device=self.name)
        hint_id, hint_en = _FAULT_HINTS.get(
            reply.code,
            (
                "Modul sidik jari melaporkan kesalahan. Cabut dan pasang kembali; bila berulang, hubungi teknisi.",
                "The fingerprint module reported an error. Unplug and replug it; if it repeats, call the technician.",
            ),
        )
        raise DeviceFaultError(what, code=reply.code, hint_id=hint_id, hint_en=hint_en, device=self.name)

    def _transact(self, name: str, **params: int | bytes) -> Reply:
        """Send one command and wait for its acknowledge, retrying corrupt or lost replies."""
        spec = _SPEC[name]
        packet = CommandPacket(self.options.address, spec.code, self._pack(spec, params))
        last: DeviceError | None = None
        for attempt in range(self.options.retries + 1):
            if attempt:
                self.retries_used += 1
                time.sleep(self.options.retry_delay * 2 ** (attempt - 1))
            try:
                self._flush()
                self._send(packet)
                ack = self._await_ack(time.monotonic() + self.options.reply_timeout)
                try:
                    return parse_reply(spec, ack)
                except CodecError as exc:
                    raise DeviceProtocolError(
                        f"{self.name}: {spec.name}: {exc}", response=ack, device=self.name
                    ) from exc
            except (DeviceProtocolError, DeviceTimeoutError) as exc:
                last = exc
                _log.debug("%s: %s attempt %d failed: %s", self.name, spec.name, attempt + 1, type(exc).__name__)
        raise last if last is not None else DeviceTimeoutError(f"{self.name}: {spec.name}: no attempt")

    def _pack(self, spec: _Instruction, params: Mapping[str, int | bytes]) -> bytes:
        # A value out of range is the caller's mistake: refused before the wire, not retried.
        try:
            return encode_params(spec, **params)
        except CodecError as exc:
            raise CaptureArgumentError(f"{self.name}: {spec.name}: {exc}", device=self.name) from exc

    def _upload(
        self,
        name: str,
        params: Mapping[str, int],
        start: Callable[[], Callable[[bytes], None]],
        max_bytes: int,
    ) -> None:
        """A command whose OK acknowledge is followed by data packets; retried whole."""
        spec = _SPEC[name]
        last: DeviceError | None = None
        for attempt in range(self.options.retries + 1):
            if attempt:
                self.retries_used += 1
                time.sleep(self.options.retry_delay * 2 ** (attempt - 1))
            reply = self._transact(name, **params)
            self._check(reply)
            sink = start()
            try:
                self._receive_stream(spec, sink, max_bytes)
                return
            except (DeviceProtocolError, DeviceTimeoutError) as exc:
                last = exc
        raise last if last is not None else DeviceTimeoutError(f"{self.name}: {spec.name}: no attempt")

    def _receive_stream(self, spec: _Instruction, sink: Callable[[bytes], None], max_bytes: int) -> None:
        params = self._require_params()
        receiver = DataStreamReceiver(params.packet_size, max_bytes)
        overall = time.monotonic() + self.options.stream_bound(max_bytes)
        count = 0
        while not receiver.done:
            gap = min(time.monotonic() + self.options.reply_timeout, overall)
            event = self._next_event(gap)
            if event is None:
                raise DeviceTimeoutError(
                    f"{self.name}: {spec.name} stream stopped after {receiver.received} bytes", device=self.name
                )
            if isinstance(event, Garbage):
                self.garbage_bytes += event.size
                self.frames.record("rx", f"garbage {event.size}B ({event.reason})")
                raise DeviceProtocolError(
                    f"{self.name}: {spec.name} stream corrupted ({event.reason})", response=event, device=self.name
                )
            if not isinstance(event, DataPacket):
                raise DeviceProtocolError(
                    f"{self.name}: {spec.name}: {summarize(event)} inside a data stream", response=event,
                    device=self.name,
                )
            try:
                chunk = receiver.add(event)
            except CodecError as exc:
                raise DeviceProtocolError(f"{self.name}: {spec.name}: {exc}", device=self.name) from exc
            sink(chunk.data)
            count += 1
        self.frames.record("rx", f"{spec.name} stream: {count} packets <{receiver.received}B elided>")

    def _download(self, name: str, params: Mapping[str, int], data: bytes) -> None:
        spec = _SPEC[name]
        reply = self._transact(name, **params)
        self._check(reply)
        size = self._require_params().packet_size
        count = 0
        for wire in encode_data_stream(data, size, self.options.address):
            self._write(wire)
            count += 1
        if _log.isEnabledFor(TRACE):
            _log.log(TRACE, "%s tx %s stream %d packets <%dB elided>", self.name, spec.name, count, len(data))
        self.frames.record("tx", f"{spec.name} stream: {count} packets <{len(data)}B elided>")

    # ------------------------------------------------------------ transport

    def _port_or_missing(self) -> serial.Serial:
        if self._port is None:
            raise DeviceMissingError(f"{self.name}: not open", device=self.name)
        return self._port

    def _close_port(self) -> None:
        port, self._port = self._port, None
        self._backlog.clear()
        self._decoder = PacketDecoder()
        if port is not None:
            try:
                port.close()
            except _PORT_ERRORS:
                pass  # closing a vanished port: nothing left to release

    def _lost(self, exc: BaseException) -> DeviceMissingError:
        if self._port is None:
            # close() from another thread ended the wait: a deliberate stop, not an unplug.
            return DeviceMissingError(f"{self.name}: closed", device=self.name)
        self._close_port()
        # DEBUG, once per loss: the device manager owns the one user-visible "absent" line.
        _log.debug("%s: device disconnected", self.name)
        return DeviceMissingError(f"{self.name}: device disconnected ({type(exc).__name__})", device=self.name)

    def _flush(self) -> None:
        port = self._port_or_missing()
        self._backlog.clear()
        self._decoder = PacketDecoder()
        try:
            port.reset_input_buffer()
        except _PORT_ERRORS as exc:
            raise self._lost(exc) from exc

    def _write(self, data: bytes) -> None:
        port = self._port_or_missing()
        try:
            port.write(data)
            port.flush()
        except serial.SerialTimeoutException as exc:
            raise DeviceTimeoutError(f"{self.name}: write timed out", device=self.name) from exc
        except _PORT_ERRORS as exc:
            raise self._lost(exc) from exc

    def _send(self, packet: Packet) -> None:
        if _log.isEnabledFor(TRACE):
            _log.log(TRACE, "%s tx %s", self.name, trace_bytes(packet))
        self.frames.record("tx", summarize(packet))
        self._write(packet.serialize())

    def _next_event(self, deadline: float) -> Event | None:
        """The next decoded event, or None when ``deadline`` passes first."""
        port = self._port_or_missing()
        while not self._backlog:
            if time.monotonic() >= deadline:
                return None
            try:
                data = port.read(port.in_waiting or 1)
            except _PORT_ERRORS as exc:
                raise self._lost(exc) from exc
            if data:
                try:
                    self._backlog.extend(self._decoder.feed(data))
                except CodecError as exc:  # pragma: no cover - the decoder only reports garbage
                    raise DeviceProtocolError(f"{self.name}: {exc}", device=self.name) from exc
        event = self._backlog.popleft()
        if _log.isEnabledFor(TRACE) and not isinstance(event, Garbage):
            _log.log(TRACE, "%s rx %s", self.name, trace_bytes(event))
        return event

    def _await_ack(self, deadline: float) -> AckPacket:
        corrupted: Garbage | None = None
        stale = 0
        while True:
            event = self._next_event(deadline)
            if event is None:
                if stale:
                    raise DeviceProtocolError(
                        f"{self.name}: only {stale} stale data packets, no reply", device=self.name
                    )
                if corrupted is not None:
                    raise DeviceProtocolError(
                        f"{self.name}: reply corrupted ({corrupted.reason})", response=corrupted, device=self.name
                    )
                raise DeviceTimeoutError(
                    f"{self.name}: no reply within {self.options.reply_timeout:g} s", device=self.name
                )
            if isinstance(event, Garbage):
                # Line noise (or the 0x55 power-up byte) before the reply is survivable; if no
                # good reply follows, the noise is what we report.
                self.garbage_bytes += event.size
                self.frames.record("rx", f"garbage {event.size}B ({event.reason})")
                if event.reason != "no start code":
                    corrupted = event
                continue
            self.frames.record("rx", summarize(event))
            if isinstance(event, DataPacket):
                # The tail of an earlier upload whose acknowledge was lost: the flush before the
                # command only drops what had arrived, so skip the rest of it here.
                stale += 1
                continue
            if not isinstance(event, AckPacket):
                raise DeviceProtocolError(
                    f"{self.name}: expected an acknowledge, got {summarize(event)}", response=event, device=self.name
                )
            if event.address != self.options.address:
                raise DeviceProtocolError(
                    f"{self.name}: reply from address {event.address:08X}", response=event, device=self.name
                )
            return event


def from_config(url: str, options: Mapping[str, object], *, name: str = "fingerprint") -> ZfmScanner:
    """Build the driver from a ``[devices.NAME]`` table (driver = "zfm")."""
    return ZfmScanner(url, ZfmOptions.from_options(options), name=name)


__all__ = ["FingerMovedError", "SearchHit", "ZfmOptions", "ZfmScanner", "from_config"]
