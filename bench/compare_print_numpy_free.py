"""The numpy-free print path against the numpy one it replaced (commit a533ba2): same bytes?

Run: /work/venv/bin/python bench/compare_print_numpy_free.py [--cards 200] [--seed 7]

Loads the old agent/printing/render.py, firmware_protocols/evolis.py and
drivers/emulators/evolis.py from git (``git show a533ba2:<path>``) as separate modules (the old
render bound to the old codec), then for every card -- the sample card, random biodata
(including data that must be refused), synthetic portraits of the camera emulator and photos of
other sizes and modes, generated signatures -- at 32, 64 and 128 colour levels compares:

* the outcome of render_card (the same CardLayoutError field, or both draw);
* the two layers (colour RGB, text "1") byte for byte;
* the printer command stream, b"".join(job_frames(to_panels(...).panel_data())), byte for byte;
* the emulator's printed card (old numpy compositing vs new Pillow compositing): its pixels.

Then the codec alone on random panels (pack, unpack, K/O compression) and to_panels on layers
the renderer does not make (random pixels, an RGBA colour layer, a text layer given as 0/1
values). Prints the counts of differences; every count must be 0.
"""

from __future__ import annotations

import argparse
import io
import random
import subprocess
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from PIL import Image, ImageDraw

from agent.printing import render as new_render
from agent.printing.samples import sample_card, sample_photo
from drivers.emulators import evolis as new_emu
from drivers.emulators.camera import BACKGROUNDS, Portrait, render_portrait
from drivers.emulators.signature import signature_strokes
from firmware_protocols import evolis as new_ev

ROOT = Path(__file__).resolve().parent.parent
BASE = "a533ba2"


def old_module(name: str, path: str, replace: dict[str, str]) -> types.ModuleType:
    """``git show BASE:path`` executed as module ``name``, with source replacements."""
    src = subprocess.run(["git", "show", f"{BASE}:{path}"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    for a, b in replace.items():
        assert src.count(a) == 1, (path, a)
        src = src.replace(a, b)
    mod = types.ModuleType(name)
    mod.__file__ = str(ROOT / path)
    sys.modules[name] = mod  # dataclasses look their module up while the class is built
    exec(compile(src, f"{BASE}:{path}", "exec"), mod.__dict__)
    return mod


old_ev = old_module("old_evolis", "firmware_protocols/evolis.py", {})
old_render = old_module("old_render", "agent/printing/render.py",
                        {"from firmware_protocols import evolis as ev": "import old_evolis as ev"})
old_emu = old_module("old_emu", "drivers/emulators/evolis.py",
                     {"from firmware_protocols import evolis as ev": "import old_evolis as ev"})

WORDS = ("JALAN MERDEKA RAYA SUKAMAJU BLOK NOMOR GANG MAWAR MELATI KEBON JERUK SITI NURHALIZA "
         "MUHAMMAD RIZKY PRATAMA PUTRI AYU LESTARI DEWI SARTIKA WIRASWASTA PELAJAR MAHASISWA "
         "KARYAWAN SWASTA PEGAWAI NEGERI SIPIL BELUM KAWIN CERAI HIDUP ISLAM KRISTEN KATOLIK HINDU "
         "BUDDHA KONGHUCU LAKI-LAKI PEREMPUAN SURABAYA YOGYAKARTA PONTIANAK BANJARMASIN AL-FATIH "
         "O'NEIL 12 3A 004/012 RT.05 KM.7 JL. GG. PERUM. KOMPLEK").split()
LONG_FIELDS = ("name", "address", "occupation", "birth_place", "kel_desa", "kecamatan")


def random_text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def random_photo(rng: random.Random) -> Image.Image:
    kind = rng.randrange(4)
    if kind == 0:
        bg = rng.choice(list(BACKGROUNDS.values()))
        p = Portrait(background=bg, seed=rng.randrange(10_000), offset_x=rng.uniform(-0.1, 0.1),
                     scale=rng.uniform(0.8, 1.2), exposure=rng.uniform(0.7, 1.3))
        w = rng.choice((300, 480, 640, 960))
        return render_portrait(w, w * 4 // 3, p)
    if kind == 1:  # noise of an odd size and aspect: every look-up entry, rounding of the scale
        w, h = rng.randint(20, 900), rng.randint(20, 900)
        arr = np.random.default_rng(rng.randrange(2**32)).integers(0, 256, (h, w, 3), dtype=np.uint8)
        return Image.fromarray(arr, "RGB")
    if kind == 2:  # other modes: grey, palette, RGBA
        base = render_portrait(300, 400, Portrait(seed=rng.randrange(10_000)))
        return base.convert(rng.choice(("L", "P", "RGBA")))
    return sample_photo()


def random_signature(rng: random.Random) -> Image.Image:
    w, h = rng.choice(((600, 200), (400, 150), (150, 60), (1200, 300)))
    img = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(img)
    for stroke in signature_strokes(scale=rng.uniform(0.5, 0.95), points=rng.randint(40, 160)):
        pts = [(x * w, y * h) for x, y, _ in stroke]
        d.line(pts, fill=rng.randint(0, 120), width=rng.randint(1, 6))
    mode = rng.choice(("L", "L", "RGB", "1", "LA"))
    return img.convert(mode)


def random_card(rng: random.Random) -> new_render.CardData:
    changes: dict[str, str] = {}
    for f in LONG_FIELDS:
        if rng.random() < 0.6:
            changes[f] = random_text(rng, 1, 9 if rng.random() < 0.2 else 5)
    if rng.random() < 0.3:
        changes["province"] = random_text(rng, 1, 4)
    if rng.random() < 0.3:
        changes["blood_type"] = rng.choice(("A", "B", "AB", "O", "-", "AB+"))
    changes["nik"] = "".join(rng.choice("0123456789") for _ in range(16))
    card = sample_card(**changes)
    photo = random_photo(rng) if rng.random() < 0.9 else None
    signature = random_signature(rng) if rng.random() < 0.9 else None
    return new_render.CardData(**{k: getattr(card, k) for k in vars(card) if k not in ("photo", "signature")},
                               photo=photo, signature=signature)


def stream(ev: types.ModuleType, panels: object) -> bytes:
    return b"".join(ev.job_frames(panels.panel_data()))  # type: ignore[attr-defined]


def emulator_png(emu: types.ModuleType, ev: types.ModuleType, wire: bytes) -> bytes:
    dec = ev.CommandDecoder()
    model = emu.EvolisModel()
    for event in dec.feed(wire):
        model.handle(event)
    assert len(model.printed) == 1
    return model.printed[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cards", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cards = [sample_card(), sample_card(name="MUHAMMAD ABDURRAHMAN AL FATIH NUR HIDAYATULLAH SYAHPUTRA")]
    cards += [random_card(rng) for _ in range(args.cards)]
    counts = {"cards": 0, "refused (both)": 0, "outcome differs": 0, "layers differ": 0,
              "streams compared": 0, "stream bytes differ": 0, "emulator cards compared": 0,
              "emulator pixels differ": 0, "emulator PNG bytes differ": 0}
    stream_bytes = 0
    for i, card in enumerate(cards):
        counts["cards"] += 1
        outcome = []
        for mod in (old_render, new_render):
            try:
                outcome.append(mod.render_card(card))
            except (old_render.CardLayoutError, new_render.CardLayoutError) as exc:
                outcome.append(("refused", exc.field, str(exc)))
        old_r, new_r = outcome
        if isinstance(old_r, tuple) or isinstance(new_r, tuple):
            if old_r != new_r:
                counts["outcome differs"] += 1
                print(f"card {i}: outcome differs: {old_r if isinstance(old_r, tuple) else 'drawn'}"
                      f" vs {new_r if isinstance(new_r, tuple) else 'drawn'}")
            else:
                counts["refused (both)"] += 1
            continue
        if (old_r.colour.tobytes() != new_r.colour.tobytes()
                or old_r.text.tobytes() != new_r.text.tobytes()):
            counts["layers differ"] += 1
        for levels in (32, 64, 128):
            a = stream(old_ev, old_render.to_panels(old_r, levels=levels))
            b = stream(new_ev, new_render.to_panels(new_r, levels=levels))
            counts["streams compared"] += 1
            stream_bytes += len(b)
            if a != b:
                counts["stream bytes differ"] += 1
                print(f"card {i} at {levels} levels: stream differs ({len(a)} vs {len(b)} bytes)")
            if levels == 32 or i < 10:
                png_old = emulator_png(old_emu, old_ev, a)
                png_new = emulator_png(new_emu, new_ev, b)
                counts["emulator cards compared"] += 1
                counts["emulator PNG bytes differ"] += png_old != png_new
                pix_old = Image.open(io.BytesIO(png_old)).tobytes()
                pix_new = Image.open(io.BytesIO(png_new)).tobytes()
                counts["emulator pixels differ"] += pix_old != pix_new

    # The codec alone, on random panels of every depth.
    nrng = np.random.default_rng(args.seed)
    codec = {"random panels": 0, "pack differs": 0, "unpack differs": 0, "K/O compression differs": 0}
    for levels in (2, 32, 64, 128):
        for trial in range(10):
            if levels == 2 and trial % 2:  # sparse K-like panels: white, black and partial lines
                v = (nrng.random(new_ev.PANEL_PIXELS) < nrng.choice((0.001, 0.05, 0.5, 0.999))).astype(np.uint8)
                v.reshape(new_ev.PANEL_LINES, -1)[nrng.integers(0, new_ev.PANEL_LINES, 50)] = 1
                v.reshape(new_ev.PANEL_LINES, -1)[nrng.integers(0, new_ev.PANEL_LINES, 50)] = 0
            else:
                v = nrng.integers(0, levels, new_ev.PANEL_PIXELS, dtype=np.uint8)
            codec["random panels"] += 1
            pa, pb = old_ev.pack_pixels(v, levels), new_ev.pack_pixels(v.tobytes(), levels)
            codec["pack differs"] += pa != pb or new_ev.pack_pixels(v, levels) != pa
            codec["unpack differs"] += bytes(old_ev.unpack_pixels(pa, levels)) != bytes(new_ev.unpack_pixels(pa, levels))
            if levels == 2:
                codec["K/O compression differs"] += old_ev.compress_ko(pa) != new_ev.compress_ko(pa)

    # to_panels on layers the renderer does not make.
    odd = {"odd layers": 0, "odd layer streams differ": 0}
    for seed in range(6):
        g = np.random.default_rng(seed)
        rgb = g.integers(0, 256, (648, 1016, 3), dtype=np.uint8)
        ink = g.integers(0, 2, (648, 1016), dtype=np.uint8)
        colour = Image.fromarray(rgb, "RGB")
        if seed % 3 == 1:
            colour = colour.convert("RGBA")
        text = Image.fromarray(ink * 255).convert("1") if seed % 2 == 0 else Image.fromarray(ink, "L")
        for levels in (32, 64, 128):
            odd["odd layers"] += 1
            a = stream(old_ev, old_render.to_panels(old_render.RenderedCard(colour, text), levels=levels))
            b = stream(new_ev, new_render.to_panels(new_render.RenderedCard(colour, text), levels=levels))
            odd["odd layer streams differ"] += a != b

    print("| comparison (old = a533ba2 with numpy, new = Pillow/bytes) | count |")
    print("| --- | --- |")
    for table in (counts, codec, odd):
        for k, v in table.items():
            print(f"| {k} | {v} |")
    print(f"| printer stream bytes compared | {stream_bytes:,} |")
    differ = (counts["outcome differs"] + counts["layers differ"] + counts["stream bytes differ"]
              + counts["emulator pixels differ"] + codec["pack differs"] + codec["unpack differs"]
              + codec["K/O compression differs"] + odd["odd layer streams differ"])
    print(f"\ndifferences: {differ}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
