"""The office under test: broker, head office, station state dir, and the light-station zygote.

Everything here is reused across crash cycles (one broker, one head office, one zygote), so a
cycle costs only the fork of one station process and the work it does before it dies.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.headoffice.embedded import EmbeddedHeadOffice
from agent.journal import Journal
from agent.journal.inspect import check_journal
from agent.keys import init_station_keys, keys_dir, load_station_public_key
from agent.testbed.mosquitto import Mosquitto
from agent.testbed.station import write_toml

ROOT = Path(__file__).resolve().parents[2]
STATION_ID = "rel-station-01"


def new_marker(rng: random.Random) -> str:
    """A canary string: letters only, so it survives upper-casing of the name unchanged."""
    return "QZX" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXY") for _ in range(13))


def station_config(state_dir: Path, *, broker_port: int, chunk_bytes: int = 8192,
                   extra_journal: dict[str, Any] | None = None) -> dict[str, Any]:
    """The TOML document for a light station (journal + uplink; no devices)."""
    journal: dict[str, Any] = {"chunk_bytes": chunk_bytes, "retention_seconds": 0}
    journal.update(extra_journal or {})
    return {
        "station": {"id": STATION_ID, "district_code": "647201", "language": "en",
                    "state_dir": str(state_dir)},
        "logging": {"level": "INFO"},
        "journal": journal,
        "uplink": {"enabled": True, "host": "127.0.0.1", "port": broker_port, "transport": "tcp",
                   "keepalive_seconds": 5, "reconnect_min_seconds": 0.05, "reconnect_max_seconds": 0.5,
                   "ack_timeout_seconds": 2, "telemetry_seconds": 60, "inflight_window": 4},
        "printer": {"enabled": False},
        "diagnostics": {"enabled": False},
    }


@dataclass
class Office:
    """Broker + head office + one station's keys and config, all under ``workdir``."""

    workdir: Path
    broker_port: int | None = None  # the station connects here (a LinkProxy port, or the broker)
    broker: Mosquitto | None = None
    ho: EmbeddedHeadOffice | None = None

    @property
    def state_dir(self) -> Path:
        """The station's state directory."""
        return self.workdir / "station" / "state"

    @property
    def config_path(self) -> Path:
        """The station's agent.toml."""
        return self.workdir / "station" / "agent.toml"

    @property
    def log_path(self) -> Path:
        """Where every station child logs (scanned for canaries)."""
        return self.workdir / "station" / "station.log"

    def start(self, *, station_port: int | None = None, chunk_bytes: int = 8192,
              extra_journal: dict[str, Any] | None = None, **broker_opts: Any) -> Office:
        """Start the broker and head office, create the station's keys and config."""
        from agent.keys import trust_headoffice
        from agent.statedir import prepare_state_dir

        self.broker = Mosquitto(self.workdir / "broker", **broker_opts).start()
        prepare_state_dir(self.state_dir)
        kdir = keys_dir(self.state_dir)
        init_station_keys(kdir)
        self.ho = EmbeddedHeadOffice.start(self.workdir / "headoffice", broker_port=self.broker.port,
                                           stations={STATION_ID: load_station_public_key(kdir)})
        trust_headoffice(kdir, self.ho.bundle.read_bytes(), force=True)
        self.broker_port = station_port or self.broker.port
        write_toml(self.config_path, station_config(self.state_dir, broker_port=self.broker_port,
                                                    chunk_bytes=chunk_bytes, extra_journal=extra_journal))
        return self

    def stop(self) -> None:
        """Stop head office and the broker."""
        if self.ho is not None:
            self.ho.stop()
        if self.broker is not None:
            self.broker.stop()

    def stored(self, packet_id: str) -> bool:
        """Head office stored (verified) this packet."""
        assert self.ho is not None
        rec = self.ho.receiver.storage.packet(packet_id)
        return rec is not None and rec.state == "stored"

    def stored_files(self) -> Counter[str]:
        """Packet bodies in head office's store, counted per packet id (a duplicate shows as 2)."""
        counts: Counter[str] = Counter()
        for path in (self.workdir / "headoffice" / "store").rglob("*.rkp"):
            counts[path.name.split(".")[0]] += 1
        return counts

    def recover_and_check(self) -> list[str]:
        """Open the journal as a restarted daemon would (recovery), close it, then run the full check."""
        from agent.config import load_config

        cfg = load_config(self.config_path)
        Journal.open(self.state_dir, cfg.journal).close()
        report = check_journal(self.state_dir)
        return [] if report.ok else [*report.integrity, *report.problems]

    def delivery_violations(self, saved: list[str]) -> list[str]:
        """Every ``saved`` packet delivered in the journal and stored exactly once at head office."""
        states, files = self.journal_states(), self.stored_files()
        out: list[str] = []
        for pid in saved:
            if states.get(pid) not in ("delivered", "purged"):
                out.append(f"{pid} saved but {states.get(pid)} in the journal")
            if not self.stored(pid) or files[pid] != 1:
                out.append(f"{pid} saved, stored {files[pid]} times at head office")
        return out

    def journal_states(self) -> dict[str, str]:
        """packet_id -> state, read-only."""
        import sqlite3

        from agent.journal import db_path

        conn = sqlite3.connect(f"file:{db_path(self.state_dir)}?mode=ro", uri=True)
        try:
            return dict(conn.execute("SELECT packet_id, state FROM packets").fetchall())
        finally:
            conn.close()


@dataclass
class Cycle:
    """What one station child said before it died."""

    pid: int
    lines: list[list[str]] = field(default_factory=list)
    status: int | None = None

    def saved(self) -> list[str]:
        """Packet ids reported saved."""
        return [f[2] for f in self.lines if f[0] == "SAVED"]

    def said(self, word: str) -> bool:
        """Whether the child reported ``word``."""
        return any(f[0] == word for f in self.lines)

    @property
    def killed(self) -> bool:
        """Ended by SIGKILL."""
        return self.status is not None and os.WIFSIGNALED(self.status) and \
            os.WTERMSIG(self.status) == signal.SIGKILL


class Zygote:
    """The light-station zygote process and a reader thread for its lines."""

    def __init__(self, workdir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("REKAM_CRASH_AT", "STATE_DIRECTORY")}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.stderr = (workdir / "zygote.err").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.lightstation"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     cwd=ROOT, env=env)
        self.lines: queue.Queue[list[str]] = queue.Queue(maxsize=10_000)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").split())
        self.lines.put(["EOF"])

    def next_line(self, timeout: float) -> list[str] | None:
        """The next line, or None after ``timeout`` seconds."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def spawn(self, job: dict[str, Any], timeout: float = 30.0) -> Cycle:
        """Fork one station child for ``job``; return once the zygote names its pid."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()
        # The forked child may print (e.g. OPEN) before the zygote prints CHILD: both share the
        # pipe, so keep such early lines for the cycle instead of mistaking them for an answer.
        early: list[list[str]] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(max(0.0, deadline - time.monotonic()))
            if not line or line[0] in ("EOF", "ERROR"):
                raise RuntimeError(f"zygote did not fork: {line} (after {early})")
            if line[0] == "CHILD":
                cycle = Cycle(int(line[1]))
                for seen in early:
                    if seen[0] == "EXIT" and int(seen[1]) == cycle.pid:
                        cycle.status = int(seen[2])  # it died before the zygote named it
                    else:
                        cycle.lines.append(seen)
                return cycle
            early.append(line)

    def follow(self, cycle: Cycle, *, until: float, stop_on: tuple[str, ...] = ()) -> bool:
        """Collect the child's lines until it exits (True) or ``until`` (monotonic) or a stop word."""
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return False
            line = self.next_line(min(left, 0.5))
            if line is None:
                continue
            if line[0] == "EOF":
                raise RuntimeError("the zygote exited")
            if line[0] == "EXIT" and int(line[1]) == cycle.pid:
                cycle.status = int(line[2])
                return True
            if line[0] == "ERROR":
                raise RuntimeError(f"station child failed: {' '.join(line)}")
            cycle.lines.append(line)
            if line[0] in stop_on:
                return False

    def kill(self, cycle: Cycle, timeout: float = 30.0) -> None:
        """SIGKILL the child (if still alive) and wait for the zygote to reap it."""
        if cycle.status is not None:
            return
        try:
            os.kill(cycle.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not self.follow(cycle, until=time.monotonic() + timeout):
            raise RuntimeError(f"station child {cycle.pid} not reaped")

    def close(self) -> None:
        """End the zygote (closing stdin ends its loop) and wait for it."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()


@contextmanager
def running_office(workdir: Path, **opts: Any) -> Iterator[tuple[Office, Zygote]]:
    """An office (broker, head office, station config) and a zygote; both stopped afterwards."""
    from tests.conftest import require_mosquitto

    require_mosquitto()
    office = Office(workdir).start(**opts)
    try:
        zygote = Zygote(workdir)
        try:
            yield office, zygote
        finally:
            zygote.close()
    finally:
        office.stop()


class StationProcess:
    """One light station run by exec (``--job``), optionally under a wrapper such as fiu-run."""

    def __init__(self, job: dict[str, Any], *, wrapper: list[str] | None = None,
                 stderr: Path | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("REKAM_CRASH_AT", "STATE_DIRECTORY")}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self._err = stderr.open("ab") if stderr is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [*(wrapper or []), sys.executable, "-m", "tests.reliability.lightstation", "--job", json.dumps(job)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._err, cwd=ROOT, env=env)
        self.lines: queue.Queue[list[str]] = queue.Queue(maxsize=100_000)
        self.seen: list[list[str]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").split())
        self.lines.put(["EOF"])

    def wait_for(self, predicate: Any, timeout: float) -> list[str] | None:
        """Collect lines until one satisfies ``predicate`` (returned) or ``timeout``/EOF (None)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                continue
            if line[0] == "EOF":
                return None
            self.seen.append(line)
            if line[0] == "ERROR":
                raise RuntimeError(f"station failed: {' '.join(line)}")
            if predicate(line):
                return line
        return None

    def saved(self) -> list[str]:
        """Packet ids reported saved so far."""
        return [f[2] for f in self.seen if f[0] == "SAVED"]

    def refused(self) -> list[str]:
        """Refusal codes reported so far."""
        return [f[2] for f in self.seen if f[0] == "REFUSED"]

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if not isinstance(self._err, int):
            self._err.close()
