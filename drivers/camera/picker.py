"""Pick the sharpest of the recent frames without decoding any frame at full size.

Sharpness is the variance of a 4-neighbour Laplacian over a small greyscale image:
a JPEG is decoded through Pillow's ``draft`` (libjpeg's DCT scaling gives a 1/2, 1/4 or
1/8 size greyscale image for a fraction of a full decode); a YUYV frame is sampled on its
luma bytes with a stride. The score is only comparable between frames of one stream (same
size, format and scene), which is all the picker needs.

Everything runs in Pillow's C operations (a Kernel filter, histograms, nearest-neighbour
affine sampling), not numpy: the daemon scores frames without importing it (issue 7, about
15 MB of RSS). The variance is exact: the Laplacian of 8-bit pixels is an integer, and its
histogram gives the sums in Python integers.
"""

from __future__ import annotations

import io
from collections import deque
from dataclasses import dataclass
from typing import cast

from PIL import Image, ImageStat, UnidentifiedImageError

from drivers.camera import v4l2

# Largest greyscale image the score is computed on (draft picks the nearest DCT scale >= this).
SCORE_SIZE = (320, 240)
_LAPLACIAN = (0, -1, 0, -1, 4, -1, 0, -1, 0)


@dataclass(frozen=True)
class Frame:
    """One captured frame: the bytes exactly as the camera delivered them."""

    data: bytes
    pixfmt: int
    width: int
    height: int
    sequence: int
    timestamp: float

    def __repr__(self) -> str:
        # A frame is a face photo: never print its bytes (logs, tracebacks, test reports).
        return (f"Frame({self.fourcc} {self.width}x{self.height}, seq={self.sequence}, "
                f"{len(self.data)} bytes)")

    @property
    def fourcc(self) -> str:
        """Pixel format as four characters ("MJPG", "YUYV")."""
        return v4l2.fourcc_str(self.pixfmt)

    def to_image(self) -> Image.Image:
        """Full decode to RGB (only for the chosen frame, never per frame)."""
        if self.pixfmt == v4l2.V4L2_PIX_FMT_MJPEG:
            img = Image.open(io.BytesIO(self.data))
            img.load()
            return img.convert("RGB")
        return yuyv_to_image(self.data, self.width, self.height)


class GreyImage:
    """A small greyscale image of a frame (Pillow mode "L") with the statistics callers take.

    ``reduced_grey`` returned a 2-D numpy array before the daemon dropped numpy; ``shape`` and
    ``mean()`` keep the two things callers used of it working.
    """

    __slots__ = ("image",)

    def __init__(self, image: Image.Image) -> None:
        self.image = image

    def __repr__(self) -> str:
        # The pixels are a face: show the size only.
        return f"GreyImage({self.image.width}x{self.image.height})"

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width), as the array's shape was."""
        return self.image.height, self.image.width

    def mean(self) -> float:
        """Mean grey level (0-255); 0.0 for an empty image."""
        if self.image.width == 0 or self.image.height == 0:
            return 0.0
        return float(ImageStat.Stat(self.image).mean[0])


def _sample(img: Image.Image, size: tuple[int, int], step: tuple[int, int],
            start: tuple[int, int] = (0, 0)) -> Image.Image:
    """Pixels ``start + k * step`` of ``img`` (numpy's ``a[y0::sy, x0::sx]``), as a new image."""
    (sx, sy), (x0, y0) = step, start
    # Nearest-neighbour takes floor(a * (x + 0.5) + c); this c lands exactly on x0 + sx * x.
    coeffs = (sx, 0, x0 + 0.5 - sx / 2, 0, sy, y0 + 0.5 - sy / 2)
    return img.transform(size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.NEAREST)


def _yuyv_bytes(data: bytes, width: int, height: int) -> Image.Image:
    """A YUYV frame as one "L" pixel a byte: luma at even columns, U at 4k+1, V at 4k+3."""
    need = width * height * 2
    if len(data) < need:
        raise ValueError(f"short YUYV frame: {len(data)} of {need} bytes")
    return Image.frombuffer("L", (width * 2, height), data[:need], "raw", "L", 0, 1)


def yuyv_to_image(data: bytes, width: int, height: int) -> Image.Image:
    """Convert a YUYV 4:2:2 frame to an RGB image."""
    raw = _yuyv_bytes(data, width, height)
    half = (width + 1) // 2
    y = _sample(raw, (width, height), (2, 1))
    # Each chroma sample serves the pixel pair; NEAREST doubling repeats it (x -> x // 2).
    u = _sample(raw, (half, height), (4, 1), (1, 0)).resize((width, height), Image.Resampling.NEAREST)
    v = _sample(raw, (half, height), (4, 1), (3, 0)).resize((width, height), Image.Resampling.NEAREST)
    return Image.merge("YCbCr", (y, u, v)).convert("RGB")


def laplacian_variance(grey: Image.Image | GreyImage) -> float:
    """Variance of the 4-neighbour Laplacian of a grey image, 8- or 16-bit (higher = sharper)."""
    img = grey.image if isinstance(grey, GreyImage) else grey
    if img.mode != "L":
        # The score is defined on grey levels; "I" keeps 16/32-bit values, anything else is greyed.
        img = img if img.mode == "I" else img.convert("L")
    w, h = img.size
    if w < 3 or h < 3:
        return 0.0
    # Pillow clips a filtered "I" pixel below 0: shift the Laplacian (>= -4 * (max - min) of the
    # pixels) up by that much and back down when summing. The 1-pixel border Pillow copies
    # unfiltered is cropped off, as the array slices left it out.
    if img.mode == "L":
        shift = 4 * 255
    else:
        lo, hi = cast(tuple[int, int], img.getextrema())
        if lo < 0 or hi > 0xFFFF:
            # Beyond 16 bits the shifted Laplacian leaves int32 and the histogram walk gets long.
            raise ValueError(f"laplacian_variance: pixel values {lo}..{hi} outside 0..65535")
        shift = 4 * (hi - lo)
    img = img.convert("I")
    # ImageFilter is imported on the first score: importing the camera package (as the emulators
    # and the idle daemon do) stays without it.
    from PIL import ImageFilter

    kernel = ImageFilter.Kernel((3, 3), _LAPLACIAN, scale=1, offset=shift)
    lap = img.filter(kernel).crop((1, 1, w - 1, h - 1))
    lo, hi = cast(tuple[int, int], lap.getextrema())
    n = total = squares = 0
    # Histograms over 256-value windows with bin width exactly 1 count every integer value.
    for base in range(lo, hi + 1, 256):
        counts = lap.histogram(extrema=(base, base + 255))
        for k, c in enumerate(counts):
            if c:
                v = base + k - shift
                n += c
                total += c * v
                squares += c * v * v
    # Exact in integers: variance = (n * sum(x^2) - sum(x)^2) / n^2.
    return (n * squares - total * total) / (n * n)


def reduced_grey(frame: Frame, size: tuple[int, int] = SCORE_SIZE) -> GreyImage:
    """A small greyscale image of the frame, from a reduced decode.

    Raises:
        ValueError: the frame's bytes are not a decodable image of its format.
    """
    if frame.pixfmt == v4l2.V4L2_PIX_FMT_MJPEG:
        try:
            img = Image.open(io.BytesIO(frame.data))
            img.draft("L", size)
            grey = img.convert("L")
        except (OSError, UnidentifiedImageError, SyntaxError) as exc:
            raise ValueError(f"undecodable MJPEG frame: {exc}") from exc
        return GreyImage(grey)
    if frame.pixfmt == v4l2.V4L2_PIX_FMT_YUYV:
        raw = _yuyv_bytes(frame.data, frame.width, frame.height)
        step = max(1, min(frame.width // size[0], frame.height // size[1]))
        out = (-(-frame.width // step), -(-frame.height // step))  # ceil: the slice's length
        return GreyImage(_sample(raw, out, (2 * step, step)))
    raise ValueError(f"unsupported pixel format {frame.fourcc}")


def sharpness(frame: Frame, size: tuple[int, int] = SCORE_SIZE) -> float:
    """Focus score of a frame on a reduced decode (see the module docstring)."""
    return laplacian_variance(reduced_grey(frame, size))


class BestFramePicker:
    """Keeps at most ``keep`` recent frames with their scores; ``best()`` is the sharpest.

    Memory is bounded by ``keep`` compressed frames whatever the stream length. Undecodable
    frames are counted in ``rejected`` and never kept.
    """

    def __init__(self, keep: int = 8, size: tuple[int, int] = SCORE_SIZE) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.keep = keep
        self.size = size
        self.rejected = 0
        self.offered = 0
        self._recent: deque[tuple[float, Frame]] = deque(maxlen=keep)

    def offer(self, frame: Frame) -> float | None:
        """Score a frame and remember it; returns the score, or None if undecodable."""
        self.offered += 1
        try:
            score = sharpness(frame, self.size)
        except ValueError:
            self.rejected += 1
            return None
        self._recent.append((score, frame))
        return score

    def best(self) -> tuple[Frame, float] | None:
        """The sharpest of the kept frames (the newest wins a tie), or None."""
        if not self._recent:
            return None
        score, frame = max(reversed(self._recent), key=lambda sf: sf[0])
        return frame, score

    def __len__(self) -> int:
        return len(self._recent)

    def clear(self) -> None:
        """Forget all kept frames."""
        self._recent.clear()
