"""Finger image compression: WSQ when the ``wsq`` package (NIST NBIS) is importable, else PNG.

The ``wsq`` package registers a Pillow plugin ("WSQ" format) on import; there is no separate
encode function. WSQ is defined for 8-bit grey images at 500 ppi. The caller stores the returned
compression code in the 19794-4 record, so a reader always knows which one it got.
"""

from __future__ import annotations

import io
import logging
from functools import cache

from PIL import Image

from agent.records._common import RecordError
from agent.records.iso19794_4 import Compression

log = logging.getLogger(__name__)


# Compression code -> the format name Pillow reports for such a file.
_PIL_FORMATS = {Compression.WSQ: "WSQ", Compression.PNG: "PNG", Compression.JPEG: "JPEG",
                Compression.JPEG2000_LOSSY: "JPEG2000", Compression.JPEG2000_LOSSLESS: "JPEG2000"}


@cache
def wsq_available() -> bool:
    """True when the WSQ Pillow plugin is installed and registered."""
    try:
        import wsq  # noqa: F401 - importing registers the Pillow plugin
    except ImportError:
        log.info("wsq package not installed: finger images are stored as PNG")
        return False
    return "WSQ" in Image.SAVE


def compress_finger(image: Image.Image, *, prefer_wsq: bool = True) -> tuple[bytes, Compression]:
    """Compress an 8-bit grey finger image; returns (bytes, compression code)."""
    grey = image if image.mode == "L" else image.convert("L")
    buf = io.BytesIO()
    if prefer_wsq and wsq_available():
        grey.save(buf, "WSQ")
        return buf.getvalue(), Compression.WSQ
    grey.save(buf, "PNG", optimize=False)
    return buf.getvalue(), Compression.PNG


def decompress_finger(data: bytes, compression: int) -> Image.Image:
    """Decode finger image bytes stored with ``compression``; RecordError if impossible."""
    if compression == Compression.WSQ and not wsq_available():
        raise RecordError("finger image is WSQ but the wsq package is not installed")
    try:
        expected = _PIL_FORMATS.get(Compression(compression))
    except ValueError:
        expected = None
    if expected is None:
        raise RecordError(f"compression code {compression} is not an image file format here")
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (OSError, ValueError, SyntaxError) as exc:
        raise RecordError(f"finger image does not decode: {type(exc).__name__}") from None
    if img.format != expected:
        raise RecordError(f"finger image is {img.format}, record says {expected}")
    return img
