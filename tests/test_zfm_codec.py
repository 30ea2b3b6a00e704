"""ZFM codec: framing, chunking, garbage, checksums, the instruction table, data streams.

Expected wire bytes are built by the small helpers below from the spec constants of the
research note (protocols.md §1.1), never by the encoder under test.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from firmware_protocols.errors import CodecError, EncodeError, FrameError
from firmware_protocols.zfm import (
    INSTRUCTIONS,
    AckPacket,
    CommandPacket,
    ConfirmationCode,
    DataPacket,
    DataStreamReceiver,
    Garbage,
    ImageAssembler,
    Outcome,
    Packet,
    PacketDecoder,
    SysPara,
    encode_command,
    encode_data_stream,
    encode_reply,
    image_geometry,
    pack_4bit,
    parse_command,
    parse_reply,
    summarize,
    trace_bytes,
)

# ---------------------------------------------------------------- independent spec helpers

SPEC_START = bytes([0xEF, 0x01])
SPEC_ADDR = bytes([0xFF, 0xFF, 0xFF, 0xFF])
SPEC_CMD, SPEC_DATA, SPEC_ACK, SPEC_END = 0x01, 0x02, 0x07, 0x08


def spec_packet(pid: int, payload: bytes, addr: bytes = SPEC_ADDR) -> bytes:
    """A packet exactly as the manual's 'data package format' table describes it."""
    n = len(payload) + 2
    hi, lo = n // 256, n % 256
    total = pid + hi + lo
    for b in payload:
        total += b
    total %= 65536
    return SPEC_START + addr + bytes([pid, hi, lo]) + payload + bytes([total // 256, total % 256])


def u16(v: int) -> bytes:
    return bytes([v // 256, v % 256])


# Worked examples from the research note (my arithmetic there, checked by hand).
GENIMG = bytes.fromhex("EF01FFFFFFFF010003010005")
VFYPWD0 = bytes.fromhex("EF01FFFFFFFF01000713000000 00001B".replace(" ", ""))
UPCHAR1 = bytes.fromhex("ef01ffffffff010004080100 0e".replace(" ", ""))
ACK_OK = bytes.fromhex("ef01ffffffff07000300000a")


def decode_all(data: bytes, step: int | None = None) -> list[object]:
    dec = PacketDecoder()
    out: list[object] = []
    if step is None:
        out += dec.feed(data)
    else:
        for i in range(0, len(data), step):
            out += dec.feed(data[i : i + step])
    return out


# ---------------------------------------------------------------- known bytes


def test_worked_examples_match_the_spec_helper() -> None:
    assert spec_packet(SPEC_CMD, b"\x01") == GENIMG
    assert spec_packet(SPEC_CMD, b"\x13\x00\x00\x00\x00") == VFYPWD0
    assert spec_packet(SPEC_CMD, b"\x08\x01") == UPCHAR1
    assert spec_packet(SPEC_ACK, b"\x00") == ACK_OK


def test_encoder_produces_the_worked_examples() -> None:
    assert encode_command("GenImg") == GENIMG
    assert encode_command("VfyPwd", Password=0) == VFYPWD0
    assert encode_command("UpChar", BufferID=1) == UPCHAR1
    assert encode_reply("GenImg", 0) == ACK_OK


@pytest.mark.parametrize(
    ("name", "params", "payload"),
    [
        ("Img2Tz", {"BufferID": 2}, b"\x02\x02"),
        ("Search", {"BufferID": 1, "StartPage": 0, "PageNum": 1000}, b"\x04\x01" + u16(0) + u16(1000)),
        ("Store", {"BufferID": 1, "PageID": 0x1234}, b"\x06\x01\x12\x34"),
        ("DeleteChar", {"PageID": 7, "N": 1}, b"\x0c" + u16(7) + u16(1)),
        ("SetSysPara", {"ParameterNo": 6, "Contents": 2}, b"\x0e\x06\x02"),
        ("SetAdder", {"Address": 0x01020304}, b"\x15\x01\x02\x03\x04"),
        ("ReadIndexTable", {"IndexPage": 3}, b"\x1f\x03"),
        ("AuraLedConfig", {"Ctrl": 1, "Speed": 100, "ColorIndex": 2, "Times": 0}, b"\x35\x01\x64\x02\x00"),
        ("Empty", {}, b"\x0d"),
        ("TempleteNum", {}, b"\x1d"),
    ],
)
def test_commands_against_the_spec(name: str, params: dict[str, int], payload: bytes) -> None:
    assert encode_command(name, **params) == spec_packet(SPEC_CMD, payload)


def test_non_default_address_is_on_the_wire() -> None:
    addr = bytes([0x12, 0x34, 0x56, 0x78])
    assert encode_command("GenImg", address=0x12345678) == spec_packet(SPEC_CMD, b"\x01", addr)
    (pkt,) = decode_all(spec_packet(SPEC_ACK, b"\x00", addr))
    assert isinstance(pkt, AckPacket) and pkt.address == 0x12345678


def test_checksum_carry_beyond_16_bits_is_dropped() -> None:
    payload = b"\xff" * 256  # 256*255 + ... > 0xFFFF
    wire = spec_packet(SPEC_END, payload)
    (pkt,) = decode_all(wire)
    assert isinstance(pkt, DataPacket) and pkt.last and pkt.data == payload
    assert DataPacket(0xFFFFFFFF, payload, last=True).serialize() == wire


# ---------------------------------------------------------------- chunking, trailing, garbage

STREAM = (
    GENIMG
    + ACK_OK
    + spec_packet(SPEC_ACK, b"\x00" + u16(5) + u16(77))
    + spec_packet(SPEC_DATA, bytes(range(128)))
    + spec_packet(SPEC_END, bytes(range(100, 132)))
)


def _expected() -> list[object]:
    a = 0xFFFFFFFF
    return [
        CommandPacket(a, 0x01),
        AckPacket(a, 0x00),
        AckPacket(a, 0x00, u16(5) + u16(77)),
        DataPacket(a, bytes(range(128))),
        DataPacket(a, bytes(range(100, 132)), last=True),
    ]


def test_whole() -> None:
    assert decode_all(STREAM) == _expected()


def test_byte_at_a_time_needs_more_until_each_end() -> None:
    dec = PacketDecoder()
    ends = []
    pos = 0
    for want in _expected():
        assert isinstance(want, Packet)
        pos += len(want.serialize())
        ends.append(pos)
    got: list[object] = []
    for i, b in enumerate(STREAM, start=1):
        events = dec.feed(bytes([b]))
        if i in ends:
            assert len(events) == 1
        else:
            assert events == []  # "need more"
        got += events
    assert got == _expected()
    assert dec.buffered == 0


def test_trailing_bytes_remain_buffered() -> None:
    dec = PacketDecoder()
    partial = ACK_OK[:7]
    assert dec.feed(GENIMG + partial) == [CommandPacket(0xFFFFFFFF, 0x01)]
    assert dec.buffered == len(partial)
    assert dec.feed(ACK_OK[7:]) == [AckPacket(0xFFFFFFFF, 0)]
    pkt, rest = Packet.deserialize(GENIMG + b"\x01\x02")
    assert pkt == CommandPacket(0xFFFFFFFF, 1) and rest == b"\x01\x02"


@given(st.binary(max_size=64), st.binary(max_size=64), st.integers(1, 40))
@example(b"\x55", b"", 1)  # the power-up handshake byte before the first packet
@example(b"\x01\xff", b"\x00\x07", 3)
def test_wrapped_in_garbage(before: bytes, after: bytes, step: int) -> None:
    # Garbage that contains no start code cannot hide a packet, so what comes out is exactly
    # the packets, with Garbage events between them, however the stream is sliced.
    before = before.replace(b"\xef", b"\xee")
    after = after.replace(b"\xef", b"\xee")
    events = decode_all(before + STREAM + after, step)
    assert [e for e in events if not isinstance(e, Garbage)] == _expected()
    assert sum(e.size for e in events if isinstance(e, Garbage)) == len(before) + len(after)


def test_garbage_containing_false_start_codes_resyncs() -> None:
    noise = b"\xef\x01\xff\xff\xff\xff\x07\x00\x05\x00" + b"\x55" * 3  # a false start, cut short
    events = decode_all(noise + ACK_OK)
    assert [e for e in events if not isinstance(e, Garbage)] == [AckPacket(0xFFFFFFFF, 0)]


def test_bad_checksum_is_dropped_and_the_next_packet_survives() -> None:
    bad = bytearray(ACK_OK)
    bad[-1] ^= 0x01
    events = decode_all(bytes(bad) + GENIMG)
    assert events[0] == Garbage(len(ACK_OK), "bad checksum")
    assert events[1:] == [CommandPacket(0xFFFFFFFF, 1)]


def test_flipped_bit_anywhere_never_yields_the_original_packet() -> None:
    wire = spec_packet(SPEC_ACK, b"\x00" + u16(3) + u16(40))
    original = decode_all(wire)
    for i in range(2, len(wire)):  # flipping the start code is just garbage, tested above
        for bit in range(8):
            mutated = bytearray(wire)
            mutated[i] ^= 1 << bit
            events = decode_all(bytes(mutated))
            # The checksum does not cover the address, so a flipped address bit gives a valid
            # packet for another module: still never the original.
            assert [e for e in events if not isinstance(e, Garbage)] != original


@pytest.mark.parametrize(
    ("pid", "length", "reason"),
    [(0x03, 3, "bad pid"), (SPEC_ACK, 2, "bad length"), (SPEC_ACK, 67, "bad length"), (SPEC_DATA, 259, "bad length")],
)
def test_impossible_headers_are_refused_at_once(pid: int, length: int, reason: str) -> None:
    header = SPEC_START + SPEC_ADDR + bytes([pid]) + u16(length)
    events = decode_all(header)
    # No waiting for a body that never comes.
    assert events == [Garbage(len(header), reason)]  # type: ignore[arg-type]


def test_lost_byte_in_a_packet_is_reported_not_handed_up() -> None:
    wire = spec_packet(SPEC_DATA, bytes(128))
    dropped = wire[:40] + wire[41:]
    events = decode_all(dropped + GENIMG)
    assert any(isinstance(e, Garbage) for e in events)
    assert [e for e in events if not isinstance(e, Garbage)] == [CommandPacket(0xFFFFFFFF, 1)]


def test_eof_reports_a_partial_packet() -> None:
    dec = PacketDecoder()
    assert dec.feed(ACK_OK[:5]) == []
    assert dec.feed(b"") == [Garbage(5, "no start code")]
    assert dec.buffered == 0


def test_deserialize_refuses_partial_and_garbage() -> None:
    with pytest.raises(FrameError):
        Packet.deserialize(ACK_OK[:-1])
    with pytest.raises(FrameError):
        Packet.deserialize(b"\x00" + ACK_OK)


@given(st.binary(max_size=2000), st.integers(1, 300))
def test_arbitrary_bytes_never_raise_and_stay_bounded(data: bytes, step: int) -> None:
    dec = PacketDecoder()
    for i in range(0, len(data), step):
        try:
            dec.feed(data[i : i + step])
        except CodecError:
            pass
        assert dec.buffered < dec.max_frame
    dec.feed(b"")
    assert dec.buffered == 0


@given(st.lists(st.sampled_from([GENIMG, ACK_OK, b"\xef", b"\x01", b"\xef\x01", b"\x00" * 3])))
def test_start_code_soup_is_bounded(pieces: list[bytes]) -> None:
    dec = PacketDecoder()
    for p in pieces:
        dec.feed(p)
        assert dec.buffered < dec.max_frame


# ---------------------------------------------------------------- instruction table


def _params_strategy(name: str) -> st.SearchStrategy[dict[str, int]]:
    spec = INSTRUCTIONS[name]
    return st.fixed_dictionaries({f.name: st.integers(0, f.maximum) for f in spec.params})


@pytest.mark.parametrize("name", sorted(INSTRUCTIONS))
@settings(max_examples=40)  # times 27 instructions; keeps the CI budget
@given(data=st.data(), address=st.integers(0, 0xFFFFFFFF))
def test_every_instruction_round_trips(name: str, data: st.DataObject, address: int) -> None:
    params = data.draw(_params_strategy(name))
    wire = encode_command(name, address=address, **params)
    # Independent check of the bytes: instruction code, then each field big-endian.
    spec = INSTRUCTIONS[name]
    payload = bytes([spec.code]) + b"".join(params[f.name].to_bytes(f.size, "big") for f in spec.params)
    assert wire == spec_packet(SPEC_CMD, payload, address.to_bytes(4, "big"))
    (pkt,) = decode_all(wire)
    assert isinstance(pkt, CommandPacket)
    cmd = parse_command(pkt)
    assert cmd.instruction is spec and dict(cmd.params) == params
    # And the acknowledge with its reply fields.
    reply_values: dict[str, int | bytes] = {
        f.name: (data.draw(st.binary(min_size=f.size, max_size=f.size)) if f.name in spec.raw_reply
                 else data.draw(st.integers(0, f.maximum)))
        for f in spec.reply
    }
    ack_wire = encode_reply(name, 0, address=address, **reply_values)
    (ack,) = decode_all(ack_wire)
    assert isinstance(ack, AckPacket)
    reply = parse_reply(name, ack)
    assert reply.ok and dict(reply.fields) == reply_values


def test_encoder_refuses_misuse_before_the_wire() -> None:
    with pytest.raises(EncodeError):
        encode_command("Store", BufferID=1)  # missing PageID
    with pytest.raises(EncodeError):
        encode_command("Store", BufferID=1, PageID=70000)
    with pytest.raises(EncodeError):
        encode_command("GenImg", Extra=1)
    with pytest.raises(EncodeError):
        encode_command("NoSuchThing")
    with pytest.raises(EncodeError):
        encode_command("GenImg", address=1 << 32)
    with pytest.raises(EncodeError):
        encode_command("Img2Tz", BufferID=True)


def test_parse_command_refuses_wrong_lengths_and_unknown_codes() -> None:
    with pytest.raises(FrameError):
        parse_command(CommandPacket(0xFFFFFFFF, 0x06, b"\x01"))
    with pytest.raises(FrameError):
        parse_command(CommandPacket(0xFFFFFFFF, 0x7E))


def test_failure_replies_short_or_zero_filled() -> None:
    short = parse_reply("Search", AckPacket(0xFFFFFFFF, 0x09))
    assert not short.ok and short.outcome is Outcome.NO_MATCH and short.fields == {}
    filled = parse_reply("Search", AckPacket(0xFFFFFFFF, 0x09, bytes(4)))
    assert filled.fields == {}
    with pytest.raises(FrameError):
        parse_reply("Search", AckPacket(0xFFFFFFFF, 0x00, bytes(3)))
    with pytest.raises(FrameError):
        short.int_field("PageID")


def test_confirmation_codes_split_by_who_must_act() -> None:
    assert ConfirmationCode.NO_FINGER.outcome is Outcome.USER_RETRY
    assert ConfirmationCode.IMAGE_MESSY.outcome is Outcome.USER_RETRY
    assert ConfirmationCode.FEATURE_FAIL.outcome is Outcome.USER_RETRY
    assert ConfirmationCode.NOT_FOUND.outcome is Outcome.NO_MATCH
    assert ConfirmationCode.FLASH_ERROR.outcome is Outcome.FAULT
    assert ConfirmationCode.WRONG_PASSWORD.outcome is Outcome.FAULT
    assert ConfirmationCode.describe(0x77) == ("unknown confirmation code 0x77", Outcome.FAULT)
    assert all(c.meaning for c in ConfirmationCode)


# ---------------------------------------------------------------- SysPara


def test_syspara_parsed_from_spec_bytes() -> None:
    raw = u16(0x0004) + u16(0x0009) + u16(1000) + u16(3) + b"\xff\xff\xff\xff" + u16(2) + u16(6)
    (ack,) = decode_all(spec_packet(SPEC_ACK, b"\x00" + raw))
    assert isinstance(ack, AckPacket)
    sp = SysPara.deserialize(parse_reply("ReadSysPara", ack).bytes_field("SysPara"))
    assert (sp.library_size, sp.security_level, sp.packet_size, sp.baudrate) == (1000, 3, 128, 57600)
    assert sp.device_address == 0xFFFFFFFF and sp.system_id == 9
    assert sp.password_verified and not sp.busy
    assert sp.serialize() == raw
    with pytest.raises(FrameError):
        SysPara.deserialize(raw[:-1])
    with pytest.raises(FrameError):
        _ = SysPara(0, 0, 0, 0, 0, 9, 6).packet_size
    with pytest.raises(EncodeError):
        SysPara(0, 0, 70000, 0, 0, 0, 6)


# ---------------------------------------------------------------- data streams and images


@given(st.binary(min_size=1, max_size=1000), st.sampled_from([32, 64, 128, 256]), st.integers(1, 97))
def test_data_stream_round_trip(data: bytes, size: int, step: int) -> None:
    wire = b"".join(encode_data_stream(data, size))
    # Independent: the spec says DATA packets of exactly `size`, then one END packet.
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    expected = b"".join(spec_packet(SPEC_DATA, p) for p in pieces[:-1]) + spec_packet(SPEC_END, pieces[-1])
    assert wire == expected
    rx = DataStreamReceiver(size, max_bytes=len(data))
    out = bytearray()
    for ev in decode_all(wire, step):
        assert isinstance(ev, DataPacket)
        chunk = rx.add(ev)
        assert chunk.offset == len(out)
        out += chunk.data
    assert bytes(out) == data and rx.done


def test_stream_receiver_refuses_overruns_short_packets_and_data_after_end() -> None:
    rx = DataStreamReceiver(32, max_bytes=64)
    with pytest.raises(FrameError):
        rx.add(DataPacket(0xFFFFFFFF, bytes(31)))  # a middle packet that lost a byte
    rx = DataStreamReceiver(32, max_bytes=64)
    rx.add(DataPacket(0xFFFFFFFF, bytes(32)))
    rx.add(DataPacket(0xFFFFFFFF, bytes(32)))
    with pytest.raises(FrameError):
        rx.add(DataPacket(0xFFFFFFFF, bytes(32), last=True))
    rx = DataStreamReceiver(32, max_bytes=64)
    rx.add(DataPacket(0xFFFFFFFF, bytes(5), last=True))
    with pytest.raises(FrameError):
        rx.add(DataPacket(0xFFFFFFFF, bytes(5), last=True))
    with pytest.raises(EncodeError):
        list(encode_data_stream(b"x", 100))
    with pytest.raises(EncodeError):
        list(encode_data_stream(b"", 128))


def test_image_nibbles_high_first_scaled_by_17() -> None:
    asm = ImageAssembler(expected_pixels=4)
    asm.add(bytes([0x0F, 0xA3]))
    assert bytes(asm.finish()) == bytes([0, 255, 170, 51])
    asm = ImageAssembler()
    asm.add(bytes([0x12]))
    asm.add(bytes([0x34]))
    assert bytes(asm.finish()) == bytes([17, 34, 51, 68])
    with pytest.raises(FrameError):
        ImageAssembler(max_pixels=2).add(b"\x00\x00")


@given(st.binary(max_size=300).map(lambda b: b if len(b) % 2 == 0 else b[:-1]))
def test_pack_then_assemble_keeps_the_top_nibble(pixels: bytes) -> None:
    asm = ImageAssembler()
    packed = pack_4bit(pixels)
    if packed:
        asm.add(packed)
    assert bytes(asm.finish()) == bytes((p >> 4) * 17 for p in pixels)


def test_geometry_from_data_not_a_constant() -> None:
    assert image_geometry(256 * 288) == (256, 288)
    assert image_geometry(192 * 192) == (192, 192)
    assert image_geometry(100 * 40, width_hint=100) == (100, 40)
    with pytest.raises(FrameError):
        image_geometry(1234)
    with pytest.raises(FrameError):
        image_geometry(1234, width_hint=100)
    with pytest.raises(EncodeError):
        pack_4bit(b"\x00")


# ---------------------------------------------------------------- summaries never leak


def test_summaries_elide_payloads_and_secrets() -> None:
    (pw,) = decode_all(encode_command("VfyPwd", Password=0x1234ABCD))
    assert isinstance(pw, CommandPacket)
    assert "1234" not in summarize(pw) and "<redacted>" in summarize(pw)
    assert "12 34 ab cd" not in trace_bytes(pw)
    secret = bytes(random.Random(1).randrange(256) for _ in range(128))
    data = DataPacket(0xFFFFFFFF, secret)
    assert secret.hex(" ")[:20] not in trace_bytes(data) and "<128B elided>" in trace_bytes(data)
    assert summarize(data) == "data <128B elided>"
    assert summarize(CommandPacket(0xFFFFFFFF, 0x02, b"\x01")) == "cmd Img2Tz(BufferID=1)"
    assert summarize(AckPacket(0xFFFFFFFF, 0x02)) == "ack 0x02 no finger on the sensor"
