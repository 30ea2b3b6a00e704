"""ZFM emulator at the byte level: spec-built commands in, spec-built replies expected out."""

from __future__ import annotations

import pytest
import serial

from drivers.emulators import install, protocol_emu
from drivers.emulators.zfm import (
    PROFILES,
    Fault,
    ZfmEmulator,
    finger_image,
    from_url_options,
    make_template,
    template_identity,
)

START, ADDR = bytes([0xEF, 0x01]), bytes([0xFF] * 4)


def spec_packet(pid: int, payload: bytes) -> bytes:
    """Independent builder (manual's table): header, length N+2, payload, 16-bit sum."""
    n = len(payload) + 2
    total = (pid + n // 256 + n % 256 + sum(payload)) % 65536
    return START + ADDR + bytes([pid, n // 256, n % 256]) + payload + bytes([total // 256, total % 256])


def cmd(*payload: int) -> bytes:
    return spec_packet(0x01, bytes(payload))


def ack(code: int, data: bytes = b"") -> bytes:
    return spec_packet(0x07, bytes([code]) + data)


def talk(emu: ZfmEmulator, data: bytes) -> bytes:
    return b"".join(b"".join(reply) for reply in emu.receive(data))


def test_genimg_without_and_with_finger() -> None:
    emu = ZfmEmulator()
    assert talk(emu, cmd(0x01)) == ack(0x02)
    emu.place_finger("f1")
    assert talk(emu, cmd(0x01)) == ack(0x00)


def test_password_gate_and_wrong_password() -> None:
    emu = ZfmEmulator(password=0x01020304)
    assert talk(emu, cmd(0x1D)) == ack(0x21)  # TempleteNum before VfyPwd
    assert talk(emu, cmd(0x13, 0, 0, 0, 0)) == ack(0x13)
    assert talk(emu, cmd(0x13, 1, 2, 3, 4)) == ack(0x00)
    assert talk(emu, cmd(0x1D)) == ack(0x00, b"\x00\x00")


def test_enroll_store_search_delete_sequence() -> None:
    emu = ZfmEmulator("r503")
    emu.place_finger("alice")
    assert talk(emu, cmd(0x01)) == ack(0)
    assert talk(emu, cmd(0x02, 1)) == ack(0)
    assert talk(emu, cmd(0x01)) == ack(0)
    assert talk(emu, cmd(0x02, 2)) == ack(0)
    assert talk(emu, cmd(0x05)) == ack(0)
    assert talk(emu, cmd(0x06, 1, 0, 7)) == ack(0)
    assert emu.slots() == {7}
    reply = talk(emu, cmd(0x04, 1, 0, 0, 0, 200))
    assert reply[:9] == START + ADDR + bytes([0x07, 0x00, 0x07]) and reply[9] == 0 and reply[10:12] == b"\x00\x07"
    table = bytearray(32)
    table[0] = 1 << 7
    assert talk(emu, cmd(0x1F, 0)) == ack(0, bytes(table))
    assert talk(emu, cmd(0x0C, 0, 7, 0, 1)) == ack(0)
    assert emu.slots() == set()
    assert talk(emu, cmd(0x04, 1, 0, 0, 0, 200)) == ack(0x09, bytes(4))


def test_quality_scenarios() -> None:
    emu = ZfmEmulator()
    for condition, genimg, img2tz in [("wet", 0, 0x06), ("dry", 0, 0x07), ("partial", 0, 0x07), ("smudge", 3, None)]:
        emu.place_finger("bob", condition)  # type: ignore[arg-type]
        assert talk(emu, cmd(0x01)) == ack(genimg)
        if img2tz is not None:
            assert talk(emu, cmd(0x02, 1)) == ack(img2tz)


def test_regmodel_of_two_fingers_fails() -> None:
    emu = ZfmEmulator()
    for buf, who in ((1, "a"), (2, "b")):
        emu.place_finger(who)
        talk(emu, cmd(0x01))
        talk(emu, cmd(0x02, buf))
    assert talk(emu, cmd(0x05)) == ack(0x0A)


def test_upimage_streams_the_image_in_packets() -> None:
    emu = ZfmEmulator("r503")
    emu.place_finger("carol")
    talk(emu, cmd(0x01))
    wire = talk(emu, cmd(0x0A))
    image = finger_image("carol", "good", 192, 192)
    pieces = [image[i : i + 128] for i in range(0, len(image), 128)]
    expected = ack(0) + b"".join(spec_packet(0x02, p) for p in pieces[:-1]) + spec_packet(0x08, pieces[-1])
    assert wire == expected


def test_downchar_then_upchar_round_trip() -> None:
    emu = ZfmEmulator()
    template = make_template("dave", 512)
    assert talk(emu, cmd(0x09, 2)) == ack(0)
    stream = b"".join(spec_packet(0x02, template[i : i + 128]) for i in range(0, 384, 128))
    assert talk(emu, stream + spec_packet(0x08, template[384:])) == b""  # no ack for data
    assert emu.buffers[2] == template and template_identity(template) is not None
    out = talk(emu, cmd(0x08, 2))
    assert out.startswith(ack(0)) and len(out) == 12 + 4 * (128 + 11)


def test_syspara_and_setsyspara() -> None:
    emu = ZfmEmulator("r307")
    reply = talk(emu, cmd(0x0F))
    assert reply[9] == 0 and reply[14:16] == (1000).to_bytes(2, "big") and reply[22:24] == b"\x00\x02"
    assert talk(emu, cmd(0x0E, 6, 1)) == ack(0)
    assert talk(emu, cmd(0x0E, 6, 9)) == ack(0x1A)
    assert emu.packet_size_code == 1


def test_bad_input_from_the_host() -> None:
    emu = ZfmEmulator()
    bad = bytearray(cmd(0x01))
    bad[-1] ^= 1
    assert talk(emu, bytes(bad)) == ack(0x01)  # corrupted command
    assert talk(emu, cmd(0x7E)) == ack(0x01)  # unknown instruction
    assert talk(emu, cmd(0x06, 1)) == ack(0x01)  # short parameters
    assert talk(emu, b"\x00\x01\x02") == b""  # noise: silence
    other = START + bytes([1, 2, 3, 4]) + cmd(0x01)[6:]
    assert talk(emu, other) == ack(0x20)  # wrong address
    assert talk(emu, ack(0)) == b""  # a module never answers acknowledges


def test_led_only_on_aura_models_and_soft_reset() -> None:
    assert talk(ZfmEmulator("r307"), cmd(0x35, 1, 100, 2, 0)) == ack(0x01)
    emu = ZfmEmulator("r503")
    assert talk(emu, cmd(0x35, 1, 100, 2, 0)) == ack(0) and emu.led == (1, 100, 2, 0)
    assert talk(emu, cmd(0x3D)) == ack(0) + b"\x55"
    assert talk(emu, cmd(0x53)) == ack(0x55)


def test_faults_shape_the_next_reply_only() -> None:
    emu = ZfmEmulator(seed=3)
    emu.inject(Fault.BAD_CHECKSUM)
    bad = talk(emu, cmd(0x01))
    assert bad != ack(0x02) and bad[:-1] == ack(0x02)[:-1]
    emu.inject(Fault.DROP_BYTE)
    assert len(talk(emu, cmd(0x01))) == 11
    emu.inject(Fault.SILENCE)
    assert talk(emu, cmd(0x01)) == b""
    emu.inject(Fault.GARBAGE)
    noisy = talk(emu, cmd(0x01))
    assert noisy.endswith(ack(0x02)) and len(noisy) > 12
    assert talk(emu, cmd(0x01)) == ack(0x02)


def test_unplug_waits_for_an_upload_and_cuts_it() -> None:
    emu = ZfmEmulator("r503")
    emu.inject(Fault.UNPLUG_MID_UPLOAD)
    assert talk(emu, cmd(0x1D)) == ack(0, b"\x00\x00")  # not an upload: untouched
    wire = talk(emu, cmd(0x0A))
    assert emu.unplugged and len(wire) == 12 + 2 * (128 + 11)
    assert talk(emu, cmd(0x01)) == b""
    emu.replug()
    assert talk(emu, cmd(0x01)) == ack(0x02)


def test_url_options_and_registry() -> None:
    install()
    emu = from_url_options({"profile": "r503", "password": "0x10", "finger": "x", "condition": "wet"})
    assert emu.profile is PROFILES["r503"] and emu.password == 16 and emu.finger is not None
    with pytest.raises(ValueError):
        from_url_options({"profile": "r999"})
    with pytest.raises(ValueError):
        from_url_options({"finger": "x", "condition": "soggy"})
    protocol_emu.attach("zfm", "t-registry", emu)
    try:
        assert protocol_emu.lookup("zfm", {"name": "t-registry"}) is emu
    finally:
        protocol_emu.detach("zfm", "t-registry")
    with pytest.raises(serial.SerialException):
        serial.serial_for_url("emu://nosuchdevice")


def test_url_port_behaves_like_a_serial_port() -> None:
    install()
    port = serial.serial_for_url("emu://zfm?seed=1", timeout=0.05)
    try:
        assert port.read(1) == b""  # timeout, nothing sent
        port.write(cmd(0x01))
        assert port.in_waiting == 12
        assert port.read(100) == ack(0x02)
        port.write(cmd(0x01))
        port.reset_input_buffer()
        assert port.in_waiting == 0
    finally:
        port.close()
    with pytest.raises(serial.SerialException):
        port.read(1)
