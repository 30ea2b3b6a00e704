"""Iris image quality with numpy and Pillow: a documented, simple method, not ISO 29794-6 certified.

Input: a 640x480 8-bit near-infrared eye image (``drivers.iris.IrisImage.to_image()``).

Method:

1. **Pupil** - on a half-size, 5x5-median-filtered copy (the filter removes thin lashes),
   pixels darker than ``p1 + 0.3 * (median - p1)`` form the dark mask; its median point is
   the centre, and after dropping mask pixels far from it (lashes, shadows) the radius is
   ``sqrt(area / pi)``. No dark disc of a minimum size: no eye.
2. **Iris radius** - mean intensity on circles around the pupil centre, sampled only in two
   horizontal sectors (+-30 degrees left and right, where eyelids rarely reach); the
   iris/sclera border is the radius of the steepest dark-to-bright rise of that profile.
3. **Pupil/iris ratio** = pupil radius / iris radius (a dilation proxy).
4. **Usable iris area** - of the annulus between pupil and iris border, the share of pixels
   that lie inside the image and look like iris: within a band around the median of the
   unoccluded horizontal sectors (eyelid skin, lashes and glints fall outside the band).
5. **Focus** - variance of a 4-neighbour Laplacian over the usable annulus pixels.
6. **Iris size and framing** - iris diameter in pixels; the iris circle inside the image.

Limits marked "(from memory)" follow our reading of ISO/IEC 29794-6 guidance and must be
checked against the standard before any conformance claim; the focus threshold is calibrated
on the emulator only. Not checked: gaze angle, contact lenses, iris pattern liveness,
interlacing, motion blur direction, NIR illumination level against the standard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from agent.quality.result import Check, CheckedResult, combine, grade

NOT_CHECKED: tuple[str, ...] = (
    "gaze angle (off-axis eye)",
    "contact lenses and printed-iris spoofs",
    "interlacing and motion-blur direction",
    "illumination level against ISO/IEC 29794-6",
)

WEIGHTS = {
    "eye_found": 20,
    "iris_size": 10,
    "inside_frame": 10,
    "pupil_iris_ratio": 15,
    "usable_area": 20,
    "focus": 25,
}


@dataclass(frozen=True)
class IrisThresholds:
    """Limits of each check."""

    min_iris_diameter: float = 150.0  # pixels (from memory: ISO 29794-6 "acceptable")
    min_ratio: float = 0.2  # pupil/iris (from memory: 20-70 % acceptable)
    max_ratio: float = 0.7
    min_usable_area: float = 0.7  # (from memory: ISO 29794-6 usable iris area >= 70 %)
    min_focus: float = 60.0  # emulator-calibrated: blur radius 1 px passes, 2 px fails


@dataclass(frozen=True)
class IrisMeasure:
    """What the method found (pixels of the input image)."""

    centre: tuple[float, float]
    pupil_radius: float
    iris_radius: float


@dataclass(frozen=True)
class IrisQuality(CheckedResult):
    """The result of :func:`check_iris`."""

    score: int
    passed: bool
    checks: tuple[Check, ...]
    measure: IrisMeasure | None
    not_checked: tuple[str, ...] = field(default=NOT_CHECKED)


HINT_NO_EYE = ("Mata tidak terlihat. Lihat lurus ke dalam alat pemindai iris.",
               "No eye seen. Look straight into the iris scanner.")


def _find_pupil(img: Image.Image) -> tuple[float, float, float] | None:
    # Quarter size: box averaging halves the contrast of 2 px lashes, the 3x3 median removes
    # what is left and the noise; a pupil (>= 16 px radius at full size) survives.
    small = img.reduce(4).filter(ImageFilter.MedianFilter(3))
    a = np.asarray(small, dtype=np.float32)
    lo, med = float(a.min()), float(np.median(a))
    if med - lo < 30:
        return None  # no dark disc stands out
    ys, xs = np.nonzero(a < lo + 0.3 * (med - lo))
    if xs.size < 12:
        return None
    cx, cy = float(np.median(xs)), float(np.median(ys))
    r0 = 2 * np.sqrt(xs.size / np.pi)
    near = np.hypot(xs - cx, ys - cy) <= r0
    if near.sum() < 12:
        return None
    cx, cy = float(xs[near].mean()), float(ys[near].mean())
    r = float(np.sqrt(near.sum() / np.pi))
    # back to full-size pixels (reduce(4) maps pixel centres to 4x+1.5)
    return cx * 4 + 1.5, cy * 4 + 1.5, r * 4


def _iris_radius(a: np.ndarray, cx: float, cy: float, rp: float) -> tuple[float, float] | None:
    h, w = a.shape
    r_max = min(max(h, w) * 0.45, rp * 8)
    radii = np.arange(rp * 1.2, r_max, 1.0)
    if radii.size < 8:
        return None
    angles = np.deg2rad(np.concatenate([np.arange(-30, 31, 3), np.arange(150, 211, 3)]))
    xs = cx + radii[:, None] * np.cos(angles)[None, :]
    ys = cy + radii[:, None] * np.sin(angles)[None, :]
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    vals = np.where(inside, a[np.clip(ys, 0, h - 1).astype(int), np.clip(xs, 0, w - 1).astype(int)], np.nan)
    counts = inside.sum(axis=1)
    profile = np.where(counts > 0, np.nansum(vals, axis=1) / np.maximum(counts, 1), np.nan)
    if np.isnan(profile).all():
        return None
    profile = np.where(np.isnan(profile), np.nanmean(profile), profile)
    smooth = np.convolve(profile, np.ones(5) / 5, mode="same")
    rise = smooth[4:] - smooth[:-4]  # over 4 px: steps are a few pixels wide when blurred
    i = int(np.argmax(rise[2:-2])) + 2
    return float(radii[i + 2]), float(rise[i])


def _half_span(centre: float, reach: float, size: int) -> tuple[int, int]:
    # Half-size indices i with |2i + 0.5 - centre| < reach, padded by one, kept off the border
    # (the Laplacian needs both neighbours); an empty span when the circle misses the image.
    lo = max(1, int(np.floor((centre - 0.5 - reach) / 2)) - 1)
    hi = min(size - 1, int(np.ceil((centre - 0.5 + reach) / 2)) + 2)
    return lo, max(lo, hi)


def check_iris(img: Image.Image, *, threshold: int = 60, limits: IrisThresholds = IrisThresholds()) -> IrisQuality:
    """Score an iris image 0-100 with per-check results and hints (see the module docstring).

    Args:
        img: the eye image (converted to 8-bit grey).
        threshold: ``quality.iris_threshold`` (MOSIP default 60).
        limits: check limits.
    """
    grey = img.convert("L")
    a = np.asarray(grey, dtype=np.float32)
    h, w = a.shape
    checks: list[Check] = []
    pupil = _find_pupil(grey) if min(h, w) >= 32 else None
    found = _iris_radius(a, *pupil) if pupil else None
    if pupil is None or found is None or found[1] < 8:
        checks.append(Check("eye_found", False, 0.0, "no pupil/iris border found", *HINT_NO_EYE))
        return IrisQuality(combine(checks, WEIGHTS), False, tuple(checks), None)
    cx, cy, rp = pupil
    ri, _ = found
    checks.append(Check("eye_found", True, 100.0, f"pupil r={rp:.0f}px, iris r={ri:.0f}px"))

    diameter = 2 * ri
    ok = diameter >= limits.min_iris_diameter
    checks.append(Check(
        "iris_size", ok, grade(diameter, limits.min_iris_diameter, 1e9, limits.min_iris_diameter / 2),
        f"iris diameter {diameter:.0f}px",
        "Dekatkan mata ke alat pemindai.", "Bring your eye closer to the scanner.",
    ))

    margin = min(cx - ri, w - 1 - cx - ri, cy - ri, h - 1 - cy - ri)
    ok = margin >= 0
    checks.append(Check(
        "inside_frame", ok, grade(margin, 0, 1e9, ri / 2), f"margin {margin:.0f}px",
        "Lihat ke tengah alat pemindai.", "Look at the centre of the scanner.",
    ))

    ratio = rp / ri
    ok = limits.min_ratio <= ratio <= limits.max_ratio
    big = ratio > limits.max_ratio
    checks.append(Check(
        "pupil_iris_ratio", ok, grade(ratio, limits.min_ratio, limits.max_ratio, 0.2),
        f"pupil/iris {ratio:.2f}",
        "Pupil terlalu besar: ruangan terlalu gelap, nyalakan lampu." if big
        else "Pupil terlalu kecil: kurangi cahaya terang ke mata.",
        "Pupil too dilated: the room is too dark, turn on a light." if big
        else "Pupil too constricted: reduce bright light on the eye.",
    ))

    # Annulus geometry on a bounding box (cheap: at most ~2*ri squared pixels).
    x0, x1 = int(max(0, cx - ri)), int(min(w, cx + ri + 1))
    y0, y1 = int(max(0, cy - ri)), int(min(h, cy + ri + 1))
    yy, xx = np.mgrid[y0:y1, x0:x1]
    rr = np.hypot(xx - cx, yy - cy)
    ring = (rr > rp * 1.15) & (rr < ri * 0.92)
    box = a[y0:y1, x0:x1]
    horizontal = ring & (np.abs(yy - cy) < 0.5 * (rr + 1e-6))  # within +-30 degrees of horizontal
    ref = box[horizontal] if horizontal.any() else box[ring]
    if ref.size == 0:
        checks.append(Check("usable_area", False, 0.0, "no iris ring", *HINT_NO_EYE))
        return IrisQuality(combine(checks, WEIGHTS), False, tuple(checks), IrisMeasure((cx, cy), rp, ri))
    m = float(np.median(ref))
    mad = float(np.median(np.abs(ref - m))) * 1.4826
    band = max(25.0, 3 * mad)
    usable = ring & (np.abs(box - m) <= band)
    expected = np.pi * ((ri * 0.92) ** 2 - (rp * 1.15) ** 2)
    share = float(usable.sum() / expected) if expected > 0 else 0.0
    ok = share >= limits.min_usable_area
    checks.append(Check(
        "usable_area", ok, grade(share, limits.min_usable_area, 2.0, 0.4), f"usable iris {share:.2f}",
        "Buka mata lebih lebar.", "Open your eyes wider.",
    ))

    # Focus on a half-size copy: the iris texture's fibres are a few pixels wide, while
    # single-pixel sensor noise (which any blur removes first) would dominate at full size.
    # Only the iris's bounding box (in half-size pixels, inner pixels only) is worked on: the
    # selection below is empty outside it, and whole-image index grids cost ~4 MB per check.
    half = np.asarray(grey.reduce(2), dtype=np.float32)
    reach = ri * 0.92
    ylo, yhi = _half_span(cy, reach, half.shape[0])
    xlo, xhi = _half_span(cx, reach, half.shape[1])
    core = half[ylo:yhi, xlo:xhi]
    lap = (4 * core - half[ylo - 1 : yhi - 1, xlo:xhi] - half[ylo + 1 : yhi + 1, xlo:xhi]
           - half[ylo:yhi, xlo - 1 : xhi - 1] - half[ylo:yhi, xlo + 1 : xhi + 1])
    hy, hx = np.mgrid[ylo:yhi, xlo:xhi]
    hr = np.hypot(hx * 2 + 0.5 - cx, hy * 2 + 0.5 - cy)
    full_y = np.clip((hy * 2).astype(int), 0, h - 1)
    full_x = np.clip((hx * 2).astype(int), 0, w - 1)
    like_iris = np.abs(a[full_y, full_x] - m) <= band
    sel = (hr > rp * 1.15) & (hr < ri * 0.92) & like_iris
    focus = float(lap[sel].var()) if sel.sum() > 10 else 0.0
    ok = focus >= limits.min_focus
    checks.append(Check(
        "focus", ok, 100.0 if ok else 50.0 * focus / limits.min_focus, f"laplacian variance {focus:.1f}",
        "Gambar kabur. Jangan bergerak dan jaga jarak sesuai petunjuk.",
        "Image blurred. Hold still at the guided distance.",
    ))

    score = combine(checks, WEIGHTS)
    passed = score >= threshold and all(c.passed for c in checks)
    return IrisQuality(score, passed, tuple(checks), IrisMeasure((cx, cy), rp, ri))
