"""Equivalence of the numpy-free finger quality score and slap segmentation with the old code.

Run: /work/venv/bin/python bench/compare_finger_no_numpy.py [--persons N] [--slaps N]

Loads ``drivers/fingerprint/base.py`` and ``tenprint.py`` as they were at commit a533ba2 (numpy)
next to the working-tree modules (Pillow only) and runs both over the emulators' scenes: ten-print
fingers (good, dry, wet, smudged, partial, rolled), ZFM module windows (every condition), blank,
noise, odd sizes, slap crops, and whole slaps for the fallback segmentation. Prints the verdicts
that differ (score, likely problem, segmentation boxes or refusal) and the largest difference of
each value, both as reported (rounded) and unrounded.
"""

from __future__ import annotations

import argparse
import builtins
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from drivers.emulators import fingerprint_synth as synth
from drivers.emulators.zfm import CONDITIONS, finger_image
from drivers.fingerprint import base as new_base
from drivers.fingerprint import tenprint as new_tenprint
from drivers.fingerprint.base import FingerQualityError

OLD = "a533ba2"
ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("score", "coherence", "contrast", "coverage", "mean_grey")


def load(path: str, name: str, *, commit: str | None, raw: bool) -> types.ModuleType:
    """``path`` at ``commit`` (or the working tree) as a module; ``raw``: ``round`` keeps digits."""
    if commit is None:
        source = (ROOT / path).read_text()
    else:
        source = subprocess.run(
            ["git", "show", f"{commit}:{path}"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    module = types.ModuleType(name)
    module.__file__ = f"{commit or 'worktree'}:{path}"
    if raw:

        def unrounded(x: Any, ndigits: int | None = None) -> Any:
            return builtins.round(x) if ndigits is None else float(x)

        module.__dict__["round"] = unrounded
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def finger_scenes(persons: int) -> Iterator[tuple[str, Image.Image, dict[str, Any]]]:
    """(label, image, estimate_quality keyword arguments) for every single-finger scene."""
    for person in range(1, persons + 1):
        for position in (1, 2, 3, 4, 6, 7, 8, 10)[: 2 + person % 3]:
            for name, conditions in synth.PRESETS.items():
                for capture in (0, 1):
                    img = synth.synth_finger(
                        person, position, conditions=conditions, capture_seed=capture
                    )
                    yield f"tp p{person} f{position} {name} c{capture}", Image.fromarray(img), {}
            img = synth.synth_finger(person, position, rolled=True)
            yield (
                f"tp p{person} f{position} rolled",
                Image.fromarray(img),
                {"expected_area_in2": 0.45},
            )
            mixed = synth.Conditions(dry=0.3, smudge=0.4, noise=0.5)
            img = synth.synth_finger(person, position, conditions=mixed, capture_seed=person)
            yield f"tp p{person} f{position} mixed", Image.fromarray(img), {}
    for profile, (w, h) in {"r307": (256, 288), "r503": (192, 192)}.items():
        for person in range(max(1, persons // 2)):
            for condition in CONDITIONS:
                packed = np.frombuffer(finger_image(f"id{person}", condition, w, h), np.uint8)
                nibbles = np.stack([packed >> 4, packed & 15], axis=1).reshape(h, w)
                img = Image.fromarray((nibbles * 17).astype(np.uint8))
                window = (w / 500) * (h / 500)
                yield (
                    f"zfm {profile} id{person} {condition}",
                    img,
                    {"expected_area_in2": 0.6 * window},
                )
    rng = np.random.default_rng(7)
    yield "blank", Image.new("L", (300, 400), 255), {}
    yield "black", Image.new("L", (300, 400), 0), {}
    for i in range(20):
        h, w = (int(v) for v in rng.integers(16, 120, 2))
        noise = rng.integers(0, 256, (h, w)).astype(np.uint8)
        yield f"noise {w}x{h} #{i}", Image.fromarray(noise), {}
    for i in range(6):
        img = synth.synth_finger(i + 1, 5)
        h, w = (int(v) for v in rng.integers(40, 440, 2))
        yield f"odd crop {w}x{h} #{i}", Image.fromarray(img[3 : 3 + h, 5 : 5 + w]), {}


def slap_scenes(slaps: int) -> Iterator[tuple[str, Image.Image, list[int]]]:
    """(label, slap image, positions asked for) for the fallback segmentation."""
    rng = np.random.default_rng(11)
    layouts = [(2, 3, 4, 5), (10, 9, 8, 7), (6, 1)]
    for i in range(slaps):
        positions = layouts[i % 3]
        present = [p for p in positions if rng.random() < 0.8] or [positions[0]]
        skip = frozenset(p for p in positions if p not in present)
        conditions = None
        if i % 4 == 3:
            names = list(synth.PRESETS)
            conditions = {p: synth.PRESETS[names[int(rng.integers(len(names)))]] for p in present}
        image, _ = synth.synth_slap(
            1 + i % 4, positions, skip=skip, capture_seed=i, conditions=conditions
        )
        asked = list(present)
        if i % 5 == 4:
            asked = [*present, 99][: len(positions)]  # sometimes one finger more than placed
        yield f"slap {i} {positions} skip={sorted(skip)}", Image.fromarray(image), asked
    canvas = np.full((1000, 1600), 255, np.uint8)
    canvas[300:748, 600:952] = synth.synth_finger(3, 2)
    yield "one print, two asked", Image.fromarray(canvas), [2, 3]
    yield "one print, one asked", Image.fromarray(canvas), [1]
    yield "empty platen", Image.new("L", (1600, 1000), 255), [6]
    yield "tiny platen", Image.new("L", (10, 10), 0), [6]


def segment(module: types.ModuleType, image: Image.Image, asked: list[int]) -> object:
    """The boxes found, or the refusal's reason."""
    try:
        return [(s.position, s.bbox) for s in module.segment_slap(image, asked)]
    except FingerQualityError as exc:
        return f"refused ({exc.reason}): {exc}"


def main() -> None:
    """Run both versions over every scene and print the differences."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=8)
    parser.add_argument("--slaps", type=int, default=40)
    args = parser.parse_args()
    old_base = load("drivers/fingerprint/base.py", "old_base", commit=OLD, raw=False)
    old_raw = load("drivers/fingerprint/base.py", "old_raw", commit=OLD, raw=True)
    new_raw = load("drivers/fingerprint/base.py", "new_raw", commit=None, raw=True)
    old_tenprint = load("drivers/fingerprint/tenprint.py", "old_tenprint", commit=OLD, raw=False)

    worst = dict.fromkeys(FIELDS, 0.0)
    worst_raw = dict.fromkeys(FIELDS, 0.0)
    where: dict[str, str] = {}
    verdicts = 0
    n = 0
    for label, image, kw in finger_scenes(args.persons):
        n += 1
        old, new = old_base.estimate_quality(image, **kw), new_base.estimate_quality(image, **kw)
        if old.score != new.score or old.likely_problem() != new.likely_problem():
            verdicts += 1
            print(f"VERDICT DIFFERS {label}: old {old} / new {new}")
        raw_old, raw_new = (
            old_raw.estimate_quality(image, **kw),
            new_raw.estimate_quality(image, **kw),
        )
        for f in FIELDS:
            d = abs(float(getattr(old, f)) - float(getattr(new, f)))
            if d > worst[f]:
                worst[f], where[f] = d, label
            worst_raw[f] = max(
                worst_raw[f], abs(float(getattr(raw_old, f)) - float(getattr(raw_new, f)))
            )
        # The same scene handed over as an array (tests and benchmarks do so) scores the same.
        if new_base.estimate_quality(np.asarray(image), **kw) != new:
            verdicts += 1
            print(f"ARRAY INPUT DIFFERS {label}")
    print(f"single-finger scenes: {n}; verdicts (score or likely problem) that differ: {verdicts}")
    print("largest difference, as reported (rounded) | unrounded | where (rounded)")
    for f in FIELDS:
        print(f"  {f:10s} {worst[f]:.6g} | {worst_raw[f]:.3g} | {where.get(f, '-')}")

    seg_diff = 0
    crops = 0
    crop_worst = dict.fromkeys(FIELDS, 0.0)
    m = 0
    refused = 0
    for label, image, asked in slap_scenes(args.slaps):
        m += 1
        old_s, new_s = segment(old_tenprint, image, asked), segment(new_tenprint, image, asked)
        refused += isinstance(old_s, str)
        if old_s != new_s:
            seg_diff += 1
            print(f"SEGMENTATION DIFFERS {label}: old {old_s} / new {new_s}")
        if isinstance(new_s, list):
            for _, bbox in new_s:
                crop = image.crop(bbox)
                crops += 1
                old, new = old_base.estimate_quality(crop), new_base.estimate_quality(crop)
                if old.score != new.score or old.likely_problem() != new.likely_problem():
                    seg_diff += 1
                    print(f"CROP VERDICT DIFFERS {label} {bbox}: old {old} / new {new}")
                for f in FIELDS:
                    d = abs(float(getattr(old, f)) - float(getattr(new, f)))
                    crop_worst[f] = max(crop_worst[f], d)
    print(
        f"slap scenes: {m} ({refused} refused by the old code), finger crops scored: {crops}; "
        f"differing verdicts (boxes, refusals, crop scores): {seg_diff}"
    )
    print(
        "largest difference on slap crops: " + ", ".join(f"{f} {crop_worst[f]:.6g}" for f in FIELDS)
    )


if __name__ == "__main__":
    main()
