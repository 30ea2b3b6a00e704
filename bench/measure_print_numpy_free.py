"""Memory and CPU of the print path: the numpy one (a533ba2) against the Pillow/bytes one.

Run: /work/venv/bin/python bench/measure_print_numpy_free.py [--rounds 15] [--fresh 3]

* RSS: each variant in fresh interpreters (``--fresh`` of each, alternating): RSS of the bare
  interpreter, after importing the print path, after render + panels + encoding one sample card
  (every frame of job_frames consumed and dropped, as EvolisPrinter.print_job does), and the
  peak (VmHWM); whether numpy is in sys.modules afterwards.
* CPU: both variants in one process, alternating card by card (process_time; the medians'
  ratio, so the machine's load affects both alike): render_card, to_panels, encoding, all three.

The old modules are ``git show a533ba2:<path>`` loaded as separate modules, as in
bench/compare_print_numpy_free.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, subprocess, sys, types
def status():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                fields[k] = int(v.split()[0]) / 1024
    return fields
root, variant = sys.argv[1], sys.argv[2]
sys.path.insert(0, root)
old_sources = {}
if variant == "old":  # read before the baseline, so git's output is not in the figures
    for path in ("firmware_protocols/evolis.py", "agent/printing/render.py"):
        old_sources[path] = subprocess.run(["git", "show", "a533ba2:" + path], cwd=root,
                                           check=True, capture_output=True, text=True).stdout
bare = status()["VmRSS"]
def load(name, path, src):
    mod = types.ModuleType(name)
    mod.__file__ = os.path.join(root, path)
    sys.modules[name] = mod
    exec(compile(src, path, "exec"), mod.__dict__)
    return mod
if variant == "old":
    ev = load("old_evolis", "firmware_protocols/evolis.py", old_sources["firmware_protocols/evolis.py"])
    src = old_sources["agent/printing/render.py"].replace(
        "from firmware_protocols import evolis as ev", "import old_evolis as ev")
    render = load("old_render", "agent/printing/render.py", src)
else:
    from agent.printing import render
    from firmware_protocols import evolis as ev
from agent.printing.samples import sample_card
card = sample_card()
imported = status()["VmRSS"]
sent = 0
for frame in ev.job_frames(render.to_panels(render.render_card(card)).panel_data()):
    sent += len(frame)
after = status()
print(json.dumps({"bare": bare, "imported": imported, "after": after["VmRSS"],
                  "peak": after["VmHWM"], "numpy": "numpy" in sys.modules, "sent": sent}))
"""


def fresh(variant: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), variant], cwd=ROOT, check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    result: dict[str, float] = json.loads(out.stdout)
    return result


def cpu_rounds(rounds: int) -> dict[str, dict[str, list[float]]]:
    sys.path.insert(0, str(ROOT))
    import types

    from agent.printing import render as new_render
    from agent.printing.samples import sample_card
    from firmware_protocols import evolis as new_ev

    def old(name: str, path: str, replace: dict[str, str]) -> types.ModuleType:
        src = subprocess.run(["git", "show", f"a533ba2:{path}"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        for a, b in replace.items():
            src = src.replace(a, b)
        mod = types.ModuleType(name)
        mod.__file__ = str(ROOT / path)
        sys.modules[name] = mod
        exec(compile(src, path, "exec"), mod.__dict__)
        return mod

    old_ev = old("old_evolis", "firmware_protocols/evolis.py", {})
    old_render = old("old_render", "agent/printing/render.py",
                     {"from firmware_protocols import evolis as ev": "import old_evolis as ev"})
    card = sample_card()
    variants = {"old": (old_render, old_ev), "new": (new_render, new_ev)}
    times: dict[str, dict[str, list[float]]] = {v: {"render": [], "panels": [], "encode": [], "total": []}
                                                for v in variants}
    for render, ev in variants.values():  # warm the font, background and table caches
        for _ in ev.job_frames(render.to_panels(render.render_card(card)).panel_data()):
            pass

    def clock(f: Callable[[], object]) -> tuple[float, object]:
        t = time.process_time()
        r = f()
        return time.process_time() - t, r

    for i in range(rounds):
        order = ("old", "new") if i % 2 == 0 else ("new", "old")
        for name in order:
            render, ev = variants[name]
            t_r, rendered = clock(lambda: render.render_card(card))  # noqa: B023
            t_p, panels = clock(lambda: render.to_panels(rendered))  # noqa: B023
            t_e, _ = clock(lambda: sum(len(f) for f in ev.job_frames(panels.panel_data())))  # noqa: B023
            for k, v in (("render", t_r), ("panels", t_p), ("encode", t_e), ("total", t_r + t_p + t_e)):
                times[name][k].append(v)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--fresh", type=int, default=3)
    args = ap.parse_args()
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for _ in range(args.fresh):
        for v in ("old", "new"):
            runs[v].append(fresh(v))
    print(f"| one card in a fresh process (MiB, median of {args.fresh}) | old (numpy) "
          "| new (Pillow/bytes) | new - old |")
    print("| --- | --- | --- | --- |")
    med = {v: {k: statistics.median(r[k] for r in runs[v]) for k in ("bare", "imported", "after", "peak")}
           for v in runs}
    rows = (("bare interpreter", "bare"), ("after importing the print path", "imported"),
            ("after render + panels + encode", "after"), ("peak (VmHWM)", "peak"))
    for label, k in rows:
        print(f"| {label} | {med['old'][k]:.1f} | {med['new'][k]:.1f} | {med['new'][k] - med['old'][k]:+.1f} |")
    for label, a, b in (("growth: import", "imported", "bare"), ("growth: peak over bare", "peak", "bare")):
        o, n = med["old"][a] - med["old"][b], med["new"][a] - med["new"][b]
        print(f"| {label} | {o:.1f} | {n:.1f} | {n - o:+.1f} |")
    print(f"| numpy in sys.modules after the card | {sorted({r['numpy'] for r in runs['old']})} "
          f"| {sorted({r['numpy'] for r in runs['new']})} | |")
    print(f"| printer bytes sent | {runs['old'][0]['sent']:,} | {runs['new'][0]['sent']:,} | |")

    times = cpu_rounds(args.rounds)
    print(f"\n| CPU time a card, median of {args.rounds} (ms) | old (numpy) | new (Pillow/bytes) | new / old |")
    print("| --- | --- | --- | --- |")
    for k in ("render", "panels", "encode", "total"):
        o, n = statistics.median(times["old"][k]) * 1000, statistics.median(times["new"][k]) * 1000
        print(f"| {k} | {o:.1f} | {n:.1f} | {n / o:.2f} |")
    load_after = os.getloadavg()
    print(f"\nload average (1/5/15 min) before: {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, "
          f"after: {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} (2 cores)")


if __name__ == "__main__":
    main()
