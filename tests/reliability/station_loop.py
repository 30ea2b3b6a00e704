"""The whole station in a crash loop: the daemon (`rekam run`) with every device emulated.

Each cycle starts the daemon (optionally armed with ``REKAM_CRASH_AT``), signs the operator in,
has head office order cards for the packets it has stored, enrolls one applicant carrying a
canary marker, and kills the daemon with SIGKILL: at a random instant, or by itself at
mid-capture, commit-to-answer or mid-print. The printer emulator writes each run's cards to
its own folder (its file counter restarts with the daemon). After the last cycle a clean run
drains the backlog and prints what is still queued; then the invariants are checked.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.api.client import ApiError
from agent.headoffice.approval import approve_packet
from agent.headoffice.embedded import EmbeddedHeadOffice
from agent.headoffice.orders import print_order
from agent.journal import db_path
from agent.keys import init_station_keys, keys_dir, load_station_public_key
from agent.testbed.mosquitto import Mosquitto
from agent.testbed.station import SimulatedStation
from agent.workflow.synthetic import applicant
from tests.reliability.harness import new_marker

LOST_ORDER = "lost print order"
CAPTURES_PER_ENROLLMENT = 14  # face, ten fingers, two irises, signature
BLANKS = 40


@dataclass
class StationLoopResult:
    """What the loop did and what it found."""

    cycles: int = 0
    saved: list[str] = field(default_factory=list)
    kills: dict[str, int] = field(default_factory=dict)
    ordered: set[str] = field(default_factory=set)
    markers: list[str] = field(default_factory=list)
    marker_of: dict[str, str] = field(default_factory=dict)  # packet id -> its applicant's marker
    pending_print: list[str] = field(default_factory=list)  # packet ids whose order is not final
    lost_orders: list[str] = field(default_factory=list)  # ordered packets with no print job
    cards: int = 0
    jobs: dict[str, int] = field(default_factory=dict)
    stock: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"cycles": self.cycles, "saved": len(self.saved), "kills": self.kills,
                "orders": len(self.ordered), "cards": self.cards, "jobs": self.jobs, "stock": self.stock,
                "violations": len(self.violations)}


class StationLoop:
    """Broker, head office and one simulated station under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.broker = Mosquitto(workdir / "broker").start()
        self.station = SimulatedStation(workdir / "station", station_id="rel-full-01",
                                        broker_port=self.broker.port, uplink_enabled=True)
        self.station.workdir.mkdir(parents=True, exist_ok=True)
        self.station.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        init_station_keys(keys_dir(self.station.state_dir))
        self.station_key = load_station_public_key(keys_dir(self.station.state_dir))
        self.ho = EmbeddedHeadOffice.start(workdir / "headoffice", broker_port=self.broker.port,
                                           stations={self.station.station_id: self.station_key})
        self.station.prepare(headoffice_bundle=self.ho.bundle)
        res = self.station.cli("stock", "add", str(BLANKS), "--batch", "REL-1")
        if res.returncode != 0:
            raise RuntimeError(res.stderr)
        self.station.enroll_operator()
        self._config_text = self.station.config_path.read_text()

    def close(self) -> None:
        """Stop everything that is still running."""
        if self.station.proc is not None:
            self.station.stop(kill=True)
        self.ho.stop()
        self.broker.stop()

    @property
    def cards_root(self) -> Path:
        """One sub-folder of card PNGs per daemon run."""
        return self.station.workdir / "cards-runs"

    def _start(self, run: int, crash: str | None) -> None:
        # Each run's printer writes to its own folder: the emulator numbers cards from 1 again.
        out = self.cards_root / f"run-{run:04d}"
        self.station.config_path.write_text(
            self._config_text.replace(str(self.station.workdir / "cards"), str(out)))
        import os

        old = os.environ.pop("REKAM_CRASH_AT", None)
        if crash:
            os.environ["REKAM_CRASH_AT"] = crash
        try:
            self.station.start()
        finally:
            os.environ.pop("REKAM_CRASH_AT", None)
            if old is not None:
                os.environ["REKAM_CRASH_AT"] = old

    def order_cards(self, res: StationLoopResult) -> None:
        """Head office approves every stored, not yet ordered packet and sends its print order."""
        storage = self.ho.receiver.storage
        now = datetime.now(UTC)
        for pid in res.saved:
            rec = storage.packet(pid)
            if pid in res.ordered or rec is None or rec.state != "stored":
                continue
            approved = approve_packet(storage.packet_path(rec), headoffice_private_key=self.ho.keys.encryption,
                                      station_public_keys={self.station.station_id: self.station_key},
                                      issue_place="SAMARINDA", issue_date=now.date())
            topic, payload = print_order(self.ho.signer, self.station.station_id, card=approved.card,
                                         photo=approved.photo, signature=approved.signature, now=now,
                                         packet_id=pid)
            self.ho.send(topic, payload)
            res.ordered.add(pid)

    def run(self, cycles: int, seed: int) -> StationLoopResult:
        """``cycles`` crash cycles, one clean drain, then the invariant checks."""
        rng = random.Random(seed)
        res = StationLoopResult()
        for n in range(cycles):
            storage = self.ho.receiver.storage
            orderable = [p for p in res.saved if p not in res.ordered
                         and (r := storage.packet(p)) is not None and r.state == "stored"]
            # mid-print only when this cycle sends an order (else the point is never reached).
            kind = rng.choice(("random", "random", "mid-capture", "commit-to-answer",
                               *(("mid-print",) * 2 if orderable else ())))
            if n == 0:
                kind = "after-save"  # one saved enrollment per batch at least, so later cycles have orders
            crash = None
            if kind == "mid-capture":
                crash = f"mid-capture:{rng.randint(1, CAPTURES_PER_ENROLLMENT)}"
            elif kind in ("commit-to-answer", "mid-print"):
                crash = kind
            self._start(n, crash)
            self.station.wait_devices_ready()  # devices open after READY=1 (docs/architecture.md)
            self.station.sign_in()
            self.order_cards(res)
            marker = new_marker(rng)
            res.markers.append(marker)
            outcome: dict[str, Any] = {}

            def enroll(seed: int = seed * 1000 + n, marker: str = marker,
                       outcome: dict[str, Any] = outcome) -> None:
                try:
                    outcome["r"] = self.station.client().enroll(applicant(seed, marker=marker))
                except (OSError, ApiError, ValueError) as exc:
                    outcome["error"] = type(exc).__name__

            worker = threading.Thread(target=enroll, daemon=True)
            worker.start()
            proc = self.station.proc
            assert proc is not None
            if kind == "after-save":
                worker.join(60)
                time.sleep(rng.uniform(0.0, 1.5))  # while the uplink sends it
            elif crash is None:
                worker.join(rng.uniform(0.0, 6.0))
            else:
                # Wait for the daemon to kill itself; mid-print needs an order to reach the printer.
                deadline = time.monotonic() + 12
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
            died_itself = proc.poll() is not None
            self.station.stop(kill=True)
            worker.join(30)
            r = outcome.get("r")
            if r and r.get("saved"):
                res.saved.append(str(r["packet_id"]))
                res.marker_of[str(r["packet_id"])] = marker
            label = f"{kind}:{'self' if died_itself else 'killed'}"
            res.kills[label] = res.kills.get(label, 0) + 1
            res.cycles += 1
        self._drain(res, cycles)
        self._check(res)
        return res

    def _drain(self, res: StationLoopResult, run: int) -> None:
        self._start(run, None)
        self.station.wait_devices_ready()
        self.station.sign_in()
        deadline = time.monotonic() + 40
        storage = self.ho.receiver.storage
        while time.monotonic() < deadline:
            if all((r := storage.packet(p)) is not None and r.state == "stored" for p in res.saved):
                break
            time.sleep(0.25)
        self.order_cards(res)
        # Wait until every order has reached a state the printer will not change by itself.
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            jobs = self._jobs()
            if len(jobs) >= len(res.ordered) and not any(s in ("received", "printing") for s in jobs.values()):
                break
            time.sleep(0.25)
        self.station.stop()

    def _job_packets(self) -> list[str]:
        conn = sqlite3.connect(f"file:{db_path(self.station.state_dir)}?mode=ro", uri=True)
        try:
            return [str(r[0]) for r in conn.execute("SELECT packet_id FROM print_jobs")]
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    def _jobs(self) -> dict[str, str]:
        conn = sqlite3.connect(f"file:{db_path(self.station.state_dir)}?mode=ro", uri=True)
        try:
            return dict(conn.execute("SELECT order_id, state FROM print_jobs").fetchall())
        except sqlite3.OperationalError:
            return {}
        finally:
            conn.close()

    def _check(self, res: StationLoopResult) -> None:
        v = res.violations
        storage = self.ho.receiver.storage
        bodies: dict[str, int] = {}
        for path in (self.workdir / "headoffice" / "store").rglob("*.rkp"):
            pid = path.name.split(".")[0]
            bodies[pid] = bodies.get(pid, 0) + 1
        for pid in res.saved:
            rec = storage.packet(pid)
            if rec is None or rec.state != "stored":
                v.append(f"saved packet {pid} not stored at head office")
            if bodies.get(pid, 0) != 1:
                v.append(f"saved packet {pid} has {bodies.get(pid, 0)} bodies at head office")
        check = self.station.cli("journal", "check")
        if check.returncode != 0:
            v.append(f"rekam journal check failed: {check.stdout[-500:]} {check.stderr[-500:]}")
        jobs = self._jobs()
        conn = sqlite3.connect(f"file:{db_path(self.station.state_dir)}?mode=ro", uri=True)
        try:
            res.pending_print = [str(r[0]) for r in conn.execute(
                "SELECT packet_id FROM print_jobs WHERE state NOT IN ('printed', 'failed')")]
        finally:
            conn.close()
        states = list(jobs.values())
        res.jobs = {s: states.count(s) for s in sorted(set(states))}
        cards = sorted(self.cards_root.rglob("card-*.png"))
        res.cards = len(cards)
        digests = [hashlib.sha256(c.read_bytes()).hexdigest() for c in cards]
        if len(set(digests)) != len(digests):
            v.append("the same card was printed twice (identical card images)")
        printed, uncertain = res.jobs.get("printed", 0), res.jobs.get("uncertain", 0)
        if not printed <= len(cards) <= printed + uncertain:
            v.append(f"{len(cards)} cards for {printed} printed + {uncertain} uncertain orders")
        if len(jobs) > len(res.ordered):
            v.append(f"{len(jobs)} print jobs for {len(res.ordered)} orders")
        queued_packets = set(self._job_packets())
        res.lost_orders = sorted(res.ordered - queued_packets)
        v += [f"{LOST_ORDER}: the print order for packet {p} never reached the print queue"
              for p in res.lost_orders]
        conn = sqlite3.connect(f"file:{db_path(self.station.state_dir)}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT kind, delta, balance, order_id FROM stock_ledger ORDER BY id").fetchall()
        finally:
            conn.close()
        total = {k: sum(d for kk, d, _b, _o in rows if kk == k) for k in ("delivery", "printed", "spoiled",
                                                                          "test", "recount")}
        balance = rows[-1][2] if rows else 0
        res.stock = {**total, "balance": balance}
        if sum(total.values()) != balance:
            v.append(f"stock ledger does not balance: {total} -> {balance}")
        printed_orders = [o for k, _d, _b, o in rows if k == "printed"]
        if len(printed_orders) != len(set(printed_orders)):
            v.append("an order was booked as printed twice in the stock ledger")
        if len(printed_orders) != printed:
            v.append(f"{len(printed_orders)} printed ledger entries for {printed} printed jobs")
        json.dumps(res.summary())  # the summary must stay JSON-able for the tool
