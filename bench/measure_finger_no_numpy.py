"""Memory and CPU of one finger quality check and one slap segmentation, old (numpy) vs new.

Run: /work/venv/bin/python bench/measure_finger_no_numpy.py [--rounds N] [--calls N]

RSS: each figure comes from a fresh child process that loads Pillow, the driver modules both
versions share and the scene (a PNG written by this parent), reads VmRSS, then loads the check's
module (``drivers/fingerprint/{base,tenprint}.py`` at a533ba2, or the working tree) and runs the
check once; growth = VmRSS after minus before, peak = VmHWM minus the VmRSS before (both count
loading the module, and numpy for the old code). The call's own peak is VmHWM, reset just before
the call, minus the VmRSS after loading: what a capture adds in a daemon that has its modules
loaded. The child also says whether ``numpy`` ended up in ``sys.modules``.
CPU: process time per call, old and new interleaved in one process over several rounds; the
ratio new/old is taken per round and its median reported, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

OLD = "a533ba2"
ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("drivers/fingerprint/base.py", "drivers/fingerprint/tenprint.py")

CHILD = r"""
import json, sys, types
from PIL import Image
import drivers.base, drivers.errors  # shared by both versions: part of the baseline

def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB

def load(path, name):
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    exec(compile(open(path).read(), path, "exec"), module.__dict__)
    return module

base_src, tenprint_src, what, png = sys.argv[1:5]
image = Image.open(png)
image.load()
before = status("VmRSS")
base = load(base_src, "drivers.fingerprint.base")
if what == "quality":
    check = lambda: base.estimate_quality(image).score
else:
    tenprint = load(tenprint_src, "drivers.fingerprint.tenprint")
    check = lambda: [s.bbox for s in tenprint.segment_slap(image, [2, 3, 4, 5])]
# A daemon has its modules (and the old code's numpy) loaded long before a capture, so the
# call's own peak is taken over the RSS after loading, with VmHWM reset to it.
loaded = status("VmRSS")
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
result = check()
figures = {
    "growth_kb": status("VmRSS") - before,
    "peak_over_kb": status("VmHWM") - before,
    "before_kb": before,
    "call_peak_kb": status("VmHWM") - loaded,
    "numpy": "numpy" in sys.modules,
    "result": result,
}
print(json.dumps(figures))
"""


def sources(tmp: Path) -> dict[str, tuple[str, str]]:
    """Paths of the old and new module sources (the old ones written out of git)."""
    out = {"new": (str(ROOT / SOURCES[0]), str(ROOT / SOURCES[1]))}
    old: list[str] = []
    for p in SOURCES:
        text = subprocess.run(
            ["git", "show", f"{OLD}:{p}"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
        dest = tmp / f"old_{Path(p).name}"
        dest.write_text(text)
        old.append(str(dest))
    out["old"] = (old[0], old[1])
    return out


def child(src: tuple[str, str], what: str, png: Path) -> dict[str, object]:
    """One fresh process's figures."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, src[0], src[1], what, str(png)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, object] = json.loads(proc.stdout)
    return figures


def per_call(fn: Callable[..., object], image: object, calls: int, *args: object) -> float:
    """Process time of one call, averaged over ``calls``."""
    t = time.process_time()
    for _ in range(calls):
        fn(image, *args)
    return (time.process_time() - t) / calls


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--rss-repeats", type=int, default=3)
    args = parser.parse_args()

    from PIL import Image

    from drivers.emulators import fingerprint_synth as synth

    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        src = sources(tmp)
        finger_png, slap_png = tmp / "finger.png", tmp / "slap.png"
        finger = Image.fromarray(synth.synth_finger(1, 3))
        finger.save(finger_png)
        slap = Image.fromarray(synth.synth_slap(2, (2, 3, 4, 5))[0])
        slap.save(slap_png)

        print("\nRSS of one check in a fresh process (kB; median of repeats)")
        print(
            "| check | version | growth (load + call) | peak over start | start "
            "| peak of the call over the RSS after loading | numpy loaded | result |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for what, png in (("quality", finger_png), ("segment", slap_png)):
            for version in ("old", "new"):
                runs = [child(src[version], what, png) for _ in range(args.rss_repeats)]
                med = {
                    k: statistics.median(float(str(r[k])) for r in runs)
                    for k in ("growth_kb", "peak_over_kb", "before_kb", "call_peak_kb")
                }
                print(
                    f"| {what} | {version} | {med['growth_kb']:.0f} | {med['peak_over_kb']:.0f} "
                    f"| {med['before_kb']:.0f} | {med['call_peak_kb']:.0f} | {runs[0]['numpy']} "
                    f"| {runs[0]['result']} |"
                )

        # CPU: both versions in this process, interleaved so load changes hit both alike.
        import types

        def load(path: str, name: str) -> types.ModuleType:
            module = types.ModuleType(name)
            module.__file__ = path
            sys.modules[name] = module
            exec(compile(Path(path).read_text(), path, "exec"), module.__dict__)
            return module

        old_base = load(src["old"][0], "old_base_cpu")
        old_tp = load(src["old"][1], "old_tenprint_cpu")
        from drivers.fingerprint import base as new_base
        from drivers.fingerprint import tenprint as new_tp

        rows = {
            "quality 352x448": (old_base.estimate_quality, new_base.estimate_quality, finger, ()),
            "segment 1600x1000": (old_tp.segment_slap, new_tp.segment_slap, slap, ([2, 3, 4, 5],)),
        }
        print(f"\nCPU time per call ({args.rounds} rounds x {args.calls} calls, ms)")
        print("| check | old median | new median | new/old (median of per-round ratios) |")
        print("| --- | --- | --- | --- |")
        for label, (old_fn, new_fn, image, extra) in rows.items():
            old_fn(image, *extra)  # warm both
            new_fn(image, *extra)
            olds, news, ratios = [], [], []
            for _ in range(args.rounds):
                o = per_call(old_fn, image, args.calls, *extra)
                n = per_call(new_fn, image, args.calls, *extra)
                olds.append(o)
                news.append(n)
                ratios.append(n / o)
            print(
                f"| {label} | {statistics.median(olds) * 1000:.2f} | "
                f"{statistics.median(news) * 1000:.2f} | {statistics.median(ratios):.2f} "
                f"(range {min(ratios):.2f}-{max(ratios):.2f}) |"
            )
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
