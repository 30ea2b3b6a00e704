"""The iris check runs without numpy (issue 7), and its Pillow and pure-Python steps select the
same pixels and values as the numpy arithmetic they replaced (a533ba2); odd inputs give a
result, never an exception."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from agent.quality.iris import _RAYS, IrisQuality, _annulus_runs, _mask, _ray, check_iris
from drivers.emulators.iris import IrisScene, render_iris
from drivers.pixelmath import median

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: checks of PNG files, printed in full.
CHILD = """
import json, sys
if sys.argv[1] == "blocked":
    sys.modules["numpy"] = None  # every "import numpy" now raises ImportError
from PIL import Image
from agent.quality.iris import check_iris

def fields(r):
    m = r.measure
    return [r.score, r.passed, [[c.name, c.passed, c.score, c.measured] for c in r.checks],
            None if m is None else [*m.centre, m.pupil_radius, m.iris_radius]]

results = [fields(check_iris(Image.open(path))) for path in sys.argv[2:]]
loaded = sorted(m for m, mod in sys.modules.items()
                if mod is not None and (m == "numpy" or m.startswith("numpy.")))
print(json.dumps({"results": results, "numpy": loaded}))
"""

SCENES = (IrisScene(), IrisScene(blur=3), IrisScene(occlusion=0.4), IrisScene(offset_x=230),
          IrisScene(present=False))


def _fields(r: IrisQuality) -> list[object]:
    m = r.measure
    return [r.score, r.passed, [[c.name, c.passed, c.score, c.measured] for c in r.checks],
            None if m is None else [*m.centre, m.pupil_radius, m.iris_radius]]


@pytest.mark.parametrize("numpy_state", ["absent", "blocked"])
def test_the_check_runs_in_a_process_without_numpy(tmp_path: Path, numpy_state: str) -> None:
    paths = []
    for k, scene in enumerate(SCENES):
        paths.append(tmp_path / f"eye{k}.png")
        render_iris(scene).save(paths[-1])
    out = subprocess.run([sys.executable, "-c", CHILD, numpy_state, *map(str, paths)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    child = json.loads(out.stdout)
    assert child["numpy"] == []
    # the same results as in this process (where numpy is loaded, for the emulator)
    assert child["results"] == [json.loads(json.dumps(_fields(check_iris(Image.open(p))))) for p in paths]


@pytest.mark.parametrize("radius", [21.9, 24.3])
def test_a_profile_too_short_for_a_rise_means_no_eye(radius: float) -> None:
    # A dark disc filling a small image leaves about eight radii between pupil and the
    # profile's end; the numpy version raised ValueError (argmax of nothing) here.
    size = 72 if radius < 24 else 80
    yy, xx = np.mgrid[0:size, 0:size]
    img = Image.fromarray(np.where(np.hypot(xx - size / 2, yy - size / 2) < radius, 10, 200).astype(np.uint8))
    result = check_iris(img)
    assert not result.passed and result.score == 0
    assert [c.name for c in result.failed()] == ["eye_found"]
    assert result.measure is None


@pytest.mark.parametrize("mode", ["1", "P", "RGBA", "I", "I;16", "F", "LA", "CMYK"])
def test_any_image_mode_is_checked_as_grey(mode: str) -> None:
    eye = render_iris(IrisScene())
    expected = check_iris(eye)
    result = check_iris(eye.convert(mode))
    assert 0 <= result.score <= 100
    if mode in ("RGBA", "I", "F", "LA"):  # lossless round trips of the grey levels
        assert _fields(result) == _fields(expected)


@pytest.mark.parametrize("size", [(0, 0), (0, 480), (640, 0), (1, 1), (31, 480), (640, 31)])
def test_empty_and_thin_images_give_no_eye(size: tuple[int, int]) -> None:
    result = check_iris(Image.new("L", size, 0))
    assert result.score == 0 and not result.passed
    assert [c.name for c in result.failed()] == ["eye_found"]


def test_eye_in_a_corner_of_a_large_frame() -> None:
    # The bounding boxes and rays are clipped to the frame wherever the eye sits.
    frame = Image.new("L", (1280, 960), 150)
    frame.paste(render_iris(IrisScene(offset_x=-250, offset_y=-150)), (0, 0))
    result = check_iris(frame)
    assert result.measure is not None
    assert "inside_frame" in {c.name for c in result.failed()}


@given(st.lists(st.integers(0, 5), min_size=1, max_size=40).filter(any))
def test_median_of_counts_is_numpys(counts: list[int]) -> None:
    values = np.repeat(np.arange(len(counts), dtype=np.float32), counts)
    assert median(enumerate(counts)) == float(np.median(values))


@given(
    st.floats(-20, 80), st.floats(-20, 60), st.floats(0.5, 15), st.floats(1, 40),
    st.sampled_from([(1, 0.0), (2, 0.5)]), st.booleans(),
)
def test_annulus_mask_is_the_per_pixel_test(
    cx: float, cy: float, inner: float, width: float, pos: tuple[int, float], horizontal: bool,
) -> None:
    # The row runs must give exactly the pixels the numpy version's float64 test picked.
    scale, off = pos
    outer = inner + width
    x0, x1, y0, y1 = 3, 47, 2, 33

    def at(i: int) -> float:
        return i * scale + off

    runs = _annulus_runs(x0, x1, range(y0, y1), at, cx, cy, inner, outer, horizontal)
    got = np.asarray(_mask(x1 - x0, y1 - y0, runs)) > 0
    yy, xx = np.mgrid[y0:y1, x0:x1]
    rr = np.hypot(xx * scale + off - cx, yy * scale + off - cy)
    want = (rr > inner) & (rr < outer)
    if horizontal:
        want &= np.abs(yy * scale + off - cy) < 0.5 * (rr + 1e-6)
    assert (got == want).all()


def test_exact_boundaries_follow_the_strict_and_closed_tests() -> None:
    # Integer centre and radii put pixels exactly on both circles: inner < r < outer is open.
    runs = _annulus_runs(0, 21, range(21), lambda i: float(i), 10.0, 10.0, 3.0, 5.0)
    got = np.asarray(_mask(21, 21, runs)) > 0
    yy, xx = np.mgrid[0:21, 0:21]
    rr = np.hypot(xx - 10.0, yy - 10.0)
    assert (got == ((rr > 3) & (rr < 5))).all()
    assert not got[10, 15] and not got[10, 13] and got[10, 14]


INDEX = Image.frombytes("I", (640, 480), np.arange(640 * 480, dtype=np.int32).tobytes())


def test_rays_are_the_numpy_versions_angles() -> None:
    angles = np.deg2rad(np.concatenate([np.arange(-30, 31, 3), np.arange(150, 211, 3)]))
    assert _RAYS == tuple(zip(np.cos(angles).tolist(), np.sin(angles).tolist(), strict=True))


@given(
    st.floats(0, 639) | st.integers(0, 1278).map(lambda v: v / 2),
    st.floats(0, 479) | st.integers(0, 958).map(lambda v: v / 2),
    st.floats(4, 60), st.integers(0, len(_RAYS) - 1),
)
def test_ray_samples_are_the_truncated_points(cx: float, cy: float, rp: float, k: int) -> None:
    # Each sample is the pixel numpy's int() picked for the same point (an image of pixel
    # indices shows which one Pillow took); half-pixel centres put points on pixel edges.
    c, s = _RAYS[k]
    radii = np.arange(rp * 1.2, min(288.0, rp * 8), 1.0)
    xs, ys = cx + radii * c, cy + radii * s
    inside = np.flatnonzero((xs >= 0) & (xs <= 639) & (ys >= 0) & (ys <= 479))
    if inside.size == 0:
        return
    p, q = int(inside[0]), int(inside[-1]) + 1
    got = np.frombuffer(_ray(INDEX, float(xs[p]), float(ys[p]), c, s, q - p).tobytes(), dtype=np.int32)
    assert got.tolist() == (ys[p:q].astype(int) * 640 + xs[p:q].astype(int)).tolist()
