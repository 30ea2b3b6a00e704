"""Whole-station benchmark: the daemon (`rekam run`) with every device emulated.

Run: /work/venv/bin/python bench/bench_station.py [--quick] [--only NAME,...]

Prints Markdown table rows (figure | value | plain baseline in the same run | ratio | target):

- ready:    start to READY=1 (a real NOTIFY_SOCKET datagram socket) against a bare `python -c pass`,
            and the import time of `rekam run` (python -X importtime) against the interpreter's own.
- backlog:  daemon RSS with 10,000 packets (--quick: 300) in the journal and the broker unreachable,
            against the same daemon with an empty journal. Both start_daemon cases (ready, backlog)
            and enroll give the daemon the unit's ``Environment=``, as systemd does.
- send200:  station RSS growth while the uplink sends one 200 MB packet (--quick: 16 MB) to a local
            mosquitto (reuses bench_uplink's station role), against the RSS at its first sample.
- enroll:   agent-side time of one enrollment (every API call except captures: session, biodata,
            steps, seal) against the whole enrollment's wall time, and the daemon's peak RSS.
- card:     sealing -> printed card through the link proxy at 1 Mbit/s and 50 ms each way, head
            office approving at once, against the packet's pure transfer time on that link.

Never asserts timings. Each daemon runs in its own process; its state lives in a temp directory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MB = 1_000_000
MIB = 1024 * 1024


def row(figure: str, value: str, baseline: str, ratio: str, target: str) -> None:
    """One Markdown table row on stdout."""
    print(f"| {figure} | {value} | {baseline} | {ratio} | {target} |", flush=True)


def proc_status_kib(pid: int, field: str) -> int:
    """A VmRSS/VmHWM-style field of /proc/PID/status in KiB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def clean_env() -> dict[str, str]:
    """The environment without systemd's variables (the benchmark supplies its own)."""
    return {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY", "NOTIFY_SOCKET")}


def installed_bytecode() -> Path:
    """A bytecode cache (PYTHONPYCACHEPREFIX) holding every module the daemon can import, compiled.

    A pip-installed station has .pyc files for the agent and its libraries; this environment
    sets PYTHONDONTWRITEBYTECODE, so a daemon started from the source tree compiles agent/,
    drivers/ and firmware_protocols/ at every start and keeps the compiler's leftovers in its
    heap (measured 64.7 MB idle after sign-in against 60.7 MB with bytecode, every device
    emulated). The RSS cases run the daemon with this cache. Kept in $TMPDIR between runs (the
    first build compiles the venv and the standard library: about a minute of CPU); sources
    edited since are recompiled when imported.
    """
    import sysconfig

    cache = Path(tempfile.gettempdir()) / "rekam-bench-pycache"
    env = {**clean_env(), "PYTHONPYCACHEPREFIX": str(cache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    paths = sysconfig.get_paths()
    dirs = {str(ROOT / d) for d in ("agent", "drivers", "firmware_protocols")}
    dirs |= {paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"]}
    # Test files in some packages do not compile on purpose; those are never imported.
    subprocess.run([sys.executable, "-m", "compileall", "-q", *sorted(dirs)], env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return cache


def bytecode_environ(cache: Path) -> dict[str, str]:
    """Variables that make a child Python use (and fill) ``cache`` instead of compiling each start."""
    # Empty counts as unset for PYTHONDONTWRITEBYTECODE (os.environ cannot hold "unset").
    return {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(cache)}


# ----------------------------------------------------------------------------- start-up


def start_daemon(config: Path, log: Path, notify_path: Path | None = None, *,
                 pycache: Path | None = None) -> tuple[subprocess.Popen[bytes], float | None]:
    """Start `rekam run`; with ``notify_path`` wait for READY=1 and return seconds to it.

    ``pycache`` lets Python keep compiled bytecode there (as an installed package has it), even
    where the environment sets PYTHONDONTWRITEBYTECODE.
    """
    # As systemd runs it: the unit's Environment= (malloc arenas, OpenBLAS threads) changes RSS.
    env = {**clean_env(), **unit_environment()}
    if pycache is not None:
        env.update(bytecode_environ(pycache))
    sock: socket.socket | None = None
    if notify_path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(notify_path))
        sock.settimeout(1.0)
        env["NOTIFY_SOCKET"] = str(notify_path)
    with log.open("ab") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=ROOT)
    ready: float | None = None
    if sock is not None:
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    msg = sock.recv(4096)
                except TimeoutError:
                    continue
                if b"READY=1" in msg.split(b"\n"):
                    ready = time.perf_counter() - t0
                    break
        finally:
            sock.close()
            notify_path.unlink(missing_ok=True)  # type: ignore[union-attr]
    return proc, ready


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the daemon and wait (SIGKILL after 30 s)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def prepared_station(workdir: Path, *, devices: bool = True, **kw: Any) -> Any:
    """A SimulatedStation with keys (head office's trusted) and config written, not started.

    ``devices=False`` drops the [devices.*] tables: the emulators run inside the daemon process,
    so only a daemon without them shows the agent's own memory.
    """
    from agent.keys import BUNDLE, generate_headoffice_keys
    from agent.testbed.station import SimulatedStation

    ho_dir = workdir / "headoffice-keys"
    generate_headoffice_keys(ho_dir, now=datetime.now(UTC))
    if not devices:
        kw["printer"] = False
    st = SimulatedStation(workdir, **kw)
    st.prepare(headoffice_bundle=ho_dir / BUNDLE)
    if not devices:
        text = st.config_path.read_text()
        st.config_path.write_text(text[:text.index("[devices.")])  # devices are the last tables
    return st


def bench_ready(tmp: Path, quick: bool) -> None:
    """Start to READY=1 and the import time of `rekam run`."""
    st = prepared_station(tmp / "ready")
    pycache = tmp / "pycache"
    compiled: list[float] = []
    times: list[float] = []
    cpu: dict[bool, list[float]] = {False: [], True: []}
    for i in range(2 if quick else 6):
        # Alternate: without .pyc files (this environment sets PYTHONDONTWRITEBYTECODE, so every
        # start compiles every module) and with them (as a pip-installed station runs).
        use = pycache if i % 2 else None
        if use is not None and not pycache.exists():
            stop_daemon(start_daemon(st.config_path, st.log_path, tmp / "notify.sock", pycache=use)[0])
        proc, ready = start_daemon(st.config_path, st.log_path, tmp / "notify.sock", pycache=use)
        # CPU the daemon used up to READY=1 (read as it arrives): the work of starting, which the
        # load average on this shared machine does not inflate the way it inflates wall time.
        cpu[use is not None].append(proc_cpu_seconds(proc.pid))
        stop_daemon(proc)
        if ready is None:
            raise RuntimeError(f"no READY=1 from the daemon: {st.log_tail()}")
        (compiled if use else times).append(ready)
    bare: list[float] = []
    for _ in range(len(times)):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=clean_env())
        bare.append(time.perf_counter() - t0)
    r, b = statistics.median(times), statistics.median(bare)
    # The daemon logs the time from its first component's start to READY=1; the rest of the
    # figure is the interpreter, imports and config before that.
    own = [float(x) for x in re.findall(r"ready in ([\d.]+) s", st.log_tail(100_000))]
    inner = f"; components {statistics.median(own):.2f} s of it" if own else ""
    row(f"start to READY=1, emulated devices, no .pyc (median of {len(times)}{inner})", f"{r:.2f} s",
        f"bare `python -c pass` {b:.3f} s", f"{r / b:.1f}x", "<= 1.5 s")
    c = statistics.median(compiled)
    row(f"start to READY=1, emulated devices, compiled bytecode as installed (median of {len(compiled)})",
        f"{c:.2f} s", f"bare `python -c pass` {b:.3f} s", f"{c / b:.1f}x", "<= 1.5 s")
    cn, cc = statistics.median(cpu[False]), statistics.median(cpu[True])
    row("daemon CPU time (user + sys) up to READY=1, no .pyc / compiled bytecode (medians)",
        f"{cn:.2f} / {cc:.2f} s", f"start to READY=1 {r:.2f} / {c:.2f} s", f"{cn / r:.2f} / {cc / c:.2f}",
        "(reported: the work of starting; the rest of the wall time waits for a core or the disk)")
    ours, top = import_time("import agent.cli, agent.commands.run, agent.daemon, agent.station")
    base, _ = import_time("pass")
    heavy = ", ".join(f"{name} {us / 1000:.0f} ms" for name, us in top[:4])
    row("import time of `rekam run` (python -X importtime, cumulative)", f"{ours / 1000:.0f} ms",
        f"interpreter start-up imports {base / 1000:.0f} ms", f"{ours / max(base, 1):.1f}x",
        f"(reported; heaviest: {heavy})")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0.0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def import_time(code: str) -> tuple[int, list[tuple[str, int]]]:
    """Total cumulative µs of top-level imports for ``code``, and the heaviest top-level ones."""
    totals: list[int] = []
    top: dict[str, int] = {}
    for _ in range(3):  # the median of three: the first run also pays for cold caches
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                             text=True, check=True, env=clean_env(), cwd=ROOT)
        total = 0
        for line in out.stderr.splitlines():
            parts = line.split("|")
            if len(parts) != 3 or not parts[0].startswith("import time:") or "cumulative" in line:
                continue
            name = parts[2].rstrip()
            if name.startswith("  "):
                continue  # nested imports are inside their parent's cumulative figure
            total += int(parts[1])
            top[name.strip()] = min(top.get(name.strip(), 1 << 60), int(parts[1]))
        totals.append(total)
    return int(statistics.median(totals)), sorted(top.items(), key=lambda kv: -kv[1])


# ----------------------------------------------------------------------------- backlog RSS


def fill_journal(state_dir: Path, cfg: Any, count: int, size: int) -> None:
    """``count`` packets of ``size`` random bytes in the station's journal (as if sealed)."""
    from agent.journal import Journal

    rng = random.Random(5)
    payload = rng.randbytes(size)
    j = Journal.open(state_dir, cfg)
    try:
        for n in range(count):
            with j.begin_packet(f"backlog-{n:06d}", station_id="bench-1",
                                created_at=f"2026-11-01T08:{n // 600 % 60:02d}:{n // 10 % 60:02d}.{n:06d}Z"
                                ) as sink:
                sink.write(payload)
                sink.commit()
    finally:
        j.close()


def sample_rss(pid: int, seconds: float) -> list[int]:
    """VmRSS of ``pid`` every 0.25 s for ``seconds``."""
    samples: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(proc_status_kib(pid, "VmRSS"))
        time.sleep(0.25)
    return samples


def bench_backlog(tmp: Path, quick: bool) -> None:
    """Daemon RSS with a large backlog against the same daemon with an empty journal."""
    from agent.config import load_config
    from agent.testbed.mosquitto import free_port

    count = 100 if quick else 10_000
    seconds = 1.0 if quick else 12.0
    dead_port = free_port()  # nothing listens: the uplink keeps retrying, the backlog stays
    pycache = installed_bytecode()
    results: dict[str, list[int]] = {}
    split: dict[str, tuple[int, int, int]] = {}
    for name, n, devices in (("empty", 0, True), ("backlog", count, True),
                             ("empty-nodev", 0, False), ("backlog-nodev", count, False)):
        st = prepared_station(tmp / f"rss-{name}", devices=devices, uplink_enabled=True,
                              broker_port=dead_port)
        if n:
            cfg = load_config(st.config_path)
            fill_journal(cfg.state_dir, cfg.journal, n, 4096)
        proc, ready = start_daemon(st.config_path, st.log_path, tmp / "notify.sock", pycache=pycache)
        try:
            if ready is None:
                raise RuntimeError(f"daemon not ready: {st.log_tail()}")
            results[name] = sample_rss(proc.pid, seconds)
            # Anonymous (heap, arenas) against file-backed (mapped libraries) at the last sample.
            split[name] = (proc_status_kib(proc.pid, "RssAnon"), proc_status_kib(proc.pid, "RssFile"),
                           proc_status_kib(proc.pid, "Threads"))
        finally:
            stop_daemon(proc)
    for suffix, what in (("", "every device emulated in-process"), ("-nodev", "no devices configured")):
        b, e = results["backlog" + suffix], results["empty" + suffix]
        row(f"daemon RSS with {count:,} packets in the backlog, broker unreachable, {what} "
            f"(median / max over {seconds:.0f} s; compiled bytecode as installed)",
            f"{statistics.median(b) / 1024:.1f} / {max(b) / 1024:.1f} MB",
            f"same daemon, empty journal: {statistics.median(e) / 1024:.1f} / {max(e) / 1024:.1f} MB; "
            f"anon/file {split['backlog' + suffix][0] / 1024:.1f}/{split['backlog' + suffix][1] / 1024:.1f} MB "
            f"(empty {split['empty' + suffix][0] / 1024:.1f}/{split['empty' + suffix][1] / 1024:.1f} MB); "
            f"threads {split['backlog' + suffix][2]}",
            f"{max(b) / max(e):.2f}", "<= 60 MB")


# ----------------------------------------------------------------------------- 200 MB send


def bench_send(tmp: Path, quick: bool) -> None:
    """Station RSS while the uplink sends one big packet (bench_uplink's station role)."""
    import bench_uplink

    from agent.config import JournalConfig
    from agent.journal import Journal
    from agent.testbed.mosquitto import Mosquitto

    size = 16 * MB if quick else 200 * MB
    state = tmp / "send200"
    state.mkdir(mode=0o700)
    cfg = JournalConfig(chunk_bytes=bench_uplink.CHUNK, max_packet_bytes=size + MIB,
                        max_bytes=8 * 1024**3, free_disk_floor_bytes=0)
    j = Journal.open(state, cfg)
    try:
        with j.begin_packet("big-00001", station_id="bench-1",
                            created_at="2026-11-01T08:00:00.000000Z") as sink:
            left = size
            while left:
                piece = min(left, MIB)
                sink.write(bench_uplink.POOL[:piece])
                left -= piece
            sink.commit()
    finally:
        j.close()
    broker = Mosquitto(tmp / "broker-send", persistence=False, extra="max_inflight_messages 100").start()
    try:
        st = bench_uplink.run_child("station", {"state": str(state), "port": broker.port, "total": size})
    finally:
        broker.stop()
    growth = (st["rss_max"] - st["rss_first"]) / 1024
    row(f"station RSS growth while the uplink sends one {size // MB} MB packet (max - first sample)",
        f"{growth:.1f} MB", f"station RSS at first sample {st['rss_first'] / 1024:.1f} MB",
        f"{st['rss_max'] / st['rss_first']:.2f}", "<= 8 MB")


# ----------------------------------------------------------------------------- enrollment


class TimedCalls:
    """Wraps a StationClient's ``call`` and keeps (method, path, seconds) of every call."""

    def __init__(self, call: Callable[..., Any]) -> None:
        self.inner = call
        self.calls: list[tuple[str, str, float]] = []

    def __call__(self, method: str, path: str, *args: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.inner(method, path, *args, **kw)
        finally:
            self.calls.append((method, path, time.perf_counter() - t0))


def emulator_assets() -> Path:
    """Where the emulators' rendered images are kept between runs (asset mode, see below)."""
    return Path(tempfile.gettempdir()) / "rekam-emulator-assets"


def unit_environment() -> dict[str, str]:
    """The ``Environment=`` settings of systemd/rekam.service (the daemon runs with them installed)."""
    env: dict[str, str] = {}
    for line in (ROOT / "systemd" / "rekam.service").read_text().splitlines():
        if line.startswith("Environment="):
            for item in line.removeprefix("Environment=").split():
                key, _, value = item.partition("=")
                env[key] = value
    return env


@contextlib.contextmanager
def extra_environ(extra: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``extra`` set for daemons started inside the block, restored after."""
    before = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class StepMemory:
    """Wraps a StationClient's ``call``: the daemon's peak RSS during each call, by kind of step.

    Before each call the daemon's VmHWM is reset (``/proc/PID/clear_refs`` = 5), so VmHWM after
    it is that call's peak. The whole run's peak is then the largest of: VmHWM before the first
    reset (start-up, sign-in), every call's peak and VmHWM at the end.
    """

    def __init__(self, call: Callable[..., Any], pid: int) -> None:
        self.inner = call
        self.pid = pid
        self.start_hwm = proc_status_kib(pid, "VmHWM")
        self.peak = self.start_hwm
        self.growth: dict[str, int] = {}  # kind -> largest (peak - RSS before) in KiB

    @staticmethod
    def kind(path: str) -> str:
        """face, finger, iris, signature, seal or other (the step a call belongs to)."""
        if "/capture/" in path:
            return path.rsplit("/", 1)[1].split(".")[0]
        return "seal" if path.endswith("/seal") else "other"

    def __call__(self, method: str, path: str, *args: Any, **kw: Any) -> Any:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:  # not allowed here: no per-call figures, the whole-run VmHWM still holds
            return self.inner(method, path, *args, **kw)
        before = proc_status_kib(self.pid, "VmRSS")
        try:
            return self.inner(method, path, *args, **kw)
        finally:
            hwm = proc_status_kib(self.pid, "VmHWM")
            self.peak = max(self.peak, hwm)
            kind = self.kind(path)
            self.growth[kind] = max(self.growth.get(kind, 0), hwm - before)


def bench_enroll(tmp: Path, quick: bool) -> None:
    """Agent-side time per enrollment and the daemon's peak RSS during one.

    The emulators run inside the daemon in place of hardware; in asset mode
    (``drivers.emulators.assets``) a child process renders their images once and the daemon only
    reads the finished bytes, as it would receive them from a camera or scanner, so the peak is
    the agent's own and not the synthesis'. The daemon gets the unit's ``Environment=`` settings
    (MALLOC_ARENA_MAX, OPENBLAS_NUM_THREADS), as under systemd, and compiled bytecode, as a
    pip-installed station has (see installed_bytecode).
    """
    from agent.workflow.synthetic import applicant
    from drivers.emulators import assets

    st = prepared_station(tmp / "enroll", printer=False)
    st.enroll_operator()
    env = {**unit_environment(), **bytecode_environ(installed_bytecode()), assets.ENV: str(emulator_assets())}
    with extra_environ(env):
        st.start()
    try:
        st.wait_devices_ready()
        st.sign_in()
        assert st.proc is not None
        idle = proc_status_kib(st.proc.pid, "VmRSS")
        client = st.client()
        memory = StepMemory(client.call, st.proc.pid)
        agent_s: list[float] = []
        wall_s: list[float] = []
        seal_s: list[float] = []
        for i in range(1 if quick else 3):
            timed = TimedCalls(memory)
            client.call = timed
            t0 = time.perf_counter()
            result = client.enroll(applicant(100 + i, district_code="647201"))
            wall_s.append(time.perf_counter() - t0)
            client.call = memory.inner
            if not result.get("packet_id"):
                raise RuntimeError(f"enrollment not sealed: {result}")
            agent_s.append(sum(s for _m, p, s in timed.calls if "/capture/" not in p))
            seal_s.append(sum(s for _m, p, s in timed.calls if p.endswith("/seal")))
        hwm = max(memory.peak, proc_status_kib(st.proc.pid, "VmHWM"))
        anon, file_ = (proc_status_kib(st.proc.pid, f) for f in ("RssAnon", "RssFile"))
    finally:
        st.stop()
    n = len(agent_s)
    a, w = statistics.median(agent_s), statistics.median(wall_s)
    row(f"agent-side time per enrollment: every API call except captures, seal included "
        f"(median of {n}; seal alone {statistics.median(seal_s) * 1000:.0f} ms)", f"{a * 1000:.0f} ms",
        f"whole enrollment wall time with emulated devices {w:.2f} s", f"{a / w:.2f} of it",
        "<= 1 s")
    row("daemon peak RSS (VmHWM) from start through the enrollments (compiled bytecode as installed)",
        f"{hwm / 1024:.1f} MB",
        f"daemon idle RSS after sign-in {idle / 1024:.1f} MB", f"{hwm / idle:.2f}", "<= 60 MB")
    steps = ", ".join(f"{k} +{v / 1024:.1f}" for k, v in sorted(memory.growth.items(), key=lambda kv: -kv[1]))
    steps = steps or "not measured (/proc/PID/clear_refs not writable)"
    row("largest peak growth of one API call, by step (MB over the RSS before the call)", steps,
        f"daemon peak before the enrollments (start, sign-in) {memory.start_hwm / 1024:.1f} MB", "-", "-")
    row("daemon RSS after the enrollments: anonymous / file-backed (libraries)",
        f"{anon / 1024:.1f} / {file_ / 1024:.1f} MB", f"daemon idle RSS after sign-in {idle / 1024:.1f} MB",
        f"{(anon + file_) / idle:.2f}", "-")


# ----------------------------------------------------------------------------- sealing -> card


def bench_card(tmp: Path, quick: bool) -> None:
    """Sealing -> printed card through the link proxy at 1 Mbit/s and 50 ms each way."""
    from agent.demo import _add_stock, wait_until
    from agent.headoffice.approval import approve_packet
    from agent.headoffice.embedded import EmbeddedHeadOffice
    from agent.headoffice.orders import print_order
    from agent.keys import init_station_keys, keys_dir, load_station_public_key
    from agent.testbed.linkproxy import LinkProxy
    from agent.testbed.mosquitto import Mosquitto
    from agent.testbed.station import SimulatedStation
    from agent.workflow.synthetic import applicant

    # --quick (the CI smoke) uses an 8 Mbit/s link so the smoke stays short; the label says so.
    rate = (8_000_000 if quick else 1_000_000) / 8
    latency = 0.05
    work = tmp / "card"
    broker = Mosquitto(work / "broker").start()
    proxy = LinkProxy(broker.port, latency=latency, rate_bps=rate).start()
    ho = None
    st = SimulatedStation(work / "station", station_id="bench-card-01", broker_port=proxy.port,
                          uplink_enabled=True)
    try:
        st.workdir.mkdir(parents=True, exist_ok=True)
        kdir = keys_dir(st.state_dir)
        st.state_dir.chmod(0o700)
        init_station_keys(kdir)
        ho = EmbeddedHeadOffice.start(work / "headoffice", broker_port=broker.port,
                                      stations={st.station_id: load_station_public_key(kdir)})
        st.prepare(headoffice_bundle=ho.bundle)
        _add_stock(st, 5)
        st.enroll_operator()
        st.start()
        st.wait_devices_ready()
        st.sign_in()
        keys = {st.station_id: load_station_public_key(kdir)}
        cards = st.workdir / "cards"
        storage = ho.receiver.storage
        # Let the uplink connect through the proxy first: a fresh connection is not the figure.
        time.sleep(2.0)
        total: list[float] = []
        upload: list[float] = []
        sizes: list[int] = []
        for i in range(1 if quick else 2):
            result = st.client().enroll(applicant(300 + i, district_code="647201"))
            sealed = time.perf_counter()
            pid = result["packet_id"]
            def stored_at_ho(pid: str = pid) -> bool:
                record = storage.packet(pid)
                return record is not None and bool(record.state == "stored")

            if not wait_until(stored_at_ho, timeout=300, step=0.05):
                raise RuntimeError(f"packet {pid} not stored at head office")
            stored = time.perf_counter()
            record = storage.packet(pid)
            assert record is not None
            path = storage.packet_path(record)
            sizes.append(path.stat().st_size)
            now = datetime.now(UTC)
            t_ho = time.perf_counter()
            approved = approve_packet(path, headoffice_private_key=ho.keys.encryption,
                                      station_public_keys=keys, issue_place="SAMARINDA",
                                      issue_date=now.date())
            topic, payload = print_order(ho.signer, st.station_id, card=approved.card,
                                         photo=approved.photo, signature=approved.signature,
                                         now=now, packet_id=pid)
            ho_s = time.perf_counter() - t_ho  # head office's own work: not the station's share
            before = len(list(cards.glob("card-*.png")))
            ho.send(topic, payload)
            def printed(before: int = before) -> bool:
                return len(list(cards.glob("card-*.png"))) > before

            if not wait_until(printed, timeout=300, step=0.05):
                raise RuntimeError("card not printed")
            total.append(time.perf_counter() - sealed - ho_s)
            upload.append(stored - sealed)
    finally:
        if st.proc is not None:
            st.stop()
        if ho is not None:
            ho.stop()
        proxy.stop()
        broker.stop()
    size = statistics.median(sizes)
    wire = size / rate + 2 * latency
    t = statistics.median(total)
    row(f"station's share, sealing -> printed card, {rate * 8 / 1e6:.0f} Mbit/s + 50 ms each way, packet "
        f"{size / MB:.2f} MB (median of {len(total)}; upload to stored {statistics.median(upload):.1f} s)",
        f"{t:.1f} s", f"packet's pure transfer time on that link {wire:.1f} s", f"{t / wire:.2f}",
        "<= 60 s")


CASES: dict[str, Callable[[Path, bool], None]] = {
    "ready": bench_ready, "backlog": bench_backlog, "send200": bench_send,
    "enroll": bench_enroll, "card": bench_card,
}


def main() -> int:
    """Run the chosen cases and print their rows."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (CI smoke)")
    ap.add_argument("--only", default=",".join(CASES), help="comma-separated cases: " + ", ".join(CASES))
    args = ap.parse_args()
    print("| figure | value | plain baseline (same run) | ratio | target |")
    print("| --- | --- | --- | --- | --- |", flush=True)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="bench-station-") as tmp:
        for name in args.only.split(","):
            # Two attempts: free_port() can race with another process on this shared machine
            # (once the station API's port was taken by a test's NUT server); the first
            # failure is printed, so a retry is never silent.
            for attempt in (1, 2):
                work = Path(tmp) / f"{name}-{attempt}"
                work.mkdir()
                try:
                    CASES[name](work, args.quick)
                    break
                except Exception as exc:  # one failed case must not hide the others' rows
                    print(f"<!-- {name} failed (attempt {attempt}): {type(exc).__name__}: "
                          f"{str(exc)[-500:]} -->", flush=True)
                    failed += attempt == 2
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
