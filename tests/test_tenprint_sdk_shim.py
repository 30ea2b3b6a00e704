"""The vendor-library seam's ctypes mapping, checked against a FAKE shim compiled here.

This is not a vendor SDK and proves nothing about any real scanner: it only checks that
``VendorLibraryBackend`` passes and reads the documented ``rk_tp_*`` C ABI correctly (structure
layouts, out-parameters, return-code mapping). The shim below is written in the test, from the
ABI comment in ``drivers/fingerprint/tenprint.py``, not generated from the Python code.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from drivers.errors import DeviceFaultError, DeviceMissingError, DeviceProtocolError
from drivers.fingerprint.base import FingerPosition, FingerQualityError, Slap
from drivers.fingerprint.tenprint import TenPrintScanner, VendorLibraryBackend

SHIM_C = r"""
#include <stddef.h>
#include <string.h>

struct rk_tp_info { char make[64], model[64], serial[64], firmware[64]; int ppi, width, height, flags; };
struct rk_tp_segment { int position, left, top, right, bottom; };

static int mode = 0;        /* set by the test: which answer to give */
static int armed_code = 0;
static int armed_missing = 0;
static int polls = 0;
static int handle_storage = 42;

void rk_test_set(int m) { mode = m; }
int rk_test_missing(void) { return armed_missing; }

int rk_tp_open(void **h) { if (mode == 1) return 1; *h = &handle_storage; return 0; }
int rk_tp_info(void *h, struct rk_tp_info *out) {
    if (h != &handle_storage) return 7;
    memset(out, 0, sizeof *out);
    strcpy(out->make, "FakeVendor"); strcpy(out->model, "Shim-4-4-2");
    strcpy(out->serial, "SN-0001"); strcpy(out->firmware, "0.1");
    out->ppi = 500; out->width = 400; out->height = 200; out->flags = 1;
    return 0;
}
int rk_tp_start(void *h, int code, int rolled, int missing) {
    (void)h; (void)rolled; armed_code = code; armed_missing = missing; polls = 0; return 0;
}
int rk_tp_poll(void *h, int *status) {
    (void)h;
    if (mode == 3) return 3;        /* finger moved */
    if (mode == 4) return 4;        /* too dry */
    if (mode == 6) return 6;        /* hardware fault */
    if (mode == 9) { *status = 9; return 0; }  /* a status the ABI does not define */
    if (mode == 99) return 99;      /* a code the table does not know */
    *status = polls++ == 0 ? 1 : 2;
    return 0;
}
int rk_tp_result(void *h, unsigned char *buf, size_t len, int *w, int *hh,
                 struct rk_tp_segment *segs, int max_segs, int *n) {
    (void)h;
    int width = armed_code <= 10 ? 200 : 400, height = 200;
    if ((size_t)(width * height) > len) return 7;
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            buf[y * width + x] = ((x + y) / 5) % 2 ? 40 : 220;   /* diagonal "ridges" */
    *w = width; *hh = height; *n = 0;
    if (armed_code == 13) {
        int pos[4] = {2, 3, 4, 5};
        for (int i = 0; i < 4 && i < max_segs; i++) {
            if (armed_missing & (1 << pos[i])) continue;
            segs[*n].position = pos[i]; segs[*n].left = i * 100; segs[*n].top = 0;
            segs[*n].right = i * 100 + 100; segs[*n].bottom = 200; (*n)++;
        }
    }
    return 0;
}
int rk_tp_abort(void *h) { (void)h; return 0; }
int rk_tp_close(void *h) { (void)h; return 0; }
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the fake shim")
    d = tmp_path_factory.mktemp("shim")
    src = d / "fake_shim.c"
    src.write_text(SHIM_C)
    lib = d / "libfake_shim.so"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", "-o", str(lib), str(src)], check=True, timeout=60
    )
    return lib


def _mode(lib: Path, m: int) -> None:
    ctypes.CDLL(str(lib)).rk_test_set(m)  # same loaded object: dlopen returns the same handle


def test_capture_through_the_fake_shim(shim: Path) -> None:
    _mode(shim, 0)
    scanner = TenPrintScanner(VendorLibraryBackend(shim), poll_interval=0.001)
    scanner.open()
    try:
        ident = scanner.identify()
        assert (ident.make, ident.model, ident.serial, ident.firmware) == (
            "FakeVendor",
            "Shim-4-4-2",
            "SN-0001",
            "0.1",
        )
        assert ident.evidence == "emulator only" and not ident.emulated
        caps = scanner.capabilities()
        assert caps.slaps == frozenset(Slap) and not caps.rolled and caps.ppi == 500
        finger = scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=2)
        pixels = np.asarray(finger.image)
        assert pixels.shape == (200, 200)
        assert pixels[0, 0] == 220 and pixels[0, 5] == 40  # row-major, as the shim wrote it
        slap = scanner.capture_slap(Slap.RIGHT_FOUR, timeout=2, skip=[FingerPosition.RIGHT_RING])
        assert [f.position for f in slap.fingers] == [2, 3, 5]
        assert slap.fingers[2].bbox == (300, 0, 400, 200)
        # The missing-finger mask reached the shim as bit 4.
        assert ctypes.CDLL(str(shim)).rk_test_missing() == 1 << 4
    finally:
        scanner.close()


@pytest.mark.parametrize(
    ("mode", "error", "reason"),
    [
        (3, FingerQualityError, "smudge"),
        (4, FingerQualityError, "dry"),
        (6, DeviceFaultError, None),
        (9, DeviceProtocolError, None),
        (99, DeviceFaultError, None),
    ],
)
def test_shim_return_codes_map_to_the_error_tree(
    shim: Path, mode: int, error: type[Exception], reason: str | None
) -> None:
    _mode(shim, 0)
    scanner = TenPrintScanner(VendorLibraryBackend(shim), poll_interval=0.001)
    scanner.open()
    try:
        _mode(shim, mode)
        with pytest.raises(error) as info:
            scanner.capture_finger(FingerPosition.LEFT_INDEX, timeout=2)
        if reason is not None:
            assert getattr(info.value, "reason", None) == reason
        if mode == 99:
            assert getattr(info.value, "code", None) == 99
    finally:
        _mode(shim, 0)
        scanner.close()


def test_shim_reporting_no_device_is_missing(shim: Path) -> None:
    _mode(shim, 1)
    try:
        with pytest.raises(DeviceMissingError, match="no scanner connected"):
            VendorLibraryBackend(shim).open()
    finally:
        _mode(shim, 0)
