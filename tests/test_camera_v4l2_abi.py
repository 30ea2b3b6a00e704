"""The V4L2 layer's structure sizes, field offsets, ioctl numbers and constants match the kernel header.

The expected values come from a C program compiled here against the system's
``linux/videodev2.h`` (an independent source: the compiler's view of the real header).
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.camera import v4l2

STRUCTS = [
    "v4l2_capability", "v4l2_fmtdesc", "v4l2_frmsizeenum", "v4l2_format", "v4l2_pix_format",
    "v4l2_requestbuffers", "v4l2_buffer", "v4l2_queryctrl", "v4l2_control", "v4l2_timecode",
    "v4l2_fract", "v4l2_captureparm", "v4l2_streamparm",
]
OFFSETS = [
    ("v4l2_capability", "capabilities"), ("v4l2_capability", "device_caps"),
    ("v4l2_fmtdesc", "pixelformat"), ("v4l2_frmsizeenum", "discrete"),
    ("v4l2_format", "fmt"), ("v4l2_requestbuffers", "capabilities"),
    ("v4l2_buffer", "bytesused"), ("v4l2_buffer", "timestamp"), ("v4l2_buffer", "timecode"),
    ("v4l2_buffer", "sequence"), ("v4l2_buffer", "memory"), ("v4l2_buffer", "m"),
    ("v4l2_buffer", "length"), ("v4l2_buffer", "request_fd"),
    ("v4l2_queryctrl", "minimum"), ("v4l2_queryctrl", "flags"),
    ("v4l2_fract", "denominator"), ("v4l2_captureparm", "capturemode"),
    ("v4l2_captureparm", "timeperframe"), ("v4l2_captureparm", "extendedmode"),
    ("v4l2_captureparm", "readbuffers"), ("v4l2_captureparm", "reserved"),
    ("v4l2_streamparm", "parm"),
]
IOCTLS = [
    "VIDIOC_QUERYCAP", "VIDIOC_ENUM_FMT", "VIDIOC_G_FMT", "VIDIOC_S_FMT", "VIDIOC_REQBUFS",
    "VIDIOC_QUERYBUF", "VIDIOC_QBUF", "VIDIOC_DQBUF", "VIDIOC_STREAMON", "VIDIOC_STREAMOFF",
    "VIDIOC_G_CTRL", "VIDIOC_S_CTRL", "VIDIOC_QUERYCTRL", "VIDIOC_ENUM_FRAMESIZES",
    "VIDIOC_G_PARM", "VIDIOC_S_PARM",
]
CONSTANTS = [
    "V4L2_CAP_VIDEO_CAPTURE", "V4L2_CAP_STREAMING", "V4L2_CAP_DEVICE_CAPS",
    "V4L2_BUF_TYPE_VIDEO_CAPTURE", "V4L2_MEMORY_MMAP", "V4L2_FIELD_ANY", "V4L2_FIELD_NONE",
    "V4L2_FRMSIZE_TYPE_DISCRETE", "V4L2_FRMSIZE_TYPE_STEPWISE", "V4L2_BUF_FLAG_ERROR",
    "V4L2_CTRL_FLAG_DISABLED", "V4L2_PIX_FMT_MJPEG", "V4L2_PIX_FMT_YUYV",
    "V4L2_CID_BRIGHTNESS", "V4L2_CID_CONTRAST", "V4L2_CID_SATURATION",
    "V4L2_CID_AUTO_WHITE_BALANCE", "V4L2_CID_GAIN", "V4L2_CID_WHITE_BALANCE_TEMPERATURE",
    "V4L2_CID_EXPOSURE_AUTO", "V4L2_CID_EXPOSURE_ABSOLUTE", "V4L2_EXPOSURE_MANUAL",
    "V4L2_EXPOSURE_APERTURE_PRIORITY", "V4L2_CAP_TIMEPERFRAME", "V4L2_MODE_HIGHQUALITY",
]


@pytest.fixture(scope="module")
def header_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    if shutil.which("gcc") is None or not Path("/usr/include/linux/videodev2.h").exists():
        pytest.skip("gcc or linux/videodev2.h missing (apt-get install gcc linux-libc-dev)")
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/videodev2.h>",
             "int main(void) {"]
    for s in STRUCTS:
        lines.append(f'printf("sizeof_{s} %zu\\n", sizeof(struct {s}));')
    for s, f in OFFSETS:
        lines.append(f'printf("offsetof_{s}_{f} %zu\\n", offsetof(struct {s}, {f}));')
    for n in IOCTLS + CONSTANTS:
        lines.append(f'printf("{n} %lu\\n", (unsigned long)({n}));')
    lines += ["return 0;", "}"]
    d = tmp_path_factory.mktemp("v4l2abi")
    (d / "abi.c").write_text("\n".join(lines))
    subprocess.run(["gcc", "-o", str(d / "abi"), str(d / "abi.c")], check=True, timeout=60)
    out = subprocess.run([str(d / "abi")], check=True, capture_output=True, text=True, timeout=10)
    return {k: int(v) for k, v in (line.split() for line in out.stdout.splitlines())}


@pytest.mark.parametrize("name", STRUCTS)
def test_struct_sizes(header_values: dict[str, int], name: str) -> None:
    assert ctypes.sizeof(getattr(v4l2, name)) == header_values[f"sizeof_{name}"]


@pytest.mark.parametrize(("struct", "field"), OFFSETS)
def test_field_offsets(header_values: dict[str, int], struct: str, field: str) -> None:
    cls = getattr(v4l2, struct)
    if field == "discrete":
        offset = cls.u.offset  # the anonymous union member
    else:
        offset = getattr(cls, field).offset
    assert offset == header_values[f"offsetof_{struct}_{field}"]


@pytest.mark.parametrize("name", IOCTLS + CONSTANTS)
def test_ioctl_numbers_and_constants(header_values: dict[str, int], name: str) -> None:
    assert getattr(v4l2, name) == header_values[name]


def test_fourcc_round_trip_and_known_values() -> None:
    # Values from the research note (linuxpy docs), independent of our fourcc().
    assert v4l2.fourcc("MJPG") == 1196444237
    assert v4l2.fourcc("YUYV") == 1448695129
    assert v4l2.fourcc_str(1196444237) == "MJPG"
    with pytest.raises(ValueError):
        v4l2.fourcc("MJPEG")


def test_streamparm_capture_sits_at_the_unions_offset(header_values: dict[str, int]) -> None:
    # timeperframe of a capture streamparm, as the kernel reads it: offset of parm + offset
    # of timeperframe inside v4l2_captureparm.
    parm = v4l2.v4l2_streamparm()
    parm.parm.capture.timeperframe.numerator = 1
    parm.parm.capture.timeperframe.denominator = 30
    at = header_values["offsetof_v4l2_streamparm_parm"] + header_values[
        "offsetof_v4l2_captureparm_timeperframe"]
    assert bytes(parm)[at:at + 8] == (1).to_bytes(4, sys.byteorder) + (30).to_bytes(4, sys.byteorder)


@pytest.mark.parametrize(("fps", "interval"), [
    (30, (1, 30)), (30.0, (1, 30)), (15, (1, 15)), (7.5, (2, 15)), (29.97, (100, 2997)),
    (0.5, (2, 1)), (1000, (1, 1000)), (0.001, (1000, 1)), (10000, (1, 10000)),
    (1e6, (1, 1_000_000)),
])
def test_interval_for_fps(fps: float, interval: tuple[int, int]) -> None:
    assert v4l2.interval_for_fps(fps) == interval
    assert v4l2.fps_of_interval(*interval) == pytest.approx(fps)


@pytest.mark.parametrize("bad", [0, 0.0009, -1, 1_000_001, float("nan"), float("inf"), True, "30"])
def test_interval_for_fps_refuses_nonsense(bad: object) -> None:
    with pytest.raises(ValueError, match="fps must be a number"):
        v4l2.interval_for_fps(bad)  # type: ignore[arg-type]


def test_fps_of_a_zero_interval_is_unknown() -> None:
    assert v4l2.fps_of_interval(0, 30) is None
    assert v4l2.fps_of_interval(1, 0) is None


def test_ioctl_names_cover_every_request() -> None:
    assert {v4l2.IOCTL_NAMES[getattr(v4l2, n)] for n in IOCTLS} == set(IOCTLS)
