"""Iris image quality with Pillow alone: a documented, simple method, not ISO 29794-6 certified.

Input: a 640x480 8-bit near-infrared eye image (``drivers.iris.IrisImage.to_image()``).

Method:

1. **Pupil** - on a quarter-size, 3x3-median-filtered copy (the filter removes thin lashes),
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

How it is computed without numpy (the daemon must not load it, issue 7): per-pixel work is
Pillow's C code (reduce, median filter, lookup tables, NEAREST affine sampling along the rays,
ImageMath for the Laplacian, masked histograms for medians and counts, BOX resizes for the
Laplacian's mean and variance); Python only walks profiles and histograms of a few hundred
values and, per image row, the ends of the runs of a disc or annulus, taken from the circle's
equation (an end within 1e-6 px of a pixel is settled by the float64 test the numpy version
applied to every pixel). Masks, medians and ray samples are thus the numpy version's pixels
and values; only the focus value's float32 sums differ (``bench/compare_iris_numpy_free.py``:
at most 3e-7 of the value over 747 images).

Limits marked "(from memory)" follow our reading of ISO/IEC 29794-6 guidance and must be
checked against the standard before any conformance claim; the focus threshold is calibrated
on the emulator only. Not checked: gaze angle, contact lenses, iris pattern liveness,
interlacing, motion blur direction, NIR illumination level against the standard.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from PIL import Image, ImageChops, ImageFilter

from agent.quality.result import Check, CheckedResult, combine, grade
from drivers import pixelmath

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


# Two horizontal sectors of +-30 degrees, every 3 degrees (21 rays each side).
_RAY_DEGREES: tuple[int, ...] = (*range(-30, 31, 3), *range(150, 211, 3))
_RAYS: tuple[tuple[float, float], ...] = tuple(
    (math.cos(math.radians(d)), math.sin(math.radians(d))) for d in _RAY_DEGREES
)


def _f32(x: float) -> float:
    # The numpy version compared float32 pixels with Python floats, which numpy 2 casts to
    # float32 first; a threshold that lands next to an integer must round the same way.
    value: float = struct.unpack("f", struct.pack("f", x))[0]
    return value


def _run(
    pred: Callable[[int], bool], lo: int, hi: int, a: float, b: float, slack: float = 1.0
) -> tuple[int, int]:
    """The run ``[p, q)`` of integers in ``[lo, hi)`` where ``pred`` holds.

    ``(a, b)`` is where ``pred`` holds by the shape's equation, each end known to within
    ``slack``; an end within ``slack`` of an integer is settled with ``pred`` itself, the
    exact per-pixel test (rounding can move it by a pixel). ``pred`` must hold on one run
    of integers near ``(a, b)`` or nowhere.
    """
    p = max(lo, min(hi, math.floor(a) + 1)) if a > -math.inf else lo
    q = max(lo, min(hi, math.ceil(b))) if b < math.inf else hi
    q = max(p, q)
    if a > -math.inf and abs(a - round(a)) <= slack:
        while p > lo and pred(p - 1):
            p -= 1
        while p < q and not pred(p):
            p += 1
    if b < math.inf and abs(b - round(b)) <= slack:
        while q < hi and pred(q):
            q += 1
        while q > p and not pred(q - 1):
            q -= 1
    return p, q


def _ring_runs(
    pred: Callable[[int], bool], lo: int, hi: int, centre: float, inner: float, outer: float
) -> list[tuple[int, int]]:
    """Runs of a row (indices ``[lo, hi)``, centre in index units) through an annulus.

    ``inner``/``outer`` are the half-widths (in index units) where the row meets the two
    circles; a negative ``inner`` means the row misses the hole (one run). Computed widths
    are good to 1e-6 pixel unless the row is nearly tangent to a circle, where the square
    root magnifies rounding: then both ends are checked with ``pred``.
    """
    slack = 1e-6 if outer > 0.01 and (inner < 0 or inner > 0.01) else 1.0
    if inner < 0:
        return [_run(pred, lo, hi, centre - outer, centre + outer, slack)]
    split = max(lo, min(hi, math.floor(centre) + 1))
    return [
        _run(pred, lo, split, centre - outer, centre - inner, slack),
        _run(pred, split, hi, centre + inner, centre + outer, slack),
    ]


def _mask(width: int, height: int, runs: Iterable[tuple[int, int, int]]) -> Image.Image:
    """An "L" mask (255 on, 0 off) of the given (row, start, stop) runs."""
    buf = bytearray(width * height)
    for y, x0, x1 in runs:
        if x1 > x0:
            buf[y * width + x0 : y * width + x1] = b"\xff" * (x1 - x0)
    return Image.frombytes("L", (width, height), bytes(buf))


def _counts(mask: Image.Image) -> tuple[list[int], list[int]]:
    """Per-column and per-row numbers of 255 pixels of an "L" mask."""
    w, h = mask.size
    rows = mask.tobytes()
    cols = mask.transpose(Image.Transpose.TRANSPOSE).tobytes()
    return ([cols.count(255, x * h, (x + 1) * h) for x in range(w)],
            [rows.count(255, y * w, (y + 1) * w) for y in range(h)])


def _find_pupil(img: Image.Image) -> tuple[float, float, float] | None:
    # Quarter size: box averaging halves the contrast of 2 px lashes, the 3x3 median removes
    # what is left and the noise; a pupil (>= 16 px radius at full size) survives.
    small = img.reduce(4).filter(ImageFilter.MedianFilter(3))
    w, h = small.size
    hist = small.histogram()
    lo = float(next(v for v, c in enumerate(hist) if c))
    med = pixelmath.median(enumerate(hist))
    if med - lo < 30:
        return None  # no dark disc stands out
    limit = _f32(lo + 0.3 * (med - lo))
    dark = small.point([255 if v < limit else 0 for v in range(256)])
    col, row = _counts(dark)
    n = sum(row)
    if n < 12:
        return None
    cx, cy = pixelmath.median(enumerate(col)), pixelmath.median(enumerate(row))
    r0 = 2 * math.sqrt(n / math.pi)
    runs = []
    for y in range(h):
        dy = y - cy
        if abs(dy) > r0:
            continue  # hypot(dx, dy) >= |dy|: no pixel of this row is near
        half = math.sqrt(r0 * r0 - dy * dy)

        def near_centre(x: int, dy: float = dy) -> bool:
            return math.hypot(x - cx, dy) <= r0

        p, q = _run(near_centre, 0, w, cx - half, cx + half, 1e-6 if half > 0.01 else 1.0)
        runs.append((y, p, q))
    near = ImageChops.darker(dark, _mask(w, h, runs))
    col, row = _counts(near)
    n = sum(row)
    if n < 12:
        return None
    cx = sum(x * c for x, c in enumerate(col)) / n
    cy = sum(y * c for y, c in enumerate(row)) / n
    r = math.sqrt(n / math.pi)
    # back to full-size pixels (reduce(4) maps pixel centres to 4x+1.5)
    return cx * 4 + 1.5, cy * 4 + 1.5, r * 4


def _ray(img: Image.Image, x: float, y: float, c: float, s: float, n: int) -> Image.Image:
    """The ``n`` pixels holding (x + j*c, y + j*s), j = 0..n-1, as a 1-row image (truncated
    coordinates, as numpy's ``int()``); every point must lie inside the image."""
    # Pillow's NEAREST affine transform takes the pixel holding (c*(j + .5) + e, s*(j + .5) + f)
    # for output pixel j. With small coefficients it steps in 16.16 fixed point, which put 4e-4
    # of the samples of random rays one pixel off numpy's; a second output row sent 65536 px
    # away forces its double-precision stepping, which matched numpy on 16 million samples.
    far = 65536.0
    two = img.transform((n, 2), Image.Transform.AFFINE,
                        (c, far, x - 0.5 * c - 0.5 * far, s, far, y - 0.5 * s - 0.5 * far),
                        Image.Resampling.NEAREST)
    return two.crop((0, 0, n, 1))


def _iris_radius(img: Image.Image, cx: float, cy: float, rp: float) -> tuple[float, float] | None:
    w, h = img.size
    r_max = min(max(h, w) * 0.45, rp * 8)
    start = rp * 1.2
    size = max(0, math.ceil(r_max - start))
    if size < 8:
        return None
    # The radii exactly as numpy's arange fills them (start + i * (second - first)).
    step = (start + 1.0) - start
    radii = [start, start + 1.0, *(start + i * step for i in range(2, size))]
    stack = Image.new("L", (size, len(_RAYS)))
    counts = [0] * (size + 1)
    for k, (c, s) in enumerate(_RAYS):
        def inside(i: int, c: float = c, s: float = s) -> bool:
            x, y = cx + radii[i] * c, cy + radii[i] * s
            return 0 <= x <= w - 1 and 0 <= y <= h - 1

        a, b = -math.inf, math.inf
        for centre, d, top in ((cx, c, w - 1), (cy, s, h - 1)):
            if abs(d) > 1e-12:  # the ray's radius where it crosses 0 and top on this axis
                r1, r2 = sorted(((0 - centre) / d, (top - centre) / d))
                a, b = max(a, r1 - start - 1), min(b, r2 - start + 1)
        p, q = _run(inside, 0, size, a, b)
        if q <= p:
            continue
        stack.paste(_ray(img, cx + radii[p] * c, cy + radii[p] * s, c, s, q - p), (p, k))
        counts[p] += 1
        counts[q] -= 1
    data = stack.transpose(Image.Transpose.TRANSPOSE).tobytes()
    n_rays = len(_RAYS)
    inside_n = 0
    profile: list[float | None] = []
    for i in range(size):
        inside_n += counts[i]
        profile.append(sum(data[i * n_rays : (i + 1) * n_rays]) / inside_n if inside_n else None)
    known = [v for v in profile if v is not None]
    if not known:
        return None
    fill = sum(known) / len(known)
    prof = [fill if v is None else v for v in profile]
    smooth = [sum(prof[max(0, j - 2) : j + 3]) * 0.2 for j in range(size)]
    rise = [smooth[j + 4] - smooth[j] for j in range(size - 4)]  # over 4 px: blurred steps
    inner = rise[2:-2]
    if not inner:
        return None
    i = max(range(len(inner)), key=inner.__getitem__) + 2  # the first of equal maxima
    return radii[i + 2], rise[i]


def _half_span(centre: float, reach: float, size: int) -> tuple[int, int]:
    # Half-size indices i with |2i + 0.5 - centre| < reach, padded by one, kept off the border
    # (the Laplacian needs both neighbours); an empty span when the circle misses the image.
    lo = max(1, math.floor((centre - 0.5 - reach) / 2) - 1)
    hi = min(size - 1, math.ceil((centre - 0.5 + reach) / 2) + 2)
    return lo, max(lo, hi)


def _annulus_runs(
    x0: int, x1: int, ys: Iterable[int], pos: Callable[[int], float], cx: float, cy: float,
    inner: float, outer: float, horizontal: bool = False,
) -> list[tuple[int, int, int]]:
    """(row, start, stop) runs, indices relative to ``x0`` and the first row, of the pixels
    with ``inner < hypot(pos(x) - cx, pos(y) - cy) < outer`` (and within +-30 degrees of
    horizontal when asked), ``pos`` mapping an index to its full-size coordinate."""
    scale = pos(1) - pos(0)
    centre = (cx - pos(0)) / scale
    near, far = 1e-6, 1 - 1e-6  # an end this close to a pixel is settled by the exact test
    runs: list[tuple[int, int, int]] = []
    for n, y in enumerate(ys):
        dy = pos(y) - cy
        ady = abs(dy)
        low = max(inner, 2 * ady - 1e-6) if horizontal else inner
        if outer <= ady or outer <= low:
            continue  # hypot(dx, dy) >= |dy|: the row misses the ring (or the sectors)
        half_out = math.sqrt(outer * outer - dy * dy) / scale
        half_in = math.sqrt(low * low - dy * dy) / scale if low >= ady else -1.0
        # Each end is a run's open bound: more than 1e-6 off a pixel (and not at a tangent,
        # where the square root magnifies rounding) the run is floor + 1 to floor + 1.
        e0, e3 = centre - half_out, centre + half_out
        f0, f3 = math.floor(e0), math.floor(e3)
        found: list[tuple[int, int]] | None = None
        if half_out > 0.01 and near < e0 - f0 < far and near < e3 - f3 < far:
            if half_in < 0:
                found = [(f0 + 1, f3 + 1)]
            elif half_in > 0.01:
                e1, e2 = centre - half_in, centre + half_in
                f1, f2 = math.floor(e1), math.floor(e2)
                if near < e1 - f1 < far and near < e2 - f2 < far:
                    found = [(f0 + 1, f1 + 1), (f2 + 1, f3 + 1)]
        if found is None:
            def pred(x: int, dy: float = dy) -> bool:
                rr = math.hypot(pos(x) - cx, dy)
                return inner < rr < outer and (not horizontal or abs(dy) < 0.5 * (rr + 1e-6))

            found = _ring_runs(pred, x0, x1, centre, half_in, half_out)
        for p, q in found:
            p, q = max(p, x0), min(q, x1)
            if q > p:
                runs.append((n, p - x0, q - x0))
    return runs


def _focus(
    grey: Image.Image, half: Image.Image, span: tuple[int, int, int, int], cx: float, cy: float,
    inner: float, outer: float, like_iris: list[bool],
) -> float:
    """Variance of the half-size 4-neighbour Laplacian over the span's usable annulus pixels."""
    xlo, ylo, xhi, yhi = span
    ww, hh = xhi - xlo, yhi - ylo
    around = half.crop((xlo - 1, ylo - 1, xhi + 1, yhi + 1)).convert("F")

    def shifted(dx: int, dy: int) -> Image.Image:
        return around.crop((1 + dx, 1 + dy, 1 + dx + ww, 1 + dy + hh))

    lap = pixelmath.image_math(
        lambda e: e["c"] * 4 - e["u"] - e["d"] - e["l"] - e["r"],
        c=shifted(0, 0), u=shifted(0, -1), d=shifted(0, 1), l=shifted(-1, 0), r=shifted(1, 0),
    )

    def at(i: int) -> float:
        return i * 2 + 0.5

    ring = _mask(ww, hh, _annulus_runs(xlo, xhi, range(ylo, yhi), at, cx, cy, inner, outer))
    # "Looks like iris" is judged on the full-size pixel at (2x, 2y) of each half-size pixel.
    full = grey.crop((2 * xlo, 2 * ylo, 2 * xhi, 2 * yhi)).tobytes()
    rows = [full[4 * y * ww : (4 * y + 2) * ww : 2] for y in range(hh)]
    like = Image.frombytes("L", (ww, hh), b"".join(rows)).point([255 if v else 0 for v in like_iris])
    sel = ImageChops.darker(ring, like)
    n = sel.histogram()[255]
    if n <= 10:
        return 0.0
    ones = sel.point([1 if v else 0 for v in range(256)]).convert("F")
    total = ww * hh
    selected = pixelmath.image_math(lambda e: e["lap"] * e["s"], lap=lap, s=ones)
    mean = pixelmath.mean(selected) * total / n
    sq = pixelmath.image_math(lambda e: (e["lap"] - mean) * (e["lap"] - mean) * e["s"],
                              lap=lap, s=ones)
    return pixelmath.mean(sq) * total / n


def check_iris(img: Image.Image, *, threshold: int = 60, limits: IrisThresholds = IrisThresholds()) -> IrisQuality:
    """Score an iris image 0-100 with per-check results and hints (see the module docstring).

    Args:
        img: the eye image (converted to 8-bit grey).
        threshold: ``quality.iris_threshold`` (MOSIP default 60).
        limits: check limits.
    """
    grey = img.convert("L")
    w, h = grey.size
    checks: list[Check] = []
    pupil = _find_pupil(grey) if min(h, w) >= 32 else None
    found = _iris_radius(grey, *pupil) if pupil else None
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

    # Annulus geometry on the iris's bounding box (at most ~2*ri squared pixels): the ring and
    # its horizontal sectors as masks, their pixels' grey levels as masked histograms.
    x0, x1 = int(max(0, cx - ri)), int(min(w, cx + ri + 1))
    y0, y1 = int(max(0, cy - ri)), int(min(h, cy + ri + 1))
    inner, outer = rp * 1.15, ri * 0.92
    box = grey.crop((x0, y0, x1, y1))
    bw, bh = box.size

    def at(i: int) -> float:
        return i

    ring = _mask(bw, bh, _annulus_runs(x0, x1, range(y0, y1), at, cx, cy, inner, outer))
    horizontal = _mask(bw, bh, _annulus_runs(x0, x1, range(y0, y1), at, cx, cy, inner, outer, True))
    ring_hist = box.histogram(mask=ring)
    ref = box.histogram(mask=horizontal)  # within +-30 degrees of horizontal
    if not any(ref):
        ref = ring_hist
    if not any(ref):
        checks.append(Check("usable_area", False, 0.0, "no iris ring", *HINT_NO_EYE))
        return IrisQuality(combine(checks, WEIGHTS), False, tuple(checks), IrisMeasure((cx, cy), rp, ri))
    m = pixelmath.median(enumerate(ref))
    mad = pixelmath.median(sorted((abs(v - m), c) for v, c in enumerate(ref))) * 1.4826
    band = max(25.0, 3 * mad)
    limit = _f32(band)
    like_iris = [abs(v - m) <= limit for v in range(256)]
    usable = sum(c for v, c in enumerate(ring_hist) if like_iris[v])
    expected = math.pi * ((ri * 0.92) ** 2 - (rp * 1.15) ** 2)
    share = float(usable / expected) if expected > 0 else 0.0
    ok = share >= limits.min_usable_area
    checks.append(Check(
        "usable_area", ok, grade(share, limits.min_usable_area, 2.0, 0.4), f"usable iris {share:.2f}",
        "Buka mata lebih lebar.", "Open your eyes wider.",
    ))

    # Focus on a half-size copy: the iris texture's fibres are a few pixels wide, while
    # single-pixel sensor noise (which any blur removes first) would dominate at full size.
    # Only the iris's bounding box (in half-size pixels, inner pixels only) is worked on: the
    # selection below is empty outside it.
    half = grey.reduce(2)
    reach = ri * 0.92
    ylo, yhi = _half_span(cy, reach, half.size[1])
    xlo, xhi = _half_span(cx, reach, half.size[0])
    focus = 0.0
    if yhi > ylo and xhi > xlo:
        focus = _focus(grey, half, (xlo, ylo, xhi, yhi), cx, cy, inner, outer, like_iris)
    ok = focus >= limits.min_focus
    checks.append(Check(
        "focus", ok, 100.0 if ok else 50.0 * focus / limits.min_focus, f"laplacian variance {focus:.1f}",
        "Gambar kabur. Jangan bergerak dan jaga jarak sesuai petunjuk.",
        "Image blurred. Hold still at the guided distance.",
    ))

    score = combine(checks, WEIGHTS)
    passed = score >= threshold and all(c.passed for c in checks)
    return IrisQuality(score, passed, tuple(checks), IrisMeasure((cx, cy), rp, ri))
