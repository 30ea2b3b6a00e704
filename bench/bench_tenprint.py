"""Benchmarks: synthetic fingerprints, the quality score, and the device manager's overhead.

Run: /work/venv/bin/python bench/bench_tenprint.py
Prints Markdown rows: figure, plain baseline measured in the same run, ratio, target.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable

import numpy as np

from agent.config import DeviceConfig
from agent.devices import DeviceManager
from drivers.emulators import fingerprint_synth as synth
from drivers.emulators.tenprint import forget, hardware
from drivers.fingerprint.base import FingerPosition, Slap, estimate_quality


def timed(
    fn: Callable[[], object], repeat: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median time of ``fn`` in seconds (wall clock unless another clock is given)."""
    samples = []
    for _ in range(repeat):
        t = clock()
        fn()
        samples.append(clock() - t)
    return statistics.median(samples)


def row(what: str, value: float, unit: str, baseline: str, base: float, target: str) -> None:
    """One Markdown table row."""
    scale = 1000.0 if unit == "ms" else 1e6
    print(
        f"| {what} | {value * scale:.1f} {unit} | {baseline}: {base * scale:.1f} {unit} "
        f"| {value / base:.1f}x | {target} |"
    )


def main() -> None:
    """Measure and print."""
    print("| figure | value | plain baseline (same run) | ratio | target |")
    print("| --- | --- | --- | --- | --- |")

    # 1. A fresh finger (orientation field, filtering, impression), master cache cleared each time.
    seeds = iter(range(10_000, 20_000))

    def fresh_finger() -> None:
        synth._master.cache_clear()
        synth.synth_finger(next(seeds), 2)

    synth.synth_finger(1, 2)  # warm the filter bank for this size (done once per process)
    t_finger = timed(fresh_finger, 9)
    noise = np.random.default_rng(0).standard_normal((448, 352)).astype(np.float32)
    t_fft = timed(lambda: np.fft.irfft2(np.fft.rfft2(noise), s=noise.shape), 21)
    # CPU time of this process too: on a shared, loaded machine wall time mostly measures others.
    cpu_finger = timed(fresh_finger, 9, time.process_time)
    cpu_fft = (
        timed(
            lambda: [np.fft.irfft2(np.fft.rfft2(noise), s=noise.shape) for _ in range(10)],
            9,
            time.process_time,
        )
        / 10
    )
    row(
        "synthetic finger 352x448, uncached",
        t_finger,
        "ms",
        "one rfft2+irfft2 pair",
        t_fft,
        "< 300 ms a finger",
    )
    row(
        "synthetic finger 352x448, uncached, CPU time",
        cpu_finger,
        "ms",
        "one FFT pair, CPU time",
        cpu_fft,
        "< 300 ms a finger",
    )

    # 2. The same finger again (cached ridges; placement, conditions, noise only).
    t_again = timed(lambda: synth.synth_finger(1, 2, capture_seed=int(time.time_ns() % 1000)), 21)
    row("synthetic finger, repeat capture", t_again, "ms", "one rfft2+irfft2 pair", t_fft, "-")

    # 3. Quality score of one finger.
    img = synth.synth_finger(1, 3)
    t_q = timed(lambda: estimate_quality(img), 21)
    t_grad = timed(lambda: np.gradient(img.astype(np.float32)), 21)
    row(
        "quality score (rekam-block-v1), 352x448",
        t_q,
        "ms",
        "np.gradient of the image",
        t_grad,
        "< 50 ms",
    )

    # 4. A slap through the device manager vs building the same slap image directly.
    name = f"bench-{uuid.uuid4().hex[:6]}"
    hw = hardware(name, person_seed=5)
    manager = DeviceManager(
        {
            "tp": DeviceConfig(
                driver="tenprint-emulator", url=f"emu://tenprint?name={name}", role="tenprint"
            )
        }
    )
    manager.start()
    try:
        if not manager.wait_ready("tp", 30):
            raise SystemExit("emulated scanner did not become ready")
        manager.capture_slap("tp", Slap.RIGHT_FOUR)  # warm caches
        t_slap = timed(lambda: manager.capture_slap("tp", Slap.RIGHT_FOUR), 7)
        t_direct = timed(
            lambda: synth.synth_slap(5, (2, 3, 4, 5), capture_seed=int(time.time_ns() % 1000)), 7
        )
        row(
            "slap 1600x1000 via manager+adapter (segment, 4 quality scores)",
            t_slap,
            "ms",
            "synth_slap alone",
            t_direct,
            "adds < 100 ms",
        )

        # 5. Manager hand-off cost: a no-op job on the owner thread vs a direct call.
        def noop(_d: object, _c: threading.Event) -> None:
            return None

        t_call = timed(lambda: manager.call("tp", noop, timeout=5, label="noop"), 201)
        t_plain = timed(lambda: noop(None, threading.Event()), 201)
        row("manager.call hand-off (no-op job)", t_call, "us", "direct call", t_plain, "< 1 ms")
        finger = manager.capture_finger("tp", FingerPosition.RIGHT_INDEX)
        del finger
    finally:
        manager.stop()
        forget(name)
    del hw


if __name__ == "__main__":
    main()
