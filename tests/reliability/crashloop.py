"""The crash loop: kill -9 a station at random instants and at named crash points, restart, check.

Used by tests/test_reliability_crashloop.py (300 cycles in CI) and by
``python tools/reliability_crashloop.py --cycles 5000`` (the long run). Invariants, checked
after every cycle and at the end (docs/reliability.md):

* every packet reported SAVED is in the journal after the restart (queued, sending, delivered
  or its purged tombstone): never reported saved and then lost;
* the journal passes the full check (integrity_check, every chunk's and packet's SHA-256, no
  orphan chunks) after the restart's recovery: no enrollment half-present;
* at the end, after one clean drain, every SAVED packet is stored at head office (verified:
  signature, decryption, hashes), exactly one body per packet id, and head office holds no
  packet the station did not commit.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.reliability.harness import Office, Zygote, new_marker

POINTS = ("mid-seal", "commit-to-answer", "mid-chunk", "after-puback", "mid-ack", "mid-purge")
LIVE_STATES = {"queued", "sending", "delivered", "purged"}


@dataclass
class CrashLoopResult:
    """Counts and any invariant violations of one run."""

    cycles: int = 0
    saved: list[str] = field(default_factory=list)
    killed: int = 0
    random_kills: int = 0
    point_kills: Counter[str] = field(default_factory=Counter)
    points_not_reached: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    violations: list[str] = field(default_factory=list)
    delivered: int = 0
    ho_stored: int = 0
    duplicates_at_ho: int = 0
    duplicate_chunks_received: int = 0
    markers: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary."""
        return {"cycles": self.cycles, "saved": len(self.saved), "killed": self.killed,
                "random_kills": self.random_kills, "point_kills": dict(self.point_kills),
                "points_not_reached": dict(self.points_not_reached), "refused": self.refused,
                "delivered": self.delivered, "ho_stored": self.ho_stored,
                "duplicates_at_ho": self.duplicates_at_ho,
                "duplicate_chunks_received": self.duplicate_chunks_received, "violations": len(self.violations),
                "seconds": round(self.seconds, 1)}


def run_crashloop(office: Office, zygote: Zygote, *, cycles: int, seed: int,
                  progress: Callable[[int, CrashLoopResult], None] | None = None,
                  drain_timeout: float = 300.0) -> CrashLoopResult:
    """Run ``cycles`` crash cycles, then one clean drain, and check every invariant."""
    rng = random.Random(seed)
    res = CrashLoopResult()
    t0 = time.monotonic()
    base = {"config": str(office.config_path), "log": str(office.log_path), "max_photo": 40_000}
    for n in range(cycles):
        marker = new_marker(rng)
        res.markers.append(marker)
        job: dict[str, Any] = {**base, "seed": seed * 1_000_000 + n, "marker": marker,
                               "count": rng.randint(0, 2), "linger": 30}
        point = rng.choice(POINTS) if rng.random() < 0.6 else None
        if point is not None:
            hits = rng.randint(1, 2)
            job["crash"] = f"{point}:{hits}"
            if point == "commit-to-answer":
                job["count"] = max(job["count"], hits)  # the point is reached once per packet
        cycle = zygote.spawn(job)
        zygote.follow(cycle, until=time.monotonic() + 30, stop_on=("OPEN",))
        if cycle.status is None:
            if point is None:
                # A random instant within the child's busy first second: sealing, sending, acking.
                zygote.follow(cycle, until=time.monotonic() + rng.uniform(0.0, 0.8))
                res.random_kills += 1
            else:
                exited = zygote.follow(cycle, until=time.monotonic() + 1.0)
                if exited:
                    res.point_kills[point] += 1
                else:
                    res.points_not_reached[point] += 1
            zygote.kill(cycle)
        elif point is not None and cycle.killed:
            res.point_kills[point] += 1  # died on its point before (or while) opening
        res.killed += int(cycle.killed)
        res.saved += cycle.saved()
        res.refused += sum(1 for f in cycle.lines if f[0] == "REFUSED")
        res.cycles += 1
        problems = office.recover_and_check()
        res.violations += [f"cycle {n}: journal check: {p}" for p in problems]
        states = office.journal_states()
        for pid in res.saved:
            if states.get(pid) not in LIVE_STATES:
                res.violations.append(f"cycle {n}: packet {pid} reported saved, journal says {states.get(pid)}")
        if progress is not None:
            progress(n, res)
    _drain_and_verify(office, zygote, res, drain_timeout)
    res.seconds = time.monotonic() - t0
    return res


def _drain_and_verify(office: Office, zygote: Zygote, res: CrashLoopResult, timeout: float) -> None:
    cycle = zygote.spawn({"config": str(office.config_path), "log": str(office.log_path), "seed": 0,
                          "marker": "", "count": 0, "drain": True, "linger": timeout})
    zygote.follow(cycle, until=time.monotonic() + timeout + 30, stop_on=("DRAINED",))
    if not cycle.said("DRAINED"):
        res.violations.append("the backlog did not drain after the crash cycles")
    zygote.kill(cycle) if cycle.status is None else None
    problems = office.recover_and_check()
    res.violations += [f"after drain: journal check: {p}" for p in problems]
    res.violations += [f"after drain: {v}" for v in office.delivery_violations(res.saved)]
    states = office.journal_states()
    files = office.stored_files()
    committed = {p for p, s in states.items() if s in LIVE_STATES}
    for pid in files:
        if pid not in committed:
            res.violations.append(f"head office holds {pid}, which the journal never committed")
    res.delivered = sum(1 for s in states.values() if s in ("delivered", "purged"))
    res.ho_stored = len(files)
    res.duplicates_at_ho = sum(c - 1 for c in files.values() if c > 1)
    if office.ho is not None:
        res.duplicate_chunks_received = office.ho.receiver.stats.duplicate_chunks


def scan_for_markers(paths: list[Path], markers: list[str]) -> list[str]:
    """Files under ``paths`` that contain any marker in plaintext (as bytes, also UTF-16)."""
    needles = [m.encode() for m in markers] + [m.encode("utf-16-le") for m in markers]
    hits: list[str] = []
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            for needle in needles:
                if needle in data:
                    hits.append(f"{path}: {needle[:20]!r}")
                    break
    return hits
