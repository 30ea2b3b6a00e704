"""The diagnostics report and page over a busy journal, against the plain journal status read.

Run: /work/venv/bin/python bench/bench_diag.py [--packets 2000] [--sessions 600] [--rounds 5]

Setup (not timed): a real journal with N waiting packets of 20 kB spread over the last 10 days
(a link down for days), M sealed sessions in ``service_times`` over 7 days and 5 kelurahan, and
station keys.

Rows (Markdown):
* offline report: ``build_report(cfg)`` — what `rekam diag` does with no daemon: every check
  (including the other modules' checks that open the journal) and every figure and chart series.
  Baseline, same run: ``journal_status`` alone (the read `rekam journal status` does).
* page render: ``render_index`` of that report, four SVG charts included (no I/O).
* UPS poll: one ``NutClient.list_vars`` against a local TCP server answering like upsd (a real
  upsd is not needed for a protocol figure). Baseline: the same connect/send/receive with a
  plain socket and no parsing.
Target: a full report under 2 s on the development machine (a technician waits for it; the
daemon also caches it for 5 s).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent import kpi
from agent.config import Config, parse_config
from agent.diagnostics import build_report
from agent.diagweb.server import DiagnosticsServer, SelfTests, render_index
from agent.journal import Journal
from agent.journal.inspect import journal_status
from agent.keys import init_station_keys, keys_dir
from agent.packet import new_packet_id
from agent.power import NutClient
from agent.station import KpiStore


def median_ms(fn: Callable[[], Any], rounds: int) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def setup(root: Path, packets: int, sessions: int) -> Config:
    """A station state dir with a busy journal (not timed)."""
    cfg = parse_config({"station": {"id": "bench-diag", "state_dir": str(root / "state")},
                        "printer": {"enabled": True}})
    cfg.state_dir.mkdir(mode=0o700)
    init_station_keys(keys_dir(cfg.state_dir))
    now = datetime.now(UTC)
    blob = os.urandom(20_000)
    with Journal.open(cfg.state_dir, cfg.journal) as journal:
        for i in range(packets):
            created = now - timedelta(days=10 * i / packets)
            sink = journal.begin_packet(new_packet_id(), station_id="bench-diag",
                                        created_at=created.isoformat(timespec="seconds"))
            sink.write(blob)
            sink.commit()
        store = KpiStore(journal)
        kpi.install(store)
        for i in range(sessions):
            start = now - timedelta(days=7 * i / sessions)
            kpi.record_session(store, {
                "session_id": f"s{i}", "packet_id": f"p{i}", "kelurahan": f"KEL-{i % 5}",
                "started_at": start.isoformat(), "sealed_at": (start + timedelta(minutes=11)).isoformat(),
                "record_seconds": 660.0, "retry_seconds": 0, "fault_seconds": 0, "captures": 16,
                "first_time_pass": 16, "force_accepts": 0, "exceptions": 0}, tz=cfg.station.timezone)
    return cfg


def fake_upsd() -> tuple[int, threading.Event]:
    """A TCP server answering LIST VAR like upsd, until stopped."""
    answer = ("BEGIN LIST VAR ups\n" + "".join(f'VAR ups var.{i} "{i}"\n' for i in range(40))
              + 'VAR ups ups.status "OL"\nVAR ups battery.charge "100"\nEND LIST VAR ups\n').encode()
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        with srv:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.recv(256)
                    conn.sendall(answer)
                    try:
                        conn.recv(256)  # LOGOUT
                    except OSError:
                        pass

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], stop


def plain_poll(port: int) -> bytes:
    """Connect, ask, read to the end marker, no parsing."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(b"LIST VAR ups\n")
        buf = b""
        while not buf.endswith(b"END LIST VAR ups\n"):
            buf += s.recv(4096)
        s.sendall(b"LOGOUT\n")
        return buf


def main() -> None:
    """Print the Markdown rows."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = setup(Path(tmp), args.packets, args.sessions)
        report = build_report(cfg)  # warm-up (imports, first opens)
        full = median_ms(lambda: build_report(cfg), args.rounds)
        base = median_ms(lambda: journal_status(cfg.state_dir, cfg.journal), args.rounds)
        server = DiagnosticsServer(cfg, token="x" * 32, report=lambda: report,
                                   selftests=SelfTests(lambda n: None, list, None))
        page = median_ms(lambda: render_index(report, server, "en"), args.rounds * 4)
        port, stop = fake_upsd()
        client = NutClient("127.0.0.1", port, timeout=3)
        poll = median_ms(lambda: client.list_vars("ups"), args.rounds * 20)
        raw = median_ms(lambda: plain_poll(port), args.rounds * 20)
        stop.set()
    print(f"\n{args.packets} waiting packets over 10 days, {args.sessions} sessions over 7 days; "
          f"median of {args.rounds} rounds\n")
    print("| figure | value | plain baseline | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| offline report (`build_report`) | {full:.0f} ms | {base:.0f} ms (`journal_status`) | "
          f"{full / base:.1f}x | < 2000 ms |")
    print(f"| page render (4 SVG charts) | {page:.1f} ms | - | - | - |")
    print(f"| UPS poll (`NutClient.list_vars`, 42 vars) | {poll:.2f} ms | {raw:.2f} ms (plain socket) | "
          f"{poll / raw:.1f}x | - |")


if __name__ == "__main__":
    main()
