"""Evolis ESC codec: framing, chunking, garbage, packing and round trips.

Expected wire bytes are written out from the guide's framing (ESC, text, CR) or built with
the small standalone helpers below, never with the encoder under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from firmware_protocols import evolis as ev
from firmware_protocols.errors import CodecError, EncodeError, FrameError

ESC = b"\x1b"
CR = b"\r"


def bitstring_pack(values: list[int], bits: int) -> bytes:
    """Independent MSB-first packer: concatenate binary digits, cut into bytes."""
    s = "".join(format(v, f"0{bits}b") for v in values)
    s += "0" * (-len(s) % 8)
    return bytes(int(s[i : i + 8], 2) for i in range(0, len(s), 8))


def feed_bytewise(dec: ev.CommandDecoder | ev.ReplyDecoder, data: bytes) -> list[object]:
    out: list[object] = []
    for i in range(len(data)):
        out += dec.feed(data[i : i + 1])
    return out


# ----------------------------------------------------------------------------- encoding


@pytest.mark.parametrize(
    ("args", "wire"),
    [
        (("Rtp",), ESC + b"Rtp" + CR),
        (("Pr", "ymcko"), ESC + b"Pr;ymcko" + CR),
        (("Pc", "y", "+", 10), ESC + b"Pc;y;+;10" + CR),
        (("Rco", "l"), ESC + b"Rco;l" + CR),
        (("Se",), ESC + b"Se" + CR),
    ],
)
def test_encode_command_matches_guide_framing(args: tuple[str, ...], wire: bytes) -> None:
    assert ev.encode_command(*args) == wire


@pytest.mark.parametrize(
    "args",
    [("Xyz",), ("Rtp", "x"), ("Pr",), ("Pr", "a;b"), ("Pr", "a\rb"), ("Pr", ""), ("Pr", "é")],
)
def test_encode_command_refuses_misuse(args: tuple[str, ...]) -> None:
    with pytest.raises(EncodeError):
        ev.encode_command(*args)


def test_panel_sizes_follow_geometry() -> None:
    # 1016 lines x 648 dots; 81 bytes a 1-bit line (the Dualys tools' layout). The research
    # note's byte table (84,624 ...) does not divide into 648-dot lines; see docs/printing.md.
    assert ev.panel_bytes(2) == 1016 * 81 == 82_296
    assert ev.panel_bytes(32) == 1016 * 648 * 5 // 8 == 411_480
    assert ev.panel_bytes(64) == 493_776
    assert ev.panel_bytes(128) == 576_072
    with pytest.raises(EncodeError):
        ev.panel_bytes(16)


@pytest.mark.parametrize("levels", [2, 32, 64, 128])
def test_pack_matches_independent_bitstring(levels: int) -> None:
    bits = ev.LEVEL_BITS[levels]
    rng = np.random.default_rng(levels)
    head = [int(v) for v in rng.integers(0, levels, 64)]
    values = np.zeros(ev.PANEL_PIXELS, dtype=np.uint8)
    values[:64] = head
    packed = ev.pack_pixels(values, levels)
    assert len(packed) == ev.panel_bytes(levels)
    expected_head = bitstring_pack(head, bits)
    assert packed[: len(expected_head)] == expected_head
    assert set(packed[len(expected_head) :]) == {0}
    assert np.array_equal(ev.unpack_pixels(packed, levels), values)


def test_pack_refuses_bad_panels() -> None:
    with pytest.raises(EncodeError):
        ev.pack_pixels(np.zeros(10, dtype=np.uint8), 2)
    with pytest.raises(EncodeError):
        ev.pack_pixels(np.full(ev.PANEL_PIXELS, 2, dtype=np.uint8), 2)
    with pytest.raises(EncodeError):
        ev.pack_pixels(np.zeros(ev.PANEL_PIXELS, dtype=np.uint8), 3)
    with pytest.raises(FrameError):
        ev.unpack_pixels(b"\x00" * 10, 32)


def test_db_download_wire_bytes() -> None:
    data = bytes(range(256)) * (82_296 // 256) + bytes(82_296 % 256)
    wire = ev.Download("k", 2, data).serialize()
    assert wire == ESC + b"Db;k;2;" + data + CR


def test_download_refuses_misuse() -> None:
    with pytest.raises(EncodeError):
        ev.Download("k", 32, bytes(ev.panel_bytes(32)))  # K is 1 bit
    with pytest.raises(EncodeError):
        ev.Download("x", 2, bytes(82_296))
    with pytest.raises(EncodeError):
        ev.Download("y", 32, b"short")
    with pytest.raises(EncodeError):
        ev.Download("y", 32, b"\x00", compressed=True)  # YMC compression not implemented
    with pytest.raises(EncodeError):
        ev.Download("k", 2, b"\x00", compressed=True, first_line=1016)


# ----------------------------------------------------------------------------- Dbc


def independent_compress(panel: bytes) -> bytes:
    out = b""
    for i in range(0, len(panel), 81):
        line = panel[i : i + 81]
        if line == bytes(81):
            out += b"\x00"
        elif line == b"\xff" * 81:
            out += b"\xff"
        else:
            n = len(line.rstrip(b"\x00"))
            out += bytes([n]) + line[:n]
    return out


def test_compress_ko_matches_rule() -> None:
    panel = bytearray(82_296)
    panel[0:81] = b"\xff" * 81  # black line
    panel[81:83] = b"\x80\x01"  # two bytes then white
    panel[81 * 5 + 80] = 0x0D  # ink in the last byte of a line; also a CR byte
    packed = bytes(panel)
    comp = ev.compress_ko(packed)
    assert comp == independent_compress(packed)
    assert comp[:4] == b"\xff\x02\x80\x01"
    assert ev.decompress_ko(comp) == packed


def test_decompress_rejects_bad_counts() -> None:
    with pytest.raises(FrameError):
        ev.decompress_ko(b"\x52" + bytes(82))  # 82 > 81
    with pytest.raises(FrameError):
        ev.decompress_ko(b"\x05\x01")  # truncated
    with pytest.raises(FrameError):
        ev.decompress_ko(b"\x00" * 1017)
    with pytest.raises(FrameError):
        ev.decompress_ko(b"\x00", first_line=-1)


# ----------------------------------------------------------------------------- decoding

STREAM = (
    ESC + b"Pr;ymcko" + CR
    + b"\x00\x00" + ESC + b"Ss" + CR  # NUL padding before ESC is not garbage
    + ESC + b"Dbc;k;2;0;3;\x02\x0d\x1b" + CR  # data holding CR and ESC bytes
    + ESC + b"Se" + CR
)
EXPECTED = [
    ev.Command("Pr", ("ymcko",)),
    ev.Command("Ss"),
    ev.Download("k", 2, b"\x02\x0d\x1b", compressed=True),
    ev.Command("Se"),
]


def test_decode_whole() -> None:
    dec = ev.CommandDecoder()
    assert dec.feed(STREAM) == EXPECTED
    assert dec.pending() == 0


def test_decode_byte_at_a_time() -> None:
    dec = ev.CommandDecoder()
    out: list[object] = []
    for i in range(len(STREAM)):
        got = dec.feed(STREAM[i : i + 1])
        out += got
    assert out == EXPECTED


def test_decode_keeps_trailing_partial_frame() -> None:
    dec = ev.CommandDecoder()
    tail = ESC + b"Rco;"
    assert dec.feed(STREAM + tail) == EXPECTED
    assert dec.pending() == len(tail)
    assert dec.feed(b"l" + CR) == [ev.Command("Rco", ("l",))]


def test_decode_uncompressed_panel_with_cr_bytes_inside() -> None:
    data = b"\x0d" * 82_296
    dec = ev.CommandDecoder()
    wire = ESC + b"Db;o;2;" + data + CR
    assert dec.feed(wire[:1000]) == []
    assert dec.feed(wire[1000:]) == [ev.Download("o", 2, data)]


def test_decode_resyncs_after_garbage() -> None:
    dec = ev.CommandDecoder()
    out = dec.feed(b"junk" + ESC + b"Nope" + CR + ESC + b"Rtp" + CR)
    assert out == [ev.Garbage(4), ev.Garbage(6), ev.Command("Rtp")]


def test_decode_bad_download_terminator_is_garbage() -> None:
    dec = ev.CommandDecoder()
    wire = ESC + b"Dbc;k;2;0;2;\x01\x01X" + ESC + b"Se" + CR
    out = dec.feed(wire)
    assert isinstance(out[0], ev.Garbage)
    assert out[-1] == ev.Command("Se")


def test_decode_endless_command_is_bounded() -> None:
    dec = ev.CommandDecoder()
    out = dec.feed(ESC + b"R" * 1000)
    assert out == [ev.Garbage(1001)]
    assert dec.pending() == 0


def test_reply_decoder() -> None:
    wire = b"Evolis Dualys" + CR + b"\x06" + b"\x15C" + b"OK\x00" + b"ERR CARD" + CR
    expected = [ev.Reply("Evolis Dualys"), ev.Ack(), ev.Nack("C"), ev.Reply("OK"), ev.Reply("ERR CARD")]
    assert ev.ReplyDecoder().feed(wire) == expected
    assert feed_bytewise(ev.ReplyDecoder(), wire) == expected
    assert ev.Nack("C").meaning == "cover open"
    assert ev.Nack("?").meaning == "unknown code"


def test_reply_decoder_garbage_and_bound() -> None:
    dec = ev.ReplyDecoder()
    assert dec.feed(b"O\x01K" + CR) == [ev.Garbage(1), ev.Garbage(1), ev.Reply("K")]
    assert dec.feed(b"A" * 300) == [ev.Garbage(300)]
    assert dec.feed(b"\x15\x01") == [ev.Garbage(2)]
    assert dec.feed(b"\x15") == []
    assert dec.pending() == 1


def test_reply_encoders() -> None:
    assert ev.encode_reply("OK") == b"OK\r"
    assert ev.encode_nack("F") == b"\x15F"
    assert ev.encode_ack() == b"\x06"
    with pytest.raises(EncodeError):
        ev.encode_reply("bad\r")
    with pytest.raises(EncodeError):
        ev.encode_nack("FF")


def test_job_builder_sequence() -> None:
    blank = np.zeros(ev.PANEL_PIXELS, dtype=np.uint8)
    panels = [ev.PanelData(p, 32, blank) for p in "ymc"] + [ev.PanelData(p, 2, blank) for p in "ko"]
    frames = list(ev.job_frames(panels, contrast=[("y", "+", 10)]))
    events: list[object] = []
    dec = ev.CommandDecoder()
    for f in frames:
        events += dec.feed(f)
    names = [e.name if isinstance(e, ev.Command) else f"D{getattr(e, 'panel', '?')}" for e in events]
    assert names == ["Pr", "Pc", "Ss", "Sr", "Dy", "Dm", "Dc", "Dk", "Do", "Se"]
    assert frames[0] == ESC + b"Pr;ymcko" + CR
    # A blank K panel compresses to one 0x00 per line.
    assert frames[7] == ESC + b"Dbc;k;2;0;1016;" + b"\x00" * 1016 + CR
    with pytest.raises(EncodeError):
        list(ev.job_frames([], ribbon="rainbow"))


# ----------------------------------------------------------------------------- properties

names = st.sampled_from(sorted(n for n, s in ev.COMMANDS.items() if s.min_params == s.max_params))
param = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=";"),
                min_size=1, max_size=12)


@given(name=names, params=st.lists(param, min_size=3, max_size=3), split=st.integers(0, 40))
def test_command_round_trip_any_split(name: str, params: list[str], split: int) -> None:
    n = ev.COMMANDS[name].min_params
    cmd = ev.Command(name, tuple(params[:n]))
    wire = cmd.serialize()
    dec = ev.CommandDecoder()
    assert dec.feed(wire[:split]) + dec.feed(wire[split:]) == [cmd]


@given(lines=st.lists(st.binary(min_size=81, max_size=81), max_size=6), first=st.integers(0, 1000))
@example(lines=[b"\xff" * 81, bytes(81), b"\x0d" + bytes(80)], first=0)
def test_dbc_round_trip(lines: list[bytes], first: int) -> None:
    panel = bytes(81 * first) + b"".join(lines)
    panel += bytes(82_296 - len(panel))
    comp = ev.compress_ko(panel)
    assert ev.decompress_ko(comp) == panel
    dl = ev.Download("o", 2, comp, compressed=True)
    assert ev.CommandDecoder().feed(dl.serialize()) == [dl]


@given(st.binary(max_size=300))
@example(ESC + b"Db;y;32;")
@example(ESC + b"Dbc;k;2;0;999999999;")
@example(ESC + b"Dbc;k;2;0;-1;")
@example(ESC + b"Db;\xff;2;")
def test_arbitrary_bytes_never_raise_foreign_errors(data: bytes) -> None:
    dec = ev.CommandDecoder()
    try:
        dec.feed(data)
        dec.feed(b"\r" + ESC + b"Rtp\r")
    except CodecError:
        pass
    assert dec.pending() <= len(data) + 6
    rdec = ev.ReplyDecoder()
    for e in rdec.feed(data):
        assert isinstance(e, ev.Reply | ev.Ack | ev.Nack | ev.Garbage)
    try:
        ev.decompress_ko(data)
    except CodecError:
        pass


@given(seed=st.integers(0, 2**32 - 1), levels=st.sampled_from([2, 32, 64, 128]))
def test_pack_unpack_round_trip_any_panel(seed: int, levels: int) -> None:
    values = np.random.default_rng(seed).integers(0, levels, ev.PANEL_PIXELS, dtype=np.uint8)
    packed = ev.pack_pixels(values, levels)
    assert len(packed) == ev.panel_bytes(levels)
    assert np.array_equal(ev.unpack_pixels(packed, levels), values)


@pytest.mark.parametrize("levels", [32, 128])
def test_random_colour_download_survives_the_wire_split_anywhere(levels: int) -> None:
    values = np.random.default_rng(levels).integers(0, levels, ev.PANEL_PIXELS, dtype=np.uint8)
    dl = ev.Download("y", levels, ev.pack_pixels(values, levels))
    wire = dl.serialize()
    for cut in (1, 7, len(wire) // 2, len(wire) - 1):
        dec = ev.CommandDecoder()
        assert dec.feed(wire[:cut]) + dec.feed(wire[cut:]) == [dl]


def test_orientation_round_trip() -> None:
    land = np.random.default_rng(1).integers(0, 2, (648, 1016), dtype=np.uint8)
    panel = ev.landscape_to_panel(land)
    assert panel.shape == (1016, 648)
    # Line 0 is the card's right edge, read top to bottom.
    assert np.array_equal(panel[0], land[:, 1015])
    assert np.array_equal(ev.panel_to_landscape(panel), land)
    with pytest.raises(EncodeError):
        ev.landscape_to_panel(land.T)
    with pytest.raises(FrameError):
        ev.panel_to_landscape(np.zeros(5, dtype=np.uint8))
