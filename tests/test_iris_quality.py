"""Iris quality method on synthetic eyes with known ground truth, and on odd inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from agent.quality.iris import NOT_CHECKED, check_iris
from drivers.emulators.iris import IrisScene, pupil_to_iris, render_iris, visible_iris_share


def failed(scene: IrisScene) -> set[str]:
    return {c.name for c in check_iris(render_iris(scene)).failed()}


def test_good_eye_passes_and_measures_ground_truth() -> None:
    scene = IrisScene()
    result = check_iris(render_iris(scene))
    assert result.passed and result.score == 100
    assert result.measure is not None
    assert result.measure.iris_radius == pytest.approx(scene.iris_radius, abs=4)
    assert result.measure.pupil_radius / result.measure.iris_radius == pytest.approx(
        pupil_to_iris(scene), abs=0.03)
    assert set(NOT_CHECKED) <= set(result.not_checked)
    assert result.as_dict()["passed"] is True


@pytest.mark.parametrize("ratio", [0.25, 0.4, 0.55])
def test_pupil_ratio_estimate_tracks_truth(ratio: float) -> None:
    scene = IrisScene(pupil_ratio=ratio)
    m = check_iris(render_iris(scene)).measure
    assert m is not None
    assert m.pupil_radius / m.iris_radius == pytest.approx(ratio, abs=0.03)


@pytest.mark.parametrize("occlusion", [0.0, 0.2, 0.35])
def test_usable_area_tracks_eyelid_cover(occlusion: float) -> None:
    scene = IrisScene(occlusion=occlusion)
    result = check_iris(render_iris(scene))
    measured = float(next(c.measured for c in result.checks if c.name == "usable_area").split()[-1])
    assert measured == pytest.approx(visible_iris_share(scene), abs=0.08)


@pytest.mark.parametrize(
    ("scene", "check", "word"),
    [
        (IrisScene(blur=3), "focus", "kabur"),
        (IrisScene(occlusion=0.4), "usable_area", "Buka mata"),
        (IrisScene(pupil_ratio=0.8), "pupil_iris_ratio", "besar"),
        (IrisScene(pupil_ratio=0.15), "pupil_iris_ratio", "kecil"),
        (IrisScene(iris_radius=60), "iris_size", "Dekatkan"),
        (IrisScene(offset_x=230), "inside_frame", "tengah"),
        (IrisScene(present=False), "eye_found", "Mata tidak terlihat"),
        (IrisScene(eye_open=False), "eye_found", "Mata tidak terlihat"),
    ],
)
def test_each_knob_fails_its_check(scene: IrisScene, check: str, word: str) -> None:
    result = check_iris(render_iris(scene))
    assert not result.passed
    assert check in {c.name for c in result.failed()}
    assert any(word in h for h in result.hints("id"))
    assert all(result.hints("en"))


def test_threshold_applies() -> None:
    img = render_iris(IrisScene())
    assert check_iris(img, threshold=100).passed
    assert not check_iris(render_iris(IrisScene(occlusion=0.37)), threshold=0).passed


def test_uniform_and_tiny_images() -> None:
    assert not check_iris(Image.new("L", (640, 480), 128)).passed
    assert not check_iris(Image.new("L", (8, 8), 0)).passed
    assert check_iris(Image.new("RGB", (640, 480), (10, 10, 10))).score == 0


@given(st.integers(1, 80), st.integers(1, 80), st.integers(0, 2**31))
def test_arbitrary_images_give_bounded_scores(w: int, h: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w)).astype(np.uint8)
    if seed % 3 == 0:
        arr[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3] = 0  # a dark blob sometimes
    result = check_iris(Image.fromarray(arr))
    assert 0 <= result.score <= 100
