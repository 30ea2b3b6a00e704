"""ZFM driver against the emulator, over the pyserial URL handler and over a real pty pair."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator

import pytest

from drivers.base import Device
from drivers.emulators import protocol_emu
from drivers.emulators.pty import PtyLink
from drivers.emulators.zfm import Fault, ZfmEmulator, finger_image, make_template
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
    FingerPosition,
    FingerprintScanner,
    FingerQualityError,
    NoFingerError,
    Slap,
)
from drivers.fingerprint.zfm import FingerMovedError, ZfmOptions, ZfmScanner, from_config
from drivers.registry import BadDeviceSpecError

# Generous reply bound: pty replies come from another thread, and CI machines are loaded; only
# the silence tests pay it.
FAST = ZfmOptions(reply_timeout=1.0, poll_interval=0.01, finger_timeout=0.2, lift_timeout=0.2, retry_delay=0.01)
_names = itertools.count()


def expand(packed: bytes) -> bytes:
    """Independent 4-bit -> 8-bit expansion: high nibble first, times 17."""
    out = bytearray()
    for b in packed:
        out += bytes([(b >> 4) * 17, (b & 15) * 17])
    return bytes(out)


@pytest.fixture(params=["url", "pty"])
def rig(request: pytest.FixtureRequest) -> Iterator[tuple[ZfmEmulator, ZfmScanner]]:
    """An emulator and an open driver, over the URL handler or a pty."""
    emu = ZfmEmulator("r503", seed=7)
    if request.param == "url":
        name = f"t{next(_names)}"
        protocol_emu.attach("zfm", name, emu)
        scanner = ZfmScanner(f"emu://zfm?name={name}", FAST)
        scanner.open()
        try:
            yield emu, scanner
        finally:
            scanner.close()
            protocol_emu.detach("zfm", name)
    else:
        with PtyLink(emu) as link:
            scanner = ZfmScanner(link.path, FAST)
            scanner.open()
            try:
                yield emu, scanner
            finally:
                scanner.close()
            assert link.error is None


@pytest.fixture
def url_rig() -> Iterator[tuple[ZfmEmulator, str]]:
    emu = ZfmEmulator("r307", seed=1)
    name = f"u{next(_names)}"
    protocol_emu.attach("zfm", name, emu)
    try:
        yield emu, f"emu://zfm?name={name}"
    finally:
        protocol_emu.detach("zfm", name)


def test_interfaces_identity_and_capabilities(rig: tuple[ZfmEmulator, ZfmScanner]) -> None:
    emu, scanner = rig
    assert isinstance(scanner, Device) and isinstance(scanner, FingerprintScanner)
    ident = scanner.identify()
    assert ident.kind == "fingerprint" and ident.evidence == "public protocol"
    assert "200 slots" in ident.model
    caps = scanner.capabilities()
    assert caps.single_finger and not caps.rolled and not caps.slaps
    assert scanner.params is not None and scanner.params.packet_size == 128


def test_capture_streams_an_image_whose_size_comes_from_the_data(rig: tuple[ZfmEmulator, ZfmScanner]) -> None:
    emu, scanner = rig
    emu.place_finger("alice-right-index")
    cap = scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=1.0)
    assert cap.image.mode == "L" and cap.image.size == (192, 192)
    assert cap.image.tobytes() == expand(finger_image("alice-right-index", "good", 192, 192))
    assert cap.quality >= 80 and cap.quality_method == QUALITY_METHOD


def test_r307_geometry_and_width_hint(url_rig: tuple[ZfmEmulator, str]) -> None:
    emu, url = url_rig
    scanner = ZfmScanner(url, FAST)
    scanner.open()
    try:
        emu.place_finger("x")
        scanner.wait_finger(timeout=0.5)
        assert scanner.upload_image().size == (256, 288)
    finally:
        scanner.close()
    hinted = ZfmScanner(url, ZfmOptions(reply_timeout=0.15, image_width=128))
    hinted.open()
    try:
        assert hinted.upload_image().size == (128, 576)
    finally:
        hinted.close()


def test_no_finger_times_out_with_a_hint(rig: tuple[ZfmEmulator, ZfmScanner]) -> None:
    _, scanner = rig
    with pytest.raises(NoFingerError) as info:
        scanner.capture_finger(FingerPosition.LEFT_THUMB, timeout=0.05)
    assert isinstance(info.value, UserRetryError)
    assert "jari" in info.value.hint("id").lower() and "finger" in info.value.hint("en").lower()


def test_cancel_stops_the_wait(rig: tuple[ZfmEmulator, ZfmScanner]) -> None:
    _, scanner = rig
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CaptureCancelledError):
        scanner.capture_finger(FingerPosition.LEFT_THUMB, timeout=30.0, cancel=cancel)


@pytest.mark.parametrize(("condition", "reason"), [("wet", "wet"), ("dry", "features"), ("partial", "features"), ("smudge", "smudge")])
def test_quality_problems_are_user_retries(rig: tuple[ZfmEmulator, ZfmScanner], condition: str, reason: str) -> None:
    emu, scanner = rig
    emu.place_finger("bob", condition)  # type: ignore[arg-type]
    with pytest.raises(FingerQualityError) as info:
        scanner.capture_finger(FingerPosition.RIGHT_THUMB, timeout=0.5)
    assert info.value.reason == reason and info.value.hint_en


def test_enroll_search_and_duplicate_check(rig: tuple[ZfmEmulator, ZfmScanner]) -> None:
    emu, scanner = rig
    emu.place_finger("carol")
    scanner.enroll(3, require_lift=False)
    emu.place_finger("dave")
    scanner.enroll(10, require_lift=False)
    assert scanner.template_slots() == emu.slots() == {3, 10}
    assert scanner.template_count() == 2
    emu.place_finger("carol")
    hit = scanner.find(timeout=0.5)
    assert hit is not None and hit.slot == 3 and hit.score > 0
    emu.place_finger("erin")
    assert scanner.find(timeout=0.5) is None
    scanner.delete(3)
    assert scanner.template_slots() == emu.slots() == {10}
    scanner.empty()
    assert scanner.template_count() == 0 and emu.slots() == frozenset()


def test_enroll_waits_for_lift_and_refuses_a_different_finger(rig: tuple[ZfmEmulator, ZfmScanner]) -> None:
    emu, scanner = rig
    emu.place_finger("frank")
    with pytest.raises(UserRetryError, match="not lifted"):
        scanner.enroll(1)  # the finger never leaves the glass
    # Second capture from another finger: RegModel refuses, which the applicant must redo.
    emu.place_finger("frank")
    scanner.wait_finger(timeout=0.5)
    scanner.image_to_template(1)
    emu.place_finger("grace")
    scanner.wait_finger(timeout=0.5)
    scanner.image_to_template(2)
    with pytest.raises(FingerMovedError) as info:
        scanner.create_model()
    assert info.value.reason == "moved" and "bergeser" in info.value.hint_id


def test_templates_up_and_down(rig: tuple[ZfmEmulator, ZfmScanner]) -> None:
    emu, scanner = rig
    emu.place_finger("heidi")
    scanner.wait_finger(timeout=0.5)
    scanner.image_to_template(1)
    template = scanner.upload_template(1)
    assert template == make_template("heidi", 768)
    scanner.download_template(template, 2)
    assert scanner.match() is not None
    scanner.download_template(make_template("ivan", 768), 2)
    assert scanner.match() is None
    scanner.store(5, 2)
    scanner.load_template(5, 1)
    assert emu.buffers[1] == make_template("ivan", 768)


def test_download_image_then_upload(rig: tuple[ZfmEmulator, ZfmScanner]) -> None:
    emu, scanner = rig
    emu.place_finger("judy")
    image = scanner.capture_finger(FingerPosition.LEFT_INDEX, timeout=0.5).image
    emu.lift_finger()
    scanner.download_image(image)
    assert scanner.upload_image().tobytes() == image.tobytes()  # 4-bit values survive exactly


def test_led_where_the_module_has_it(rig: tuple[ZfmEmulator, ZfmScanner], url_rig: tuple[ZfmEmulator, str]) -> None:
    emu, scanner = rig
    assert scanner.set_led(1, 2) is True and emu.led == (1, 100, 2, 0)
    _, url = url_rig
    plain = ZfmScanner(url, FAST)
    plain.open()
    try:
        assert plain.set_led(3, 1) is False and plain.has_led is False
        assert plain.set_led(3, 1) is False  # remembered, not asked again
    finally:
        plain.close()


@pytest.mark.parametrize("fault", [Fault.GARBAGE, Fault.BAD_CHECKSUM, Fault.DROP_BYTE, Fault.SILENCE])
def test_line_faults_are_retried(rig: tuple[ZfmEmulator, ZfmScanner], fault: Fault) -> None:
    emu, scanner = rig
    before = scanner.retries_used
    emu.inject(fault)
    assert scanner.template_count() == 0
    assert emu.pending_faults == 0
    if fault is not Fault.GARBAGE:  # noise before a good reply needs no retry
        assert scanner.retries_used == before + 1


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.BAD_CHECKSUM, DeviceProtocolError),
        (Fault.DROP_BYTE, DeviceProtocolError),
        (Fault.SILENCE, DeviceTimeoutError),
    ],
)
def test_line_faults_without_retries_raise_the_right_error(
    url_rig: tuple[ZfmEmulator, str], fault: Fault, error: type[DeviceError]
) -> None:
    emu, url = url_rig
    scanner = ZfmScanner(url, ZfmOptions(reply_timeout=0.1, retries=0))
    scanner.open()
    try:
        emu.inject(fault)
        with pytest.raises(error):
            scanner.template_count()
        assert scanner.template_count() == 0  # the next request works again
    finally:
        scanner.close()


def test_persistent_silence_is_a_timeout_after_every_retry(rig: tuple[ZfmEmulator, ZfmScanner]) -> None:
    emu, scanner = rig
    for _ in range(FAST.retries + 1):
        emu.inject(Fault.SILENCE)
    with pytest.raises(DeviceTimeoutError) as info:
        scanner.template_count()
    assert isinstance(info.value, TimeoutError) and info.value.hint_en


def test_unplug_mid_upload_then_replug(url_rig: tuple[ZfmEmulator, str]) -> None:
    emu, url = url_rig
    scanner = ZfmScanner(url, FAST)
    scanner.open()
    emu.inject(Fault.UNPLUG_MID_UPLOAD)
    with pytest.raises(DeviceMissingError):
        scanner.upload_image()
    with pytest.raises(DeviceMissingError):
        scanner.template_count()  # the port is closed now
    with pytest.raises(DeviceMissingError):
        scanner.open()  # still unplugged
    emu.replug()
    scanner.open()
    try:
        assert scanner.template_count() == 0
    finally:
        scanner.close()


def test_unplug_mid_upload_over_a_pty() -> None:
    emu = ZfmEmulator("r503")
    with PtyLink(emu) as link:
        scanner = ZfmScanner(link.path, FAST)
        scanner.open()
        emu.inject(Fault.UNPLUG_MID_UPLOAD)
        with pytest.raises(DeviceMissingError):
            scanner.upload_image()
        scanner.close()


def test_wrong_password_is_a_fault_with_its_code(url_rig: tuple[ZfmEmulator, str]) -> None:
    emu, url = url_rig
    emu.password = 1234
    scanner = ZfmScanner(url, ZfmOptions(reply_timeout=0.1, password=999))
    with pytest.raises(DeviceFaultError) as info:
        scanner.open()
    assert info.value.code == 0x13 and "sandi" in info.value.hint_id
    # Nothing is left half-open.
    with pytest.raises(DeviceMissingError):
        scanner.template_count()
    good = ZfmScanner(url, ZfmOptions(reply_timeout=0.1, password=1234))
    good.open()
    good.close()


def test_missing_devices() -> None:
    with pytest.raises(DeviceMissingError):
        ZfmScanner("/dev/ttyDOES-NOT-EXIST", FAST).open()
    with pytest.raises(DeviceMissingError):
        ZfmScanner("emu://no-such-kind", FAST).open()
    with pytest.raises(DeviceMissingError):
        ZfmScanner("emu://zfm?profile=r999", FAST).open()
    closed = ZfmScanner("emu://zfm", FAST)
    with pytest.raises(DeviceMissingError):
        closed.template_count()
    closed.close()
    closed.close()  # twice is fine


def test_misuse_is_refused_before_the_wire(rig: tuple[ZfmEmulator, ZfmScanner]) -> None:
    emu, scanner = rig
    seen = emu.commands_seen
    with pytest.raises(CaptureNotSupportedError):
        scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=1, rolled=True)
    with pytest.raises(CaptureNotSupportedError):
        scanner.capture_slap(Slap.RIGHT_FOUR, timeout=1)
    with pytest.raises(CaptureArgumentError):
        scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=0)
    with pytest.raises(CaptureArgumentError):
        scanner.capture_finger(13, timeout=1)  # type: ignore[arg-type]  # a slap code, not a finger
    with pytest.raises(CaptureArgumentError):
        scanner.store(200)
    with pytest.raises(CaptureArgumentError):
        scanner.delete(0, count=0)
    with pytest.raises(CaptureArgumentError):
        scanner.image_to_template(300)
    with pytest.raises(CaptureArgumentError):
        scanner.download_template(b"")
    assert emu.commands_seen == seen


def test_device_refusals_become_faults(rig: tuple[ZfmEmulator, ZfmScanner]) -> None:
    _, scanner = rig
    with pytest.raises(DeviceFaultError) as info:
        scanner.load_template(7)  # empty slot
    assert info.value.code == 0x0C
    with pytest.raises(DeviceFaultError):
        scanner.image_to_template(1)  # no image yet in the buffer


def test_one_request_in_flight(url_rig: tuple[ZfmEmulator, str]) -> None:
    _, url = url_rig
    scanner = ZfmScanner(url, ZfmOptions(reply_timeout=0.1, lock_timeout=0.05))
    scanner.open()
    try:
        scanner._lock.acquire()  # another request holds the device
        try:
            with pytest.raises(DeviceTimeoutError, match="busy"):
                scanner.template_count()
        finally:
            scanner._lock.release()
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(scanner.template_count())) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        assert results == [0, 0, 0, 0]
    finally:
        scanner.close()


def test_self_test_keeps_no_finger_image(rig: tuple[ZfmEmulator, ZfmScanner]) -> None:
    emu, scanner = rig
    result = scanner.self_test()
    assert result.ok and [s[0] for s in result.steps] == ["handshake", "parameters", "image"]
    assert result.image_png is not None and result.image_png.startswith(b"\x89PNG")
    emu.place_finger("kim")
    result = scanner.self_test()
    assert result.ok and result.image_png is None and "not kept" in result.steps[2][2]
    scanner.close()
    result = scanner.self_test()
    assert not result.ok and result.steps[0][1] is False


def test_frame_log_and_trace_never_carry_payloads_or_password(
    url_rig: tuple[ZfmEmulator, str], caplog: pytest.LogCaptureFixture
) -> None:
    emu, url = url_rig
    emu.password = 0x5EC2E7
    scanner = ZfmScanner(url, ZfmOptions(reply_timeout=0.1, password=0x5EC2E7))
    caplog.set_level(5, logger="drivers.fingerprint.zfm")
    scanner.open()
    try:
        emu.place_finger("leo")
        scanner.wait_finger(timeout=0.5)
        scanner.image_to_template(1)
        template = scanner.upload_template(1)
        scanner.upload_image()
    finally:
        scanner.close()
    frames = [summary for _, summary in scanner.frames]
    assert frames[0] == "cmd VfyPwd(Password=<redacted>)"
    assert any("UpImage stream" in f and "elided" in f for f in frames)
    text = caplog.text + "\n".join(frames)
    assert "5e c2 e7" not in text and "5ec2e7" not in text.lower()
    assert template[20:40].hex(" ") not in text
    assert any(r.levelno == 5 for r in caplog.records)


def test_options_from_config() -> None:
    scanner = from_config("emu://zfm", {"baudrate": 115200, "reply_timeout": 2, "password": 5})
    assert scanner.options.reply_timeout == 2.0 and scanner.options.password == 5
    with pytest.raises(BadDeviceSpecError, match="unknown"):
        ZfmOptions.from_options({"baud": 1})
    with pytest.raises(BadDeviceSpecError, match="must be"):
        ZfmOptions.from_options({"password": "0"})
    with pytest.raises(BadDeviceSpecError):
        ZfmOptions(baudrate=50000)
    with pytest.raises(BadDeviceSpecError):
        ZfmOptions(reply_timeout=0)
    assert FAST.call_bound > FAST.reply_timeout


def test_power_up_byte_before_the_first_reply_is_ignored(url_rig: tuple[ZfmEmulator, str]) -> None:
    emu, url = url_rig
    scanner = ZfmScanner(url, FAST)
    scanner.open()
    try:
        # SoftReset answers with its ack and then the 0x55 handshake byte; the next request
        # must not be confused by it.
        scanner._simple("SoftReset")
        assert scanner.template_count() == 0
    finally:
        scanner.close()


def test_unplug_is_logged_once_and_quietly(url_rig: tuple[ZfmEmulator, str], caplog: pytest.LogCaptureFixture) -> None:
    emu, url = url_rig
    scanner = ZfmScanner(url, FAST)
    scanner.open()
    caplog.set_level(logging.DEBUG, logger="drivers.fingerprint.zfm")
    emu.inject(Fault.UNPLUG_MID_UPLOAD)
    with pytest.raises(DeviceMissingError):
        scanner.upload_image()
    for _ in range(3):
        with pytest.raises(DeviceMissingError):
            scanner.template_count()
    lines = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.DEBUG


class StaleTail:
    """Wraps the emulator: the next reply is preceded by the tail of an earlier upload."""

    def __init__(self, inner: ZfmEmulator, packets: int) -> None:
        self.inner = inner
        self.packets = packets

    @property
    def unplugged(self) -> bool:
        return self.inner.unplugged

    def receive(self, data: bytes) -> list[list[bytes]]:
        replies = [list(r) for r in self.inner.receive(data)]
        if replies and self.packets:
            # Spec-built data packets (PID 0x02), as an interrupted UpImage leaves on the line.
            payload = bytes(128)
            n = len(payload) + 2
            total = (0x02 + n // 256 + n % 256) % 65536
            packet = b"\xef\x01\xff\xff\xff\xff\x02" + bytes([n // 256, n % 256]) + payload + bytes([total // 256, total % 256])
            replies[0] = [packet] * self.packets + replies[0]
            self.packets = 0
        return replies


def test_stale_data_before_a_reply_is_skipped() -> None:
    emu = ZfmEmulator("r503")
    wrapper = StaleTail(emu, 0)
    name = f"stale{next(_names)}"
    protocol_emu.attach("zfm", name, wrapper)
    try:
        scanner = ZfmScanner(f"emu://zfm?name={name}", ZfmOptions(reply_timeout=0.1, retries=0))
        scanner.open()
        wrapper.packets = 3
        assert scanner.template_count() == 0
        assert any("data <128B elided>" in s for _, s in scanner.frames)
        scanner.close()
    finally:
        protocol_emu.detach("zfm", name)


def test_health_probe_notices_an_idle_unplug(url_rig: tuple[ZfmEmulator, str]) -> None:
    emu, url = url_rig
    scanner = ZfmScanner(url, FAST)
    scanner.open()
    scanner.health()
    emu.unplug()
    with pytest.raises(DeviceMissingError):
        scanner.health()
    with pytest.raises(DeviceMissingError):
        scanner.health()  # stays missing until reopened
    emu.replug()
    scanner.open()
    scanner.health()
    scanner.close()


@pytest.mark.parametrize("fault", [Fault.DROP_BYTE, Fault.BAD_CHECKSUM, Fault.GARBAGE])
def test_damage_inside_an_image_stream_retries_the_whole_upload(
    rig: tuple[ZfmEmulator, ZfmScanner], fault: Fault
) -> None:
    emu, scanner = rig
    emu.place_finger("mallory")
    scanner.wait_finger(timeout=0.5)
    before = scanner.retries_used
    emu.inject(fault, packet=5)  # the fifth data packet of the next upload
    image = scanner.upload_image()
    assert image.tobytes() == expand(finger_image("mallory", "good", 192, 192))
    assert emu.pending_faults == 0 and scanner.retries_used == before + 1
    assert any("garbage" in s for _, s in scanner.frames)


def test_damage_inside_a_stream_without_retries_is_a_protocol_error(url_rig: tuple[ZfmEmulator, str]) -> None:
    emu, url = url_rig
    scanner = ZfmScanner(url, ZfmOptions(reply_timeout=0.1, retries=0))
    scanner.open()
    try:
        emu.inject(Fault.DROP_BYTE, packet=100)
        with pytest.raises(DeviceProtocolError):
            scanner.upload_image()
        emu.inject(Fault.SILENCE)
        emu.inject(Fault.BAD_CHECKSUM, packet=1)
        with pytest.raises(DeviceTimeoutError):
            scanner.template_count()  # silence
        with pytest.raises(DeviceProtocolError):
            scanner.upload_image()  # first data packet's checksum broken
    finally:
        scanner.close()


def test_close_from_another_thread_ends_a_capture_quietly(
    url_rig: tuple[ZfmEmulator, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = url_rig
    scanner = ZfmScanner(url, ZfmOptions(reply_timeout=0.1, poll_interval=0.01))
    scanner.open()
    errors: list[BaseException] = []

    def capture() -> None:
        try:
            scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=30.0)
        except DeviceError as exc:
            errors.append(exc)

    caplog.set_level(logging.DEBUG, logger="drivers.fingerprint.zfm")
    worker = threading.Thread(target=capture)
    worker.start()
    for _ in range(500):  # until a few GenImg polls have happened (bounded)
        if len(scanner.frames) >= 6:
            break
        threading.Event().wait(0.01)
    scanner.close()
    worker.join(5)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], DeviceMissingError)
    assert "disconnected" not in caplog.text


def test_control_bytes_cross_the_pty_unchanged() -> None:
    # CR, LF, XON, XOFF, ^C, DEL and 0xFF are what a cooked tty would eat or rewrite.
    emu = ZfmEmulator("r307")
    tricky = bytes([0x0D, 0x0A, 0x11, 0x13, 0x03, 0x7F, 0xFF, 0x00]) * 64
    template = make_template("zed", 512)[:22] + tricky[: 512 - 22]
    with PtyLink(emu) as link:
        scanner = ZfmScanner(link.path, FAST)
        scanner.open()
        try:
            scanner.download_template(template, 1)
            # The module handles the upload only after the download (one serial line, in order).
            assert scanner.upload_template(1) == template
            assert emu.buffers[1] == template
        finally:
            scanner.close()


def test_poor_image_the_module_accepts_is_scored_and_gated(url_rig: tuple[ZfmEmulator, str]) -> None:
    emu, url = url_rig
    emu.place_finger("nina", "faint")
    lenient = ZfmScanner(url, FAST)
    lenient.open()
    try:
        cap = lenient.capture_finger(FingerPosition.LEFT_RING, timeout=0.5)
        assert cap.quality < 40  # reported honestly, gating left to the workflow
    finally:
        lenient.close()
    strict = ZfmScanner(url, ZfmOptions(reply_timeout=1.0, reject_below=40))
    strict.open()
    try:
        with pytest.raises(FingerQualityError) as info:
            strict.capture_finger(FingerPosition.LEFT_RING, timeout=0.5)
        assert info.value.quality is not None and info.value.quality < 40
        emu.place_finger("nina")
        assert strict.capture_finger(FingerPosition.LEFT_RING, timeout=0.5).quality >= 40
    finally:
        strict.close()
    with pytest.raises(BadDeviceSpecError):
        ZfmOptions(reject_below=101)
