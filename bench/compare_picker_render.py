"""Old (numpy, a533ba2) vs new (Pillow) camera picker, signature ink measures and emulator output.

Run: /work/venv/bin/python bench/compare_picker_render.py [--baseline COMMIT] [--memory ROUNDS]

Loads each module's old version from git side by side with the current one and runs both over
the emulators' scenes: portraits at three sizes in MJPEG and YUYV with blur, exposure and
framing knobs (sharpness, the reduced image's mean, which frame the picker keeps, the driver's
brightness verdict, the YUYV -> RGB conversion), signatures from the emulated tablet's pen traces
(ink share, ink extent, the pad's too-little-ink verdict), and the emulators whose numpy imports
moved (ZFM finger images, portraits, YUYV packing, iris images: bytes must be equal).

Prints the verdicts that differ (must be 0) and the largest difference of each value. With
``--memory``, also measures one sharpness call and one ink measurement in fresh processes, old
vs new: RSS growth, whether numpy got loaded, and CPU time per call (a ratio from the same run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASELINE = "a533ba2"
MIN_BRIGHTNESS = 8.0  # drivers/camera/driver.py's default
MIN_INK, MIN_EXTENT = 0.005, 0.10  # drivers/signature/pad.py's defaults


def old_module(path: str, name: str, baseline: str, workdir: Path) -> ModuleType:
    """The file ``path`` as of ``baseline``, imported as module ``name``."""
    from bench.bench_face_memory import load_module_file

    src = subprocess.run(["git", "show", f"{baseline}:{path}"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    target = workdir / f"{name}.py"
    target.write_text(src)
    return load_module_file(target, name)


class Diff:
    """Largest absolute and relative difference per named value, and verdicts that differ."""

    def __init__(self) -> None:
        self.largest: dict[str, tuple[float, float, str]] = {}
        self.counts: dict[str, int] = {}
        self.verdicts: list[str] = []
        self.positive: dict[str, int] = {}  # how often the old verdict was True (a check that bites)
        self.unequal: list[str] = []

    def value(self, name: str, old: float, new: float, where: str) -> None:
        """Record one value pair."""
        self.counts[name] = self.counts.get(name, 0) + 1
        d = abs(new - old)
        rel = d / abs(old) if old else (0.0 if d == 0 else float("inf"))
        if name not in self.largest or d > self.largest[name][0]:
            self.largest[name] = (d, rel, where)

    def verdict(self, name: str, old: object, new: object, where: str) -> None:
        """Record one verdict pair."""
        self.counts[name] = self.counts.get(name, 0) + 1
        if old is True:
            self.positive[name] = self.positive.get(name, 0) + 1
        if old != new:
            self.verdicts.append(f"{name} at {where}: old {old}, new {new}")

    def same_bytes(self, name: str, old: bytes, new: bytes, where: str) -> None:
        """Record one byte-for-byte comparison."""
        self.counts[name] = self.counts.get(name, 0) + 1
        if old != new:
            self.unequal.append(f"{name} at {where}")


def compare_camera(diff: Diff, old: ModuleType) -> None:
    """Sharpness, reduced mean, picks and brightness verdicts over emulator portraits."""
    from drivers.camera import picker as new
    from drivers.camera import v4l2
    from drivers.emulators.camera import Portrait, encode_jpeg, encode_yuyv, render_portrait

    blurs = (3.0, 1.0, 0.0, 2.0, 5.0, 4.0, 6.0)
    scenes = [Portrait(), Portrait(exposure=0.3), Portrait(exposure=0.03), Portrait(exposure=2.0),
              Portrait(offset_x=0.3, scale=0.6), Portrait(noise=0.0, background_noise=0.0, seed=4)]
    for w, h in ((640, 480), (1280, 720), (1920, 1080)):
        for si, scene in enumerate(scenes):
            for fmt_name, pixfmt, encode in (("MJPG", v4l2.V4L2_PIX_FMT_MJPEG, encode_jpeg),
                                             ("YUYV", v4l2.V4L2_PIX_FMT_YUYV, encode_yuyv)):
                pick_old, pick_new = old.BestFramePicker(keep=8), new.BestFramePicker(keep=8)
                for n, blur in enumerate(blurs):
                    from dataclasses import replace

                    data = encode(render_portrait(w, h, replace(scene, blur=blur)))
                    where = f"{w}x{h} {fmt_name} scene{si} blur{blur}"
                    fo = old.Frame(data, pixfmt, w, h, n, 0.0)
                    fn = new.Frame(data, pixfmt, w, h, n, 0.0)
                    so, sn = pick_old.offer(fo), pick_new.offer(fn)
                    assert so is not None and sn is not None
                    diff.value("sharpness", so, sn, where)
                    mo = float(old.reduced_grey(fo).mean())
                    mn = new.reduced_grey(fn).mean()
                    diff.value("reduced mean", mo, mn, where)
                    diff.verdict("too dark (mean < 8)", mo < MIN_BRIGHTNESS, mn < MIN_BRIGHTNESS, where)
                    if pixfmt == v4l2.V4L2_PIX_FMT_YUYV and n == 0:
                        diff.same_bytes("YUYV -> RGB", fo.to_image().tobytes(), fn.to_image().tobytes(), where)
                bo, bn = pick_old.best(), pick_new.best()
                assert bo is not None and bn is not None
                diff.verdict("picked frame", bo[0].sequence, bn[0].sequence, f"{w}x{h} {fmt_name} scene{si}")
    # Undecodable frames: both reject the same ones.
    for data, pixfmt in ((b"\xff\xd8junk", v4l2.V4L2_PIX_FMT_MJPEG), (b"\0" * 100, v4l2.V4L2_PIX_FMT_YUYV)):
        outcomes = []
        for mod in (old, new):
            try:
                mod.sharpness(mod.Frame(data, pixfmt, 640, 480, 0, 0.0))
                outcomes.append("scored")
            except ValueError:
                outcomes.append("ValueError")
        diff.verdict("bad frame rejected", outcomes[0], outcomes[1], v4l2.fourcc_str(pixfmt))


def compare_signature(diff: Diff, old: ModuleType) -> None:
    """Ink share, extent and the pad's verdict over emulated pen traces."""
    from drivers.emulators.signature import (
        TabletSpec,
        dot_strokes,
        pack_events,
        pen_strokes_events,
        signature_strokes,
    )
    from drivers.signature import render as new
    from firmware_protocols.evdev import AbsRange, EvdevDecoder, StrokeAssembler

    specs = [TabletSpec(), TabletSpec(has_pressure=False), TabletSpec(x_max=4095, y_max=4095, pressure_max=255)]
    traces: list[tuple[str, list[list[tuple[float, float, float]]]]] = [
        (f"signature scale {s} points {p}", signature_strokes(s, p))
        for s in (1.0, 0.8, 0.5, 0.2, 0.1, 0.05) for p in (20, 120, 600)]
    traces.append(("dot", dot_strokes()))
    for spi, spec in enumerate(specs):
        for name, trace in traces:
            events = EvdevDecoder("64").feed(pack_events(pen_strokes_events(trace, spec)))
            asm = StrokeAssembler()
            asm.feed(events)
            asm.finish()
            for box in ((600, 200), (300, 100), (800, 300)):
                pr = AbsRange(0, spec.pressure_max) if spec.has_pressure else None
                img = new.render_strokes(asm.strokes, AbsRange(0, spec.x_max), AbsRange(0, spec.y_max), box, pr)
                img_old = old.render_strokes(asm.strokes, AbsRange(0, spec.x_max), AbsRange(0, spec.y_max), box, pr)
                where = f"spec{spi} {name} box {box}"
                diff.same_bytes("rendered signature", img_old.tobytes(), img.tobytes(), where)
                so, sn = old.ink_share(img), new.ink_share(img)
                eo, en = old.ink_extent(img), new.ink_extent(img)
                diff.value("ink share", so, sn, where)
                diff.value("ink extent width", eo[0], en[0], where)
                diff.value("ink extent height", eo[1], en[1], where)
                diff.verdict("too little ink", so < MIN_INK or max(eo) < MIN_EXTENT,
                             sn < MIN_INK or max(en) < MIN_EXTENT, where)
                diff.same_bytes("signature PNG", old.to_png(img), new.to_png(img), where)


def compare_emulators(diff: Diff, baseline: str, workdir: Path) -> None:
    """The emulators whose numpy imports moved: same bytes as before."""
    from drivers.emulators import camera as cam_new
    from drivers.emulators import iris as iris_new
    from drivers.emulators import zfm as zfm_new

    zfm_old = old_module("drivers/emulators/zfm.py", "old_zfm", baseline, workdir)
    for ident in ("ana", "budi-left-thumb", "citra"):
        for cond in zfm_new.CONDITIONS:
            for w, h in ((192, 192), (256, 288)):
                diff.same_bytes("ZFM finger image", zfm_old.finger_image(ident, cond, w, h),
                                zfm_new.finger_image(ident, cond, w, h), f"{ident} {cond} {w}x{h}")
    # The asset renderer's entry (seed in, image out) is the same function.
    diff.same_bytes("ZFM seeded image", zfm_old.finger_image("ana", "dry", 192, 192),
                    zfm_new.finger_image_seeded(zfm_new.finger_seed("ana"), "dry", 192, 192), "ana dry")
    cam_old = old_module("drivers/emulators/camera.py", "old_cam", baseline, workdir)
    iris_old = old_module("drivers/emulators/iris.py", "old_iris", baseline, workdir)
    for blur in (0.0, 2.0):
        po = cam_old.render_portrait(640, 480, cam_old.Portrait(blur=blur))
        pn = cam_new.render_portrait(640, 480, cam_new.Portrait(blur=blur))
        diff.same_bytes("portrait", po.tobytes(), pn.tobytes(), f"blur {blur}")
        diff.same_bytes("YUYV packing", cam_old.encode_yuyv(po), cam_new.encode_yuyv(pn), f"blur {blur}")
        for eye in ("left", "right"):
            diff.same_bytes("iris image", iris_old.render_iris(iris_old.IrisScene(blur=blur), eye).tobytes(),
                            iris_new.render_iris(iris_new.IrisScene(blur=blur), eye).tobytes(),
                            f"blur {blur} {eye}")


# ----------------------------------------------------------------------------- memory and CPU

_CHILD = r"""
import importlib.util, json, resource, sys, time
def rss():
    with open("/proc/self/status") as f:
        return {k: int(v.split()[0]) / 1024 for k, _, v in (l.partition(":") for l in f)
                if k in ("VmRSS", "VmHWM")}
kind, path, data_path, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
spec = importlib.util.spec_from_file_location("m", path)
m = importlib.util.module_from_spec(spec); sys.modules["m"] = m
from PIL import Image
import io
payload = open(data_path, "rb").read()
start = rss()  # interpreter, Pillow and the input bytes: before the module is imported
if kind == "sharpness":
    spec.loader.exec_module(m)
    frame = m.Frame(payload, 0x47504A4D, 1920, 1080, 0, 0.0)
    call = lambda: m.sharpness(frame)
else:
    spec.loader.exec_module(m)
    img = Image.open(io.BytesIO(payload)); img.load()
    call = lambda: (m.ink_share(img), m.ink_extent(img))
before = rss()
call()
after = rss()
numpy_loaded = "numpy" in sys.modules
t = time.process_time()
for _ in range(rounds):
    call()
cpu = (time.process_time() - t) / rounds
print(json.dumps({"rss_start": start["VmRSS"], "rss_before": before["VmRSS"], "rss_after": after["VmRSS"], "hwm_after": after["VmHWM"],
                  "numpy": numpy_loaded, "cpu_ms": cpu * 1000}))
"""


def measure(baseline: str, workdir: Path, rounds: int) -> None:
    """Fresh-process RSS growth of the first call, numpy loaded or not, CPU per call; old vs new."""
    from drivers.emulators.camera import Portrait, encode_jpeg, render_portrait
    from drivers.emulators.signature import (
        TabletSpec,
        pack_events,
        pen_strokes_events,
        signature_strokes,
    )
    from drivers.signature.render import render_strokes, to_png
    from firmware_protocols.evdev import AbsRange, EvdevDecoder, StrokeAssembler

    jpeg = workdir / "frame.jpg"
    jpeg.write_bytes(encode_jpeg(render_portrait(1920, 1080, Portrait(blur=1.0))))
    spec = TabletSpec()
    asm = StrokeAssembler()
    asm.feed(EvdevDecoder("64").feed(pack_events(pen_strokes_events(signature_strokes(), spec))))
    asm.finish()
    sig = workdir / "sig.png"
    sig.write_bytes(to_png(render_strokes(asm.strokes, AbsRange(0, spec.x_max), AbsRange(0, spec.y_max),
                                          (600, 200), AbsRange(0, spec.pressure_max))))
    paths = {}
    for rel, name in (("drivers/camera/picker.py", "picker"), ("drivers/signature/render.py", "render")):
        src = subprocess.run(["git", "show", f"{baseline}:{rel}"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
        (workdir / f"old_{name}.py").write_text(src)
        paths[name] = (workdir / f"old_{name}.py", ROOT / rel)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("REKAM_EMULATOR_ASSETS", None)
    print(f"\nload average before: {os.getloadavg()}")
    print("| check | version | RSS growth: import + first call MB | of which first call MB | numpy loaded "
          "| CPU ms/call |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind, name, data in (("sharpness", "picker", jpeg), ("ink", "render", sig)):
        results: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
        for _ in range(5):  # alternate old and new so load changes hit both alike
            for version, path in zip(("old", "new"), paths[name], strict=True):
                res = subprocess.run([sys.executable, "-c", _CHILD, kind, str(path), str(data), str(rounds)],
                                     capture_output=True, text=True, cwd=ROOT, env=env, check=True)
                results[version].append(json.loads(res.stdout))
        for version in ("old", "new"):
            rs = results[version]
            total = sorted(r["rss_after"] - r["rss_start"] for r in rs)
            growth = sorted(r["rss_after"] - r["rss_before"] for r in rs)
            cpu = sorted(r["cpu_ms"] for r in rs)
            print(f"| {kind} | {version} | {total[0]:.1f}-{total[-1]:.1f} | {growth[0]:.1f}-{growth[-1]:.1f} | "
                  f"{sorted({r['numpy'] for r in rs})} | {cpu[0]:.3f}-{cpu[-1]:.3f} (median {cpu[len(cpu) // 2]:.3f}) |")
        ratio = sorted(n["cpu_ms"] / o["cpu_ms"] for o, n in zip(results["old"], results["new"], strict=True))
        print(f"| {kind} | new/old CPU per call | | | | {ratio[0]:.2f}-{ratio[-1]:.2f} (median {ratio[len(ratio) // 2]:.2f}) |")
    print(f"load average after: {os.getloadavg()}")


def main() -> None:
    """Compare, print the differences, and optionally measure."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--memory", type=int, default=0, metavar="ROUNDS",
                    help="also measure RSS and CPU per call in fresh processes (ROUNDS calls each)")
    ap.add_argument("--no-compare", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.no_compare:
            diff = Diff()
            t = time.perf_counter()
            compare_camera(diff, old_module("drivers/camera/picker.py", "old_picker", args.baseline, workdir))
            compare_signature(diff, old_module("drivers/signature/render.py", "old_render", args.baseline, workdir))
            compare_emulators(diff, args.baseline, workdir)
            print(f"compared against {args.baseline} in {time.perf_counter() - t:.0f} s")
            print("| value | compared | largest abs difference | relative | where |")
            print("| --- | --- | --- | --- | --- |")
            for name, (d, rel, where) in diff.largest.items():
                print(f"| {name} | {diff.counts[name]} | {d:.6g} | {rel:.3g} | {where} |")
            checked = {k: v for k, v in diff.counts.items() if k not in diff.largest}
            print(f"verdicts and byte comparisons: {checked}")
            print(f"verdicts True in the old version: {diff.positive}")
            print(f"verdicts that differ: {len(diff.verdicts)}")
            for line in diff.verdicts:
                print("  " + line)
            print(f"byte comparisons that differ: {len(diff.unequal)}")
            for line in diff.unequal:
                print("  " + line)
        if args.memory:
            measure(args.baseline, workdir, args.memory)


if __name__ == "__main__":
    main()
