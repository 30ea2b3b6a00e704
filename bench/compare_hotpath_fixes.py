"""Before/after of the issue-12 hot-path fixes, both versions timed in the same run.

Run: /work/venv/bin/python bench/compare_hotpath_fixes.py [--before REV] [--rounds 3]

The "before" modules are taken from git at REV (default 04b880f, the commit before the fixes)
and loaded next to the current ones; rounds alternate before and after so both see the same
load. Each row gives the median over rounds of each round's median (wall and CPU time), and
the after/before ratio of those. Outputs are checked equal first: a fix that changed a result
would stop the run. Prints Markdown table rows; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from bench_face_memory import load_module_file  # noqa: E402

from agent.printing import render as render_now  # noqa: E402
from agent.printing.samples import sample_card  # noqa: E402
from agent.quality import face as face_now  # noqa: E402
from drivers.emulators.camera import Portrait, encode_jpeg, render_portrait  # noqa: E402
from drivers.emulators.zfm import finger_image  # noqa: E402
from firmware_protocols import zfm as zfm_now  # noqa: E402

FILES = {
    "face": "agent/quality/face.py",
    "render": "agent/printing/render.py",
    "zfm": "firmware_protocols/zfm.py",
}


def load_old(rev: str, key: str, tmp: Path) -> ModuleType:
    """Import the file as it was at ``rev`` under a private module name."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{FILES[key]}"],
                         check=True, capture_output=True).stdout
    path = tmp / f"{key}_before.py"
    path.write_bytes(src)
    return load_module_file(path, f"_before_{key}")


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and median CPU seconds of ``fn`` over ``repeat`` calls (after one warm-up)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(wall), statistics.median(cpu)


def zfm_bytes(mod: ModuleType, stream: bytes) -> Callable[[], object]:
    """Decode ``stream`` fed one byte at a time, with the same module's stream receiver."""

    def run() -> int:
        decoder = mod.PacketDecoder()
        receiver = None
        n = 0
        for i in range(len(stream)):
            for event in decoder.feed(stream[i : i + 1]):
                if isinstance(event, mod.DataPacket):
                    if receiver is None:
                        receiver = mod.DataStreamReceiver(128, 256 * 288 // 2)
                    receiver.add(event)
                    n += 1
                    if receiver.done:
                        receiver = None
        return n

    return run


def main() -> None:
    """Check outputs equal, then time before and after alternately."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="04b880f")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = {key: load_old(args.before, key, Path(tmp)) for key in FILES}

    img = render_portrait(1920, 1080, Portrait())
    jpeg = encode_jpeg(img)
    card = sample_card()
    rendered = render_now.render_card(card)  # to_panels reads only its two layers
    upload = zfm_now.encode_reply("UpImage", 0) + b"".join(
        zfm_now.encode_data_stream(finger_image("bench-finger", "good", 256, 288), 128))

    def face_key(r: object) -> object:
        return (r.score, r.passed, r.checks)  # type: ignore[attr-defined]

    if face_key(old["face"].check_face_jpeg(jpeg, rule="blue")) != face_key(
            face_now.check_face_jpeg(jpeg, rule="blue")):
        raise SystemExit("face check results differ")
    p_old = old["render"].to_panels(old["render"].render_card(card))
    p_new = render_now.to_panels(render_now.render_card(card))
    if not all(np.array_equal(getattr(p_old, f), getattr(p_new, f)) for f in "ymcko"):
        raise SystemExit("card panels differ")
    if zfm_bytes(old["zfm"], upload)() != zfm_bytes(zfm_now, upload)():
        raise SystemExit("zfm decode differs")

    cases: list[tuple[str, str, Callable[[], object], Callable[[], object], int]] = [
        ("face quality from 1080p JPEG bytes", "ms",
         lambda: old["face"].check_face_jpeg(jpeg, rule="blue"),
         lambda: face_now.check_face_jpeg(jpeg, rule="blue"), 9),
        ("face quality, decoded 1080p image", "ms",
         lambda: old["face"].check_face(img, rule="blue"),
         lambda: face_now.check_face(img, rule="blue"), 9),
        ("card render + panels", "ms",
         lambda: old["render"].to_panels(old["render"].render_card(card)),
         lambda: render_now.to_panels(render_now.render_card(card)), 15),
        ("card panels only (to_panels of one rendered card)", "ms",
         lambda: old["render"].to_panels(rendered), lambda: render_now.to_panels(rendered), 15),
        ("zfm UpImage fed one byte at a time", "ns/byte",
         zfm_bytes(old["zfm"], upload), zfm_bytes(zfm_now, upload), 3),
    ]
    results: dict[str, dict[str, list[tuple[float, float]]]] = {
        name: {"before": [], "after": []} for name, *_ in cases}
    for _ in range(args.rounds):
        for name, _unit, before, after, repeat in cases:
            results[name]["before"].append(timed(before, repeat))
            results[name]["after"].append(timed(after, repeat))

    print(f"load average at the end: {os.getloadavg()[0]:.2f} (2 cores), before = {args.before}")
    print("| hot path | before wall / CPU | after wall / CPU | after/before (wall / CPU) |")
    print("| --- | --- | --- | --- |")
    for name, unit, *_ in cases:
        scale = 1e3 if unit == "ms" else 1e9 / len(upload)
        b = [statistics.median(x[i] for x in results[name]["before"]) for i in (0, 1)]
        a = [statistics.median(x[i] for x in results[name]["after"]) for i in (0, 1)]
        print(f"| {name} | {b[0] * scale:.1f} / {b[1] * scale:.1f} {unit} | "
              f"{a[0] * scale:.1f} / {a[1] * scale:.1f} {unit} | {a[0] / b[0]:.2f} / {a[1] / b[1]:.2f} |")

if __name__ == "__main__":
    main()
