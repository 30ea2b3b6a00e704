"""The face check runs without numpy (issue 7), and each Pillow step equals the numpy arithmetic
it replaced (a533ba2): bit for bit where the old values were exact, within 1e-6 where the old
version summed in float32 and this one sums in double."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from agent.quality.face import (
    FaceQuality,
    _count_clipped,
    _far_from,
    _luma,
    _percentile,
    _region,
    _scan_bands,
    _variance,
    check_face,
    check_face_jpeg,
)
from drivers.emulators.camera import Portrait, encode_jpeg, render_portrait
from drivers.pixelmath import median

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: one JPEG check and one check of a grey image, printed in full.
CHILD = """
import json, sys
if sys.argv[2] == "blocked":
    sys.modules["numpy"] = None  # every "import numpy" now raises ImportError
from PIL import Image
from agent.quality.face import check_face, check_face_jpeg

def fields(r):
    return [r.score, r.passed, [[c.name, c.passed, c.score, c.measured] for c in r.checks],
            list(r.not_checked)]

data = open(sys.argv[1], "rb").read()
results = [fields(check_face_jpeg(data, rule="blue")),
           fields(check_face(Image.open(sys.argv[1]).convert("L"), rule="blue"))]
loaded = sorted(m for m in sys.modules if m == "numpy" or m.startswith("numpy."))
print(json.dumps({"results": results, "numpy": loaded}))
"""


def _fields(r: FaceQuality) -> list[object]:
    return [r.score, r.passed, [[c.name, c.passed, c.score, c.measured] for c in r.checks],
            list(r.not_checked)]


@pytest.mark.parametrize("numpy_state", ["absent", "blocked"])
def test_the_check_runs_in_a_process_without_numpy(tmp_path: Path, numpy_state: str) -> None:
    # "absent": numpy is not loaded by the check; "blocked": nothing even tries to import it.
    img = render_portrait(1920, 1080, Portrait(blur=2, offset_x=0.04))
    path = tmp_path / "portrait.jpg"
    path.write_bytes(encode_jpeg(img))
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), numpy_state], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    if numpy_state == "absent":
        assert got["numpy"] == []
    data = path.read_bytes()
    want = [_fields(check_face_jpeg(data, rule="blue")),
            _fields(check_face(Image.open(path).convert("L"), rule="blue"))]
    assert got["results"] == json.loads(json.dumps(want))
    assert got["results"][0][1] is True  # a good portrait, so the comparison is not of failures


@pytest.mark.parametrize("size", [(0, 0), (0, 5), (5, 0)])
def test_an_empty_photo_is_a_clear_error(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="empty photo"):
        check_face(Image.new("RGB", size))


def test_the_scan_refuses_an_image_that_is_not_rgb() -> None:
    with pytest.raises(ValueError, match="RGB"):
        _scan_bands(Image.new("L", (8, 8)), (0.0, 0.0, 0.0))


def _rgb(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    # Greys near the clipping limits, where float32 rounding of the luminance decides.
    grey = rng.choice(np.array([0, 3, 4, 5, 6, 249, 250, 251, 252, 255], dtype=np.uint8), size=(h, w))
    edge = rng.random((h, w)) < 0.3
    arr[edge] = grey[edge][:, None]
    return arr


@settings(max_examples=40)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 2**31))
def test_luma_is_the_float32_luma_bit_for_bit(h: int, w: int, seed: int) -> None:
    arr = _rgb(seed, h, w)
    f = arr.astype(np.float32)
    want = f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114
    assert np.array_equal(np.asarray(_luma(Image.fromarray(arr))), want)


@settings(max_examples=40)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 2**31),
       st.tuples(*[st.integers(0, 510).map(lambda v: v / 2)] * 3), st.sampled_from([40, 45]))
def test_colour_distance_mask_is_the_float32_mask(
    h: int, w: int, seed: int, ref: tuple[float, float, float], limit: int
) -> None:
    arr = _rgb(seed, h, w)
    f = arr.astype(np.float32)
    r = np.array(ref, dtype=np.float32)
    want = np.abs(f - r).max(axis=-1) > limit
    assert np.array_equal(np.asarray(_far_from(Image.fromarray(arr), ref, limit)), want)


@given(st.lists(st.integers(0, 255), min_size=1, max_size=300))
def test_median_from_a_histogram_is_numpys_median(values: list[int]) -> None:
    counts = [0] * 256
    for v in values:
        counts[v] += 1
    assert median(enumerate(counts)) == float(np.median(np.array(values, dtype=np.float32)))


def test_median_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        median(enumerate([0] * 256))


@given(st.lists(st.integers(0, 4000), min_size=1, max_size=400), st.sampled_from([10, 50, 90, 99]))
def test_percentile_is_numpys_to_the_bit(values: list[int], q: int) -> None:
    assert _percentile(values, q) == float(np.percentile(np.array(values), q))


@settings(max_examples=40)
@given(st.integers(1, 40), st.integers(1, 3000), st.floats(-300, 300), st.floats(0.1, 60),
       st.integers(0, 2**31))
def test_variance_is_the_double_variance(h: int, w: int, centre: float, spread: float, seed: int) -> None:
    # Shapes as the check uses: a face box, and the border strips as one long line.
    values = np.random.default_rng(seed).normal(centre, spread, (h, w)).astype(np.float32)
    want = float(values.astype(np.float64).var())
    assert _variance(Image.fromarray(values)) == pytest.approx(want, rel=1e-5, abs=1e-6 * spread * spread)


_bound = st.one_of(st.none(), st.integers(-12, 12))


@given(st.integers(1, 9), st.integers(1, 9), _bound, _bound, _bound, _bound)
def test_region_slices_as_numpy_does(
    h: int, w: int, y0: int | None, y1: int | None, x0: int | None, x1: int | None
) -> None:
    # The check's boxes may have negative bounds on tiny images; they must select what the
    # numpy version's slices selected.
    arr = np.arange(h * w, dtype=np.uint8).reshape(h, w)
    got = np.asarray(_region(Image.fromarray(arr), slice(y0, y1), slice(x0, x1)))
    want = arr[y0:y1, x0:x1]
    assert got.shape == want.shape
    assert np.array_equal(got, want)


@pytest.mark.parametrize(("low", "high"), [(3, 252), (5, 250)])
def test_grey_levels_decide_clipping_except_at_the_limits_for_every_rgb_triple(low: int, high: int) -> None:
    # _count_clipped trusts Pillow's rounded grey level except at exactly ``low`` and ``high``;
    # every one of the 2^24 colours must agree with the float32 luminance there.
    g, b = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    for r in range(256):
        arr = np.stack([np.full_like(g, r), g, b], axis=-1)
        f = arr.astype(np.float32)
        clipped = (lambda y: (y <= low) | (y >= high))(f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114)
        grey = np.asarray(Image.fromarray(arr).convert("L"))
        decided = (grey != low) & (grey != high)
        assert np.array_equal(clipped[decided], ((grey < low) | (grey > high))[decided]), r


@settings(max_examples=60)
@given(st.integers(1, 70), st.integers(1, 40), st.integers(0, 2**31), st.sampled_from([(3, 252), (5, 250)]))
def test_clipped_count_is_the_float32_count(h: int, w: int, seed: int, limits: tuple[int, int]) -> None:
    low, high = limits
    arr = _rgb(seed, h, w)
    f = arr.astype(np.float32)
    luma = f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114
    assert _count_clipped(Image.fromarray(arr), low, high) == int(((luma <= low) | (luma >= high)).sum())
