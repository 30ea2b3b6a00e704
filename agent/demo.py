"""The simulated station, end to end, on this machine (docs/demo.md).

Real parts only: a real mosquitto on a free loopback port, the station daemon (`rekam run`) with
every device emulated behind its real driver, the uplink to the broker through a link proxy
(so the demo can cut the link), a head-office receiver that verifies and stores packets and
sends signed print orders back, and the emulated Evolis printer that renders each card to PNG.
The summary counts only what was observed at head office and on the printer.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import __version__
from agent.testbed.mosquitto import INSTALL_HINT, BrokerError, Mosquitto, find_mosquitto

STATION_ID = "demo-station-01"
BLANK_CARDS = 12  # few enough that the low-stock warning fires during the demo
MIN_CUT_SECONDS = 12.0  # > 2 x the demo station's 5 s keepalive


class DemoError(Exception):
    """The demo cannot run here (the message says how to fix it)."""


class Progress:
    """One line per step on stdout (nothing with --json)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.t0 = time.monotonic()

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(f"[demo {time.monotonic() - self.t0:6.1f}s] {text}", flush=True)


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.25) -> bool:
    """Poll ``condition`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo with the parsed CLI arguments; return 0 when nothing was lost."""
    from agent.headoffice.embedded import EmbeddedHeadOffice
    from agent.keys import init_station_keys, keys_dir, load_station_public_key
    from agent.testbed.linkproxy import LinkProxy
    from agent.testbed.station import SimulatedStation

    if find_mosquitto() is None:
        raise DemoError(f"the demo needs mosquitto; {INSTALL_HINT}")
    say = Progress(args.json)
    workdir = Path(args.workdir or "demo-output").resolve()
    for sub in ("broker", "station", "headoffice"):
        shutil.rmtree(workdir / sub, ignore_errors=True)  # each run starts from a clean office
    workdir.mkdir(parents=True, exist_ok=True)
    cards_dir = workdir / "station" / "cards"

    broker = Mosquitto(workdir / "broker")
    try:
        broker.start()
    except BrokerError as exc:
        raise DemoError(str(exc)) from exc
    proxy: LinkProxy | None = None
    ho: EmbeddedHeadOffice | None = None
    station: SimulatedStation | None = None
    try:
        say(f"mosquitto listening on 127.0.0.1:{broker.port}")
        proxy = LinkProxy(broker.port).start()
        say(f"office link: a proxy on 127.0.0.1:{proxy.port} stands for the office's internet line")
        station = SimulatedStation(
            workdir / "station", station_id=STATION_ID, broker_port=proxy.port, uplink_enabled=True,
            extra={"printer": {"low_stock_days": 30.0}},
        )
        station.workdir.mkdir(parents=True, exist_ok=True)
        kdir = keys_dir(station.state_dir)
        station.state_dir.chmod(0o700)
        init_station_keys(kdir)
        ho = EmbeddedHeadOffice.start(workdir / "headoffice", broker_port=broker.port,
                                      stations={STATION_ID: load_station_public_key(kdir)})
        say("head office: keys made, receiver subscribed ($share group), station key registered")
        station.prepare(headoffice_bundle=ho.bundle)
        _add_stock(station, BLANK_CARDS)
        station.enroll_operator()
        say(f"station: keys made, head office trusted, {BLANK_CARDS} blank cards delivered to stock, "
            "operator OP-001 enrolled on the fingerprint module")
        station.start()
        station.wait_devices_ready()
        say("station daemon ready; devices: fingerprint module, ten-print, camera, iris, signature pad, "
            "printer (all emulated)")
        say(f"technician's diagnostics page (while the demo runs): {_diag_url(station)}")
        signed = station.sign_in()
        say(f"operator {signed['operator']['staff_id']} signed in by fingerprint")
        summary = _run_office_day(args, say, station, ho, proxy)
        say(f"station daemon stopped (exit {station.stop()})")
        summary["stock_left"] = _stock_left(station)
        summary.update({"version": __version__, "workdir": str(workdir), "station_id": STATION_ID,
                        "cards_dir": str(cards_dir), "daemon_log": str(station.log_path)})
    finally:
        if station is not None and station.proc is not None:
            code = station.stop()
            say(f"station daemon stopped (exit {code})")
        if ho is not None:
            ho.stop()
        if proxy is not None:
            proxy.stop()
        broker.stop()
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        _print_summary(summary)
    return 0 if summary["lost"] == 0 and summary["delivered"] == summary["recorded"] else 1


def _add_stock(station: Any, count: int) -> None:
    import subprocess

    res = subprocess.run(
        [sys.executable, "-m", "agent", "stock", "add", str(count), "--batch", "DEMO-1",
         "--config", str(station.config_path)],
        capture_output=True, text=True, timeout=60,
    )
    if res.returncode != 0:
        raise DemoError(f"rekam stock add failed: {res.stderr.strip()}")


def _run_office_day(args: argparse.Namespace, say: Progress, station: Any, ho: Any, proxy: Any) -> dict[str, Any]:
    from agent.headoffice.approval import approve_packet
    from agent.headoffice.orders import print_order
    from agent.workflow.synthetic import applicant

    n = args.applicants
    cut_at, restore_at = max(1, n // 3), max(2, (2 * n) // 3)
    client = station.client()
    saved: list[str] = []
    enroll_seconds: list[float] = []
    storage = ho.receiver.storage
    cut_started = 0.0

    def restore() -> None:
        # Hold the cut past twice the keepalive, so the station must detect the half-open link
        # itself; then the line comes back and connections from before the cut are gone (their
        # black-holed bytes cannot resume), as after a real outage.
        time.sleep(max(0.0, cut_started + MIN_CUT_SECONDS - time.monotonic()))
        proxy.blackhole(False)
        proxy.reset()
        say("link RESTORED: the uplink reconnects and drains the backlog")

    for i in range(n):
        if i == cut_at:
            proxy.blackhole(True)
            cut_started = time.monotonic()
            say("link CUT (packets black-holed, no reset): the backlog grows in the journal")
        if i == restore_at:
            restore()
        t0 = time.monotonic()
        result = client.enroll(applicant(args.seed + i, district_code="647201"))
        enroll_seconds.append(time.monotonic() - t0)
        saved.append(result["packet_id"])
        say(f"applicant {i + 1}/{n} saved: packet {result['packet_id']} ({result['retries']} retries)")
    if n <= restore_at:
        restore()

    def delivered() -> list[str]:
        return [p for p in saved if (r := storage.packet(p)) is not None and r.state == "stored"]

    wait_until(lambda: len(delivered()) == len(saved), timeout=120)
    stored = delivered()
    say(f"head office stored {len(stored)}/{len(saved)} packets, each verified (hash, signature, decryption)")

    # Head office approves each stored packet at once and orders its card.
    from agent.keys import keys_dir, load_station_public_key

    station_keys = {STATION_ID: load_station_public_key(keys_dir(station.state_dir))}
    ordered = 0
    now = datetime.now(UTC)
    for pid in stored:
        record = storage.packet(pid)
        approved = approve_packet(storage.packet_path(record), headoffice_private_key=ho.keys.encryption,
                                  station_public_keys=station_keys,
                                  issue_place="SAMARINDA", issue_date=now.date())
        topic, payload = print_order(ho.signer, STATION_ID, card=approved.card, photo=approved.photo,
                                     signature=approved.signature, now=now, packet_id=pid)
        ho.send(topic, payload)
        ordered += 1
    say(f"head office sent {ordered} signed print orders")
    cards_dir: Path = station.workdir / "cards"
    wait_until(lambda: len(list(cards_dir.glob("card-*.png"))) >= min(ordered, BLANK_CARDS), timeout=120)
    time.sleep(3.0)  # let the last print results, stock events and KPI stamps settle
    cards = sorted(cards_dir.glob("card-*.png"))
    say(f"printer produced {len(cards)} card images in {cards_dir}")
    kpi = client.call("GET", "/v1/kpi")
    events = ho.receiver.storage.events(STATION_ID, 500)
    low_stock = [e for e in events if e.get("kind") == "low_stock"]
    total = kpi.get("total", {})
    return {
        "recorded": len(saved),
        "delivered": len(stored),
        "duplicates_stored": _duplicates(storage, saved),
        "lost": len(saved) - len(stored),
        "print_orders": ordered,
        "cards_printed": len(cards),
        "card_images": [str(c) for c in cards],
        "service_time_median_s": total.get("service_median_s"),
        "service_time_p90_s": total.get("service_p90_s"),
        "recording_time_median_s": total.get("recording_median_s"),
        "within_15_min_share": total.get("within_standard_share"),
        "agent_enroll_seconds_median": round(sorted(enroll_seconds)[len(enroll_seconds) // 2], 2),
        "low_stock_warnings": len(low_stock),
        "link_cut_between_applicants": [cut_at + 1, restore_at],
        "diagnostics": "rekam diag --config " + str(station.config_path),
        "diagnostics_page": _diag_url(station),
    }


def _diag_url(station: Any) -> str | None:
    from agent.config import load_config
    from agent.diagweb.client import DiagClient

    try:
        return str(DiagClient(load_config(station.config_path)).login_url())
    except Exception:  # noqa: BLE001 - the summary must not fail on a missing page
        return None


def _stock_left(station: Any) -> int | None:
    res = station.cli("stock", "show", "--json")
    if res.returncode != 0:
        return None
    data = json.loads(res.stdout)
    blanks = (data.get("forecast") or {}).get("blanks")
    return int(blanks) if isinstance(blanks, int) else None


def _duplicates(storage: Any, packet_ids: list[str]) -> int:
    # Head office's index has one row per packet id; a second stored copy would show as a
    # second file for the same id in the station's folder.
    dupes = 0
    for pid in packet_ids:
        record = storage.packet(pid)
        if record is None or record.path is None:
            continue
        folder = storage.packet_path(record).parent
        dupes += max(0, len(list(folder.glob(f"{pid}*"))) - 1)
    return dupes


def _print_summary(summary: dict[str, Any]) -> None:
    print("\n=== Rekam demo: summary ===")
    order = ["recorded", "delivered", "duplicates_stored", "lost", "print_orders", "cards_printed",
             "service_time_median_s", "service_time_p90_s", "recording_time_median_s", "within_15_min_share",
             "stock_left", "low_stock_warnings", "cards_dir", "diagnostics", "diagnostics_page", "workdir"]
    for key in order:
        print(f"  {key:26} {summary.get(key)}")
