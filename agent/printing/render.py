"""e-KTP card rendering with Pillow, and conversion to Evolis Y/M/C/K/O panels.

The card is drawn landscape at 300 dpi on the printer's 1016 x 648 buffer (ISO 7810 ID-1
plus bleed). Two layers are drawn: a colour layer (background, photo) that becomes the Y, M
and C panels, and a 1-bit layer (all text, rules and the signature) that becomes the K
(resin black) panel, so text prints sharp. The O (overlay) panel covers the whole card.

Text rule, never a silent cut: each value is drawn at the standard size (24 px); if it is
too wide it shrinks step by step down to 17 px. Fields allowed to wrap (name, place/date of
birth, address, occupation) shrink only to 21 px on one line, then take two lines at 24 px
shrinking to 17 px. A word wider than the line is never split. If a value still does not
fit, or the card runs out of height, :class:`CardLayoutError` names the field.

Fonts: DejaVu Sans (Bitstream Vera licence, see ``fonts/LICENSE-DejaVu.txt``), shipped in
``agent/printing/fonts`` so every station renders the same card. The background is shipped the
same way, as a PNG in :mod:`agent.printing.card_background` (see :func:`_background`).

Rendering, panels and encoding use Pillow and the codec's byte operations only: this runs in
the station daemon, which does not load numpy (issue 7's memory target). The panels' ndarray
views (``CardPanels.y`` ...) import numpy when a test or tool asks for them.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageChops, ImageDraw, ImageFont

from firmware_protocols import evolis as ev
from firmware_protocols.errors import EncodeError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

WIDTH, HEIGHT = ev.PANEL_LINES, ev.LINE_DOTS  # 1016 x 648, landscape
FONT_DIR = Path(__file__).parent / "fonts"
COLOUR_LEVELS = 32  # 5 bits a pixel: the smallest colour download (see docs/printing.md)

# Layout in pixels at 300 dpi (1 mm = 11.8 dots).
MARGIN_X = 36
LABEL_X = MARGIN_X
COLON_X = 300
VALUE_X = 318
VALUE_RIGHT = 740  # the photo column starts after this
PHOTO_BOX = (772, 150, 772 + 204, 150 + 272)  # 3:4 photo, about 17 x 23 mm
SIGNATURE_BOX = (772, 520, 976, 610)
TOP_Y = 128
BOTTOM_Y = 630
SIZE = 24  # standard value text size
MIN_SIZE = 17
HEADER_SIZE = 30
NIK_SIZE = 34


class CardLayoutError(ValueError):
    """Card data that cannot be drawn without cutting it; names the field."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name


@dataclass(frozen=True)
class CardData:
    """What is printed on an e-KTP; head office owns and approves it."""

    nik: str
    name: str
    birth_place: str
    birth_date: str  # DD-MM-YYYY as printed
    sex: str
    blood_type: str
    address: str
    rt_rw: str
    kel_desa: str
    kecamatan: str
    religion: str
    marital_status: str
    occupation: str
    citizenship: str
    valid_until: str
    province: str
    regency: str
    issue_place: str
    issue_date: str
    photo: Image.Image | None = field(default=None, compare=False)
    signature: Image.Image | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if len(self.nik) != 16 or not self.nik.isdigit():
            raise CardLayoutError("nik", "must be 16 digits")
        for name in ("name", "province", "regency"):
            if not getattr(self, name).strip():
                raise CardLayoutError(name, "must not be empty")


# (label, attribute or callable, may wrap)
def _rows(card: CardData) -> list[tuple[str, str, str, bool]]:
    return [
        ("name", "Nama", card.name, True),
        ("birth", "Tempat/Tgl Lahir", f"{card.birth_place}, {card.birth_date}", True),
        ("sex", "Jenis Kelamin", card.sex, False),
        ("address", "Alamat", card.address, True),
        ("rt_rw", "RT/RW", card.rt_rw, False),
        ("kel_desa", "Kel/Desa", card.kel_desa, False),
        ("kecamatan", "Kecamatan", card.kecamatan, False),
        ("religion", "Agama", card.religion, False),
        ("marital_status", "Status Perkawinan", card.marital_status, False),
        ("occupation", "Pekerjaan", card.occupation, True),
        ("citizenship", "Kewarganegaraan", card.citizenship, False),
        ("valid_until", "Berlaku Hingga", card.valid_until, False),
    ]


@lru_cache(maxsize=32)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """A shipped DejaVu font at ``size`` pixels."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(FONT_DIR / name), size)


def _width(text: str, f: ImageFont.FreeTypeFont) -> float:
    return f.getlength(text)


def _wrap(words: list[str], f: ImageFont.FreeTypeFont, width: int, max_lines: int) -> list[str] | None:
    """Greedy word wrap into at most ``max_lines``; None if it does not fit."""
    # Most values fit on one line at the first size tried; then the greedy loop below would
    # measure every prefix only to return the whole text (text width was 13% of rendering).
    # A prefix is never wider than the whole line, so one measurement decides.
    whole = " ".join(words)
    if _width(whole, f) <= width:
        return [whole]
    if max_lines == 1:
        return None
    lines: list[str] = []
    current = ""
    for word in words:
        trial = f"{current} {word}" if current else word
        if _width(trial, f) <= width:
            current = trial
            continue
        if not current or _width(word, f) > width:
            return None  # one word wider than the line: never split a word silently
        lines.append(current)
        if len(lines) == max_lines:
            return None  # `word` would start one line too many; measuring on cannot help
        current = word
    if current:
        lines.append(current)
    return lines if len(lines) <= max_lines else None


def fit_text(field_name: str, text: str, width: int, *, wrap: bool, bold: bool = False,
             size: int = SIZE, min_size: int = MIN_SIZE) -> tuple[ImageFont.FreeTypeFont, list[str]]:
    """Font and lines for ``text`` in ``width`` by the shrink-then-wrap rule, or raise."""
    text = " ".join(text.split())
    if not text:
        return font(size, bold), [""]
    words = text.split(" ")
    # Wrapping fields shrink only a little on one line before they take a second line, so a
    # long address stays legible; then two lines shrink down to the minimum.
    plans = ((1, max(min_size, size - 3)), (2, min_size)) if wrap else ((1, min_size),)
    for max_lines, smallest in plans:
        for s in range(size, smallest - 1, -1):
            f = font(s, bold)
            lines = _wrap(words, f, width, max_lines)
            if lines is not None:
                return f, lines
    raise CardLayoutError(
        field_name, f"does not fit {'two lines' if wrap else 'one line'} at {min_size} px; not cut"
    )


@lru_cache(maxsize=1)
def _background() -> Image.Image:
    """The card's printed background: a pale blue gradient with a guilloche-like wave band.

    Made once by the float32 formula below and shipped as a lossless PNG, so every station
    prints the same bytes whatever its maths library (a float32 sine may differ in the last bit
    between builds, and the colour is truncated to whole levels), and the daemon needs no numpy:
    ``wave = 0.5 + 0.5 sin(40x + 12 sin(6y))``, R = 205 + 30y + 8 wave, G = 225 + 20y + 6 wave,
    B = 250, truncated, for x, y from 0 to 1 across the card (tests/test_printing_render_pillow.py
    checks the shipped pixels against it).
    """
    from agent.printing.card_background import PNG_BASE64

    with Image.open(io.BytesIO(base64.b64decode(PNG_BASE64))) as img:
        img.load()
        if img.mode != "RGB" or img.size != (WIDTH, HEIGHT):
            raise RuntimeError(f"the shipped card background is damaged: {img.mode} {img.size}")
        return img.copy()


@dataclass(frozen=True)
class RenderedCard:
    """The two layers of a card: colour (RGB) and black text (mode "1", 1 = ink)."""

    colour: Image.Image
    text: Image.Image

    def preview(self) -> Image.Image:
        """What the printed card should look like (text over colour)."""
        out = self.colour.copy()
        out.paste((0, 0, 0), mask=self.text)
        return out

    def preview_png(self) -> bytes:
        """The preview as PNG bytes."""
        buf = io.BytesIO()
        self.preview().save(buf, format="PNG")
        return buf.getvalue()


def render_card(card: CardData) -> RenderedCard:
    """Draw the e-KTP front; raise :class:`CardLayoutError` for data that cannot fit."""
    colour = _background().copy()
    text = Image.new("1", (WIDTH, HEIGHT), 0)
    draw = ImageDraw.Draw(text)

    # Header: province and regency, centred over the text column and photo.
    y = 22
    for fname, value in (("province", f"PROVINSI {card.province}"),
                         ("regency", card.regency)):
        f, lines = fit_text(fname, value.upper(), WIDTH - 2 * MARGIN_X, wrap=False, bold=True,
                            size=HEADER_SIZE, min_size=20)
        w = _width(lines[0], f)
        draw.text(((WIDTH - w) / 2, y), lines[0], font=f, fill=1)
        y += int(HEADER_SIZE * 1.25)

    # NIK in large bold digits.
    f_nik = font(NIK_SIZE, True)
    draw.text((LABEL_X, TOP_Y - 30), "NIK", font=f_nik, fill=1)
    draw.text((COLON_X - 10, TOP_Y - 30), ":", font=f_nik, fill=1)
    draw.text((VALUE_X - 8, TOP_Y - 30), card.nik, font=f_nik, fill=1)

    y = TOP_Y + 22
    label_font = font(21)
    blood_label = "Gol. Darah"
    for fname, label, value, wrap in _rows(card):
        width = VALUE_RIGHT - VALUE_X
        if fname == "sex":
            width = 190  # the blood type shares this row, on the right
        f, lines = fit_text(fname, value.upper(), width, wrap=wrap)
        pitch = int(f.size * 1.28) if len(lines) > 1 else 0
        row_height = max(int(SIZE * 1.32), pitch * len(lines))
        if y + row_height > BOTTOM_Y:
            raise CardLayoutError(fname, "the card has no room left for this row")
        draw.text((LABEL_X, y + 2), label, font=label_font, fill=1)
        draw.text((COLON_X, y + 2), ":", font=label_font, fill=1)
        for i, line in enumerate(lines):
            draw.text((VALUE_X, y + i * pitch), line, font=f, fill=1)
        if fname == "sex":
            bx = VALUE_X + 200
            draw.text((bx, y + 2), blood_label, font=label_font, fill=1)
            bf, blines = fit_text("blood_type", card.blood_type.upper(), 60, wrap=False)
            draw.text((bx + 120, y + 2), ":", font=label_font, fill=1)
            draw.text((bx + 136, y), blines[0], font=bf, fill=1)
        y += row_height

    # Photo (colour layer) with a thin black frame (text layer).
    x0, y0, x1, y1 = PHOTO_BOX
    if card.photo is not None:
        photo = card.photo.convert("RGB")
        photo = _cover(photo, (x1 - x0, y1 - y0))
        colour.paste(photo, (x0, y0))
    draw.rectangle(PHOTO_BOX, outline=1, width=2)

    # Issue place and date under the photo, centred on it.
    cy = y1 + 12
    for fname, value in (("issue_place", card.issue_place), ("issue_date", card.issue_date)):
        f, lines = fit_text(fname, value.upper(), x1 - x0 + 30, wrap=False, size=19, min_size=14)
        w = _width(lines[0], f)
        draw.text(((x0 + x1 - w) / 2, cy), lines[0], font=f, fill=1)
        cy += 26

    # Signature: thresholded into the K panel, scaled to fit its box.
    if card.signature is not None:
        sx0, sy0, sx1, sy1 = SIGNATURE_BOX
        sig = card.signature.convert("L")
        sig.thumbnail((sx1 - sx0, sy1 - sy0), Image.Resampling.BILINEAR)
        ink = sig.point(lambda v: 255 if v < 128 else 0).convert("1")
        text.paste(1, ((sx0 + sx1 - sig.width) // 2, (sy0 + sy1 - sig.height) // 2), mask=ink)
    return RenderedCard(colour, text)


def _cover(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale and centre-crop ``img`` to fill ``size`` (the photo keeps its proportions)."""
    tw, th = size
    scale = max(tw / img.width, th / img.height)
    resized = img.resize((max(tw, round(img.width * scale)), max(th, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
    left = (resized.width - tw) // 2
    top = (resized.height - th) // 2
    return resized.crop((left, top, left + tw, top + th))


@dataclass(frozen=True)
class CardPanels:
    """The five panels of one card in printer order: 1016 lines of 648 dots, a byte a dot."""

    y_bytes: bytes
    m_bytes: bytes
    c_bytes: bytes
    k_bytes: bytes
    o_bytes: bytes
    levels: int = COLOUR_LEVELS

    def panel_data(self) -> list[ev.PanelData]:
        """The panels as the job builder takes them (Y, M, C, K, O)."""
        return [
            ev.PanelData("y", self.levels, self.y_bytes),
            ev.PanelData("m", self.levels, self.m_bytes),
            ev.PanelData("c", self.levels, self.c_bytes),
            ev.PanelData("k", 2, self.k_bytes),
            ev.PanelData("o", 2, self.o_bytes),
        ]

    # ndarray views for tests and tools (a new writable (1016, 648) array each time). They
    # import numpy; the print path uses panel_data() and never does.
    @property
    def y(self) -> npt.NDArray[np.uint8]:
        """The Y panel as a (1016, 648) uint8 array (a copy)."""
        return _as_array(self.y_bytes)

    @property
    def m(self) -> npt.NDArray[np.uint8]:
        """The M panel as a (1016, 648) uint8 array (a copy)."""
        return _as_array(self.m_bytes)

    @property
    def c(self) -> npt.NDArray[np.uint8]:
        """The C panel as a (1016, 648) uint8 array (a copy)."""
        return _as_array(self.c_bytes)

    @property
    def k(self) -> npt.NDArray[np.uint8]:
        """The K panel (1 = resin black) as a (1016, 648) uint8 array (a copy)."""
        return _as_array(self.k_bytes)

    @property
    def o(self) -> npt.NDArray[np.uint8]:
        """The O panel (all 1) as a (1016, 648) uint8 array (a copy)."""
        return _as_array(self.o_bytes)


def _as_array(panel: bytes) -> npt.NDArray[np.uint8]:
    import numpy as np

    return np.frombuffer(panel, dtype=np.uint8).reshape(ev.PANEL_LINES, ev.LINE_DOTS).copy()


@lru_cache(maxsize=4)
def _ink_lut(levels: int) -> list[int]:
    """ink = round((255 - v) * (levels - 1) / 255) for v in 0..255, as Image.point takes it."""
    top = levels - 1
    return [((255 - v) * top + 127) // 255 for v in range(256)]


# 0 -> 0, anything else -> 1: the text layer's "L" bytes (0 or 255) as K panel values.
_NONZERO_TO_ONE = bytes([0]) + bytes([1]) * 255


def to_panels(card: RenderedCard, *, levels: int = COLOUR_LEVELS) -> CardPanels:
    """Convert the layers to Y/M/C ink (knocked out under black text), K and a full O."""
    if levels not in (32, 64, 128):
        raise ValueError(f"colour levels must be 32, 64 or 128, got {levels}")
    for layer in (card.colour, card.text):
        if layer.size != (WIDTH, HEIGHT):
            raise EncodeError(f"a card raster is {HEIGHT}x{WIDTH}, got {(layer.height, layer.width)}")
    colour, text = card.colour, card.text
    if text.mode != "1":
        # A text layer given as values (0 or 1 per pixel) rather than as a mode "1" image.
        values = text.convert("L")
        high = max(v for v, n in enumerate(values.histogram()) if n)
        if high > 1:
            raise EncodeError(f"the text layer holds value {high}; the K panel takes 0 or 1")
        text = values.point(lambda v: 255 if v else 0).convert("1")
    # White maps to ink 0 through the table, so whitening the colour under the text before
    # the look-up is the knock-out (no colour under resin black: sharper text, less ribbon);
    # the text as "L" is 255 there, so the lighter of band and text is that whitening.
    # Pillow's ROTATE_90 is the codec's landscape_to_panel (np.rot90(a, 1)): line 0 is the
    # card's right-hand edge, so a rotated band's bytes are the panel in printer order.
    # One band at a time, never the whole RGB image (Pillow keeps it as 4 bytes a pixel): the
    # panels' peak is about half, and the caller's layers are only read.
    ink_text = text.convert("L")
    table = _ink_lut(levels)
    turn = Image.Transpose.ROTATE_90
    bands = (colour if colour.mode == "RGB" else colour.convert("RGB")).split()
    c, m, y = (ImageChops.lighter(b, ink_text).point(table).transpose(turn).tobytes() for b in bands)
    k = ink_text.transpose(turn).tobytes().translate(_NONZERO_TO_ONE)
    return CardPanels(y_bytes=y, m_bytes=m, c_bytes=c, k_bytes=k,
                      o_bytes=b"\x01" * ev.PANEL_PIXELS, levels=levels)


def image_from_bytes(data: bytes, *, field_name: str, max_pixels: int = 4_000_000) -> Image.Image:
    """Decode a JPEG/PNG photo or signature, refusing oversized or broken images."""
    try:
        img = Image.open(io.BytesIO(data))
        if img.format not in ("JPEG", "PNG"):
            raise CardLayoutError(field_name, f"must be JPEG or PNG, got {img.format}")
        if img.width * img.height > max_pixels:
            raise CardLayoutError(field_name, f"image of {img.width}x{img.height} is too large")
        img.load()
    except CardLayoutError:
        raise
    # Pillow raises SyntaxError for a damaged PNG chunk found during load() (fuzzing found it:
    # tests/fixtures/fuzz/card_image/).
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise CardLayoutError(field_name, "is not a readable JPEG or PNG image") from exc
    return img
