"""Profile the hot paths with cProfile and pyinstrument (and an all-thread sampler for threads).

Run: /work/venv/bin/python bench/profile_hotpaths.py [--out DIR] [--only capture,packet,...]

Cases: capture (camera picking + face quality + finger quality), packet (PacketWriter into a
hashing sink), journal (chunk ingest), card (render + panels) run on the main thread under
cProfile and pyinstrument. uplink (a journal drained to a local mosquitto by agent.uplink) and
receiver (a head-office receiver storing, verifying and acking packets from simulated
stations) run their work on threads (and, for the receiver, in a child process), which cProfile
and pyinstrument do not follow, so a sampler reads every thread's stack (sys._current_frames)
every 2 ms. Each case writes DIR/<case>.*.txt and prints one Markdown row with the top
functions by own time. Reuses the bench scripts' functions; never asserts anything.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _where(frame: FrameType) -> str:
    code = frame.f_code
    path = code.co_filename
    for marker in ("/site-packages/", "/work/main/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{code.co_firstlineno}({code.co_name})"


def _running(tid: int | None) -> bool:
    """True when the kernel shows thread ``tid`` of this process runnable (state R)."""
    if tid is None:
        return False
    try:
        stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "R"


class ThreadSampler:
    """Samples every other thread's stack every ``interval`` s: own (leaf) and inclusive counts."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.own: Counter[str] = Counter()
        self.inclusive: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            native = {t.ident: t.native_id for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me or not _running(native.get(ident)):
                    continue  # a thread blocked in a wait (select, sleep, lock) is not spending CPU
                self.samples += 1
                self.own[_where(frame)] += 1
                seen: set[str] = set()
                f: FrameType | None = frame
                while f is not None:
                    w = _where(f)
                    if w not in seen:
                        seen.add(w)
                        self.inclusive[w] += 1
                    f = f.f_back

    def __enter__(self) -> ThreadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def report(self, n: int = 25) -> str:
        """Top functions by own and by inclusive samples."""
        total = max(self.samples, 1)
        lines = [f"{self.samples} samples of runnable threads every {self.interval * 1000:.0f} ms", "",
                 "own:"]
        lines += [f"{c / total:6.1%}  {w}" for w, c in self.own.most_common(n)]
        lines += ["", "inclusive:"]
        lines += [f"{c / total:6.1%}  {w}" for w, c in self.inclusive.most_common(n)]
        return "\n".join(lines) + "\n"

    def top(self, n: int = 3) -> str:
        """The n heaviest functions by own samples, for the summary row."""
        total = max(self.samples, 1)
        return "; ".join(f"{w} {c / total:.0%}" for w, c in self.own.most_common(n))


def profile_main_thread(name: str, fn: Callable[[], object], out: Path) -> str:
    """cProfile and pyinstrument over ``fn`` (run twice, once under each); return the top 3."""
    from pyinstrument import Profiler

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.runcall(fn)
    wall = time.perf_counter() - t0
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)
    (out / f"{name}.cprofile.txt").write_text(buf.getvalue())
    pi = Profiler(interval=0.001)
    pi.start()
    fn()
    pi.stop()
    (out / f"{name}.pyinstrument.txt").write_text(pi.output_text(unicode=False, color=False))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    top = sorted(raw.items(), key=lambda kv: -kv[1][2])[:3]
    parts = [f"{Path(k[0]).name}:{k[1]}({k[2]}) {v[2] / total:.0%}" for k, v in top]
    return f"{wall:.2f} s under cProfile; " + "; ".join(parts)


# ----------------------------------------------------------------------------- cases


def case_capture() -> Callable[[], object]:
    """Camera frames through the best-frame picker, face quality from JPEG, finger quality."""
    import bench_camera
    import numpy as np

    from agent.quality.face import check_face_jpeg
    from drivers.camera.picker import BestFramePicker
    from drivers.emulators import fingerprint_synth as synth
    from drivers.emulators.camera import Portrait, PortraitSource, encode_jpeg, render_portrait
    from drivers.fingerprint.base import estimate_quality

    source = PortraitSource(Portrait(), blur_sequence=bench_camera.BLURS)
    bench_camera.camera_loop(1000.0, len(bench_camera.BLURS), lambda f: None, source)
    jpeg = encode_jpeg(render_portrait(1920, 1080, Portrait()))
    finger = np.asarray(synth.synth_finger(1, 2))

    def run() -> None:
        picker = BestFramePicker(keep=bench_camera.KEEP)
        bench_camera.camera_loop(bench_camera.UNPACED_FPS, 60, picker.offer, source)
        for _ in range(5):
            check_face_jpeg(jpeg, rule="blue")
        for _ in range(10):
            estimate_quality(finger)
    return run


def case_packet() -> Callable[[], object]:
    """One 40 MB packet (the bench records plus streamed items) into a hashing sink."""
    import bench_packet
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from agent.packet import PacketWriter, new_packet_id

    station, ho = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    recs = bench_packet.records()

    def run() -> None:
        w = PacketWriter(bench_packet.HashSink(), station_id="bench-01", packet_id=new_packet_id(),
                         station_signing_key=station, headoffice_encryption_key=ho.public_key())
        for name, data, kind, fmt in recs:
            w.add_item(name, data, kind=kind, format=fmt, quality=80)
        for i in range(4):
            w.add_item(f"exception-photo-{i}", bench_packet.SyntheticSource(10 * 1024 * 1024, i),
                       kind="photo", format="raw")
        w.finish(biodata={"nik": "6472010101900001"}, operator_id="op-1")
    return run


def case_journal() -> Callable[[], object]:
    """Twelve 4 MiB packets into a fresh journal in 64 KiB writes (bench_journal.run_journal)."""
    import random

    import bench_journal

    payload = random.Random(3).randbytes(4 * 1024 * 1024)

    def run() -> None:
        with tempfile.TemporaryDirectory(prefix="prof-journal-") as d:
            _, j = bench_journal.run_journal(Path(d), payload, 12)
            j.close()
    return run


def case_card() -> Callable[[], object]:
    """Ten cards rendered and converted to printer panels (fonts warm, as in the daemon)."""
    from agent.printing.render import render_card, to_panels
    from agent.printing.samples import sample_card

    card = sample_card()
    render_card(card)

    def run() -> None:
        for _ in range(10):
            to_panels(render_card(card))
    return run


def case_uplink(out: Path) -> str:
    """bench_uplink's station role in this process, 40 packets to a local mosquitto, sampled."""
    import bench_uplink

    from agent.testbed.mosquitto import Mosquitto

    with tempfile.TemporaryDirectory(prefix="prof-uplink-") as d:
        tmp = Path(d)
        sizes = bench_uplink.sizes_for(40, 1)
        total = bench_uplink.build_journal(tmp / "j", sizes)
        broker = Mosquitto(tmp / "broker", persistence=False, extra="max_inflight_messages 100").start()
        try:
            with ThreadSampler() as sampler:
                r = bench_uplink.role_station({"state": str(tmp / "j"), "port": broker.port, "total": total})
        finally:
            broker.stop()
    (out / "uplink.sampler.txt").write_text(sampler.report())
    return f"{total / 1e6:.0f} MB in {r['elapsed']:.2f} s; " + sampler.top()


def _sampled_receiver(cfg_data: dict[str, Any], ready: Any, stop: Any, out: Any) -> None:
    """bench_headoffice's receiver process body, with the sampler around it."""
    import bench_headoffice

    with ThreadSampler() as sampler:
        bench_headoffice._receiver_proc(cfg_data, ready, stop, out)
    Path(os.environ["REKAM_PROFILE_OUT"]).write_text(sampler.report())


def case_receiver(out: Path) -> str:
    """One receiver, 20 stations x 2 packets of 300 KiB (bench_headoffice.run_once), sampled."""
    import bench_headoffice
    from cryptography.hazmat.primitives import serialization

    from agent.testbed.mosquitto import Mosquitto

    with tempfile.TemporaryDirectory(prefix="prof-rx-") as d:
        tmp = Path(d)
        ho, registered, jobs, _total = bench_headoffice.make_packets(tmp, 20, 2, 300 * 1024)
        pem = ho.signing.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        chunk = 256 * 1024
        total_chunks = sum(-(-Path(p).stat().st_size // chunk) for _, it in jobs for _, p in it)
        broker = Mosquitto(tmp / "broker", persistence=False, extra="max_inflight_messages 64").start()
        try:
            cfg = bench_headoffice._receiver_config("sqlite", tmp, "prof", None, broker.port, registered)
            # The child (spawned) inherits the environment; the config refuses unknown keys.
            os.environ["REKAM_PROFILE_OUT"] = str(out / "receiver.sampler.txt")
            original = bench_headoffice._receiver_proc
            bench_headoffice._receiver_proc = _sampled_receiver  # run_once looks it up at call time
            try:
                secs, results = bench_headoffice.run_once(
                    broker, 1, plain=False, cfg_data=cfg, durable_dir=None, jobs=jobs, ho_pub_pem=pem,
                    chunk=chunk, total_chunks=total_chunks)
            finally:
                bench_headoffice._receiver_proc = original
        finally:
            broker.stop()
    report = (out / "receiver.sampler.txt").read_text().splitlines()
    own = report[report.index("own:") + 1:report.index("own:") + 4]
    return f"40 packets in {secs:.2f} s, stored {results[0]['stored']}; " + "; ".join(x.strip() for x in own)


MAIN_THREAD: dict[str, Callable[[], Callable[[], object]]] = {
    "capture": case_capture, "packet": case_packet, "journal": case_journal, "card": case_card,
}
THREADED: dict[str, Callable[[Path], str]] = {"uplink": case_uplink, "receiver": case_receiver}


def main() -> int:
    """Profile the chosen cases and print one summary row each."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-results/profiles")
    ap.add_argument("--only", default=",".join([*MAIN_THREAD, *THREADED]))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("| hot path | profile (top functions by own time) |")
    print("| --- | --- |", flush=True)
    for name in args.only.split(","):
        if name in MAIN_THREAD:
            summary = profile_main_thread(name, MAIN_THREAD[name](), out)
        else:
            summary = THREADED[name](out)
        print(f"| {name} | {summary} |", flush=True)
    print(f"\nfull profiles in {out}/", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
