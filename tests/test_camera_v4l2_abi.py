"""The V4L2 layer's structure sizes, field offsets, ioctl numbers and constants match the kernel header.

The expected values come from a C program compiled here against the system's
``linux/videodev2.h`` (an independent source: the compiler's view of the real header).
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from drivers.camera import v4l2

STRUCTS = [
    "v4l2_capability", "v4l2_fmtdesc", "v4l2_frmsizeenum", "v4l2_format", "v4l2_pix_format",
    "v4l2_requestbuffers", "v4l2_buffer", "v4l2_queryctrl", "v4l2_control", "v4l2_timecode",
]
OFFSETS = [
    ("v4l2_capability", "capabilities"), ("v4l2_capability", "device_caps"),
    ("v4l2_fmtdesc", "pixelformat"), ("v4l2_frmsizeenum", "discrete"),
    ("v4l2_format", "fmt"), ("v4l2_requestbuffers", "capabilities"),
    ("v4l2_buffer", "bytesused"), ("v4l2_buffer", "timestamp"), ("v4l2_buffer", "timecode"),
    ("v4l2_buffer", "sequence"), ("v4l2_buffer", "memory"), ("v4l2_buffer", "m"),
    ("v4l2_buffer", "length"), ("v4l2_buffer", "request_fd"),
    ("v4l2_queryctrl", "minimum"), ("v4l2_queryctrl", "flags"),
]
IOCTLS = [
    "VIDIOC_QUERYCAP", "VIDIOC_ENUM_FMT", "VIDIOC_G_FMT", "VIDIOC_S_FMT", "VIDIOC_REQBUFS",
    "VIDIOC_QUERYBUF", "VIDIOC_QBUF", "VIDIOC_DQBUF", "VIDIOC_STREAMON", "VIDIOC_STREAMOFF",
    "VIDIOC_G_CTRL", "VIDIOC_S_CTRL", "VIDIOC_QUERYCTRL", "VIDIOC_ENUM_FRAMESIZES",
]
CONSTANTS = [
    "V4L2_CAP_VIDEO_CAPTURE", "V4L2_CAP_STREAMING", "V4L2_CAP_DEVICE_CAPS",
    "V4L2_BUF_TYPE_VIDEO_CAPTURE", "V4L2_MEMORY_MMAP", "V4L2_FIELD_ANY", "V4L2_FIELD_NONE",
    "V4L2_FRMSIZE_TYPE_DISCRETE", "V4L2_FRMSIZE_TYPE_STEPWISE", "V4L2_BUF_FLAG_ERROR",
    "V4L2_CTRL_FLAG_DISABLED", "V4L2_PIX_FMT_MJPEG", "V4L2_PIX_FMT_YUYV",
    "V4L2_CID_BRIGHTNESS", "V4L2_CID_CONTRAST", "V4L2_CID_SATURATION",
    "V4L2_CID_AUTO_WHITE_BALANCE", "V4L2_CID_GAIN", "V4L2_CID_WHITE_BALANCE_TEMPERATURE",
    "V4L2_CID_EXPOSURE_AUTO", "V4L2_CID_EXPOSURE_ABSOLUTE", "V4L2_EXPOSURE_MANUAL",
    "V4L2_EXPOSURE_APERTURE_PRIORITY",
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


def test_ioctl_names_cover_every_request() -> None:
    assert {v4l2.IOCTL_NAMES[getattr(v4l2, n)] for n in IOCTLS} == set(IOCTLS)
