"""evdev ioctl numbers and structure sizes match the system's linux/input.h (compiled with gcc)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from drivers.signature import evdev_io


@pytest.fixture(scope="module")
def header(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    if shutil.which("gcc") is None or not Path("/usr/include/linux/input.h").exists():
        pytest.skip("gcc or linux/input.h missing (apt-get install gcc linux-libc-dev)")
    src = """
#include <stdio.h>
#include <linux/input.h>
int main(void) {
  printf("EVIOCGID %lu\\n", (unsigned long)EVIOCGID);
  printf("EVIOCGRAB %lu\\n", (unsigned long)EVIOCGRAB);
  printf("EVIOCGNAME256 %lu\\n", (unsigned long)EVIOCGNAME(256));
  printf("EVIOCGBIT_ABS8 %lu\\n", (unsigned long)EVIOCGBIT(EV_ABS, 8));
  printf("EVIOCGABS_X %lu\\n", (unsigned long)EVIOCGABS(ABS_X));
  printf("EVIOCGABS_Y %lu\\n", (unsigned long)EVIOCGABS(ABS_Y));
  printf("EVIOCGABS_PRESSURE %lu\\n", (unsigned long)EVIOCGABS(ABS_PRESSURE));
  printf("sizeof_input_id %zu\\n", sizeof(struct input_id));
  printf("sizeof_input_absinfo %zu\\n", sizeof(struct input_absinfo));
  return 0;
}
"""
    d = tmp_path_factory.mktemp("evdevabi")
    (d / "abi.c").write_text(src)
    subprocess.run(["gcc", "-o", str(d / "abi"), str(d / "abi.c")], check=True, timeout=60)
    out = subprocess.run([str(d / "abi")], check=True, capture_output=True, text=True, timeout=10)
    return {k: int(v) for k, v in (line.split() for line in out.stdout.splitlines())}


def test_ioctl_numbers(header: dict[str, int]) -> None:
    assert evdev_io.EVIOCGID == header["EVIOCGID"]
    assert evdev_io.EVIOCGRAB == header["EVIOCGRAB"]
    assert evdev_io.EVIOCGNAME(256) == header["EVIOCGNAME256"]
    assert evdev_io.EVIOCGBIT(3, 8) == header["EVIOCGBIT_ABS8"]
    assert evdev_io.EVIOCGABS(0) == header["EVIOCGABS_X"]
    assert evdev_io.EVIOCGABS(1) == header["EVIOCGABS_Y"]
    assert evdev_io.EVIOCGABS(0x18) == header["EVIOCGABS_PRESSURE"]


def test_struct_sizes(header: dict[str, int]) -> None:
    assert ctypes.sizeof(evdev_io.input_id) == header["sizeof_input_id"]
    assert ctypes.sizeof(evdev_io.input_absinfo) == header["sizeof_input_absinfo"]
