"""A backlog built while the office link is down, drained through link faults.

Faults while it drains: the link flaps (connections reset again and again), the broker is
restarted gracefully and killed with SIGKILL (with or without persistence: without it, the
broker forgets every queued message and session), and the link goes half-open (black hole,
no FIN/RST) for longer than 1.5 x keepalive. Afterwards every saved packet must be stored at
head office once and verified, the journal must hold each as delivered (or its tombstone), and
the journal must pass its full check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.testbed.linkproxy import LinkProxy
from agent.testbed.station import write_toml
from tests.reliability.harness import Office, StationProcess, station_config

HALF_OPEN_SECONDS = 8.0  # > 1.5 x the station's 5 s keepalive: it must notice by itself


@dataclass
class BacklogResult:
    """What happened."""

    packets: int = 0
    saved: int = 0
    build_seconds: float = 0.0
    drain_seconds: float = 0.0
    faults: list[str] = field(default_factory=list)
    ho_stored: int = 0
    duplicates_at_ho: int = 0
    duplicate_chunks_received: int = 0  # head office's receiver saw these again and absorbed them
    duplicate_packets_received: int = 0
    violations: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"packets": self.packets, "saved": self.saved, "build_s": round(self.build_seconds, 1),
                "drain_s": round(self.drain_seconds, 1), "faults": self.faults, "ho_stored": self.ho_stored,
                "duplicates_at_ho": self.duplicates_at_ho,
                "duplicate_chunks_received": self.duplicate_chunks_received,
                "duplicate_packets_received": self.duplicate_packets_received,
                "violations": len(self.violations)}


def run_backlog(workdir: Path, *, packets: int, persistence: bool, drain_timeout: float = 90.0,
                say: Callable[[str], None] = lambda _s: None) -> BacklogResult:
    """Build ``packets`` packets offline, then drain them through the fault schedule."""
    res = BacklogResult(packets=packets)
    office = Office(workdir)
    proxy: LinkProxy | None = None
    station: StationProcess | None = None
    try:
        office.start(persistence=persistence)
        assert office.broker is not None
        proxy = LinkProxy(office.broker.port).start()
        write_toml(office.config_path, station_config(office.state_dir, broker_port=proxy.port,
                                                      chunk_bytes=4096))
        proxy.refuse(True)
        t0 = time.monotonic()
        station = StationProcess({"config": str(office.config_path), "log": str(workdir / "station.log"),
                                  "seed": 21, "marker": "QZXBACKLOG", "count": packets, "max_photo": 6_000,
                                  "interval": 0, "linger": drain_timeout + 60, "drain": True},
                                 stderr=workdir / "station.err")
        if station.wait_for(lambda f: f[0] == "DONE", timeout=max(60.0, packets * 0.2)) is None:
            res.violations.append("the backlog was not built")
            return res
        res.build_seconds = time.monotonic() - t0
        res.saved = len(station.saved())
        say(f"backlog of {res.saved} packets built in {res.build_seconds:.1f} s; link back")
        t1 = time.monotonic()
        proxy.refuse(False)

        def drained(timeout: float) -> bool:
            # DRAINED may already have been read (then the child exited: no more lines come).
            assert station is not None
            if any(f[0] == "DRAINED" for f in station.seen):
                return True
            return station.wait_for(lambda f: f[0] == "DRAINED", timeout=timeout) is not None

        def step(name: str, pause: float) -> bool:
            # Let some traffic through, then the next fault; stop early once drained.
            if drained(pause):
                return False
            res.faults.append(name)
            say(name)
            return True

        if step("flapping: 6 resets 0.3 s apart", 0.3):
            for _ in range(6):
                proxy.reset()
                time.sleep(0.3)
        if step("broker restart (SIGTERM)", 0.3):
            office.broker.stop()
            time.sleep(0.5)
            office.broker.start()
        if step("broker kill -9", 0.3):
            office.broker.stop(kill=True)
            time.sleep(0.5)
            office.broker.start()
        if step(f"half-open link for {HALF_OPEN_SECONDS:.0f} s", 0.3):
            proxy.blackhole(True)
            time.sleep(HALF_OPEN_SECONDS)
            proxy.blackhole(False)
            proxy.reset()  # what came before the cut is gone, as after a real outage
        if not drained(drain_timeout):
            res.violations.append(f"the backlog did not drain within {drain_timeout:.0f} s")
        res.drain_seconds = time.monotonic() - t1
        station.kill()
        problems = office.recover_and_check()
        res.violations += [f"journal check: {p}" for p in problems]
        res.violations += office.delivery_violations(station.saved())
        files = office.stored_files()
        res.ho_stored = len(files)
        res.duplicates_at_ho = sum(c - 1 for c in files.values() if c > 1)
        assert office.ho is not None
        res.duplicate_chunks_received = office.ho.receiver.stats.duplicate_chunks
        res.duplicate_packets_received = office.ho.receiver.stats.duplicates
        return res
    finally:
        if station is not None:
            station.kill()
        if proxy is not None:
            proxy.stop()
        office.stop()
