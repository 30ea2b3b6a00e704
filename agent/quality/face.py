"""Face-photo quality checks with Pillow and numpy only, honestly named.

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

Memory (issue 7: the face capture was the daemon's largest step). From JPEG bytes, libjpeg
decodes at the smallest DCT scale that is still at least WORK_HEIGHT high (a 1080p frame at
960x540; the full-size frame never exists), and that decode is dropped once reduced. The
reduction to WORK_HEIGHT runs band by band into one uint8 array where Pillow's BOX resize gives
the same pixels that way (see ``_exact_band_step``), whole otherwise. The working image stays
uint8; float32 exists only for the small regions a value is read from (border strips, face box)
and for one band of rows at a time where the whole image is scanned (subject mask, clipped
share). Every value is the same float32 arithmetic on the same pixels as when the whole image
was one float32 array, so the measurements are bit for bit what they were before this change
(0c06126), not merely the same verdicts: bench/bench_face_memory.py --compare checks every
result and every graded value at full precision over the emulator's scenes.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from agent.quality.result import Check, CheckedResult, combine, grade

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
# Lines per band where the whole working image is reduced or scanned: at 20 the bands' buffers
# (float32 temporaries of 20 x 640 px are 51 KB each, against 0.9 MB for the whole image) are
# small beside the 2 MB JPEG decode, and 18 calls of numpy and Pillow a band cost no more CPU
# than 9 (measured: peak +2.9 MB at 20 lines, +3.3 at 40, +3.7 at 80; CPU within the noise).
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


def classify_colour(rgb: np.ndarray) -> str:
    """Name a background colour: red, blue, white, or other."""
    r, g, b = (float(v) for v in rgb)
    if r > g + 50 and r > b + 50:
        return "red"
    if b > r + 50 and b > g + 20:
        return "blue"
    if min(r, g, b) > 180 and max(r, g, b) - min(r, g, b) < 30:
        return "white"
    return "other"


def _luma(arr: np.ndarray) -> np.ndarray:
    return arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114


def _max_distance(arr: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Largest per-channel absolute difference from ``ref`` over the last (colour) axis."""
    # Equal to np.abs(arr - ref).max(axis=-1), element for element; numpy's reduction over a
    # length-3 inner axis was 40% of a face check (profiled), three elementwise maxima are not.
    d: np.ndarray = np.abs(arr[..., 0] - ref[0])
    np.maximum(d, np.abs(arr[..., 1] - ref[1]), out=d)
    np.maximum(d, np.abs(arr[..., 2] - ref[2]), out=d)
    return d


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
    # 4 bytes a pixel) is dropped before the numpy work starts.
    arr = _work_array(img)
    del img
    return _check(arr, full, rule=rule, birth_year=birth_year, threshold=threshold, limits=limits)


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


def _work_array(img: Image.Image) -> np.ndarray:
    """The image as RGB at working height, as a uint8 array (height, width, 3)."""
    # convert() always copies; a 1080p RGB frame is 6 MB copied for nothing.
    work = img if img.mode == "RGB" else img.convert("RGB")
    if work.height <= WORK_HEIGHT:
        return np.asarray(work)
    # A fixed working height makes sharpness and sizes comparable across camera modes;
    # BOX resampling is an average, cheap even for a 1080p frame.
    new_w = max(3, round(work.width * WORK_HEIGHT / work.height))
    step = _exact_band_step(work.width, work.height)
    if step is None:
        return np.asarray(work.resize((new_w, WORK_HEIGHT), Image.Resampling.BOX))
    # Whole, the resize holds a horizontally resampled copy of every source line (1.4 MB from a
    # 960x540 decode) next to its output (4 bytes a pixel), and tobytes() doubles that output
    # again; band by band each is a few hundred KB. Pillow resizes horizontally, then
    # vertically; each band does the same in two calls (one call with a box may take the other
    # order, whose rounding differs), reading the source lines its output lines cover.
    arr = np.empty((WORK_HEIGHT, new_w, 3), dtype=np.uint8)
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
        arr[r0:r1] = np.asarray(band)
    return arr


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


def _scan_bands(arr: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, int]:
    """The subject mask (colour distance from ``bg`` > 45) and the count of clipped pixels.

    Band by band in float32, so each pixel gets exactly the arithmetic it got when the whole
    image was converted at once, without whole-image float temporaries.
    """
    h = arr.shape[0]
    mask = np.empty(arr.shape[:2], dtype=bool)
    clipped = 0
    for r0 in range(0, h, BAND_ROWS):
        band = arr[r0 : r0 + BAND_ROWS].astype(np.float32)
        mask[r0 : r0 + BAND_ROWS] = _max_distance(band, bg) > 45
        luma = _luma(band)
        clipped += int(np.count_nonzero((luma <= 3) | (luma >= 252)))
    return mask, clipped


def _check(
    arr: np.ndarray,
    original_size: tuple[int, int],
    *,
    rule: str,
    birth_year: int | None,
    threshold: int,
    limits: FaceThresholds,
) -> FaceQuality:
    """The checks on the working image ``arr`` (uint8 RGB at working height)."""
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
    h, w, _ = arr.shape

    # --- background: top strip and the upper parts of the side strips
    bh, bw = max(2, h // 12), max(2, w // 12)
    strips = np.concatenate([
        arr[:bh].reshape(-1, 3),
        arr[: int(h * 0.55), :bw].reshape(-1, 3),
        arr[: int(h * 0.55), w - bw :].reshape(-1, 3),
    ]).astype(np.float32)
    bg = np.median(strips, axis=0)
    strip_dist = _max_distance(strips, bg)
    intrusion = float((strip_dist > 40).mean())
    spread = float(_luma(strips).std())
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
    mask, clipped_count = _scan_bands(arr, bg)
    row_counts = mask.sum(axis=1)
    rows = np.nonzero(row_counts >= max(2, int(0.02 * w)))[0]
    if rows.size == 0:
        for name, hint_id, hint_en in (
            ("centred", "Tidak ada orang di depan kamera.", "Nobody is in front of the camera."),
            ("size", "Tidak ada orang di depan kamera.", "Nobody is in front of the camera."),
        ):
            checks.append(Check(name, False, 0.0, "no subject found", hint_id, hint_en))
        face_box = (slice(h // 4, 3 * h // 4), slice(w // 4, 3 * w // 4))
    else:
        crown = int(rows[0])
        span = h - crown
        head_rows = slice(crown, crown + max(2, int(span * 0.45)))
        head_w = float(np.percentile(row_counts[head_rows], 90))
        ys, xs = np.nonzero(mask[head_rows])
        centre_x = float(xs.mean()) if xs.size else w / 2
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

    face = arr[face_box].astype(np.float32)
    face_luma = _luma(face)
    mean = float(face_luma.mean()) if face_luma.size else 0.0
    clipped_face = float(((face_luma <= 5) | (face_luma >= 250)).mean()) if face.size else 1.0
    # numpy's mean of a bool array is this float64 division of the count.
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
    if face_luma.shape[0] >= 3 and face_luma.shape[1] >= 3:
        f = face_luma
        lap = float((4 * f[1:-1, 1:-1] - f[:-2, 1:-1] - f[2:, 1:-1] - f[1:-1, :-2] - f[1:-1, 2:]).var())
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
