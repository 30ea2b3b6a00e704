"""The ``FingerprintScanner`` interface every fingerprint driver implements.

A scanner is a :class:`drivers.base.Device` that also captures fingers: one finger at a time
(every scanner), a 4-4-2 slap (enrollment-grade ten-print scanners), and rolled prints (where the
hardware offers them). ``capabilities()`` says which; asking for something the scanner cannot do
raises :class:`CaptureNotSupportedError` before anything touches the wire.

Finger and slap codes are the ISO/IEC 19794-4 finger-position codes (research note §5.1), so a
capture goes straight into a 19794-4 record or an ANSI/NIST Type-14 record without a mapping table.

Errors, split by who must act (libfprint's RETRY vs ERROR; see ``drivers/errors.py``)::

    UserRetryError (drivers.errors)
     +-- NoFingerError            nothing on the glass before the timeout
     +-- FingerQualityError       too dry, too wet, smudged, partial or too few features
     +-- CaptureCancelledError    the operator (or shutdown) cancelled the capture
    DeviceError (drivers.errors)
     +-- CaptureNotSupportedError the scanner cannot do this kind of capture (caller's mistake)
     +-- CaptureArgumentError     impossible arguments (also a ValueError), checked before I/O

Faults, missing devices, timeouts and protocol errors use the classes in ``drivers/errors.py``.

Waiting for a finger is bounded by ``timeout`` and interruptible through ``cancel``: drivers poll
in short steps and check ``cancel.is_set()`` between them, so no capture outlives either.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from PIL import Image

from drivers import pixelmath
from drivers.base import Device
from drivers.errors import DeviceError, UserRetryError

if TYPE_CHECKING:
    # Only for the annotation: callers (tests, benchmarks, emulators) may pass an array; the
    # daemon never imports numpy (about 15 MB of RSS, issue 7).
    import numpy as np
    import numpy.typing as npt


class FingerPosition(IntEnum):
    """ISO/IEC 19794-4 finger position codes for single fingers."""

    RIGHT_THUMB = 1
    RIGHT_INDEX = 2
    RIGHT_MIDDLE = 3
    RIGHT_RING = 4
    RIGHT_LITTLE = 5
    LEFT_THUMB = 6
    LEFT_INDEX = 7
    LEFT_MIDDLE = 8
    LEFT_RING = 9
    LEFT_LITTLE = 10

    @property
    def is_right(self) -> bool:
        """True for the five fingers of the right hand."""
        return self.value <= 5

    @property
    def is_thumb(self) -> bool:
        """True for either thumb."""
        return self in (FingerPosition.RIGHT_THUMB, FingerPosition.LEFT_THUMB)


class Slap(IntEnum):
    """ISO/IEC 19794-4 codes of the three plain multi-finger impressions of a 4-4-2 capture."""

    RIGHT_FOUR = 13
    LEFT_FOUR = 14
    TWO_THUMBS = 15

    @property
    def fingers(self) -> tuple[FingerPosition, ...]:
        """The fingers of this slap, left to right as they lie on the glass (palms down)."""
        return _SLAP_LAYOUT[self]


# Palms down on the platen: the right hand shows index..little from left to right, the left
# hand little..index, and the two thumbs sit left thumb left, right thumb right. Segmentation and
# the emulator both rely on this order, so it lives in one place.
_SLAP_LAYOUT: dict[Slap, tuple[FingerPosition, ...]] = {
    Slap.RIGHT_FOUR: (
        FingerPosition.RIGHT_INDEX,
        FingerPosition.RIGHT_MIDDLE,
        FingerPosition.RIGHT_RING,
        FingerPosition.RIGHT_LITTLE,
    ),
    Slap.LEFT_FOUR: (
        FingerPosition.LEFT_LITTLE,
        FingerPosition.LEFT_RING,
        FingerPosition.LEFT_MIDDLE,
        FingerPosition.LEFT_INDEX,
    ),
    Slap.TWO_THUMBS: (FingerPosition.LEFT_THUMB, FingerPosition.RIGHT_THUMB),
}


class Impression(IntEnum):
    """ISO/IEC 19794-4 impression type codes used here (live-scan only)."""

    LIVE_PLAIN = 0
    LIVE_ROLLED = 1


@dataclass(frozen=True)
class ScannerCapabilities:
    """What kinds of capture a scanner offers, and its native image geometry."""

    single_finger: bool
    slaps: frozenset[Slap]
    rolled: bool
    ppi: int
    bit_depth: int = 8

    def as_dict(self) -> dict[str, object]:
        """JSON form for diagnostics."""
        return {
            "single_finger": self.single_finger,
            "slaps": sorted(s.name.lower() for s in self.slaps),
            "rolled": self.rolled,
            "ppi": self.ppi,
            "bit_depth": self.bit_depth,
        }


@dataclass(frozen=True)
class FingerCapture:
    """One captured finger: an 8-bit greyscale image with its position and quality.

    ``quality`` is 0-100 and ``quality_method`` names how it was computed (never "NFIQ 2" unless
    NFIQ 2 really computed it). ``bbox`` is the finger's box (left, top, right, bottom) inside the
    slap image it was segmented from, or None for a single-finger capture.
    """

    position: FingerPosition
    image: Image.Image
    ppi: int
    quality: int
    quality_method: str
    impression: Impression = Impression.LIVE_PLAIN
    bbox: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        # A wrong image mode here would silently corrupt every downstream record, so refuse it.
        if self.image.mode != "L":
            raise CaptureArgumentError(
                f"finger image must be 8-bit greyscale (mode L), got {self.image.mode}"
            )
        if not 0 <= self.quality <= 100:
            raise CaptureArgumentError(f"quality must be 0-100, got {self.quality}")
        if self.ppi <= 0:
            raise CaptureArgumentError(f"ppi must be positive, got {self.ppi}")

    def describe(self) -> dict[str, object]:
        """JSON-able metadata without the image (safe for logs and diagnostics)."""
        return {
            "position": int(self.position),
            "width": self.image.width,
            "height": self.image.height,
            "ppi": self.ppi,
            "quality": self.quality,
            "quality_method": self.quality_method,
            "impression": int(self.impression),
        }


@dataclass(frozen=True)
class SlapCapture:
    """One slap: the whole platen image and the fingers segmented from it.

    ``skipped`` lists fingers the operator declared absent (amputated, bandaged); they have no
    entry in ``fingers``.
    """

    slap: Slap
    image: Image.Image
    ppi: int
    fingers: tuple[FingerCapture, ...]
    skipped: frozenset[FingerPosition] = frozenset()

    def __post_init__(self) -> None:
        if self.image.mode != "L":
            raise CaptureArgumentError(
                f"slap image must be 8-bit greyscale (mode L), got {self.image.mode}"
            )
        expected = [f for f in self.slap.fingers if f not in self.skipped]
        got = [f.position for f in self.fingers]
        if got != expected:
            raise CaptureArgumentError(
                f"slap {self.slap.name} expects fingers {expected}, got {got}"
            )

    def finger(self, position: FingerPosition) -> FingerCapture:
        """The segmented capture of ``position``; KeyError when it was skipped."""
        for f in self.fingers:
            if f.position == position:
                return f
        raise KeyError(position)


# --------------------------------------------------------------------------- quality

QUALITY_METHOD = "rekam-block-v1"
QUALITY_METHOD_DOC = (
    "rekam-block-v1: over 16x16-pixel blocks that hold print (grey spread >= 10), the mean of "
    "orientation coherence x ridge-valley contrast (saturating at 0.9), times (the share of "
    "the expected fingertip area that holds print)^1.5; 0-100. A plain heuristic, NOT NFIQ 2 "
    "(not available here)."
)
_BLOCK = 16  # at 500 ppi about two ridge periods: enough for a stable local orientation


@dataclass(frozen=True)
class QualityReport:
    """A finger image's quality score and the measures behind it (all JSON-able)."""

    score: int  # 0-100
    coherence: float  # mean orientation coherence of print blocks, 0-1
    contrast: float  # mean ridge-valley contrast of print blocks, 0-1
    coverage: float  # print area / expected fingertip area, capped at 1
    mean_grey: float  # mean grey level of print blocks (dark: wet, light: dry)
    method: str = QUALITY_METHOD

    def likely_problem(self) -> str:
        """The most likely reason for a low score: dry, wet, smudge, partial or features."""
        if self.coverage < 0.55:
            return "partial"
        if self.mean_grey > 165:
            return "dry"
        if self.mean_grey < 115:
            return "wet"
        if self.coherence < 0.45 or self.contrast < 0.5:
            return "smudge"
        return "features"


# Single-band modes whose values are grey levels (what the array form of such an image holds).
_GREY_MODES = frozenset({"L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
# Per-pixel work runs over horizontal strips of about this many pixels (256 kB as float32; at
# least one row of blocks), so a check never holds a full-size float copy of a finger or a
# 1600x1000 platen: issue 7 counts the daemon's peak RSS. Smaller strips save little memory more
# and cost a Pillow call per strip and operation.
_STRIP_PIXELS = 1 << 16


def grey_image(image: Image.Image | npt.NDArray[np.uint8]) -> Image.Image:
    """``image`` (a greyscale PIL image or a 2-D uint8 array) as a mode L or F image."""
    if not isinstance(image, Image.Image):
        # An array arrives only from callers that already hold numpy (tests, benchmarks,
        # emulators); Pillow reads it through the array interface without importing numpy.
        try:
            image = Image.fromarray(image)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise CaptureArgumentError(
                f"need a 2-D greyscale image or uint8 array, got {type(image).__name__}: {exc}"
            ) from exc
    if image.mode not in _GREY_MODES:
        raise CaptureArgumentError(f"need a 2-D greyscale image, got mode {image.mode}")
    return image if image.mode in ("L", "F") else image.convert("F")


def _float(image: Image.Image) -> Image.Image:
    return image if image.mode == "F" else image.convert("F")


def _floats(image: Image.Image) -> list[float]:
    """The pixel values of a mode-F image, row by row."""
    return array("f", image.tobytes()).tolist()


def _strips(cols: int, rows: int, block: int) -> Iterator[tuple[int, int]]:
    """(first, end) pixel rows of strips of whole block rows, top to bottom."""
    step = max(1, _STRIP_PIXELS // (cols * block * block)) * block
    for y0 in range(0, rows * block, step):
        yield y0, min(rows * block, y0 + step)


def _mean_and_square(strip: Image.Image, block: int) -> tuple[list[float], list[float]]:
    """Block means of a mode-F strip's values and of their squares, row by row."""
    squares = pixelmath.image_math(lambda e: e["a"] * e["a"], a=strip)
    return _floats(strip.reduce(block)), _floats(squares.reduce(block))


def _deviations(means: list[float], squares: list[float]) -> list[float]:
    return [math.sqrt(max(sq - m * m, 0.0)) for m, sq in zip(means, squares, strict=True)]


def block_mean_std(grey: Image.Image, block: int) -> tuple[int, list[float], list[float]]:
    """Grey mean and standard deviation of every whole ``block``-pixel tile of a mode L/F image.

    Returns (tiles per row, means, deviations), both lists row by row; a partial tile at the
    right or bottom edge is left out. Tile sums of 8-bit grey levels (and of their squares, up
    to 256 x 255^2 < 2^24) are exact in float32, so the means and deviations are exact.
    """
    cols, rows = grey.width // block, grey.height // block
    means: list[float] = []
    squares: list[float] = []
    if cols == 0 or rows == 0:
        return cols, means, squares
    for y0, y1 in _strips(cols, rows, block):
        m, sq = _mean_and_square(_float(grey.crop((0, y0, cols * block, y1))), block)
        means += m
        squares += sq
    return cols, means, _deviations(means, squares)


@dataclass
class _BlockMeasures:
    """Per-block values of a finger image, row by row (what ``estimate_quality`` scores)."""

    means: list[float]
    stds: list[float]
    gxx: list[float]  # the gradient structure tensor's block means
    gyy: list[float]
    gxy: list[float]


def _block_measures(grey: Image.Image, block: int) -> _BlockMeasures:
    """Grey statistics and structure tensor of every block of a mode L/F image of whole blocks.

    The gradient is ``numpy.gradient``'s, which the score was first written with: central
    differences, one-sided at the image's edges. A one-sided difference equals the central one
    over the image extended by one linearly extrapolated pixel (``2 a[0] - a[1]``), so each
    strip is padded that way at the image's edges and with its real neighbour rows inside.
    8-bit grey levels make every difference (and product) exact in float32; differences are
    taken unhalved and their products scaled by 1/4 at the end, also exact.
    """
    w, h = grey.size
    means: list[float] = []
    squares: list[float] = []
    dxx: list[float] = []
    dyy: list[float] = []
    dxy: list[float] = []
    for y0, y1 in _strips(w // block, h // block, block):
        top, bottom = max(0, y0 - 1), min(h, y1 + 1)
        strip = _float(grey.crop((0, top, w, bottom)))
        k0, k1 = y0 - top, y1 - top  # the strip's own rows, without the neighbour rows
        m, sq = _mean_and_square(strip.crop((0, k0, w, k1)), block)
        means += m
        squares += sq
        sh = bottom - top
        padded = Image.new("F", (w + 2, sh + 2))
        padded.paste(strip, (1, 1))
        edges = [
            ((0, 0, 1, sh), (1, 0, 2, sh), (0, 1)),
            ((w - 1, 0, w, sh), (w - 2, 0, w - 1, sh), (w + 1, 1)),
        ]
        if top == 0:
            edges.append(((0, 0, w, 1), (0, 1, w, 2), (1, 0)))
        if bottom == h:
            edges.append(((0, sh - 1, w, sh), (0, sh - 2, w, sh - 1), (1, sh + 1)))
        for edge, inner, at in edges:
            outside = pixelmath.image_math(
                lambda e: e["a"] * 2.0 - e["b"], a=strip.crop(edge), b=strip.crop(inner)
            )
            padded.paste(outside, at)
        # In padded coordinates the strip's own rows are 1 + k0 .. 1 + k1, columns 1 .. w.
        dx = pixelmath.image_math(
            lambda e: e["r"] - e["l"],
            r=padded.crop((2, 1 + k0, w + 2, 1 + k1)),
            l=padded.crop((0, 1 + k0, w, 1 + k1)),
        )
        dy = pixelmath.image_math(
            lambda e: e["d"] - e["u"],
            d=padded.crop((1, 2 + k0, w + 1, 2 + k1)),
            u=padded.crop((1, k0, w + 1, k1)),
        )
        dxx += _floats(pixelmath.image_math(lambda e: e["x"] * e["x"], x=dx).reduce(block))
        dyy += _floats(pixelmath.image_math(lambda e: e["y"] * e["y"], y=dy).reduce(block))
        dxy += _floats(pixelmath.image_math(lambda e: e["x"] * e["y"], x=dx, y=dy).reduce(block))
    return _BlockMeasures(
        means=means,
        stds=_deviations(means, squares),
        gxx=[v * 0.25 for v in dxx],
        gyy=[v * 0.25 for v in dyy],
        gxy=[v * 0.25 for v in dxy],
    )


def estimate_quality(
    image: Image.Image | npt.NDArray[np.uint8], *, ppi: int = 500, expected_area_in2: float = 0.3
) -> QualityReport:
    """Score one finger image 0-100 from local ridge structure (method: ``QUALITY_METHOD_DOC``).

    Orientation coherence is ``sqrt((Gxx-Gyy)^2 + 4 Gxy^2) / (Gxx+Gyy)`` of the gradient
    structure tensor in each block: near 1 where parallel ridges are clear, near 0 in smudges
    and noise. Contrast is the block's grey standard deviation over 60 (a clean live-scan
    ridge/valley pair), capped at 1. ``expected_area_in2`` is the print area of a well-placed
    plain fingertip; a smaller module window should pass its own.

    Pixel work runs in Pillow's C operations; Python sees only the per-block values (616 for a
    352x448 finger), so the daemon scores captures without numpy.
    """
    a = grey_image(image)
    if a.width < _BLOCK or a.height < _BLOCK:
        raise CaptureArgumentError(
            f"need a 2-D greyscale image of at least {_BLOCK}x{_BLOCK}, got {a.height}x{a.width}"
        )
    h = a.height // _BLOCK * _BLOCK
    w = a.width // _BLOCK * _BLOCK
    if a.size != (w, h):
        a = a.crop((0, 0, w, h))
    blocks = _block_measures(a, _BLOCK)
    means, stds, gxx, gyy, gxy = blocks.means, blocks.stds, blocks.gxx, blocks.gyy, blocks.gxy
    coherence: list[float] = []
    contrast: list[float] = []
    grey: list[float] = []
    for i, (mean, std) in enumerate(zip(means, stds, strict=True)):
        # Print blocks: some grey spread, and not the bright empty platen.
        if std >= 10.0 and mean < 245.0:
            xx, yy, xy = gxx[i], gyy[i], gxy[i]
            coherence.append(math.sqrt((xx - yy) ** 2 + 4 * xy**2) / (xx + yy + 1e-6))
            contrast.append(min(1.0, std / 60.0))
            grey.append(mean)
    n_fg = len(grey)
    if n_fg == 0:
        return QualityReport(score=0, coherence=0.0, contrast=0.0, coverage=0.0, mean_grey=255.0)
    area_in2 = n_fg * _BLOCK * _BLOCK / float(ppi * ppi)
    coverage = min(1.0, area_in2 / expected_area_in2)
    local = math.fsum(c * k for c, k in zip(coherence, contrast, strict=True)) / n_fg
    # 0.9 is about the best a clean live-scan block reaches (coherence ~0.95 x contrast ~0.95).
    # Coverage counts more than linearly: half a fingertip holds well under half the usable
    # minutiae, because the core region is often the part that is missing.
    score = int(round(100.0 * min(1.0, local / 0.9) * coverage**1.5))
    return QualityReport(
        score=max(0, min(100, score)),
        coherence=round(math.fsum(coherence) / n_fg, 3),
        contrast=round(math.fsum(contrast) / n_fg, 3),
        coverage=round(coverage, 3),
        mean_grey=round(math.fsum(grey) / n_fg, 1),
    )


# --------------------------------------------------------------------------- errors


class NoFingerError(UserRetryError):
    """No finger was placed before the capture timeout."""

    hint_id = "Jari tidak terdeteksi. Letakkan jari dengan rata di kaca pemindai."
    hint_en = "No finger detected. Place the finger flat on the scanner glass."


class FingerQualityError(UserRetryError):
    """The print was captured but is not good enough; ``reason`` says why."""

    _HINTS: dict[str, tuple[str, str]] = {
        "dry": (
            "Jari terlalu kering. Tiup jari atau sentuh dahi sebentar, lalu ulangi.",
            "The finger is too dry. Breathe on it or touch the forehead briefly, then try again.",
        ),
        "wet": (
            "Jari terlalu basah. Keringkan jari dengan tisu, lalu ulangi.",
            "The finger is too wet. Dry it with a tissue, then try again.",
        ),
        "smudge": (
            "Gambar buram. Bersihkan kaca pemindai dan jangan geser jari saat dipindai.",
            "The image is smudged. Clean the scanner glass and keep the finger still.",
        ),
        "partial": (
            "Jari hanya sebagian terbaca. Letakkan jari di tengah kaca dan tekan rata.",
            "Only part of the finger was read. Place it in the middle of the glass and press flat.",
        ),
        "features": (
            "Kualitas sidik jari kurang. Bersihkan jari dan kaca pemindai, lalu ulangi.",
            "Fingerprint quality too low. Clean the finger and the scanner glass, then try again.",
        ),
    }

    def __init__(
        self,
        message: str,
        *,
        reason: str = "features",
        quality: int | None = None,
        device: str | None = None,
    ) -> None:
        hint_id, hint_en = self._HINTS.get(reason, self._HINTS["features"])
        super().__init__(message, hint_id=hint_id, hint_en=hint_en, device=device)
        self.reason = reason
        self.quality = quality


class CaptureCancelledError(UserRetryError):
    """The capture was cancelled before it finished; the device is fine."""

    hint_id = "Pengambilan sidik jari dibatalkan. Mulai lagi bila siap."
    hint_en = "Fingerprint capture was cancelled. Start again when ready."


class CaptureArgumentError(DeviceError, ValueError):
    """The caller asked for something impossible (bad position, skip list, timeout, image).

    A programming error rather than a device problem; checked before any I/O. Also a
    ``ValueError``, so generic argument checks catch it.
    """

    hint_id = "Permintaan pengambilan tidak valid. Hubungi teknisi."
    hint_en = "Invalid capture request. Call the technician."


class CaptureNotSupportedError(DeviceError):
    """This scanner cannot do the requested kind of capture (checked before any I/O)."""

    hint_id = "Pemindai ini tidak mendukung cara pengambilan ini. Gunakan pemindai sepuluh jari."
    hint_en = "This scanner cannot do this kind of capture. Use the ten-print scanner."


# --------------------------------------------------------------------------- interface


@runtime_checkable
class FingerprintScanner(Device, Protocol):
    """A fingerprint scanner: single fingers always, slaps and rolled prints where offered.

    Every capture waits at most ``timeout`` seconds for the finger(s) and returns early with
    :class:`CaptureCancelledError` once ``cancel`` is set. Images are 8-bit greyscale at
    ``capabilities().ppi``.
    """

    def capabilities(self) -> ScannerCapabilities:
        """What this scanner can capture (constant after ``open``)."""

    def capture_finger(
        self,
        position: FingerPosition,
        *,
        timeout: float,
        rolled: bool = False,
        cancel: threading.Event | None = None,
    ) -> FingerCapture:
        """Capture one finger (plain, or rolled when ``rolled`` and the scanner offers it).

        Raises:
            NoFingerError, FingerQualityError, CaptureCancelledError: the person must retry.
            CaptureNotSupportedError: ``rolled`` asked of a scanner without rolled capture.
            DeviceMissingError, DeviceTimeoutError, DeviceFaultError, DeviceProtocolError.
        """

    def capture_slap(
        self,
        slap: Slap,
        *,
        timeout: float,
        skip: Collection[FingerPosition] = (),
        cancel: threading.Event | None = None,
    ) -> SlapCapture:
        """Capture one slap of the 4-4-2 sequence, segmented per finger with per-finger quality.

        ``skip`` names fingers of this slap that are absent (they are not segmented).

        Raises:
            as ``capture_finger``; CaptureNotSupportedError when the scanner has no slaps.
        """
