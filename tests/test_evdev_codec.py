"""The evdev input_event codec and stroke assembly: chunking, bad input, round trips, header constants."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from firmware_protocols import evdev
from firmware_protocols.errors import CodecError, EncodeError, FrameError
from firmware_protocols.evdev import EvdevDecoder, InputEvent, StrokeAssembler

# Expected bytes are built here with struct, independently of the codec's own Struct.


def raw64(sec: int, usec: int, etype: int, code: int, value: int) -> bytes:
    """A 64-bit struct input_event: two s64, two u16, one s32, little-endian."""
    return (
        sec.to_bytes(8, "little", signed=True)
        + usec.to_bytes(8, "little", signed=True)
        + etype.to_bytes(2, "little")
        + code.to_bytes(2, "little")
        + value.to_bytes(4, "little", signed=True)
    )


def raw32(sec: int, usec: int, etype: int, code: int, value: int) -> bytes:
    """A 32-bit struct input_event (16 bytes)."""
    return (
        sec.to_bytes(4, "little")
        + usec.to_bytes(4, "little")
        + etype.to_bytes(2, "little")
        + code.to_bytes(2, "little")
        + value.to_bytes(4, "little", signed=True)
    )


STREAM = [
    (10, 1, 3, 0, 100),  # ABS_X
    (10, 1, 3, 1, 200),  # ABS_Y
    (10, 1, 3, 0x18, 500),  # ABS_PRESSURE
    (10, 1, 1, 0x14A, 1),  # BTN_TOUCH down
    (10, 1, 0, 0, 0),  # SYN_REPORT
    (10, 9000, 3, 0, 150),
    (10, 9000, 0, 0, 0),
    (10, 18000, 1, 0x14A, 0),  # BTN_TOUCH up
    (10, 18000, 0, 0, 0),
]


def test_whole_stream_decodes() -> None:
    data = b"".join(raw64(*e) for e in STREAM)
    events = EvdevDecoder().feed(data)
    assert [(e.sec, e.usec, e.type, e.code, e.value) for e in events] == STREAM


def test_byte_at_a_time_needs_more_until_each_event_completes() -> None:
    data = b"".join(raw64(*e) for e in STREAM)
    dec = EvdevDecoder()
    got: list[InputEvent] = []
    for i in range(len(data)):
        out = dec.feed(data[i : i + 1])
        if (i + 1) % 24:
            assert out == []
        else:
            assert len(out) == 1
        got += out
    assert len(got) == len(STREAM)
    dec.close()


def test_trailing_partial_bytes_remain_and_close_reports_them() -> None:
    data = raw64(*STREAM[0]) + raw64(*STREAM[1])[:10]
    dec = EvdevDecoder()
    assert len(dec.feed(data)) == 1
    assert dec.pending == 10
    with pytest.raises(FrameError):
        dec.close()


def test_32bit_layout() -> None:
    data = b"".join(raw32(*e) for e in STREAM)
    events = EvdevDecoder(layout="32").feed(data)
    assert [(e.sec, e.usec, e.type, e.code, e.value) for e in events] == STREAM
    assert evdev.event_size("32") == 16
    assert evdev.event_size("64") == 24


def test_misaligned_stream_is_refused() -> None:
    data = b"\x00" * 5 + b"".join(raw64(*e) for e in STREAM)
    dec = EvdevDecoder()
    with pytest.raises(FrameError):
        # one of the shifted records lands a huge usec
        for _ in range(3):
            dec.feed(data)


def test_deserialize_and_serialize_match_independent_bytes() -> None:
    raw = raw64(1_700_000_000, 123456, 3, 0x18, -7)
    ev, rest = InputEvent.deserialize(raw + b"tail")
    assert rest == b"tail"
    assert ev.serialize() == raw
    assert ev.time == pytest.approx(1_700_000_000.123456)
    assert InputEvent(5, 6, 1, 0x14A, 1).serialize("32") == raw32(5, 6, 1, 0x14A, 1)
    with pytest.raises(FrameError):
        InputEvent.deserialize(raw[:23])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"type": 0x10000},
        {"code": -1},
        {"value": 2**31},
        {"usec": 1_000_000},
    ],
)
def test_encode_rejects_out_of_range(kwargs: dict[str, int]) -> None:
    base = {"sec": 1, "usec": 0, "type": 0, "code": 0, "value": 0}
    base.update(kwargs)
    with pytest.raises(EncodeError):
        InputEvent.checked(**base)
    with pytest.raises(EncodeError):
        InputEvent(**base).serialize()
    with pytest.raises(EncodeError):
        InputEvent(2**32, 0, 0, 0, 0).serialize("32")
    assert InputEvent.checked(1, 2, 3, 4, 5) == InputEvent(1, 2, 3, 4, 5)


events_st = st.builds(
    InputEvent,
    sec=st.integers(0, 2**32 - 1),
    usec=st.integers(0, 999_999),
    type=st.integers(0, 0xFFFF),
    code=st.integers(0, 0xFFFF),
    value=st.integers(-(2**31), 2**31 - 1),
)


@given(st.lists(events_st, max_size=20), st.sampled_from(["64", "32"]), st.data())
def test_round_trip_any_chunking(events: list[InputEvent], layout: str, data: st.DataObject) -> None:
    blob = b"".join(e.serialize(layout) for e in events)  # type: ignore[arg-type]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(blob)), max_size=6)))
    dec = EvdevDecoder(layout=layout)  # type: ignore[arg-type]
    got: list[InputEvent] = []
    prev = 0
    for cut in [*cuts, len(blob)]:
        got += dec.feed(blob[prev:cut])
        prev = cut
    dec.close()
    assert got == events


@given(st.binary(max_size=300), st.sampled_from(["64", "32"]))
@example(b"\xff" * 24, "64")
@example(b"\x00" * 23, "64")
def test_arbitrary_bytes_raise_only_codec_errors(blob: bytes, layout: str) -> None:
    dec = EvdevDecoder(layout=layout)  # type: ignore[arg-type]
    try:
        dec.feed(blob)
        dec.close()
    except CodecError:
        pass
    asm = StrokeAssembler()
    try:
        asm.feed(EvdevDecoder(layout=layout).feed(blob[: len(blob) - len(blob) % 24]))  # type: ignore[arg-type]
    except CodecError:
        pass
    asm.finish()


def ev(t: float, etype: int, code: int, value: int) -> InputEvent:
    sec = int(t)
    return InputEvent(sec, int(round((t - sec) * 1e6)), etype, code, value)


def pen_events(points: list[tuple[int, int, int]], t0: float = 1.0) -> list[InputEvent]:
    """A stroke: touch down, positions, touch up."""
    out: list[InputEvent] = []
    t = t0
    for i, (x, y, p) in enumerate(points):
        out += [ev(t, 3, 0, x), ev(t, 3, 1, y), ev(t, 3, 0x18, p)]
        if i == 0:
            out.append(ev(t, 1, 0x14A, 1))
        out.append(ev(t, 0, 0, 0))
        t += 0.005
    out += [ev(t, 1, 0x14A, 0), ev(t, 3, 0x18, 0), ev(t, 0, 0, 0)]
    return out


def test_strokes_assemble_at_syn_report() -> None:
    asm = StrokeAssembler()
    s1 = pen_events([(1, 1, 10), (2, 2, 20), (3, 3, 30)])
    s2 = pen_events([(50, 50, 10), (60, 60, 10)], t0=2.0)
    # events before SYN_REPORT are not applied yet
    assert asm.feed(s1[:3]) == []
    done = asm.feed(s1[3:] + s2)
    assert [[(p.x, p.y, p.pressure) for p in s.points] for s in done] == [
        [(1, 1, 10), (2, 2, 20), (3, 3, 30)],
        [(50, 50, 10), (60, 60, 10)],
    ]
    assert asm.finish() == []


def test_pressure_only_device_and_open_stroke_at_finish() -> None:
    asm = StrokeAssembler(pressure_threshold=5)
    evs = [ev(1, 3, 0, 5), ev(1, 3, 1, 5), ev(1, 3, 0x18, 50), ev(1, 0, 0, 0),
           ev(1.1, 3, 0, 6), ev(1.1, 0, 0, 0)]
    assert asm.feed(evs) == []
    (stroke,) = asm.finish()
    assert [(p.x, p.y) for p in stroke.points] == [(5, 5), (6, 5)]


def test_syn_dropped_discards_until_next_report() -> None:
    asm = StrokeAssembler()
    evs = pen_events([(1, 1, 10), (2, 2, 20)])[:9]  # still touching
    evs += [ev(1.1, 3, 0, 999), ev(1.1, 0, 3, 0), ev(1.1, 3, 0, 888), ev(1.1, 0, 0, 0)]
    done = asm.feed(evs)
    assert asm.dropped == 1
    assert [(p.x, p.y) for p in done[0].points] == [(1, 1), (2, 2)]
    # after the dropped group, new reports are applied again
    asm.feed([ev(1.2, 3, 0, 7), ev(1.2, 0, 0, 0)])
    (tail,) = asm.finish()
    assert tail.points[-1].x == 7


def test_point_bound() -> None:
    asm = StrokeAssembler(max_points=3)
    asm.feed(pen_events([(i, i, 1) for i in range(10)]))
    assert sum(len(s.points) for s in asm.strokes) == 3


# ------------------------------------------------------------- constants vs kernel headers


def test_constants_match_kernel_headers(tmp_path: Path) -> None:
    if shutil.which("gcc") is None or not Path("/usr/include/linux/input.h").exists():
        pytest.skip("gcc or linux/input.h missing (apt-get install gcc linux-libc-dev)")
    names = ["EV_SYN", "EV_KEY", "EV_ABS", "SYN_REPORT", "SYN_DROPPED", "BTN_TOOL_PEN",
             "BTN_TOUCH", "BTN_STYLUS", "ABS_X", "ABS_Y", "ABS_PRESSURE"]
    src = "#include <stdio.h>\n#include <linux/input.h>\nint main(void){\n"
    src += 'printf("size %zu\\n", sizeof(struct input_event));\n'
    for n in names:
        src += f'printf("{n} %d\\n", (int){n});\n'
    src += "return 0;}\n"
    (tmp_path / "c.c").write_text(src)
    subprocess.run(["gcc", "-o", str(tmp_path / "c"), str(tmp_path / "c.c")], check=True, timeout=60)
    out = subprocess.run([str(tmp_path / "c")], check=True, capture_output=True, text=True, timeout=10)
    values = dict(line.split() for line in out.stdout.splitlines())
    native = "64" if struct.calcsize("P") == 8 else "32"
    assert int(values.pop("size")) == evdev.event_size(native)  # type: ignore[arg-type]
    for n, v in values.items():
        assert getattr(evdev, n) == int(v), n
