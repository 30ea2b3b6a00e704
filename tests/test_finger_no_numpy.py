"""The finger quality score and slap segmentation run without numpy, and compute what they did.

Issue 7: the station daemon must not import numpy (about 15 MB of RSS). The checks in
``drivers/fingerprint/base.py`` and ``tenprint.py`` run on Pillow's C operations; these tests run
them in a child process where importing numpy fails, and hold their values to the numpy
formulation they were first written in (``numpy.gradient`` and 16x16 block means).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drivers.emulators.fingerprint_synth import PRESETS, synth_finger, synth_slap
from drivers.fingerprint.base import (
    CaptureArgumentError,
    FingerQualityError,
    QualityReport,
    estimate_quality,
)
from drivers.fingerprint.tenprint import segment_slap

ROOT = Path(__file__).resolve().parent.parent

# The child blocks numpy (an import of it raises), then drives the real scanner class over a
# stand-in SDK backend that hands out the parent's slap and finger images.
CHILD = textwrap.dedent(
    """
    import json, sys
    sys.modules["numpy"] = None  # any import of numpy now raises ImportError
    from PIL import Image
    from drivers.fingerprint.base import FingerPosition, Slap, estimate_quality
    from drivers.fingerprint.tenprint import (
        BackendInfo, Poll, RawCapture, TenPrintScanner, segment_slap,
    )

    finger = Image.open(sys.argv[1]); finger.load()
    slap = Image.open(sys.argv[2]); slap.load()

    class Backend:
        def __init__(self):
            self.code = 0
        def open(self): pass
        def close(self): pass
        def abort(self): pass
        def info(self):
            return BackendInfo("Test", "TP", "1", "1", 500, slap.size, True, False)
        def start(self, iso_code, *, rolled, missing=frozenset()):
            self.code = iso_code
        def poll(self):
            return Poll.DONE
        def result(self):
            image = slap if self.code == int(Slap.RIGHT_FOUR) else finger
            return RawCapture(image.width, image.height, 500, image.tobytes())

    report = estimate_quality(finger)
    boxes = [list(s.bbox) for s in segment_slap(slap, [2, 3, 4, 5])]
    scanner = TenPrintScanner(Backend())
    scanner.open()
    one = scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=1.0)
    four = scanner.capture_slap(Slap.RIGHT_FOUR, timeout=1.0)
    print(json.dumps({
        "report": [report.score, report.coherence, report.contrast, report.coverage,
                   report.mean_grey],
        "boxes": boxes,
        "capture_quality": one.quality,
        "slap": [[list(f.bbox), f.quality] for f in four.fingers],
        "numpy": "numpy" in sys.modules and sys.modules["numpy"] is not None,
    }))
    """
)


def _report_values(report: QualityReport) -> list[float]:
    return [
        report.score,
        report.coherence,
        report.contrast,
        report.coverage,
        report.mean_grey,
    ]


def test_checks_run_in_a_process_where_numpy_cannot_be_imported(tmp_path: Path) -> None:
    finger = Image.fromarray(synth_finger(4, 2))
    slap = Image.fromarray(synth_slap(3, (2, 3, 4, 5))[0])
    finger.save(tmp_path / "finger.png")
    slap.save(tmp_path / "slap.png")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "finger.png"), str(tmp_path / "slap.png")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    child = json.loads(proc.stdout)
    assert child["numpy"] is False
    # The same values as in this process (where numpy is loaded and the arrays came from it).
    assert child["report"] == _report_values(estimate_quality(finger))
    boxes = [list(s.bbox) for s in segment_slap(slap, [2, 3, 4, 5])]
    assert child["boxes"] == boxes
    assert child["capture_quality"] == estimate_quality(finger).score
    assert [box for box, _ in child["slap"]] == boxes
    assert [q for _, q in child["slap"]] == [
        estimate_quality(slap.crop(tuple(b))).score for b in boxes
    ]


def _numpy_reference(image: np.ndarray, *, ppi: int = 500, area: float = 0.3) -> list[float]:
    """The score as first written with numpy (np.gradient, 16x16 block means in float64)."""
    a = image.astype(np.float32)
    h, w = a.shape[0] // 16 * 16, a.shape[1] // 16 * 16
    a = a[:h, :w]
    gy, gx = np.gradient(a)

    def blocks(x: np.ndarray) -> np.ndarray:
        return x.reshape(h // 16, 16, w // 16, 16).mean(axis=(1, 3), dtype=np.float64)

    gxx, gyy, gxy = blocks(gx * gx), blocks(gy * gy), blocks(gx * gy)
    coherence = np.sqrt((gxx - gyy) ** 2 + 4 * gxy**2) / (gxx + gyy + 1e-6)
    mean = blocks(a)
    std = np.sqrt(np.maximum(blocks(a * a) - mean**2, 0.0))
    fg = (std >= 10.0) & (mean < 245.0)
    if not fg.any():
        return [0, 0.0, 0.0, 0.0, 255.0]
    contrast = np.clip(std / 60.0, 0.0, 1.0)
    coverage = min(1.0, int(fg.sum()) * 256 / float(ppi * ppi) / area)
    local = float((coherence[fg] * contrast[fg]).mean())
    return [
        max(0, min(100, int(round(100.0 * min(1.0, local / 0.9) * coverage**1.5)))),
        round(float(coherence[fg].mean()), 3),
        round(float(contrast[fg].mean()), 3),
        round(coverage, 3),
        round(float(mean[fg].mean()), 1),
    ]


@pytest.mark.parametrize(
    "label",
    ["good", "dry", "wet", "smudge", "partial", "rolled", "wide", "odd", "noise", "edges"],
)
def test_score_equals_the_numpy_formulation(label: str) -> None:
    # Several of these images are larger than one processing strip (2^16 pixels), so the
    # gradient is checked across strip joins as well as at the image's edges.
    rng = np.random.default_rng(len(label))
    if label in PRESETS:
        image = synth_finger(6, 7, conditions=PRESETS[label])
    elif label == "rolled":
        image = synth_finger(6, 7, rolled=True)
    elif label == "wide":
        image = np.full((500, 900), 255, np.uint8)
        image[20:468, 300:652] = synth_finger(2, 3)
    elif label == "odd":
        image = synth_finger(8, 1)[5:430, 3:341]  # neither side a multiple of 16
    elif label == "noise":
        image = rng.integers(0, 256, (612, 333)).astype(np.uint8)
    else:
        # Full-swing steps on the edges: the one-sided differences there reach 255.
        image = synth_finger(1, 9)
        image[:, 0] = 0
        image[0, :] = 0
        image[-1, ::2] = 0
        image[:, -1] = 255
    assert _report_values(estimate_quality(image)) == _numpy_reference(image)
    assert _report_values(estimate_quality(image, ppi=1000, expected_area_in2=0.1)) == (
        _numpy_reference(image, ppi=1000, area=0.1)
    )


def test_grey_modes_score_alike_and_the_input_is_untouched() -> None:
    image = Image.fromarray(synth_finger(9, 4))
    before = image.tobytes()
    expected = estimate_quality(image)
    for mode in ("F", "I", "I;16"):
        assert estimate_quality(image.convert(mode)) == expected
    assert estimate_quality(np.asarray(image)) == expected
    assert image.tobytes() == before and image.mode == "L"


def test_bad_images_are_refused_with_a_clear_error() -> None:
    finger = Image.fromarray(synth_finger(9, 4))
    with pytest.raises(CaptureArgumentError, match="mode RGB"):
        estimate_quality(finger.convert("RGB"))
    with pytest.raises(CaptureArgumentError, match="greyscale"):
        estimate_quality(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(CaptureArgumentError, match="greyscale"):
        estimate_quality("finger.png")  # type: ignore[arg-type]
    with pytest.raises(CaptureArgumentError, match="at least 16x16"):
        estimate_quality(Image.new("L", (200, 15)))
    with pytest.raises(CaptureArgumentError, match="mode RGB"):
        segment_slap(Image.new("RGB", (1600, 1000)), [2])
    # Smaller than one block: nothing to segment is a retry, not a crash.
    with pytest.raises(FingerQualityError) as info:
        segment_slap(Image.new("L", (10, 10)), [2])
    assert info.value.reason == "partial"
