"""Render pen strokes to a clean PNG and measure the ink (pure functions over strokes).

The ink measures are a histogram and a bounding box in Pillow's C code, not numpy: the daemon
measures a signature without importing it (issue 7, about 15 MB of RSS); both are exact.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from firmware_protocols.evdev import AbsRange, Stroke

SUPERSAMPLE = 3  # draw at 3x and reduce: smooth lines without an anti-aliasing library
_INK_LUT = [255] * 128 + [0] * 128  # darker than mid-grey -> 255 (ink), else 0


def render_strokes(
    strokes: Sequence[Stroke],
    x_range: AbsRange,
    y_range: AbsRange,
    box: tuple[int, int] = (600, 200),
    pressure_range: AbsRange | None = None,
    width_px: tuple[float, float] = (1.5, 4.0),
) -> Image.Image:
    """Draw strokes black on white in ``box``; the tablet area fits the box, aspect kept.

    Line width grows with pen pressure from ``width_px[0]`` to ``width_px[1]`` when the
    device reports pressure.
    """
    # Loaded on the first signature, not at daemon start (the idle daemon never draws).
    from PIL import ImageDraw

    bw, bh = box
    s = SUPERSAMPLE
    img = Image.new("L", (bw * s, bh * s), 255)
    d = ImageDraw.Draw(img)
    xr = x_range.maximum - x_range.minimum
    yr = y_range.maximum - y_range.minimum
    scale = min(bw / xr, bh / yr) * s
    ox = (bw * s - xr * scale) / 2
    oy = (bh * s - yr * scale) / 2

    def width(p: int) -> int:
        if pressure_range is None:
            share = 0.5
        else:
            span = pressure_range.maximum - pressure_range.minimum
            share = min(1.0, max(0.0, (p - pressure_range.minimum) / span))
        return max(1, round((width_px[0] + share * (width_px[1] - width_px[0])) * s))

    for stroke in strokes:
        pts = [((pt.x - x_range.minimum) * scale + ox, (pt.y - y_range.minimum) * scale + oy, pt.pressure)
               for pt in stroke.points]
        if len(pts) == 1:
            x, y, p = pts[0]
            r = width(p) / 2
            d.ellipse([x - r, y - r, x + r, y + r], fill=0)
            continue
        for (x0, y0, p0), (x1, y1, p1) in zip(pts, pts[1:], strict=False):
            wdt = width((p0 + p1) // 2)
            d.line([(x0, y0), (x1, y1)], fill=0, width=wdt)
            r = wdt / 2  # round joints, or thick polylines show notches
            d.ellipse([x1 - r, y1 - r, x1 + r, y1 + r], fill=0)
    return img.reduce(s)


def ink_share(img: Image.Image) -> float:
    """Share of the image's pixels that carry ink (darker than mid-grey)."""
    grey = img.convert("L")
    pixels = grey.width * grey.height
    return sum(grey.histogram()[:128]) / pixels if pixels else 0.0


def ink_extent(img: Image.Image) -> tuple[float, float]:
    """Width and height of the inked region as shares of the image's width and height."""
    grey = img.convert("L")
    # Ink becomes the only non-zero pixels, so getbbox() is the inked rows' and columns' span.
    box = grey.point(_INK_LUT).getbbox()
    if box is None:
        return 0.0, 0.0
    left, upper, right, lower = box
    return (right - left) / grey.width, (lower - upper) / grey.height


def to_png(img: Image.Image) -> bytes:
    """Encode as an optimised 8-bit grey PNG."""
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()
