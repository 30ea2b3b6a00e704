"""Memory and CPU of one iris quality check: the numpy version (a533ba2) against this tree's.

Memory: each run is a fresh interpreter that reads a rendered eye (PNG, made here first), then
imports the check and runs it once; it reports RSS before the import, after it, and the peak
(VmHWM) after the call, and whether numpy is in sys.modules. CPU: one process holds both
versions and times them in alternating rounds over a few scenes (process time per call).

    /work/venv/bin/python bench/measure_iris_numpy_free.py [--runs 5] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "a533ba2"
PATH = "agent/quality/iris.py"

CHILD = """
import sys, json
def kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
from PIL import Image
img = Image.open(sys.argv[2]); img.load()
if sys.argv[1] == "old":
    import importlib.util, types
    src = open(sys.argv[3]).read()
    before = kb("VmRSS")
    spec = importlib.util.spec_from_loader("iris_old", loader=None)
    mod = importlib.util.module_from_spec(spec); sys.modules["iris_old"] = mod
    exec(compile(src, "iris_old", "exec"), mod.__dict__)
    check_iris = mod.check_iris
else:
    before = kb("VmRSS")
    from agent.quality.iris import check_iris
after_import = kb("VmRSS")
# VmHWM so far is the import's; reset it so the peak below is the call's own
open("/proc/self/clear_refs", "w").write("5")
before_call = kb("VmRSS")
result = check_iris(img)
first = {"import_kb": after_import - before, "call_peak_kb": kb("VmHWM") - before_call,
         "total_peak_kb": kb("VmHWM") - before, "numpy": "numpy" in sys.modules, "passed": result.passed}
# a second call, as in a daemon that has checked an eye before (first-call allocations made)
open("/proc/self/clear_refs", "w").write("5")
before_second = kb("VmRSS")
check_iris(img)
first["second_call_peak_kb"] = kb("VmHWM") - before_second
print(json.dumps(first))
"""


def load(name: str, source: str) -> object:
    """A module from source text."""
    import importlib.util

    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    exec(compile(source, name, "exec"), mod.__dict__)
    return mod


def main() -> None:
    """Measure and print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per version")
    ap.add_argument("--rounds", type=int, default=7, help="CPU rounds (each: every scene, both versions)")
    ap.add_argument("--calls", type=int, default=10, help="calls per scene per round")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from drivers.emulators.iris import IrisScene, render_iris

    old_src = subprocess.run(["git", "show", f"{OLD_COMMIT}:{PATH}"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
    print(f"load average before: {Path('/proc/loadavg').read_text().split()[:3]}")
    with tempfile.TemporaryDirectory() as tmp:
        eye, src = Path(tmp) / "eye.png", Path(tmp) / "old.py"
        render_iris(IrisScene()).save(eye)
        src.write_text(old_src)
        mem: dict[str, list[dict[str, object]]] = {"old": [], "new": []}
        for _ in range(args.runs):
            for version in ("old", "new"):
                out = subprocess.run([sys.executable, "-c", CHILD, version, str(eye), str(src)], cwd=ROOT,
                                     capture_output=True, text=True, check=True, timeout=120)
                mem[version].append(json.loads(out.stdout))
    for version, runs in mem.items():
        med = {k: statistics.median(float(r[k]) for r in runs)  # type: ignore[arg-type]
               for k in ("import_kb", "call_peak_kb", "total_peak_kb", "second_call_peak_kb")}
        print(f"{version}: import +{med['import_kb'] / 1024:.1f} MB, one call's peak +{med['call_peak_kb'] / 1024:.2f} MB"
              f" (a second call's +{med['second_call_peak_kb'] / 1024:.2f} MB),"
              f" import+call peak +{med['total_peak_kb'] / 1024:.1f} MB (median of {len(runs)} fresh processes);"
              f" numpy loaded: {sorted({bool(r['numpy']) for r in runs})}; passed: {sorted({bool(r['passed']) for r in runs})}")

    old, new = load("iris_old", old_src), load("iris_new", (ROOT / PATH).read_text())
    scenes = [render_iris(s) for s in (IrisScene(), IrisScene(blur=3), IrisScene(occlusion=0.4),
                                       IrisScene(iris_radius=180), IrisScene(offset_x=230))]
    for img in scenes:  # warm both (first-call imports, caches)
        old.check_iris(img)  # type: ignore[attr-defined]
        new.check_iris(img)  # type: ignore[attr-defined]
    ratios, per = [], {"old": [], "new": []}
    for r in range(args.rounds):
        times = {}
        for version, mod in (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old)):
            t0 = time.process_time()
            for img in scenes:
                for _ in range(args.calls):
                    mod.check_iris(img)  # type: ignore[attr-defined]
            times[version] = (time.process_time() - t0) / (len(scenes) * args.calls)
            per[version].append(times[version])
        ratios.append(times["new"] / times["old"])
    print(f"CPU per call over {len(scenes)} scenes x {args.calls} calls x {args.rounds} rounds:"
          f" old median {statistics.median(per['old']) * 1000:.2f} ms, new median {statistics.median(per['new']) * 1000:.2f} ms;"
          f" new/old per round {', '.join(f'{x:.2f}' for x in ratios)} (median {statistics.median(ratios):.2f})")
    print(f"load average after: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
