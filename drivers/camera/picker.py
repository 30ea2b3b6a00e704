"""Pick the sharpest of the recent frames without decoding any frame at full size.

Sharpness is the variance of a 4-neighbour Laplacian over a small greyscale image:
a JPEG is decoded through Pillow's ``draft`` (libjpeg's DCT scaling gives a 1/2, 1/4 or
1/8 size greyscale image for a fraction of a full decode); a YUYV frame is sampled on its
luma bytes with a stride. The score is only comparable between frames of one stream (same
size, format and scene), which is all the picker needs.
"""

from __future__ import annotations

import io
from collections import deque
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from drivers.camera import v4l2

# Largest greyscale image the score is computed on (draft picks the nearest DCT scale >= this).
SCORE_SIZE = (320, 240)


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


def yuyv_to_image(data: bytes, width: int, height: int) -> Image.Image:
    """Convert a YUYV 4:2:2 frame to an RGB image."""
    raw = np.frombuffer(data, dtype=np.uint8, count=width * height * 2).reshape(height, width * 2)
    ycc = np.empty((height, width, 3), dtype=np.uint8)
    ycc[:, :, 0] = raw[:, 0::2]
    ycc[:, :, 1] = np.repeat(raw[:, 1::4], 2, axis=1)
    ycc[:, :, 2] = np.repeat(raw[:, 3::4], 2, axis=1)
    return Image.fromarray(ycc, "YCbCr").convert("RGB")


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a 2-D array (higher = sharper)."""
    a = grey.astype(np.float32, copy=False)
    if a.shape[0] < 3 or a.shape[1] < 3:
        return 0.0
    lap = 4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]
    return float(lap.var())


def reduced_grey(frame: Frame, size: tuple[int, int] = SCORE_SIZE) -> np.ndarray:
    """A small greyscale array of the frame, from a reduced decode.

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
        return np.asarray(grey)
    if frame.pixfmt == v4l2.V4L2_PIX_FMT_YUYV:
        need = frame.width * frame.height * 2
        if len(frame.data) < need:
            raise ValueError(f"short YUYV frame: {len(frame.data)} of {need} bytes")
        step = max(1, min(frame.width // size[0], frame.height // size[1]))
        raw = np.frombuffer(frame.data, dtype=np.uint8, count=need).reshape(frame.height, -1)
        return raw[::step, 0 :: 2 * step]
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
