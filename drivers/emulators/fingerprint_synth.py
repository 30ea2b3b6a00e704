"""Synthetic fingerprints for the emulators: fingerprint-like, deterministic, never anyone's print.

Method (after the SFinGe idea: an orientation field, then oriented filtering of noise):

1. **Orientation field** from a zero-pole (Sherlock-Monro) model: the ridge direction at ``z`` is
   ``theta0 + 1/2 * (sum arg(z - delta) - sum arg(z - core))``. A loop has one core and one delta,
   a whorl two of each, an arch none (a smooth bent field instead). The pattern class, the
   singular points, the ridge period and the finger outline are drawn from a seed made of the
   synthetic person's seed and the ISO finger position, so each finger of each person differs and
   the same (person, finger) always gives the same ridges.
2. **Ridges** grow from white noise by a few rounds of oriented band-pass filtering: the filter for
   each of ``_BINS`` quantised orientations is a Gabor-like Gaussian bump in the frequency domain at
   the ridge frequency, perpendicular to the ridges. Each pixel takes the response of its own
   orientation (linear between the two nearest bins); a soft clip between rounds sharpens ridges.
   The filter banks are cached per image shape and period, so a finger costs a few FFTs.
3. **Impression**: a fingertip outline with soft edges and pressure fall-off, 8-bit grey, dark
   ridges on a light platen, plus per-capture placement jitter and sensor noise. Condition knobs
   (dry, wet, smudge, partial) degrade the capture the way those conditions do on glass.

Images are 500 ppi, 8-bit greyscale. Nothing here is derived from a real person's fingerprint.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivers.emulators.fingerprint_conditions import GOOD, PRESETS, Conditions, PlacedFinger

__all__ = ["GOOD", "PRESETS", "Conditions", "PlacedFinger", "synth_finger", "synth_slap"]

PPI = 500
_BINS = 16  # orientation bins: 11.25 degrees apart, fine enough that ridges look continuous
_ROUNDS = 3  # filtering rounds: two leave blotches, four add little

Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FingerPattern:
    """The permanent traits of one synthetic finger (what a seed decides)."""

    kind: str  # "arch", "left_loop", "right_loop", "whorl"
    cores: tuple[tuple[float, float], ...]  # in fractions of (width, height)
    deltas: tuple[tuple[float, float], ...]
    period: float  # ridge period in pixels at 500 ppi
    width_frac: float  # fingertip width as a fraction of the image width


def finger_seed(person_seed: int, position: int) -> np.random.SeedSequence:
    """The seed sequence of one finger of one synthetic person."""
    return np.random.SeedSequence([0x5EED_F1, person_seed & 0xFFFF_FFFF, position])


def pattern_for(person_seed: int, position: int) -> FingerPattern:
    """Draw the pattern class, singular points and ridge period of one finger."""
    rng = np.random.default_rng(finger_seed(person_seed, position))
    kind = str(rng.choice(["arch", "left_loop", "right_loop", "whorl"], p=[0.08, 0.32, 0.32, 0.28]))
    cx = float(rng.uniform(0.42, 0.58))
    cy = float(rng.uniform(0.33, 0.45))
    cores: tuple[tuple[float, float], ...]
    deltas: tuple[tuple[float, float], ...]
    if kind == "arch":
        cores, deltas = ((cx, cy),), ()
    elif kind == "whorl":
        gap = float(rng.uniform(0.05, 0.09))
        cores = ((cx - 0.01, cy - gap / 2), (cx + 0.01, cy + gap / 2))
        dy = float(rng.uniform(0.68, 0.78))
        deltas = (
            (cx - float(rng.uniform(0.30, 0.38)), dy),
            (cx + float(rng.uniform(0.30, 0.38)), dy),
        )
    else:
        side = -1.0 if kind == "left_loop" else 1.0
        cores = ((cx, cy),)
        deltas = ((cx + side * float(rng.uniform(0.22, 0.34)), float(rng.uniform(0.66, 0.78))),)
    return FingerPattern(
        kind=kind,
        cores=cores,
        deltas=deltas,
        period=float(rng.uniform(8.2, 10.2)),
        width_frac=float(rng.uniform(0.74, 0.86)),
    )


def orientation_field(pattern: FingerPattern, width: int, height: int) -> Array:
    """Ridge direction in radians (0 = horizontal ridges) at every pixel."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    z = xs + 1j * ys
    if pattern.kind == "arch":
        # No singular points: ridges flat at the bottom, bowing upwards towards the top middle.
        cx, cy = pattern.cores[0]
        bend = np.exp(-(((ys - cy * height) / (0.45 * height)) ** 2))
        theta: Array = (-np.arctan(1.6 * bend * (xs - cx * width) / width * 2.0)).astype(np.float32)
        return theta
    angle = np.zeros((height, width), dtype=np.float64)
    # Image rows grow downwards, which mirrors the plane and flips every angle: hence cores
    # add and deltas subtract here, the opposite of the textbook formula's signs.
    for dx, dy in pattern.deltas:
        angle -= np.angle(z - (dx * width + 1j * dy * height))
    for cx, cy in pattern.cores:
        angle += np.angle(z - (cx * width + 1j * cy * height))
    return (0.5 * angle).astype(np.float32)


# Memory bounds matter: the emulator runs inside the daemon for demos. A bank is 16 x H x W/2
# floats (5 MB at 352x448; float16 would halve it but converting costs more than building), a
# master ridge image 0.3 MB in float16. Three banks cover single, rolled and slap-finger sizes.
@functools.lru_cache(maxsize=3)
def _filter_bank(shape: tuple[int, int], period: float) -> npt.NDArray[np.float32]:
    """Frequency responses (bins, H, W//2+1) of the oriented band-pass filters."""
    h, w = shape
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
    f0 = 1.0 / period
    sigma_along = 0.22 * f0  # radial spread: ridge period may wander by ~20%
    sigma_across = 0.16 * f0  # angular spread: keeps neighbouring orientations apart
    bank = np.empty((_BINS, h, w // 2 + 1), dtype=np.float32)
    for k in range(_BINS):
        theta = np.pi * k / _BINS
        # The filter passes waves travelling perpendicular to ridges of direction theta.
        nx, ny = np.float32(-np.sin(theta)), np.float32(np.cos(theta))  # stay in float32
        along = fx * nx + fy * ny
        across = -fx * ny + fy * nx
        bump = np.exp(-((np.abs(along) - f0) ** 2) / (2 * sigma_along**2))
        bump *= np.exp(-(across**2) / (2 * sigma_across**2))
        bank[k] = bump
    return bank


def _grow_ridges(theta: Array, period: float, rng: np.random.Generator) -> Array:
    """Ridges in -1..1 grown from noise by oriented filtering along ``theta``."""
    h, w = theta.shape
    # Periods snap to half pixels so a handful of banks serve every finger.
    bank = _filter_bank((h, w), round(period * 2) / 2)
    # Orientation is pi-periodic: map to a fractional bin index and split between two bins.
    pos = (np.mod(theta, np.pi) / np.pi * _BINS).astype(np.float32)
    lo = np.floor(pos).astype(np.intp) % _BINS
    hi = (lo + 1) % _BINS
    frac = pos - np.floor(pos)
    # Which pixels take each bin, and with what weight, is the same every round: work it out once.
    flat_lo, flat_hi, flat_frac = lo.ravel(), hi.ravel(), frac.ravel()
    picks: list[tuple[int, npt.NDArray[np.intp], npt.NDArray[np.float32]]] = []
    for k in range(_BINS):
        idx_lo = np.flatnonzero(flat_lo == k)
        idx_hi = np.flatnonzero(flat_hi == k)
        if idx_lo.size or idx_hi.size:
            idx = np.concatenate([idx_lo, idx_hi])
            weight = np.concatenate([1.0 - flat_frac[idx_lo], flat_frac[idx_hi]]).astype(np.float32)
            picks.append((k, idx, weight))
    img = rng.standard_normal((h, w)).astype(np.float32)
    for _ in range(_ROUNDS):
        spectrum = np.fft.rfft2(img)
        out = np.zeros(h * w, dtype=np.float32)
        for k, idx, weight in picks:
            resp = np.fft.irfft2(spectrum * bank[k], s=(h, w)).ravel()
            # A pixel appears at most once per bin, so a plain fancy-index add is exact.
            out[idx] += resp[idx] * weight
        grown = out.reshape(h, w)
        img = np.tanh(2.5 * grown / (grown.std() + 1e-6)).astype(np.float32)
    return img


@functools.lru_cache(maxsize=12)
def _master(person_seed: int, position: int, width: int, height: int) -> npt.NDArray[np.float16]:
    """The permanent ridge pattern of one finger at one size (cached: captures repeat fingers)."""
    pattern = pattern_for(person_seed, position)
    theta = orientation_field(pattern, width, height)
    rng = np.random.default_rng(finger_seed(person_seed, position).spawn(1)[0])
    ridges = _grow_ridges(theta, pattern.period, rng)
    master = ridges.astype(np.float16)
    master.setflags(write=False)
    return master


def _fingertip_mask(pattern: FingerPattern, width: int, height: int, dx: float, dy: float) -> Array:
    """Pressure 0..1 of a fingertip: rounded top, flat-ish bottom at the first crease."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    a = pattern.width_frac * width / 2
    b = 0.62 * height
    cx = width / 2 + dx
    cy = 0.60 * height + dy
    r = np.sqrt(((xs - cx) / a) ** 2 + ((ys - cy) / b) ** 2)
    mask = np.clip((1.0 - r) / 0.12, 0.0, 1.0)
    crease = np.clip((0.97 * height + dy - ys) / 12.0, 0.0, 1.0)
    pressure: Array = (mask * crease).astype(np.float32)
    return pressure


def _smooth(img: Array, radius: int, axis: int | None = None) -> Array:
    """Box blur (separable, via cumulative sums) along one axis or both."""
    if radius <= 0:
        return img
    out = img
    for ax in (0, 1) if axis is None else (axis,):
        pad = [(0, 0), (0, 0)]
        pad[ax] = (radius + 1, radius)
        c = np.cumsum(np.pad(out, pad, mode="edge"), axis=ax, dtype=np.float64)
        n = out.shape[ax]
        hi = np.take(c, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=ax)
        lo = np.take(c, np.arange(0, n), axis=ax)
        out = ((hi - lo) / (2 * radius + 1)).astype(np.float32)
    return out


def synth_finger(
    person_seed: int,
    position: int,
    *,
    width: int = 352,
    height: int = 448,
    conditions: Conditions = GOOD,
    capture_seed: int = 0,
    rolled: bool = False,
) -> npt.NDArray[np.uint8]:
    """One 500 ppi 8-bit fingerprint image (dark ridges on a light background).

    Args:
        person_seed: which synthetic person.
        position: ISO finger position 1-10 (decides which of the person's fingers).
        width, height: image size in pixels (at 500 ppi, 352x448 is 0.7x0.9 in).
        conditions: dry/wet/smudge/partial knobs.
        capture_seed: varies placement and noise between captures of the same finger.
        rolled: a rolled impression (wider contact, nail to nail) instead of a plain one.
    """
    if not 1 <= position <= 10:
        raise ValueError(f"finger position must be 1-10, got {position}")
    if width < 64 or height < 64:
        raise ValueError(f"image too small: {width}x{height}")
    pattern = pattern_for(person_seed, position)
    if rolled:
        pattern = FingerPattern(
            pattern.kind,
            pattern.cores,
            pattern.deltas,
            pattern.period,
            min(0.97, pattern.width_frac * 1.25),
        )
    ridges = _master(person_seed, position, width, height)
    rng = np.random.default_rng([0xCA97, person_seed & 0xFFFF_FFFF, position, capture_seed])
    # Placement jitter: a real finger never lands twice in the same spot.
    sx, sy = (int(v) for v in rng.integers(-6, 7, size=2))
    ridges = np.roll(ridges, (sy, sx), axis=(0, 1))
    mask = _fingertip_mask(pattern, width, height, float(sx), float(sy))

    c = conditions
    r = ridges.astype(np.float32)
    if c.wet > 0:
        # Moisture fills the valleys: the dark part grows and the pattern loses contrast.
        r = np.clip(r + 1.6 * c.wet, -1.0, 1.0)
        r = _smooth(r, int(round(3 * c.wet)))
    if c.dry > 0:
        # Dry skin touches the glass in patches: ridges break up and fade.
        blot = _smooth(rng.standard_normal((height, width)).astype(np.float32), 4)
        blot /= blot.std() + 1e-6
        contact = np.clip((blot + 1.5 - 3.2 * c.dry) * 1.5, 0.0, 1.0)
        r = (
            np.minimum(r, 0.0) * (1.0 - c.dry * 0.6) * contact
            + np.maximum(r, 0.0) * contact
            - (1 - contact)
        )
    if c.smudge > 0:
        # The finger slid while the sensor integrated: a long blur along one direction.
        r = _smooth(r, int(round(1 + 11 * c.smudge)), axis=int(rng.integers(0, 2)))
        r = _smooth(r, int(round(2 * c.smudge)))
    if c.partial > 0:
        # Part of the fingertip was off the glass: cut the contact area from one side.
        side = int(rng.integers(0, 4))
        keep = 1.0 - 0.85 * c.partial
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        coord = [xs / width, 1 - xs / width, ys / height, 1 - ys / height][side]
        mask = mask * np.clip((keep - coord) * 40.0, 0.0, 1.0)

    # Dark ridge (r=+1) about 35, valley (r=-1) about 225; pressure fades contrast at the edge.
    grey = 130.0 - 95.0 * r
    img = 255.0 * (1.0 - mask) + grey * mask
    img += rng.standard_normal((height, width)).astype(np.float32) * (255.0 * c.noise)
    return np.clip(img, 0, 255).astype(np.uint8)


def synth_slap(
    person_seed: int,
    positions: tuple[int, ...],
    *,
    platen: tuple[int, int] = (1600, 1000),
    conditions: dict[int, Conditions] | None = None,
    skip: frozenset[int] = frozenset(),
    capture_seed: int = 0,
    finger_size: tuple[int, int] = (300, 400),
) -> tuple[npt.NDArray[np.uint8], list[PlacedFinger]]:
    """A slap image with ``positions`` laid left to right, and where each finger landed.

    The fingers of a hand do not line up: the middle finger reaches highest, the little finger
    lowest, and each is tilted a little; the returned boxes are exact, because the synthesiser
    placed them (a real scanner's SDK segments instead).
    """
    pw, ph = platen
    fw, fh = finger_size
    n = len(positions)
    if n == 0 or n * fw > pw or fh > ph:
        raise ValueError(f"cannot lay {n} fingers of {fw}x{fh} on a {pw}x{ph} platen")
    rng = np.random.default_rng([0x51A9, person_seed & 0xFFFF_FFFF, capture_seed, *positions])
    canvas = np.full((ph, pw), 255, dtype=np.uint8)
    placed: list[PlacedFinger] = []
    gap = (pw - n * fw) // (n + 1)
    # Relative fingertip heights across a hand (index, middle, ring, little) as they lie.
    reach = {2: 0.10, 3: 0.0, 4: 0.08, 5: 0.28, 7: 0.10, 8: 0.0, 9: 0.08, 10: 0.28, 1: 0.2, 6: 0.2}
    for i, position in enumerate(positions):
        if position in skip:
            continue
        # Noise is added once over the whole platen below, not per finger box.
        cond = dataclasses.replace((conditions or {}).get(position, GOOD), noise=0.0)
        finger = synth_finger(
            person_seed, position, width=fw, height=fh, conditions=cond, capture_seed=capture_seed
        )
        left = gap + i * (fw + gap) + int(rng.integers(-gap // 3, gap // 3 + 1))
        top = int((ph - fh) * (0.15 + 0.6 * reach.get(position, 0.1))) + int(rng.integers(-10, 11))
        left = max(0, min(pw - fw, left))
        top = max(0, min(ph - fh, top))
        region = canvas[top : top + fh, left : left + fw]
        np.minimum(region, finger, out=region)  # overlapping edges: the darker print wins
        placed.append(PlacedFinger(position, (left, top, left + fw, top + fh)))
    noise = rng.standard_normal((ph, pw)).astype(np.float32) * (255.0 * GOOD.noise)
    canvas = np.clip(canvas.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return canvas, placed
