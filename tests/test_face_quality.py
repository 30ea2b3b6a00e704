"""Face-photo quality checks on synthetic portraits with each knob turned, plus odd inputs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from agent.config import QualityConfig
from agent.quality.face import (
    BAND_ROWS,
    NOT_CHECKED,
    WORK_HEIGHT,
    FaceQuality,
    FaceThresholds,
    _scan_bands,
    _work_array,
    check_face,
    check_face_jpeg,
    classify_colour,
    expected_background,
)
from drivers.emulators.camera import BACKGROUNDS, Portrait, encode_jpeg, render_portrait

W, H = 960, 540  # half of 1080p keeps the suite fast; the checks work at a fixed height


def q(p: Portrait, **kwargs: object) -> FaceQuality:
    return check_face(render_portrait(W, H, p), **kwargs)  # type: ignore[arg-type]


def failed(result: FaceQuality) -> set[str]:
    return {c.name for c in result.failed()}


def test_good_portrait_passes_with_full_score() -> None:
    result = q(Portrait(), rule="birth-year", birth_year=1990)
    assert result.passed, result.checks
    assert result.score == 100
    assert {c.name for c in result.checks} == {
        "resolution", "exposure", "sharpness", "background_uniform", "background_colour",
        "centred", "size",
    }
    assert set(NOT_CHECKED) <= set(result.not_checked)
    assert result.hints("id") == []


@pytest.mark.parametrize(
    ("portrait", "check", "word_id"),
    [
        (Portrait(blur=8), "sharpness", "kabur"),
        (Portrait(exposure=0.45), "exposure", "gelap"),
        (Portrait(exposure=1.7), "exposure", "terang"),
        (Portrait(offset_x=0.22), "centred", "kiri"),
        (Portrait(offset_x=-0.22), "centred", "kanan"),
        (Portrait(scale=0.35), "size", "Maju"),
        (Portrait(background=BACKGROUNDS["red"]), "background_colour", "biru"),
    ],
)
def test_each_knob_fails_its_check(portrait: Portrait, check: str, word_id: str) -> None:
    result = q(portrait, rule="birth-year", birth_year=2000, threshold=50)
    assert check in failed(result)
    assert not result.passed
    assert result.score < 75  # a failed check caps the score
    hint = next(c.hint_id for c in result.failed() if c.name == check)
    assert word_id in hint
    assert all(c.hint_en for c in result.failed())


def test_busy_background_fails_uniformity() -> None:
    img = render_portrait(W, H, Portrait())
    arr = np.asarray(img).copy()
    arr[: H // 3, : W // 6] = (240, 240, 20)  # a yellow poster in the corner
    result = check_face(Image.fromarray(arr))
    assert "background_uniform" in failed(result)


def test_birth_year_rule_red_odd_blue_even() -> None:
    red = Portrait(background=BACKGROUNDS["red"])
    blue = Portrait(background=BACKGROUNDS["blue"])
    assert q(red, rule="birth-year", birth_year=1991).passed
    assert not q(red, rule="birth-year", birth_year=1992).passed
    assert q(blue, rule="birth-year", birth_year=1992).passed
    assert expected_background("birth-year", 1991) == "red"
    assert expected_background("birth-year", 1992) == "blue"
    assert expected_background("any", 1991) is None
    assert expected_background("blue", 1991) == "blue"
    with pytest.raises(ValueError):
        expected_background("green", None)


def test_unknown_birth_year_says_colour_not_checked() -> None:
    result = q(Portrait(background=BACKGROUNDS["red"]), rule="birth-year", birth_year=None)
    assert "background_colour" not in {c.name for c in result.checks}
    assert any("birth year not given" in n for n in result.not_checked)
    assert result.passed


def test_config_default_rule_is_one_the_checker_knows() -> None:
    cfg = QualityConfig()
    assert expected_background(cfg.photo_background, 2001) == "red"
    assert q(Portrait(), threshold=cfg.face_threshold).passed


def test_colour_names() -> None:
    assert classify_colour(np.array(BACKGROUNDS["red"])) == "red"
    assert classify_colour(np.array(BACKGROUNDS["blue"])) == "blue"
    assert classify_colour(np.array(BACKGROUNDS["white"])) == "white"
    assert classify_colour(np.array((90, 140, 90))) == "other"


def test_low_resolution_and_empty_frame() -> None:
    assert "resolution" in failed(check_face(render_portrait(320, 240, Portrait())))
    empty = check_face(Image.new("RGB", (W, H), BACKGROUNDS["blue"]))
    assert {"centred", "size"} <= failed(empty)
    assert not empty.passed


def test_jpeg_path_matches_and_reports_original_size() -> None:
    img = render_portrait(1920, 1080, Portrait())
    result = check_face_jpeg(encode_jpeg(img), rule="blue")
    assert result.passed
    assert next(c.measured for c in result.checks if c.name == "resolution") == "1920x1080"
    d = result.as_dict()
    assert d["passed"] is True and isinstance(d["checks"], list)


def test_grey_and_rgba_inputs_are_accepted() -> None:
    img = render_portrait(W, H, Portrait())
    for mode in ("L", "RGBA", "P"):
        result = check_face(img.convert(mode))
        assert 0 <= result.score <= 100


def test_corrupt_jpeg_raises_pillow_error() -> None:
    with pytest.raises(OSError):
        check_face_jpeg(b"\xff\xd8\xff\xe0 not really a jpeg")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    assert 0 <= check_face_jpeg(buf.getvalue()).score <= 100


@given(
    st.integers(1, 64),
    st.integers(1, 64),
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
    st.integers(0, 2**31),
)
def test_any_small_image_gives_a_bounded_score(w: int, h: int, colour: tuple[int, int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    arr = (rng.integers(0, 256, (h, w, 3)) // 2 + np.array(colour) // 2).astype(np.uint8)
    result = check_face(Image.fromarray(arr), rule="birth-year", birth_year=seed)
    assert 0 <= result.score <= 100
    assert not result.passed  # tiny noise is never a passport photo


@settings(max_examples=40)  # each example renders and checks a photo; 40 keep the suite fast
@given(
    background=st.sampled_from(["red", "blue"]),
    blur=st.floats(0.0, 3.0),
    exposure=st.floats(0.85, 1.15),
    offset_x=st.floats(-0.05, 0.05),
    scale=st.floats(0.8, 1.2),
    seed=st.integers(0, 1000),
)
def test_any_portrait_inside_the_good_envelope_passes(
    background: str, blur: float, exposure: float, offset_x: float, scale: float, seed: int
) -> None:
    p = Portrait(background=BACKGROUNDS[background], blur=blur, exposure=exposure, offset_x=offset_x,
                 scale=scale, seed=seed)
    # 480x360 keeps the property cheap; the resolution limit is lowered to match.
    limits = FaceThresholds(min_width=480, min_height=360)
    result = check_face(render_portrait(480, 360, p), rule=background, limits=limits)
    assert result.passed, [(c.name, c.measured) for c in result.failed()]


def test_the_check_leaves_the_caller_image_untouched_and_equals_its_rgb_copy() -> None:
    # check_face uses an RGB image at working height as it is (no copy): it must not write to it,
    # and a grey or RGBA version of the same picture must score exactly as its RGB conversion.
    img = render_portrait(640, 360, Portrait())
    before = img.tobytes()
    result = check_face(img, rule="blue")
    assert img.tobytes() == before
    for mode in ("L", "RGBA"):
        other = img.convert(mode)
        assert check_face(other, rule="blue") == check_face(other.convert("RGB"), rule="blue")
    assert check_face(img.copy(), rule="blue") == result


@settings(max_examples=60)
@given(
    st.integers(1, 3 * BAND_ROWS + 7),
    st.integers(1, 40),
    st.tuples(*[st.integers(0, 510).map(lambda v: v / 2)] * 3),
    st.integers(0, 2**31),
)
def test_banded_scan_equals_the_whole_image_in_float32(
    h: int, w: int, bg: tuple[float, float, float], seed: int
) -> None:
    # The subject mask and the clipped count are computed a band of rows at a time to keep the
    # memory down; every pixel must get what the whole-image float32 arithmetic gave it, also in
    # a last band shorter than BAND_ROWS and with a background median halfway between levels.
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    # greys at the clipping limits, where float32 rounding of the luma decides
    grey = rng.choice(np.array([0, 2, 3, 4, 251, 252, 253, 255], dtype=np.uint8), size=(h, w))
    edge = rng.random((h, w)) < 0.3
    arr[edge] = grey[edge][:, None]
    ref = np.array(bg, dtype=np.float32)
    mask, clipped = _scan_bands(arr, ref)
    whole = arr.astype(np.float32)
    distance = np.maximum(np.maximum(np.abs(whole[..., 0] - ref[0]), np.abs(whole[..., 1] - ref[1])),
                          np.abs(whole[..., 2] - ref[2]))
    luma = whole[..., 0] * 0.299 + whole[..., 1] * 0.587 + whole[..., 2] * 0.114
    assert np.array_equal(mask, distance > 45)
    assert clipped / (h * w) == float(((luma <= 3) | (luma >= 252)).mean())


def test_jpeg_path_equals_the_image_path_on_the_same_reduced_decode() -> None:
    # check_face_jpeg works on its own working copy of the reduced decode; it must score exactly
    # as check_face on that decode (the draft image is dropped early, nothing else may change).
    img = render_portrait(1920, 1080, Portrait(blur=3, offset_x=0.05))
    data = encode_jpeg(img)
    draft = Image.open(io.BytesIO(data))
    draft.draft("RGB", (640, 360))
    reduced = draft.convert("RGB")
    assert reduced.size == (960, 540)  # 1/2 scale: the smallest that is still >= 360 lines
    for rule, year in (("birth-year", 1992), ("red", None), ("any", None)):
        assert (check_face_jpeg(data, rule=rule, birth_year=year)
                == check_face(reduced, rule=rule, birth_year=year, original_size=(1920, 1080)))


def _whole_resize(img: Image.Image) -> np.ndarray:
    new_w = max(3, round(img.width * WORK_HEIGHT / img.height))
    return np.asarray(img.resize((new_w, WORK_HEIGHT), Image.Resampling.BOX))


@settings(max_examples=60)
@given(st.integers(WORK_HEIGHT + 1, 4 * WORK_HEIGHT + 50), st.floats(0.3, 2.5), st.integers(0, 2**31))
def test_banded_resize_equals_the_whole_resize(h: int, aspect: float, seed: int) -> None:
    # The working copy is resized band by band where that is exact (a frame at least as wide as
    # high, and a power-of-two denominator in the scale, e.g. 540 -> 360 lines) and whole
    # otherwise (480 -> 360, tall images); either way every pixel must be what one whole BOX
    # resize gives. Half the examples take a height the bands accept.
    if seed % 2:
        h = (450, 540, 720, 1080, 1440, 480, 600)[seed % 7]
    w = max(1, round(h * aspect))
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    assert np.array_equal(_work_array(img), _whole_resize(img))


def test_banded_resize_equals_the_whole_resize_at_camera_sizes() -> None:
    rng = np.random.default_rng(3)
    for w, h in ((960, 540), (1920, 1080), (1280, 720), (800, 450), (800, 600), (3840, 2160),
                 (540, 540), (270, 480)):
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        assert np.array_equal(_work_array(img), _whole_resize(img)), (w, h)
