"""Card rendering + panel conversion, and the memory of sending one job.

Run: /work/venv/bin/python bench/bench_printing.py [--cards 30]

Rows (Markdown):
* render + panels: render_card() + to_panels() of the sample card, median over N cards.
  Baseline, same run: plain Pillow drawing the same 31 text strings with the same fonts on a
  blank 1016x648 RGB image and turning it into a numpy array (no layout rule, no panels).
  Target: <= 150 ms a card (docs/performance.md). Wall time and CPU time (process_time) are
  both shown: on a shared, loaded machine wall time includes waiting for a core.
* send a job: tracemalloc peak while job_frames() + EvolisPrinter.print_job() send one card,
  against the size of one card's five unpacked panels (the budget: "never more than one card's
  panels"). Measured twice: over a counting transport that answers OK (driver + codec only),
  and end to end into the emulated printer over the real pyusb path, where the emulator's own
  memory (it keeps the five panels, as the real printer does) is inside the figure.
* one card in a fresh process: peak RSS (VmHWM) of an interpreter that imports the print path,
  renders the sample card, converts it and sends the job to the counting transport, against a
  fresh interpreter drawing the plain baseline once; and whether numpy got loaded (the station
  daemon must not load it: issue 7).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image, ImageDraw

from agent.printing.render import font, render_card, to_panels
from agent.printing.samples import sample_card
from drivers.emulators.evolis import EVOLIS_VID, emulated_usb_printer
from drivers.printer.evolis import EvolisPrinter
from drivers.printer.usb import UsbTransport
from firmware_protocols import evolis as ev


class CountingTransport:
    """Takes every byte, answers each frame with OK (the escpos Dummy idea)."""

    name = "counting"

    def __init__(self) -> None:
        self.sent = 0
        self._replies = 0

    def open(self) -> None:
        pass

    def device_id(self) -> str | None:
        return None

    def write(self, data: bytes, timeout_s: float) -> None:
        self.sent += len(data)
        self._replies += 1

    def read(self, size: int, timeout_s: float) -> bytes:
        if not self._replies:
            return b""
        self._replies -= 1
        return b"OK\r"

    def close(self) -> None:
        pass


FRESH = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[1] + "/bench")
from agent.printing.samples import sample_card
card = sample_card()
if sys.argv[2] == "card":
    from agent.printing.render import render_card, to_panels
    from bench_printing import CountingTransport
    from drivers.printer.evolis import EvolisPrinter
    from firmware_protocols import evolis as ev
    printer = EvolisPrinter(CountingTransport(), timeout_s=5)
    printer.open()
    printer.print_job(ev.job_frames(to_panels(render_card(card)).panel_data()))
else:
    from PIL import Image, ImageDraw
    from agent.printing.render import font
    strings = ([str(v) for v in vars(card).values() if isinstance(v, str)] * 2)[:31]
    img = Image.new("RGB", (1016, 648), (220, 235, 250))
    d = ImageDraw.Draw(img)
    for i, s in enumerate(strings):
        d.text((36 + (i % 2) * 300, 20 + (i // 2) * 36), s, font=font(24), fill=(0, 0, 0))
    img.tobytes()
peak = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(json.dumps({"peak_kib": peak, "numpy": "numpy" in sys.modules}))
"""


def fresh_peak(kind: str) -> dict[str, int]:
    """Peak RSS (KiB) and numpy's presence in a fresh interpreter doing ``kind``."""
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", FRESH, root, kind], check=True, capture_output=True,
                         text=True, cwd=root)
    result: dict[str, int] = json.loads(out.stdout)
    return result


def plain_pillow(strings: list[str]) -> None:
    # Imported here so that the fresh card process, which imports CountingTransport from this
    # file, loads numpy only if the print path does.
    import numpy as np

    img = Image.new("RGB", (1016, 648), (220, 235, 250))
    d = ImageDraw.Draw(img)
    f = font(24)
    for i, s in enumerate(strings):
        d.text((36 + (i % 2) * 300, 20 + (i // 2) * 36), s, font=f, fill=(0, 0, 0))
    np.asarray(img)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cards", type=int, default=30)
    n = ap.parse_args().cards
    card = sample_card()
    strings = [str(v) for v in vars(card).values() if isinstance(v, str)] * 2
    strings = strings[:31]
    render_card(card)  # warm the font and background caches, as a running daemon has them
    ours, base, ours_cpu, base_cpu = [], [], [], []
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        to_panels(render_card(card))
        ours.append(time.perf_counter() - t)
        ours_cpu.append(time.process_time() - c)
        t, c = time.perf_counter(), time.process_time()
        plain_pillow(strings)
        base.append(time.perf_counter() - t)
        base_cpu.append(time.process_time() - c)
    o, b = statistics.median(ours) * 1000, statistics.median(base) * 1000
    print("| figure | ours | plain baseline | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| render + panels, median of {n} cards | {o:.1f} ms | {b:.1f} ms (Pillow text only) "
          f"| {o / b:.2f}x | <= 150 ms |")
    oc, bc = statistics.median(ours_cpu) * 1000, statistics.median(base_cpu) * 1000
    print(f"| render + panels, CPU time, median of {n} cards | {oc:.1f} ms | {bc:.1f} ms "
          f"| {oc / bc:.2f}x | <= 150 ms |")
    print(f"| render + panels, worst of {n} cards | {max(ours) * 1000:.1f} ms | {max(base) * 1000:.1f} ms "
          f"| {max(ours) / max(base):.2f}x | <= 150 ms |")

    panels = to_panels(render_card(card))
    one_card = sum(len(p.values) for p in panels.panel_data())  # a byte a pixel
    counting = EvolisPrinter(CountingTransport(), timeout_s=5)
    counting.open()
    tracemalloc.start()
    counting.print_job(ev.job_frames(panels.panel_data()))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"| send one job (driver + codec), peak extra memory | {peak / 2**20:.2f} MiB | "
          f"{one_card / 2**20:.2f} MiB (one card's 5 panels) | {peak / one_card:.2f}x | <= 1x |")
    backend, emu = emulated_usb_printer()
    drv = EvolisPrinter(UsbTransport(vid=EVOLIS_VID, backend=backend), timeout_s=5)
    drv.open()
    tracemalloc.start()
    t = time.perf_counter()
    drv.print_job(ev.job_frames(panels.panel_data()))
    send_s = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"| send one job into the emulator, peak extra memory | {peak / 2**20:.2f} MiB | "
          f"{one_card / 2**20:.2f} MiB (one card's 5 panels) | {peak / one_card:.2f}x |"
          " - (includes the emulator's panels and PNG) |")
    print(f"| send one job (emulated USB), time | {send_s * 1000:.0f} ms | - | - | - |")
    card_runs = [fresh_peak(k) for k in ("card", "plain", "card", "plain", "card", "plain")]
    ours_kib = statistics.median(r["peak_kib"] for r in card_runs[0::2])
    base_kib = statistics.median(r["peak_kib"] for r in card_runs[1::2])
    numpy_loaded = any(r["numpy"] for r in card_runs[0::2])
    # "not met" in the value makes bench/run.py count the row as a miss.
    numpy_note = "numpy loaded: not met" if numpy_loaded else "numpy not loaded"
    print(f"| one card in a fresh process (import, render, panels, send), peak RSS, median of 3 "
          f"| {ours_kib / 1024:.1f} MiB ({numpy_note}) | {base_kib / 1024:.1f} MiB (plain Pillow text, "
          f"fresh process) | {ours_kib / base_kib:.2f}x | numpy not loaded (issue 7) |")
    print(f"\nload average while measuring: {os.getloadavg()[0]:.2f} (2 cores)")
    drv.close()


if __name__ == "__main__":
    main()
