"""Face-photo quality checks with Pillow's C operations, honestly named.

What is measured (on a reduced copy of the image, 360 px high, so a 1080p frame costs a
few milliseconds and a few MB):

* resolution - the original image's pixel size against a minimum;
* exposure and clipping - mean luminance of the estimated face box, and the share of clipped
  (near black or near white) pixels there and in the whole image;
* sharpness - variance of a 4-neighbour Laplacian on the face box (thresholds are calibrated
  on the emulator's portraits; they must be re-calibrated on the station's real camera);
* background uniformity - spread of colour in the top and side border strips;
* background colour - the e-KTP rule: red for odd birth years, blue for even (research note
  mosip.md section 2.14, luwukab.go.id), or a fixed colour, or any;
* subject centred and sized - a PROXY: pixels that differ clearly from the background colour
  are "subject"; the top of that region is the crown, the widest rows near it are the head.
  This finds a person-shaped blob, not a face.

What is NOT checked (needs a face or eye detector we do not have): that the blob is a face,
eye positions and inter-eye distance, head pose, eyes open, expression, glasses glare, hats,
shadows on the face, colour cast. These are listed in every result's ``not_checked``.

No numpy (issue 7: importing it costs the daemon about 15 MB of RSS). Pixel work runs in
Pillow: colour distances and clipping as lookup tables (``point``) and float32 ``ImageMath``
(the same float32 arithmetic, in the same order, as the numpy version it replaced), counts
from histograms, means as a BOX resize to one pixel (double sums). Python sees only lookup
tables, histograms and row or column profiles (at most a few thousand values). The subject
mask, the clipped shares, the background median and the subject geometry are exactly the numpy
version's (a533ba2); the means and variances (face luminance, background spread, Laplacian
variance) are summed in double instead of numpy's float32, which moved them by at most 2e-7
of their value over the emulator's scenes, no verdict and no score
(bench/bench_face_memory.py --compare).

Memory (the face capture was the daemon's largest step). From JPEG bytes, libjpeg decodes at
the smallest DCT scale that is still at least WORK_HEIGHT high (a 1080p frame at 960x540; the
full-size frame never exists), and that decode is dropped once reduced. The reduction to
WORK_HEIGHT runs band by band where Pillow's BOX resize gives the same pixels that way (see
``_exact_band_step``), whole otherwise. Float32 images exist only for the small regions a value
is read from (border strips, face box) and, for the whole image's clipped share, for the bands
of rows that hold a pixel at a limit grey level (see ``_count_clipped``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from PIL import Image, ImageChops

from agent.quality.result import Check, CheckedResult, combine, grade
from drivers import pixelmath

NOT_CHECKED: tuple[str, ...] = (
    "face detection (a person-shaped region is found, not a face)",
    "eye positions and inter-eye distance",
    "head pose (yaw, pitch, roll)",
    "eyes open",
    "expression and closed mouth",
    "glasses glare, hats, shadows on the face",
    "colour cast of the skin",
)

# Working height: enough for every check, small enough for the time budget.
WORK_HEIGHT = 360
# Lines per band where the whole working image is reduced or scanned: the bands' float32
# images (20 x 640 px are 51 KB each, against 0.9 MB for the whole image) stay small beside
# the 2 MB JPEG decode.
BAND_ROWS = 20


@dataclass(frozen=True)
class FaceThresholds:
    """Limits of each check (calibrated on the emulator; re-calibrate on a real camera)."""

    min_width: int = 640
    min_height: int = 480
    face_luma_min: float = 90.0
    face_luma_max: float = 210.0
    max_clipped_share: float = 0.04  # eye whites and glints may touch white; a blown face does more
    min_sharpness: float = 40.0  # emulator: blur radius 4 px at 1080p passes, 6 px fails
    max_background_std: float = 14.0
    max_background_intrusion: float = 0.05
    max_centre_offset: float = 0.08  # head centre from image centre, share of width
    min_head_width: float = 0.12  # head width, share of image width
    max_head_width: float = 0.70
    min_crown_margin: float = 0.02  # space above the head, share of height
    max_crown_margin: float = 0.30


@dataclass(frozen=True)
class FaceQuality(CheckedResult):
    """The result of :func:`check_face`."""

    score: int
    passed: bool
    checks: tuple[Check, ...]
    not_checked: tuple[str, ...] = field(default=NOT_CHECKED)


WEIGHTS = {
    "resolution": 10,
    "exposure": 20,
    "sharpness": 25,
    "background_uniform": 15,
    "background_colour": 10,
    "centred": 10,
    "size": 10,
}


def expected_background(rule: str, birth_year: int | None) -> str | None:
    """The background colour the rule asks for: "red", "blue", or None (any / unknown)."""
    if rule in ("red", "blue"):
        return rule
    if rule == "birth-year":
        if birth_year is None:
            return None
        return "red" if birth_year % 2 else "blue"
    if rule == "any":
        return None
    raise ValueError(f"unknown photo_background rule {rule!r}")


def classify_colour(rgb: Iterable[float]) -> str:
    """Name a background colour: red, blue, white, or other."""
    r, g, b = (float(v) for v in rgb)
    if r > g + 50 and r > b + 50:
        return "red"
    if b > r + 50 and b > g + 20:
        return "blue"
    if min(r, g, b) > 180 and max(r, g, b) - min(r, g, b) < 30:
        return "white"
    return "other"


def _luma(rgb: Image.Image) -> Image.Image:
    """Mode-F luminance of an RGB image: float32 ``r*0.299 + g*0.587 + b*0.114``, in that order."""
    r, g, b = (band.convert("F") for band in rgb.split())
    return pixelmath.image_math(lambda e: e["r"] * 0.299 + e["g"] * 0.587 + e["b"] * 0.114,
                                r=r, g=g, b=b)


def _count_clipped(rgb: Image.Image, low: int, high: int) -> int:
    """How many pixels of an RGB image have a float32 luminance (:func:`_luma`) <= ``low`` or
    >= ``high``.

    Pillow's grey conversion rounds the same weighted sum with 16-bit weights (each within 6e-6
    of 0.299, 0.587, 0.114, so the sums differ by under 0.002): a grey level below ``low`` or
    above ``high`` decides a pixel outright and one strictly between them excludes it. Only
    pixels at grey ``low`` or ``high`` need the float32 arithmetic, and only the bands of rows
    that hold one get it (tests/test_face_no_numpy.py checks this over every RGB triple).
    """
    grey = rgb.convert("L")
    hist = grey.histogram()
    count = sum(hist[:low]) + sum(hist[high + 1 :])
    if not (hist[low] or hist[high]):
        return count
    edge = grey.point([1 if v in (low, high) else 0 for v in range(256)])
    box = edge.getbbox()
    if box is None:
        raise AssertionError("unreachable: the histogram counted pixels at the edge levels")
    x0, y0, x1, y1 = box
    for r0 in range(y0, y1, BAND_ROWS):
        band = (x0, r0, x1, min(y1, r0 + BAND_ROWS))
        at_edge = edge.crop(band)
        if at_edge.getbbox() is None:
            continue
        hits = pixelmath.image_math(lambda e: ((e["a"] <= low) + (e["a"] >= high)) * e["m"],
                                    a=_luma(rgb.crop(band)), m=at_edge.convert("F"))
        count += hits.convert("L").histogram()[1]
    return count


def _variance(values: Image.Image) -> float:
    """Population variance of a non-empty mode-F image."""
    mean = pixelmath.mean(values)
    # Around the mean, not E[x^2] - E[x]^2: luminance near 100 with a spread of a few levels
    # would lose its variance to cancellation in the squares.
    deviations = pixelmath.image_math(lambda e: (e["a"] - mean) * (e["a"] - mean), a=values)
    return pixelmath.mean(deviations)


def _far_from(rgb: Image.Image, ref: Sequence[float], limit: float) -> Image.Image:
    """Mode-L mask, 1 where any channel differs from ``ref`` by more than ``limit``, else 0.

    A lookup table per channel gives each 8-bit level its exact verdict (``ref`` is a median of
    8-bit levels, a whole or half level, so level - ref is exact in float32 and here), so the
    mask is the float32 arithmetic's.
    """
    lut: list[int] = []
    for c in range(3):
        # |v - ref| > limit: the levels below ref - limit and those above ref + limit.
        below = min(256, max(0, math.ceil(ref[c] - limit)))
        above = min(256 - below, max(0, 255 - math.floor(ref[c] + limit)))
        lut += [1] * below + [0] * (256 - below - above) + [1] * above
    r, g, b = rgb.point(lut).split()
    return ImageChops.lighter(ImageChops.lighter(r, g), b)


def _ones(mask: Image.Image) -> int:
    """Number of 1 pixels of a 0/1 mode-L mask."""
    return mask.histogram()[1]


def _span(s: slice, n: int) -> tuple[int, int]:
    """The index range ``[start, stop)`` that ``s`` selects from ``n`` items (numpy's slicing)."""
    start, stop, _ = s.indices(n)
    return start, max(start, stop)


def _region(img: Image.Image, rows: slice, cols: slice) -> Image.Image:
    """``img[rows, cols]`` with sequence slicing rules (negative bounds count from the end)."""
    y0, y1 = _span(rows, img.height)
    x0, x1 = _span(cols, img.width)
    return img.crop((x0, y0, x1, y1))


def _percentile(values: Sequence[int], q: float) -> float:
    """numpy's default (linear) percentile ``q`` (0-100) of non-empty ``values``, to the bit."""
    ordered = sorted(values)
    n = len(ordered)
    virtual = (n - 1) * (q / 100)
    lo = min(math.floor(virtual), n - 1)
    hi = min(lo + 1, n - 1)
    gamma = virtual - lo
    a, b = ordered[lo], ordered[hi]
    # numpy interpolates from the nearer end, which rounds differently from a + (b - a) * g.
    return b - (b - a) * (1 - gamma) if gamma >= 0.5 else a + (b - a) * gamma


def check_face_jpeg(
    data: bytes,
    *,
    rule: str = "any",
    birth_year: int | None = None,
    threshold: int = 50,
    limits: FaceThresholds = FaceThresholds(),
) -> FaceQuality:
    """:func:`check_face` on JPEG bytes, decoding at reduced scale (libjpeg DCT scaling)."""
    img = Image.open(io.BytesIO(data))
    full = img.size
    # The size asked for is the working size: Pillow picks the largest DCT scale (1/2, 1/4, 1/8)
    # that still gives at least this, so a 1080p frame decodes at 960x540, never at full size.
    img.draft("RGB", (WORK_HEIGHT * full[0] // max(1, full[1]), WORK_HEIGHT))
    # Only the working copy is kept: the decoded draft (2 MB at 960x540, Pillow stores RGB in
    # 4 bytes a pixel) is dropped before the checks start.
    work = _work_array(img)
    del img
    return _check(work, full, rule=rule, birth_year=birth_year, threshold=threshold, limits=limits)


def check_face(
    img: Image.Image,
    *,
    rule: str = "any",
    birth_year: int | None = None,
    threshold: int = 50,
    limits: FaceThresholds = FaceThresholds(),
    original_size: tuple[int, int] | None = None,
) -> FaceQuality:
    """Score a face photo 0-100 with per-check results and hints in Indonesian and English.

    Args:
        img: the photo (any mode; converted to RGB).
        rule: ``quality.photo_background``: birth-year, red, blue or any.
        birth_year: the applicant's birth year, for the birth-year rule (not logged, not kept).
        threshold: ``quality.face_threshold``; ``passed`` needs this score and every check.
        limits: check limits.
        original_size: the camera frame's size when ``img`` is already reduced.
    """
    return _check(_work_array(img), original_size or img.size, rule=rule, birth_year=birth_year,
                  threshold=threshold, limits=limits)


def _work_array(img: Image.Image) -> Image.Image:
    """The image as RGB at working height (the caller's own image when it already is that)."""
    # convert() always copies; a 1080p RGB frame is 6 MB copied for nothing.
    work = img if img.mode == "RGB" else img.convert("RGB")
    if work.height <= WORK_HEIGHT:
        return work
    # A fixed working height makes sharpness and sizes comparable across camera modes;
    # BOX resampling is an average, cheap even for a 1080p frame.
    new_w = max(3, round(work.width * WORK_HEIGHT / work.height))
    step = _exact_band_step(work.width, work.height)
    if step is None:
        return work.resize((new_w, WORK_HEIGHT), Image.Resampling.BOX)
    # Whole, the resize holds a horizontally resampled copy of every source line (1.4 MB from a
    # 960x540 decode) next to its output; band by band that copy is a few hundred KB. Pillow
    # resizes horizontally, then vertically; each band does the same in two calls (one call with
    # a box may take the other order, whose rounding differs), reading the source lines its
    # output lines cover.
    out = Image.new("RGB", (new_w, WORK_HEIGHT))
    scale = work.height / WORK_HEIGHT  # exact: a power-of-two denominator (_exact_band_step)
    for r0 in range(0, WORK_HEIGHT, step):
        r1 = min(WORK_HEIGHT, r0 + step)
        top, bottom = r0 * scale, r1 * scale  # whole source lines (see _exact_band_step)
        # BOX reads exactly the lines [top, bottom); two spare lines each side make sure no
        # band's edge clips what its first or last line reads (only the image's edges may).
        y0, y1 = max(0, int(top) - 2), min(work.height, int(bottom) + 2)
        # Horizontal only: the vertical part of this call maps each line to itself, exactly.
        lines = work.resize((new_w, y1 - y0), Image.Resampling.BOX, box=(0, y0, work.width, y1))
        band = lines.resize((new_w, r1 - r0), Image.Resampling.BOX,
                            box=(0, top - y0, new_w, bottom - y0))
        out.paste(band, (0, r0))
    return out


def _exact_band_step(width: int, height: int) -> int | None:
    """Output lines per band for which a banded resize to WORK_HEIGHT gives the whole resize's
    pixels, or None where it would not (the caller then resizes whole).

    Two conditions, both checked against one whole resize by tests/test_face_quality.py:

    * the order of the passes: the bands resize horizontally, then vertically, as Pillow does
      for a frame at least as wide as high. For a tall image (about twice as high as wide)
      Pillow 13 resizes vertically first, which rounds differently.
    * exact positions: Pillow puts output line ``i`` at ``box_top + (i + 0.5) * scale`` source
      lines, in double precision, and derives the lines it reads and their weights from that.
      When ``scale`` has a power-of-two denominator (540 -> 360 lines is 3/2) and every band
      starts on a whole source line, each position is exact and equal to the whole resize's.
      480 -> 360 (4/3) is not.
    """
    if width < height:
        return None
    g = math.gcd(height, WORK_HEIGHT)
    den = WORK_HEIGHT // g  # scale = (height // g) / den
    if den & (den - 1):
        return None
    # A multiple of den near BAND_ROWS: bands then start on whole source lines.
    return max(den, BAND_ROWS // den * den)


def _scan_bands(
    work: Image.Image | Image.SupportsArrayInterface, bg: Iterable[float]
) -> tuple[Image.Image, int]:
    """The subject mask (colour distance from ``bg`` > 45; mode L, 1 = subject) and the count
    of clipped pixels (float32 luminance <= 3 or >= 252) of an RGB image.

    ``work`` may also be an RGB uint8 array (tests and benchmarks hold numpy; Pillow reads it
    through the array interface). No whole-image float32 image exists (see
    :func:`_count_clipped`).
    """
    img = work if isinstance(work, Image.Image) else Image.fromarray(work)
    if img.mode != "RGB":
        raise ValueError(f"the scan needs an RGB image, got mode {img.mode}")
    ref = [float(v) for v in bg]
    # Whole: the lookup's RGB copy and its channels (1.6 MB at 640x360) exist after the JPEG
    # decode is gone, below the call's peak. In bands of 60 lines they took 0.35 MB less, but the
    # bands' buffers left 1.6 MB of freed heap unreturned (bench_face_memory.py "held"), and
    # the calls a band costs doubled this step's CPU at 20 lines.
    return _far_from(img, ref, 45), _count_clipped(img, 3, 252)


def _check(
    work: Image.Image,
    original_size: tuple[int, int],
    *,
    rule: str,
    birth_year: int | None,
    threshold: int,
    limits: FaceThresholds,
) -> FaceQuality:
    """The checks on the working image ``work`` (RGB at working height)."""
    if work.width == 0 or work.height == 0:
        raise ValueError(f"cannot check an empty photo ({work.width}x{work.height} px)")
    width, height = original_size
    checks: list[Check] = []
    not_checked = list(NOT_CHECKED)

    ok = width >= limits.min_width and height >= limits.min_height
    checks.append(Check(
        "resolution", ok,
        100.0 if ok else 50.0 * min(width / limits.min_width, height / limits.min_height),
        f"{width}x{height}",
        "Resolusi kamera terlalu rendah. Hubungi teknisi.",
        "Camera resolution too low. Call the technician.",
    ))
    w, h = work.size

    # --- background: top strip and the upper parts of the side strips
    bh, bw = max(2, h // 12), max(2, w // 12)
    upper = slice(None, int(h * 0.55))
    # The strips' pixels joined into one line (about 40,000 pixels at working height, 160 KB),
    # as the numpy version concatenated them: each figure is then one Pillow call.
    pixels = b"".join(_region(work, rows, cols).tobytes() for rows, cols in (
        (slice(None, bh), slice(None)), (upper, slice(None, bw)), (upper, slice(w - bw, None))))
    border = Image.frombytes("RGB", (len(pixels) // 3, 1), pixels)
    del pixels
    # The histogram (256 counts per channel) gives the per-channel median exactly.
    counts = border.histogram()
    bg = [pixelmath.median(enumerate(counts[256 * c : 256 * (c + 1)])) for c in range(3)]
    intrusion = _ones(_far_from(border, bg, 40)) / border.width
    spread = math.sqrt(_variance(_luma(border)))
    del border
    uniform = spread <= limits.max_background_std and intrusion <= limits.max_background_intrusion
    checks.append(Check(
        "background_uniform", uniform,
        min(grade(spread, 0, limits.max_background_std, 30),
            grade(intrusion, 0, limits.max_background_intrusion, 0.3)),
        f"spread {spread:.1f}, intrusion {intrusion:.3f}",
        "Latar belakang tidak polos. Rapikan kain latar dan jauhkan benda lain.",
        "Background is not plain. Straighten the backdrop and remove other objects.",
    ))

    want = expected_background(rule, birth_year)
    colour = classify_colour(bg)
    if want is None:
        reason = "rule is 'any'" if rule == "any" else "birth year not given"
        not_checked.append(f"background colour ({reason})")
    else:
        ok = colour == want
        word = {"red": "merah", "blue": "biru"}[want]
        checks.append(Check(
            "background_colour", ok, 100.0 if ok else 0.0, f"{colour}, want {want}",
            f"Warna latar harus {word}. Ganti kain latar.",
            f"The background must be {want}. Change the backdrop.",
        ))

    # --- subject: pixels clearly unlike the background
    mask, clipped_count = _scan_bands(work, bg)
    # The row profile: one C-level count of a row's bytes each, a few hundred rows.
    bits = mask.tobytes()
    row_counts = [bits.count(1, y * w, (y + 1) * w) for y in range(h)]
    del bits
    need = max(2, int(0.02 * w))
    crown_row = next((y for y, count in enumerate(row_counts) if count >= need), None)
    if crown_row is None:
        for name, hint_id, hint_en in (
            ("centred", "Tidak ada orang di depan kamera.", "Nobody is in front of the camera."),
            ("size", "Tidak ada orang di depan kamera.", "Nobody is in front of the camera."),
        ):
            checks.append(Check(name, False, 0.0, "no subject found", hint_id, hint_en))
        face_box = (slice(h // 4, 3 * h // 4), slice(w // 4, 3 * w // 4))
    else:
        crown = crown_row
        span = h - crown
        head_rows = slice(crown, crown + max(2, int(span * 0.45)))
        head_w = _percentile(row_counts[head_rows], 90)
        # The column profile of the head rows: transposed, each column is one row of bytes.
        head = _region(mask, head_rows, slice(None)).transpose(Image.Transpose.TRANSPOSE)
        bits = head.tobytes()
        col_counts = [bits.count(1, x * head.width, (x + 1) * head.width) for x in range(w)]
        del bits, head
        total = sum(col_counts)
        # The mean column of the subject pixels, an exact integer sum over one division.
        centre_x = sum(x * c for x, c in enumerate(col_counts)) / total if total else w / 2
        offset = (centre_x - w / 2) / w
        ok = abs(offset) <= limits.max_centre_offset
        checks.append(Check(
            "centred", ok, grade(abs(offset), 0, limits.max_centre_offset, 0.2),
            f"head centre {offset:+.2f} of width",
            "Posisikan wajah di tengah: geser ke " + ("kiri." if offset > 0 else "kanan."),
            "Centre the face: move to the " + ("left." if offset > 0 else "right."),
        ))
        share = head_w / w
        margin = crown / h
        size_ok = (limits.min_head_width <= share <= limits.max_head_width
                   and limits.min_crown_margin <= margin <= limits.max_crown_margin)
        too_small = share < limits.min_head_width or margin > limits.max_crown_margin
        checks.append(Check(
            "size", size_ok,
            min(grade(share, limits.min_head_width, limits.max_head_width, 0.2),
                grade(margin, limits.min_crown_margin, limits.max_crown_margin, 0.2)),
            f"head width {share:.2f} of width, crown at {margin:.2f} of height",
            "Maju sedikit ke kamera." if too_small else "Mundur sedikit; kepala harus terlihat utuh.",
            "Move a little closer." if too_small else "Move back a little; the whole head must show.",
        ))
        # The face box: below the hairline, centred on the head (proportions of a head).
        top = crown + int(0.55 * head_w)
        bottom = min(h, crown + int(1.0 * head_w))
        half = max(2, int(0.25 * head_w))
        cx = int(centre_x)
        face_box = (slice(min(top, h - 3), max(bottom, min(top, h - 3) + 3)),
                    slice(max(0, cx - half), min(w, cx + half)))
    del mask

    face = _region(work, *face_box)
    fw, fh = face.size
    face_luma = _luma(face) if fw and fh else None
    mean = pixelmath.mean(face_luma) if face_luma is not None else 0.0
    clipped_face = _count_clipped(face, 5, 250) / (fw * fh) if face_luma is not None else 1.0
    clipped_all = clipped_count / (h * w)
    ok = (limits.face_luma_min <= mean <= limits.face_luma_max
          and clipped_face <= limits.max_clipped_share and clipped_all <= 2 * limits.max_clipped_share)
    dark = mean < limits.face_luma_min
    checks.append(Check(
        "exposure", ok,
        min(grade(mean, limits.face_luma_min, limits.face_luma_max, 60),
            grade(clipped_face, 0, limits.max_clipped_share, 0.2)),
        f"face luminance {mean:.0f}, clipped {clipped_face:.3f} (face) {clipped_all:.3f} (all)",
        "Foto terlalu gelap. Nyalakan lampu atau naikkan kecerahan." if dark
        else "Foto terlalu terang. Kurangi lampu atau kecerahan.",
        "Photo too dark. Turn on the light or raise the brightness." if dark
        else "Photo too bright. Dim the light or lower the brightness.",
    ))

    lap = 0.0
    if face_luma is not None and fh >= 3 and fw >= 3:
        f = face_luma
        # The same float32 operations in the same order as 4*c - up - down - left - right.
        laplacian = pixelmath.image_math(
            lambda e: 4 * e["c"] - e["up"] - e["down"] - e["left"] - e["right"],
            c=f.crop((1, 1, fw - 1, fh - 1)), up=f.crop((1, 0, fw - 1, fh - 2)),
            down=f.crop((1, 2, fw - 1, fh)), left=f.crop((0, 1, fw - 2, fh - 1)),
            right=f.crop((2, 1, fw, fh - 1)),
        )
        lap = _variance(laplacian)
    ok = lap >= limits.min_sharpness
    checks.append(Check(
        "sharpness", ok, 100.0 if ok else 50.0 * lap / limits.min_sharpness,
        f"laplacian variance {lap:.1f}",
        "Foto kabur. Lihat ke kamera dan jangan bergerak.",
        "Photo blurred. Look at the camera and hold still.",
    ))

    score = combine(checks, WEIGHTS)
    passed = score >= threshold and all(c.passed for c in checks)
    return FaceQuality(score, passed, tuple(checks), tuple(not_checked))
