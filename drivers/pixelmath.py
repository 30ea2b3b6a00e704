"""Image arithmetic on Pillow's C operations: per-pixel float32 expressions, means and medians.

The station's image checks (face, iris and fingerprint quality) use these instead of numpy,
which alone costs a process 11-15 MB of RSS against the daemon's 60 MB budget (issue 7). Work
per pixel stays in C; Python only ever loops over histograms and profiles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from PIL import Image, ImageMath


def image_math(expression: Callable[[dict[str, Any]], Any], **images: Image.Image) -> Image.Image:
    """A per-pixel ``ImageMath`` expression over mode-F images (float32 arithmetic, in C)."""
    out = ImageMath.lambda_eval(expression, **images)
    if not isinstance(out, Image.Image):
        raise TypeError(f"ImageMath returned {type(out).__name__}, not an image")
    return out


def mean(values: Image.Image) -> float:
    """Mean of a non-empty mode-F image (a BOX resize to one pixel: sums in double)."""
    value = values.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    if not isinstance(value, float):
        raise TypeError(f"need a mode-F image, got mode {values.mode}")
    return value


def median(pairs: Iterable[tuple[float, int]]) -> float:
    """Median of values given as (value, count) pairs sorted by value; numpy's rule: the mean
    of the two middle values for an even count. ``enumerate(image.histogram())`` is such a list."""
    items = [(v, c) for v, c in pairs if c > 0]
    n = sum(c for _, c in items)
    if n == 0:
        raise ValueError("median of no values")
    wanted = (n - 1) // 2, n // 2  # the middle element twice, or the two middle ones
    found: list[float] = []
    seen = 0
    for v, c in items:
        while len(found) < 2 and wanted[len(found)] < seen + c:
            found.append(v)
        seen += c
        if len(found) == 2:
            break
    return (found[0] + found[1]) / 2
