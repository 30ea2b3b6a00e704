"""Synthetic fingerprints and the block quality score: deterministic, distinct, honest scores."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from drivers.emulators.fingerprint_synth import (
    PRESETS,
    Conditions,
    orientation_field,
    pattern_for,
    synth_finger,
    synth_slap,
)
from drivers.fingerprint.base import QUALITY_METHOD, estimate_quality


def _ridge_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two images' centres (where both carry print)."""
    ca = a[120:330, 90:260].astype(np.float64).ravel()
    cb = b[120:330, 90:260].astype(np.float64).ravel()
    return float(np.corrcoef(ca, cb)[0, 1])


def test_finger_is_8bit_500ppi_sized_and_deterministic() -> None:
    a = synth_finger(11, 2)
    b = synth_finger(11, 2)
    assert a.dtype == np.uint8
    assert a.shape == (448, 352)
    assert np.array_equal(a, b)
    # Dark ridges and light valleys both occur, and the corners are empty platen.
    assert a.min() < 80 and a[150:300, 100:250].max() > 180
    assert a[:8, :8].mean() > 230


def test_fingers_differ_per_position_and_per_person() -> None:
    base = synth_finger(11, 2)
    same_finger_other_capture = synth_finger(11, 2, capture_seed=1)
    other_finger = synth_finger(11, 3)
    other_person = synth_finger(12, 2)
    # Two captures of one finger share ridges up to a few pixels of jitter, so they stay
    # far more alike than two different fingers, which are essentially uncorrelated.
    assert abs(_ridge_correlation(base, other_finger)) < 0.2
    assert abs(_ridge_correlation(base, other_person)) < 0.2
    shifts = [
        _ridge_correlation(np.roll(base, (dy, dx), axis=(0, 1)), same_finger_other_capture)
        for dy in range(-12, 13)
        for dx in range(-12, 13)
    ]
    assert max(shifts) > 0.6


def test_patterns_cover_the_classes_and_singular_points_follow_them() -> None:
    kinds = {pattern_for(seed, pos).kind for seed in range(30) for pos in range(1, 11)}
    assert kinds == {"arch", "left_loop", "right_loop", "whorl"}
    for seed in range(30):
        p = pattern_for(seed, 1)
        expected = {"arch": (1, 0), "left_loop": (1, 1), "right_loop": (1, 1), "whorl": (2, 2)}
        assert (len(p.cores), len(p.deltas)) == expected[p.kind]
        assert 8.0 <= p.period <= 10.5  # ridge period of adult fingers at 500 ppi


def test_orientation_turns_half_a_circle_around_a_core() -> None:
    # Around a core the ridge direction turns by pi over one loop (a Poincare index of 1/2).
    for seed in range(40):
        p = pattern_for(seed, 2)
        if p.kind in ("left_loop", "right_loop"):
            break
    theta = orientation_field(p, 352, 448).astype(np.float64)
    cx, cy = p.cores[0][0] * 352, p.cores[0][1] * 448
    angles = np.linspace(0, 2 * np.pi, 73)
    samples = [theta[int(cy + 20 * np.sin(a)), int(cx + 20 * np.cos(a))] for a in angles]
    turn = 0.0
    for a, b in zip(samples, samples[1:], strict=False):
        d = (b - a + np.pi / 2) % np.pi - np.pi / 2  # orientations are pi-periodic
        turn += d
    assert abs(abs(turn) - np.pi) < 0.3


@pytest.mark.parametrize("problem", ["dry", "wet", "smudge", "partial"])
def test_bad_conditions_score_low_and_are_named(problem: str) -> None:
    for person in (1, 2, 3):
        good = estimate_quality(synth_finger(person, 4))
        bad = estimate_quality(synth_finger(person, 4, conditions=PRESETS[problem]))
        assert good.score >= 80
        assert bad.score < 50
        assert bad.score < good.score - 30
        if problem != "smudge":  # a smudge can look like a partial print; both are retries
            assert bad.likely_problem() == problem
    assert good.method == QUALITY_METHOD


def test_quality_of_empty_and_random_images_is_low() -> None:
    assert estimate_quality(np.full((400, 300), 255, np.uint8)).score == 0
    noise = np.random.default_rng(0).integers(0, 256, (400, 300)).astype(np.uint8)
    assert estimate_quality(noise).score < 20


@settings(max_examples=30)
@given(arrays(np.uint8, st.tuples(st.integers(16, 80), st.integers(16, 80))))
def test_quality_is_always_within_0_100(img: np.ndarray) -> None:
    report = estimate_quality(img)
    assert 0 <= report.score <= 100
    assert 0.0 <= report.coverage <= 1.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="position"):
        synth_finger(1, 11)
    with pytest.raises(ValueError, match="too small"):
        synth_finger(1, 1, width=10, height=10)
    with pytest.raises(ValueError, match="within 0..1"):
        Conditions(dry=1.5)
    with pytest.raises(ValueError):
        estimate_quality(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="cannot lay"):
        synth_slap(1, (2, 3, 4, 5), platen=(600, 300))


def test_slap_places_each_finger_where_it_says() -> None:
    image, placed = synth_slap(5, (2, 3, 4, 5), skip=frozenset({4}))
    assert image.shape == (1000, 1600) and image.dtype == np.uint8
    assert [p.position for p in placed] == [2, 3, 5]
    boxes = [p.bbox for p in placed]
    for left, top, right, bottom in boxes:
        crop = image[top:bottom, left:right]
        assert estimate_quality(crop).score >= 70  # a finger is really inside its box
    # Boxes run left to right without overlap, and outside them the platen is empty.
    assert all(a[2] <= b[0] for a, b in zip(boxes, boxes[1:], strict=False))
    mask = np.ones(image.shape, bool)
    for left, top, right, bottom in boxes:
        mask[top:bottom, left:right] = False
    assert image[mask].mean() > 240


# Few persons (their ridge patterns are cached), many placements: keeps this inside the budget.
@settings(max_examples=15)
@given(
    st.sampled_from([(2, 3, 4, 5), (10, 9, 8, 7), (6, 1)]),
    st.data(),
    st.integers(0, 2**16),
)
def test_fallback_segmentation_recovers_any_subset_of_a_slap(
    positions: tuple[int, ...], data: st.DataObject, capture: int
) -> None:
    from PIL import Image

    from drivers.fingerprint.tenprint import segment_slap

    present = data.draw(st.lists(st.sampled_from(positions), min_size=1, unique=True))
    kept = [p for p in positions if p in present]  # glass order
    skip = frozenset(p for p in positions if p not in present)
    image, placed = synth_slap(1, positions, skip=skip, capture_seed=capture)
    segments = segment_slap(Image.fromarray(image), kept)
    assert [s.position for s in segments] == kept
    for seg, truth in zip(segments, placed, strict=True):
        left, top, right, bottom = seg.bbox
        tl, tt, tr, tb = truth.bbox
        # The found box lies on the print inside the synthesiser's (padded) box.
        assert tl - 16 <= left < right <= tr + 16 and tt - 16 <= top < bottom <= tb + 16
        assert (right - left) * (bottom - top) > 0.4 * (tr - tl) * (tb - tt)
