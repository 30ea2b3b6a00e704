"""e-KTP rendering: golden images with tolerances, the fit rule, panels, and a wire round trip."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from agent.printing.render import (
    CardLayoutError,
    RenderedCard,
    fit_text,
    font,
    image_from_bytes,
    render_card,
    to_panels,
)
from agent.printing.samples import sample_card
from drivers.emulators.evolis import EVOLIS_VID, emulated_usb_printer
from drivers.printer.evolis import EvolisPrinter
from drivers.printer.usb import UsbTransport
from firmware_protocols import evolis as ev

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("REKAM_REGEN_GOLDEN") == "1"


def golden(name: str, img: Image.Image) -> Image.Image:
    path = GOLDEN / name
    if REGEN or not path.exists():
        if not REGEN:
            pytest.fail(f"{path} missing; run with REKAM_REGEN_GOLDEN=1 and review the image")
        img.save(path, optimize=True)
    return Image.open(path)


def test_preview_matches_golden() -> None:
    card = render_card(sample_card())
    got = np.asarray(card.preview(), dtype=np.int16)
    want = np.asarray(golden("printing_card_preview.png", card.preview()).convert("RGB"), dtype=np.int16)
    assert got.shape == want.shape == (648, 1016, 3)
    diff = np.abs(got - want)
    # Tolerances absorb small FreeType differences between versions, yet a changed name
    # (about 0.3% of pixels, see the test below) fails.
    assert diff.mean() < 0.3
    assert (diff.max(axis=2) > 96).mean() < 0.001


def test_k_panel_matches_golden() -> None:
    panels = to_panels(render_card(sample_card()))
    k_img = Image.fromarray(ev.panel_to_landscape(panels.k) * 255).convert("1")
    want = np.asarray(golden("printing_card_k.png", k_img).convert("L")) > 127
    got = ev.panel_to_landscape(panels.k).astype(bool)
    assert (got != want).mean() < 0.001
    assert 0.02 < got.mean() < 0.3  # text is there, the card is not black


def test_golden_tolerance_catches_a_changed_name() -> None:
    panels = to_panels(render_card(sample_card(name="BUDI SANTOSO")))
    got = ev.panel_to_landscape(panels.k).astype(bool)
    want = np.asarray(Image.open(GOLDEN / "printing_card_k.png").convert("L")) > 127
    assert (got != want).mean() > 0.001


def test_panels_shape_levels_and_knockout() -> None:
    rendered = render_card(sample_card())
    panels = to_panels(rendered)
    for arr in (panels.y, panels.m, panels.c, panels.k, panels.o):
        assert arr.shape == (1016, 648) and arr.dtype == np.uint8
    assert int(panels.y.max()) <= 31 and int(panels.k.max()) == 1
    assert bool((panels.o == 1).all())
    under_text = panels.k.astype(bool)
    assert not panels.c[under_text].any()  # no colour under resin black
    # The red photo background: much magenta and yellow, little cyan.
    land_m = ev.panel_to_landscape(panels.m)
    land_c = ev.panel_to_landscape(panels.c)
    assert land_m[160, 790] > 20 and land_c[160, 790] < 8
    with pytest.raises(ValueError):
        to_panels(rendered, levels=2)


@pytest.mark.parametrize("levels", [32, 64, 128])
def test_printed_card_round_trip_through_the_wire(levels: int) -> None:
    rendered = render_card(sample_card())
    backend, emu = emulated_usb_printer()
    drv = EvolisPrinter(UsbTransport(vid=EVOLIS_VID, backend=backend), timeout_s=1.0)
    drv.open()
    drv.print_job(ev.job_frames(to_panels(rendered, levels=levels).panel_data()))
    printed = np.asarray(Image.open(io.BytesIO(emu.model.printed[0])).convert("RGB"), dtype=np.int16)
    want = np.asarray(rendered.preview(), dtype=np.int16)
    # Quantisation to `levels` ink steps is the only loss.
    assert np.abs(printed - want).mean() < 256 / levels


def test_long_name_wraps_and_shrinks_but_is_never_cut() -> None:
    long_name = "MUHAMMAD ABDURRAHMAN AL FATIH NUR HIDAYATULLAH SYAHPUTRA"
    card = render_card(sample_card(name=long_name))
    assert card.text.getbbox() is not None
    f, lines = fit_text("name", long_name, 422, wrap=True)
    assert len(lines) == 2 and " ".join(lines) == long_name


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "NAMA " * 40),
        ("address", "JALAN " * 60),
        ("kel_desa", "SUATU KELURAHAN DENGAN NAMA YANG SANGAT PANJANG SEKALI"),
        ("name", "X" * 60),  # one word wider than the line: not split
        ("province", "P" * 80),
    ],
)
def test_data_that_cannot_fit_raises_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(CardLayoutError) as info:
        render_card(sample_card(**{field: value}))
    assert info.value.field == field


def test_bad_nik_and_empty_name() -> None:
    with pytest.raises(CardLayoutError):
        sample_card(nik="12345")
    with pytest.raises(CardLayoutError):
        sample_card(name="  ")


def test_image_decoding_refuses_bad_input() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (30, 40), (1, 2, 3)).save(buf, format="PNG")
    assert image_from_bytes(buf.getvalue(), field_name="photo").size == (30, 40)
    with pytest.raises(CardLayoutError):
        image_from_bytes(b"not an image", field_name="photo")
    with pytest.raises(CardLayoutError):
        image_from_bytes(buf.getvalue(), field_name="photo", max_pixels=100)
    gif = io.BytesIO()
    Image.new("P", (4, 4)).save(gif, format="GIF")
    with pytest.raises(CardLayoutError):
        image_from_bytes(gif.getvalue(), field_name="signature")


@pytest.mark.parametrize("levels", [32, 64, 128])
def test_panels_equal_the_plain_formula_and_leave_the_layers_alone(levels: int) -> None:
    # to_panels works in Pillow for speed; this is the definition it must match bit for bit:
    # ink = round((255 - v) * (levels - 1) / 255), zero under text, turned 90 degrees.
    rng = np.random.default_rng(levels)
    rgb = rng.integers(0, 256, (648, 1016, 3), dtype=np.uint8)
    ink = rng.integers(0, 2, (648, 1016), dtype=np.uint8)
    card = RenderedCard(Image.fromarray(rgb, "RGB"), Image.fromarray(ink * 255).convert("1"))
    panels = to_panels(card, levels=levels)
    want = ((255 - rgb.astype(np.int32)) * (levels - 1) + 127) // 255
    want[ink.astype(bool)] = 0
    for arr, channel in ((panels.c, 0), (panels.m, 1), (panels.y, 2)):
        assert arr.flags.c_contiguous and arr.flags.writeable
        assert np.array_equal(arr, np.rot90(want[:, :, channel], 1))
    assert np.array_equal(panels.k, np.rot90(ink, 1))
    assert np.array_equal(np.asarray(card.colour), rgb)  # the knock-out did not paint the layer
    assert np.array_equal(np.asarray(card.text, dtype=np.uint8), ink)


def test_panels_of_a_wrong_size_card_are_refused() -> None:
    card = RenderedCard(Image.new("RGB", (1000, 600), "white"), Image.new("1", (1000, 600), 0))
    with pytest.raises(ev.EncodeError, match="card raster"):
        to_panels(card)


@given(
    words=st.lists(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,/-", min_size=1, max_size=14),
                   min_size=1, max_size=9),
    width=st.integers(min_value=20, max_value=700),
    wrap=st.booleans(),
)
def test_fit_rule_is_greedy_largest_size_first(words: list[str], width: int, wrap: bool) -> None:
    # The rule defined independently of how fit_text measures: the largest size (in the rule's
    # order) at which a greedy wrap fills each line as far as it goes within the line count.
    text = " ".join(words)

    def greedy(size: int, max_lines: int) -> list[str] | None:
        f = font(size)
        lines = [words[0]]
        if f.getlength(words[0]) > width:
            return None
        for word in words[1:]:
            if f.getlength(f"{lines[-1]} {word}") <= width:
                lines[-1] += f" {word}"
            elif f.getlength(word) <= width:
                lines.append(word)
            else:
                return None
        return lines if len(lines) <= max_lines else None

    plans = [(1, s) for s in range(24, 20, -1)] + [(2, s) for s in range(24, 16, -1)] if wrap \
        else [(1, s) for s in range(24, 16, -1)]
    want = next(((s, lines) for n, s in plans if (lines := greedy(s, n)) is not None), None)
    if want is None:
        with pytest.raises(CardLayoutError):
            fit_text("name", text, width, wrap=wrap)
    else:
        f, lines = fit_text("name", text, width, wrap=wrap)
        assert (f.size, lines) == want
