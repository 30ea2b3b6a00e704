"""Compare the numpy-free iris quality check with the numpy version it replaced (a533ba2).

Runs both over the emulator's iris scenes (blur, occlusion, pupil ratio, iris size, eye off
centre and partly outside the frame, closed, absent, both eyes, several seeds) and over odd
inputs (noise, blobs, uniform, tiny), and reports verdicts that differ and the largest
difference of each numeric value. Needs numpy (the emulator draws with it) and git.

    /work/venv/bin/python bench/compare_iris_numpy_free.py [--quick] [--random N]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.emulators.iris import IrisScene, render_iris  # noqa: E402

OLD_COMMIT = "a533ba2"
PATH = "agent/quality/iris.py"
# Full-precision copies of the two values the result only shows rounded.
PRECISE = ((r'f"laplacian variance {focus:.1f}"', r'f"laplacian variance {focus!r}"'),
           (r'f"usable iris {share:.2f}"', r'f"usable iris {share!r}"'))


def load(name: str, source: str, precise: bool) -> types.ModuleType:
    """A module from source text (optionally printing focus and share in full)."""
    if precise:
        for old, new in PRECISE:
            assert old in source, old
            source = source.replace(old, new)
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up
    exec(compile(source, f"<{name}>", "exec"), mod.__dict__)
    return mod


def random_scenes(count: int) -> list[tuple[str, Image.Image]]:
    """Emulator scenes with every knob drawn at random (seeded, so a run can be repeated)."""
    rng = np.random.default_rng(2026)
    out = []
    for _ in range(count):
        scene = IrisScene(blur=float(rng.choice([0, rng.uniform(0, 4)])), pupil_ratio=float(rng.uniform(0.1, 0.85)),
                          iris_radius=float(rng.uniform(40, 220)), occlusion=float(rng.uniform(0, 0.8)),
                          offset_x=float(rng.uniform(-320, 320)), offset_y=float(rng.uniform(-240, 240)),
                          seed=int(rng.integers(0, 1000)))
        out.append((f"random {scene}", render_iris(scene)))
    return out


def scenes(quick: bool) -> list[tuple[str, Image.Image]]:
    """(label, image) pairs: emulator scenes along every knob, then odd inputs."""
    knobs: list[IrisScene] = [IrisScene()]
    knobs += [IrisScene(blur=b) for b in (0.5, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 4)]
    knobs += [IrisScene(occlusion=o) for o in (0.1, 0.2, 0.3, 0.35, 0.37, 0.4, 0.5, 0.7)]
    knobs += [IrisScene(pupil_ratio=r) for r in (0.1, 0.15, 0.2, 0.25, 0.4, 0.55, 0.7, 0.75, 0.8)]
    knobs += [IrisScene(iris_radius=r) for r in (40, 60, 75, 80, 90, 130, 160, 200)]
    knobs += [IrisScene(offset_x=x) for x in (-300, -230, -200, -150, -80, 80, 150, 200, 230, 300)]
    knobs += [IrisScene(offset_y=y) for y in (-200, -130, -100, 100, 130, 200)]
    knobs += [IrisScene(offset_x=x, offset_y=y) for x, y in ((180, 120), (-220, -100), (250, 150))]
    knobs += [IrisScene(eye_open=False), IrisScene(present=False)]
    knobs += [IrisScene(blur=1.5, occlusion=0.3, pupil_ratio=0.6, offset_x=60),
              IrisScene(blur=2, iris_radius=150, offset_y=-80),
              IrisScene(iris_radius=180, pupil_ratio=0.3, offset_x=-120, occlusion=0.25)]
    seeds = (7,) if quick else (7, 11, 23)
    out = [(f"{s} eye={e}", render_iris(IrisScene(**{**s.__dict__, "seed": seed}), e))
           for s, seed, e in itertools.product(knobs, seeds, ("left", "right"))]
    rng = np.random.default_rng(5)
    for k in range(20 if quick else 60):
        w, h = int(rng.integers(1, 200)), int(rng.integers(1, 200))
        arr = rng.integers(0, 256, (h, w)).astype(np.uint8)
        if k % 3 == 0:
            arr[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3] = 0
        out.append((f"noise {w}x{h} #{k}", Image.fromarray(arr)))
    for _ in range(10 if quick else 30):
        # a dark disc on a noisy background, anywhere and any size (also partly outside)
        arr = rng.normal(150, 20, (480, 640))
        yy, xx = np.mgrid[0:480, 0:640]
        cx, cy, r = rng.uniform(-50, 690), rng.uniform(-50, 530), rng.uniform(5, 150)
        arr[np.hypot(xx - cx, yy - cy) < r * 2.5] = rng.uniform(60, 120)
        arr[np.hypot(xx - cx, yy - cy) < r] = rng.uniform(0, 40)
        out.append((f"disc c=({cx:.0f},{cy:.0f}) r={r:.0f}", Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))))
    out += [("uniform 128", Image.new("L", (640, 480), 128)), ("tiny 8x8", Image.new("L", (8, 8), 0)),
            ("rgb dark", Image.new("RGB", (640, 480), (10, 10, 10)))]
    return out


NUM = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def numbers(result: Any) -> dict[str, float]:
    """Every number of a result, by name."""
    out: dict[str, float] = {"score": float(result.score)}
    for c in result.checks:
        out[f"{c.name}.score"] = float(c.score)
        for k, v in enumerate(NUM.findall(c.measured)):
            out[f"{c.name}.measured[{k}]"] = float(v)
    if result.measure is not None:
        m = result.measure
        out |= {"centre.x": m.centre[0], "centre.y": m.centre[1], "pupil_radius": m.pupil_radius,
                "iris_radius": m.iris_radius}
    return out


def measure(result: Any) -> tuple[float, ...] | None:
    """The measure's values (the two versions' IrisMeasure classes never compare equal)."""
    m = result.measure
    return None if m is None else (*m.centre, m.pupil_radius, m.iris_radius)


def main() -> None:
    """Run both versions over the scenes and print the differences."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one seed, fewer odd inputs")
    ap.add_argument("--random", type=int, default=0, metavar="N", help="also N scenes with random knobs")
    args = ap.parse_args()
    old_src = subprocess.run(["git", "show", f"{OLD_COMMIT}:{PATH}"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
    new_src = (ROOT / PATH).read_text()
    versions = {name: (load(f"iris_{name}", src, False), load(f"iris_{name}_precise", src, True))
                for name, src in (("old", old_src), ("new", new_src))}
    assert "import numpy" not in new_src
    items = scenes(args.quick) + random_scenes(args.random)
    verdicts, strings, worst, crashes = [], 0, {}, []
    for label, img in items:
        res: dict[str, Any] = {}
        for name, (plain, precise) in versions.items():
            try:
                res[name] = (plain.check_iris(img), precise.check_iris(img))
            except Exception as exc:  # a crash is a finding to report
                res[name] = exc
        if any(isinstance(v, Exception) for v in res.values()):
            crashes.append((label, {k: repr(v) if isinstance(v, Exception) else "ok" for k, v in res.items()}))
            continue
        (old, old_p), (new, new_p) = res["old"], res["new"]
        if (old.passed, {c.name: c.passed for c in old.checks}) != (new.passed, {c.name: c.passed for c in new.checks}):
            verdicts.append((label, old.as_dict(), new.as_dict()))
        if old.as_dict() != new.as_dict() or measure(old) != measure(new):
            strings += 1
        a, b = numbers(old_p), numbers(new_p)
        for key in a.keys() | b.keys():
            if key not in a or key not in b:
                verdicts.append((label, f"{key} only in one", None))
                continue
            d = abs(a[key] - b[key])
            if key == "focus.measured[0]":  # float32 sums: the error scales with the value
                rel = d / max(abs(a[key]), 1e-12)
                if rel > worst.get("focus (relative)", (0.0, "", 0.0))[0] or "focus (relative)" not in worst:
                    worst["focus (relative)"] = (rel, label, a[key])
            if d > worst.get(key, (0.0, "", 0.0))[0] or key not in worst:
                worst[key] = (d, label, a[key])
    print(f"images compared: {len(items)} ({len(items) - len(crashes)} without a crash)")
    print(f"verdicts that differ (passed, or any check's passed): {len(verdicts)}")
    for v in verdicts:
        print("  ", v)
    print(f"results not identical (as_dict or measure, rounded as the API shows them): {strings}")
    print("largest absolute difference of each value (full precision for focus and share):")
    for key in sorted(worst):
        d, label, val = worst[key]
        print(f"  {key:28s} {d:.3g}" + (f"  (old value {val:.6g}; {label})" if d else ""))
    print(f"crashes: {len(crashes)}")
    for c in crashes:
        print("  ", c)


if __name__ == "__main__":
    main()
