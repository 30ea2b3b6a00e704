"""Face quality check: peak memory and time against an earlier version, and a decision comparison.

Run: /work/venv/bin/python bench/bench_face_memory.py [--baseline-rev REV] [--rounds N] [--compare]

Memory and time are measured on a 1080p portrait JPEG from the camera emulator, each figure in a
fresh child process (with the systemd unit's ``Environment=``, as installed) that loads one version of
``agent/quality/face.py`` from a file: the baseline (``git show REV:agent/quality/face.py``) or
this tree's. Baseline and current children alternate, round by round, so each pair shares the
machine's load; the figures are medians over the rounds. The child imports only what the module
under test imports (the daemon no longer imports numpy, issue 7), so "RSS before the first call"
includes numpy for a version that imports it, and the child reports whether numpy was in
``sys.modules`` after the call.

* RSS: VmRSS before the call, then VmHWM after it (reset through ``/proc/self/clear_refs`` just
  before), so "peak" is the resident growth the call caused and "held" what it left. "cold" is
  the first call in the process; "warm" follows one call on a 64x48 JPEG, which loads the JPEG
  plugin, libjpeg's pages and the module's code paths but leaves no large free blocks to reuse.
* tracemalloc peak of the same call (numpy arrays and Python objects; Pillow's image memory is
  not seen by tracemalloc, the RSS figures include it).
* time: median of 20 calls after one warm-up, wall and CPU.

``--compare`` runs both versions in this process over emulator scenes (every knob of
``Portrait`` one at a time, random combinations, cluttered and coloured backgrounds, odd sizes and
image modes) through ``check_face`` and ``check_face_jpeg`` and prints how many pass/fail
verdicts differ (each one is listed on stderr with its values), how many results are identical
in every field, and the largest difference of every measured value next to the limit it is
judged against. Bit equality is not demanded: the Pillow version sums means and variances in
double where the numpy version summed in float32. The values that feed a grade are read at full
precision by recording the arguments of the module's ``grade`` calls, the Laplacian variance by
a second call with a sharpness limit that makes its score proportional to it; the working
image, the subject mask and the whole-image clipped share are compared directly against the old
whole-image arithmetic (those are expected to be exact).

Prints Markdown table rows: figure | measured | baseline (same run) | ratio | target. Nothing
here asserts anything.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CURRENT = ROOT / "agent" / "quality" / "face.py"
# The last commit with the numpy face check, before it was rewritten on Pillow alone (issue 7:
# the daemon's enrollment path runs without numpy). 0c06126 is the one before the banded rework.
DEFAULT_BASELINE_REV = "a533ba2"


def load_module_file(path: Path, name: str) -> ModuleType:
    """Import the Python file at ``path`` as module ``name`` (one version of a module, side by side)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def status_mb() -> dict[str, float]:
    """VmRSS and VmHWM of this process in MB."""
    out: dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


# ----------------------------------------------------------------------------- child side


def child(module_path: Path, jpeg_path: Path, kind: str) -> dict[str, Any]:
    """One measurement in this (fresh) process; returns its figures."""
    from PIL import Image

    face = load_module_file(module_path, "face_under_test")
    data = jpeg_path.read_bytes()
    if kind.endswith("warm"):
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (30, 80, 190)).save(buf, "JPEG")
        face.check_face_jpeg(buf.getvalue(), rule="blue")
    if kind.startswith("rss"):
        before = status_mb()["VmRSS"]
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        result = face.check_face_jpeg(data, rule="blue")
        after = status_mb()
        return {"before": before, "peak": after["VmHWM"] - before, "held": after["VmRSS"] - before,
                "score": result.score, "numpy": "numpy" in sys.modules}
    if kind.startswith("trace"):
        tracemalloc.start()
        result = face.check_face_jpeg(data, rule="blue")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"peak": peak / 2**20, "score": result.score}
    if kind == "time":
        face.check_face_jpeg(data, rule="blue")
        wall: list[float] = []
        cpu: list[float] = []
        for _ in range(20):
            t, c = time.perf_counter(), time.process_time()
            face.check_face_jpeg(data, rule="blue")
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        return {"wall_ms": statistics.median(wall) * 1000, "cpu_ms": statistics.median(cpu) * 1000}
    raise ValueError(f"unknown measurement {kind!r}")


def run_child(module_path: Path, jpeg_path: Path, kind: str) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter with the unit's ``Environment=`` (malloc settings)."""
    from bench_station import unit_environment

    env = {**os.environ, **unit_environment()}
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(module_path), str(jpeg_path), kind],
        capture_output=True, text=True, cwd=ROOT, env=env, check=True, timeout=300,
    )
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


# ----------------------------------------------------------------------------- comparison


def scenes() -> Iterator[tuple[str, Any]]:
    """(label, Portrait or ready image) for the comparison: each knob, combinations, clutter."""
    import numpy as np
    from PIL import Image

    from drivers.emulators.camera import BACKGROUNDS, Portrait, render_portrait

    knobs: dict[str, list[Any]] = {
        "blur": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0],
        "exposure": [0.3, 0.45, 0.6, 0.75, 0.9, 1.1, 1.3, 1.5, 1.7, 2.0],
        "offset_x": [-0.35, -0.22, -0.12, -0.08, -0.05, 0.05, 0.08, 0.12, 0.22, 0.35],
        "scale": [0.3, 0.35, 0.5, 0.7, 0.85, 1.2, 1.4, 1.6, 1.9],
        "background": [BACKGROUNDS["red"], BACKGROUNDS["blue"], BACKGROUNDS["white"],
                       (90, 140, 90), (128, 128, 128), (20, 20, 20), (240, 200, 40)],
        "noise": [0.0, 2.0, 12.0, 25.0],
        "background_noise": [0.0, 6.0, 15.0],
        "seed": [2, 3, 4, 5],
    }
    for knob, values in knobs.items():
        for v in values:
            yield f"{knob}={v}", replace(Portrait(), **{knob: v})
    rng = np.random.default_rng(7)
    backgrounds = list(BACKGROUNDS.values()) + [(90, 140, 90)]
    for i in range(60):
        yield f"random {i}", Portrait(
            background=backgrounds[int(rng.integers(len(backgrounds)))],
            blur=float(rng.uniform(0, 9)), exposure=float(rng.uniform(0.35, 1.9)),
            offset_x=float(rng.uniform(-0.3, 0.3)), scale=float(rng.uniform(0.3, 1.8)),
            noise=float(rng.uniform(0, 15)), background_noise=float(rng.uniform(0, 10)),
            seed=int(rng.integers(1000)),
        )
    # Cluttered backgrounds are drawn on a good portrait at 960x540.
    base = np.asarray(render_portrait(960, 540, Portrait()))
    poster = base.copy()
    poster[: 540 // 3, : 960 // 6] = (240, 240, 20)
    yield "clutter: poster in a corner", Image.fromarray(poster)
    boxes = base.copy()
    for _ in range(6):
        y, x = int(rng.integers(0, 200)), int(rng.integers(0, 900))
        boxes[y : y + 40, x : x + 50] = rng.integers(0, 256, 3)
    yield "clutter: six boxes", Image.fromarray(boxes)
    ramp = base.astype(np.int16)
    ramp[..., 2] += np.linspace(-60, 60, 960, dtype=np.int16)[None, :]
    yield "clutter: lit from one side", Image.fromarray(np.clip(ramp, 0, 255).astype(np.uint8))
    stripes = base.copy()
    stripes[:, ::40] = (250, 250, 250)
    yield "clutter: striped wall", Image.fromarray(stripes)
    blown = base.copy()
    blown[200:360, 380:580] = 255
    yield "clutter: blown-out face", Image.fromarray(blown)
    dark = base.copy()
    dark[:] = dark // 40
    yield "clutter: nearly black", Image.fromarray(dark)


def odd_inputs() -> Iterator[tuple[str, Any]]:
    """Sizes and modes the camera path does not produce but the function accepts."""
    from PIL import Image

    from drivers.emulators.camera import Portrait, render_portrait

    # Heights 450, 720, 1080, 1440 and 2160 are reduced band by band, the others whole.
    for size in [(1, 1), (3, 3), (7, 2), (64, 48), (320, 240), (640, 480), (1080, 1920),
                 (2048, 1536), (1280, 721), (641, 361), (800, 450), (1280, 720), (1920, 1080),
                 (2560, 1440), (3840, 2160)]:
        yield f"size {size[0]}x{size[1]}", render_portrait(size[0], size[1], Portrait())
    img = render_portrait(960, 540, Portrait())
    for mode in ("L", "RGBA", "P", "1", "CMYK", "I;16", "LA"):
        yield f"mode {mode}", img.convert(mode)
    yield "empty blue frame", Image.new("RGB", (960, 540), (30, 80, 190))


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+(?:\.\d+)?", text)]


# What the numbers in each check's ``measured`` text are, in order (as printed, rounded).
PRINTED: dict[str, tuple[str, ...]] = {
    "resolution": ("width", "height"),
    "background_uniform": ("spread, 1 decimal", "intrusion, 3 decimals"),
    "centred": ("head centre offset, 2 decimals",),
    "size": ("head width share, 2 decimals", "crown margin, 2 decimals"),
    "exposure": ("face luminance, 0 decimals", "clipped share of the face box, 3 decimals",
                 "clipped share of the whole image, 3 decimals"),
    "sharpness": ("Laplacian variance, 1 decimal",),
}


def _fields(result: Any) -> Any:
    if isinstance(result, str):
        return result
    return (result.score, result.passed, result.checks, result.not_checked)


def _graded_names(face: ModuleType) -> dict[tuple[float, float, float], str]:
    """What each ``grade(value, lo, hi, soft)`` call of the check measures, by its limits."""
    t = face.FaceThresholds()
    return {
        (0, t.max_background_std, 30): "background spread",
        (0, t.max_background_intrusion, 0.3): "background intrusion",
        (0, t.max_centre_offset, 0.2): "head centre offset",
        (t.min_head_width, t.max_head_width, 0.2): "head width share",
        (t.min_crown_margin, t.max_crown_margin, 0.2): "crown margin",
        (t.face_luma_min, t.face_luma_max, 60): "face luminance",
        (0, t.max_clipped_share, 0.2): "face clipped share",
    }


def _run_recorded(face: ModuleType, call: Callable[[ModuleType], Any]) -> tuple[Any, list[tuple[str, float]]]:
    """``call(face)`` with every ``grade`` argument recorded (the raw measured values, named)."""
    real = face.grade
    names = _graded_names(face)
    seen: list[tuple[str, float]] = []

    def recording(value: float, lo: float, hi: float, soft: float) -> float:
        seen.append((names.get((lo, hi, soft), f"grade{(lo, hi, soft)}"), value))
        return float(real(value, lo, hi, soft))

    face.grade = recording
    try:
        return call(face), seen
    except Exception as exc:  # both versions must refuse the same input the same way
        return f"raised {type(exc).__name__}: {exc}", seen
    finally:
        face.grade = real


def compare(old: ModuleType, new: ModuleType, quick: bool) -> None:
    """Both versions over the scene set; print differences."""
    from PIL import Image

    from drivers.emulators.camera import Portrait, encode_jpeg, render_portrait

    cases: list[tuple[str, Callable[[ModuleType], Any]]] = []
    rules = [("any", None), ("birth-year", 1991), ("birth-year", 1992)]

    def add(label: str, make: Callable[[ModuleType], Any]) -> None:
        cases.append((label, make))

    all_scenes = list(scenes())
    if quick:
        all_scenes = all_scenes[::10]
    jpeg_every = 1 if quick else 3
    for i, (label, scene) in enumerate(all_scenes):
        img = scene if isinstance(scene, Image.Image) else render_portrait(960, 540, scene)
        for rule, year in rules:
            add(f"{label} / image / {rule} {year}",
                lambda f, img=img, rule=rule, year=year: f.check_face(img, rule=rule, birth_year=year))
        if i % jpeg_every == 0:
            big = scene if isinstance(scene, Image.Image) else render_portrait(1920, 1080, scene)
            data = encode_jpeg(big)
            for rule, year in rules:
                add(f"{label} / 1080p jpeg / {rule} {year}",
                    lambda f, data=data, rule=rule, year=year: f.check_face_jpeg(
                        data, rule=rule, birth_year=year))
    for label, img in odd_inputs():
        add(f"{label} / image", lambda f, img=img: f.check_face(img, rule="blue"))
        if img.mode in ("RGB", "L", "CMYK"):
            data = encode_jpeg(img)
            add(f"{label} / jpeg", lambda f, data=data: f.check_face_jpeg(data, rule="blue"))
    png = io.BytesIO()
    render_portrait(1280, 720, Portrait()).save(png, "PNG")
    add("1280x720 PNG bytes", lambda f: f.check_face_jpeg(png.getvalue(), rule="blue"))

    identical = 0
    verdicts = 0
    scores = 0
    raised = 0
    largest: dict[str, float] = {}
    for label, call in cases:
        r_old, raw_old = _run_recorded(old, call)
        r_new, raw_new = _run_recorded(new, call)
        # The result classes are two modules' classes, so compare their fields.
        identical += _fields(r_old) == _fields(r_new) and raw_old == raw_new
        if isinstance(r_old, str) or isinstance(r_new, str):
            if r_old != r_new:
                verdicts += 1
                print(f"verdict differs: {label}: {r_old!r} / {r_new!r}", file=sys.stderr)
            raised += 1
            continue
        if (r_old.passed != r_new.passed
                or [c.passed for c in r_old.checks] != [c.passed for c in r_new.checks]):
            verdicts += 1
            print(f"verdict differs: {label}:", file=sys.stderr)
            for c_old, c_new in zip(r_old.checks, r_new.checks, strict=True):
                print(f"    {c_old.name}: {c_old.passed} {c_old.measured!r} / {c_new.passed} "
                      f"{c_new.measured!r}", file=sys.stderr)
        scores += r_old.score != r_new.score
        for c_old, c_new in zip(r_old.checks, r_new.checks, strict=True):
            for k, (x, y) in enumerate(zip(_numbers(c_old.measured), _numbers(c_new.measured),
                                           strict=True)):
                key = f"{c_old.name}: {PRINTED[c_old.name][k]}"
                largest[key] = max(largest.get(key, 0.0), abs(x - y))
            largest[f"{c_old.name} score"] = max(largest.get(f"{c_old.name} score", 0.0),
                                                 abs(c_old.score - c_new.score))
        for (name, x), (name_new, y) in zip(raw_old, raw_new, strict=True):
            assert name == name_new, (label, name, name_new)
            key = f"{name}, full precision"
            largest[key] = max(largest.get(key, 0.0), abs(x - y))
        largest["total score"] = max(largest.get("total score", 0.0), abs(r_old.score - r_new.score))

    # Laplacian variance at full precision: with this limit the sharpness score is 50 * lap / 1e12.
    lap_limits_old = old.FaceThresholds(min_sharpness=1e12)
    lap_limits_new = new.FaceThresholds(min_sharpness=1e12)
    lap_diff = lap_rel = 0.0
    for _label, scene in all_scenes[::2]:
        img = scene if isinstance(scene, Image.Image) else render_portrait(960, 540, scene)
        a = next(c.score for c in old.check_face(img, limits=lap_limits_old).checks if c.name == "sharpness")
        b = next(c.score for c in new.check_face(img, limits=lap_limits_new).checks if c.name == "sharpness")
        lap_diff = max(lap_diff, abs(a - b) * 1e12 / 50)
        lap_rel = max(lap_rel, abs(a - b) / max(abs(a), 1e-300))

    # The working image and the whole-image figures (subject mask, clipped share), which reach the
    # result only through rounded text or a pass/fail, compared directly: the new banded steps
    # against the old whole-image float32 arithmetic (the old module's _luma and _max_distance).
    import numpy as np

    pixels_differ = mask_differ = 0
    clipped_diff = 0.0
    images = [scene if isinstance(scene, Image.Image) else render_portrait(960, 540, scene)
              for _label, scene in all_scenes[::2]]
    images += [img for _l, img in odd_inputs() if img.mode == "RGB"]
    for img in images:
        work = new._work_array(img)
        w_old = img if img.height <= new.WORK_HEIGHT else img.resize(
            (max(3, round(img.width * new.WORK_HEIGHT / img.height)), new.WORK_HEIGHT), Image.Resampling.BOX)
        arr_old = np.asarray(w_old, dtype=np.float32)
        pixels_differ += not np.array_equal(work, np.asarray(w_old))
        h, w, _ = arr_old.shape
        bh, bw = max(2, h // 12), max(2, w // 12)
        bg = np.median(np.concatenate([arr_old[:bh].reshape(-1, 3), arr_old[: int(h * 0.55), :bw].reshape(-1, 3),
                                       arr_old[: int(h * 0.55), w - bw :].reshape(-1, 3)]), axis=0)
        mask, clipped = new._scan_bands(work, bg)
        luma = old._luma(arr_old)
        mask_differ += not np.array_equal(mask, old._max_distance(arr_old, bg) > 45)
        clipped_diff = max(clipped_diff, abs(clipped / (h * w) - float(((luma <= 3) | (luma >= 252)).mean())))

    t = new.FaceThresholds()
    # The limit each value is judged against, to read its largest difference by.
    limit = {
        "background spread, full precision": f"max {t.max_background_std}",
        "background intrusion, full precision": f"max {t.max_background_intrusion}",
        "head centre offset, full precision": f"max {t.max_centre_offset}",
        "head width share, full precision": f"{t.min_head_width}-{t.max_head_width}",
        "crown margin, full precision": f"{t.min_crown_margin}-{t.max_crown_margin}",
        "face luminance, full precision": f"{t.face_luma_min}-{t.face_luma_max}",
        "face clipped share, full precision": f"max {t.max_clipped_share}",
    }
    print("| comparison | measured | cases | limit it is judged against | target |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| pass/fail verdicts that differ (overall or any check) | {verdicts} | {len(cases)} | - | 0 |")
    print(f"| total scores that differ | {scores} | {len(cases)} | - | - |")
    print(f"| results identical in every field and graded value | {identical} | {len(cases)} | - | - |")
    print(f"| inputs both versions refused | {raised} | {len(cases)} | - | - |")
    print(f"| working images (uint8 at 360 lines) not equal to the old whole resize | {pixels_differ} | "
          f"{len(images)} | - | 0 |")
    print(f"| subject masks not equal to the old whole-image float32 mask | {mask_differ} | {len(images)} | - | 0 |")
    print(f"| largest difference: clipped share of the whole image, full precision | {clipped_diff:g} | "
          f"{len(images)} | max {2 * t.max_clipped_share} | 0 |")
    print(f"| largest Laplacian variance difference, full precision (relative {lap_rel:.1e}) | {lap_diff:g} | "
          f"{len(all_scenes[::2])} | min {t.min_sharpness} | small |")
    for key in sorted(largest):
        print(f"| largest difference: {key} | {largest[key]:g} | {len(cases)} | {limit.get(key, '-')} | small |")


# ----------------------------------------------------------------------------- main


def main() -> None:
    """Measure, or run one child measurement."""
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(child(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline-rev", default=DEFAULT_BASELINE_REV,
                    help="git revision of agent/quality/face.py to compare against")
    ap.add_argument("--rounds", type=int, default=5, help="fresh processes per figure and version")
    ap.add_argument("--compare", action="store_true", help="also compare results over the scenes")
    ap.add_argument("--quick", action="store_true", help="one round, a tenth of the scenes")
    ap.add_argument("--compare-only", action="store_true",
                    help="skip the memory and time figures, only compare (implies --compare)")
    args = ap.parse_args()
    rounds = 1 if args.quick else args.rounds

    from drivers.emulators.camera import Portrait, encode_jpeg, render_portrait

    with tempfile.TemporaryDirectory(prefix="bench-face-") as tmp:
        baseline = Path(tmp) / "face_baseline.py"
        baseline.write_text(subprocess.run(
            ["git", "show", f"{args.baseline_rev}:agent/quality/face.py"],
            capture_output=True, text=True, cwd=ROOT, check=True).stdout)
        jpeg = Path(tmp) / "portrait-1080p.jpg"
        jpeg.write_bytes(encode_jpeg(render_portrait(1920, 1080, Portrait())))

        print(f"load average at start: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; "
              f"baseline {args.baseline_rev}; {rounds} rounds")
        if args.compare_only:
            compare(load_module_file(baseline, "face_baseline"), load_module_file(CURRENT, "face_current"),
                    args.quick)
            print(f"load average at end: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
            return
        kinds = ("rss-cold", "rss-warm", "trace-cold", "trace-warm", "time")
        got: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for _ in range(rounds):
            for kind in kinds:
                for name, path in (("baseline", baseline), ("current", CURRENT)):
                    got.setdefault((name, kind), []).append(run_child(path, jpeg, kind))

        def med(name: str, kind: str, key: str) -> float:
            return statistics.median(r[key] for r in got[(name, kind)])

        def rng(name: str, kind: str, key: str) -> str:
            values = [r[key] for r in got[(name, kind)]]
            return f"{min(values):.1f}-{max(values):.1f}"

        print("| figure | measured | baseline (same run) | ratio | target |")
        print("| --- | --- | --- | --- | --- |")
        rows = [
            ("RSS peak over before, first call in a fresh process (MB)", "rss-cold", "peak"),
            ("RSS peak over before, after a 64x48 warm-up call (MB)", "rss-warm", "peak"),
            ("RSS held after the call, first call (MB)", "rss-cold", "held"),
            ("RSS held after the call, after warm-up (MB)", "rss-warm", "held"),
            ("tracemalloc peak, first call (MiB)", "trace-cold", "peak"),
            ("tracemalloc peak, after warm-up (MiB)", "trace-warm", "peak"),
            ("wall time, median of 20 (ms)", "time", "wall_ms"),
            ("CPU time, median of 20 (ms)", "time", "cpu_ms"),
        ]
        for figure, kind, key in rows:
            cur, base = med("current", kind, key), med("baseline", kind, key)
            print(f"| face check from 1080p JPEG: {figure} | {cur:.1f} ({rng('current', kind, key)}) | "
                  f"{base:.1f} ({rng('baseline', kind, key)}) | {cur / base:.2f} | "
                  f"{'<= 100 ms' if key == 'wall_ms' else '-'} |")
        numpy_after = {name: sorted({r["numpy"] for r in got[(name, kind)]})
                       for name in ("current", "baseline") for kind in ("rss-cold",)}
        print(f"| numpy in sys.modules after the call, first call | {numpy_after['current']} | "
              f"{numpy_after['baseline']} | - | [False] |")
        before = med("current", "rss-cold", "before")
        print(f"| RSS before the first call (numpy, Pillow, the module loaded) (MB) | {before:.1f} | "
              f"{med('baseline', 'rss-cold', 'before'):.1f} | - | - |")
        print(f"load average at end: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")

        if args.compare:
            compare(load_module_file(baseline, "face_baseline"), load_module_file(CURRENT, "face_current"),
                    args.quick)


if __name__ == "__main__":
    main()
