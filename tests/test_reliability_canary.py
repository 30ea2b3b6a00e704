"""Canary scan of the offline export path: packets exported to removable media carry no plaintext.

A light station (link down) saves packets whose applicants carry a marker in name, address and
photo bytes; it is killed; `rekam export` writes the backlog to a folder standing for a USB
stick. Neither the export folder nor the state directory nor the logs hold a marker.

Print orders: a daemon with no blank cards journals three signed orders whose name and address
carry markers, and is killed (-9) twice; the state directory, the log, the station's folder and
every file changed under the temporary directory during the run hold no marker (the orders are
sealed at rest, docs/printing.md), and after a delivery of blanks the same orders print.
"""

from __future__ import annotations

import json
import os
import random
import stat
import string
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from agent.keys import generate_headoffice_keys, key_id
from agent.testbed.mosquitto import Mosquitto
from agent.testbed.station import SimulatedStation, write_toml
from tests.conftest import require_mosquitto
from tests.reliability.crashloop import scan_for_markers
from tests.reliability.harness import Office, StationProcess, station_config
from tests.test_security_orders import BASE, STATION, HeadOfficeProbe, _order, _sign, wait_for


def test_export_folder_state_dir_and_logs_hold_no_canary(tmp_path: Path) -> None:
    require_mosquitto()
    office = Office(tmp_path)
    try:
        office.start()
        # A port nobody listens on: the office link is down, the packets stay in the journal.
        write_toml(office.config_path, station_config(office.state_dir, broker_port=1))
        marker = "QZXEXPORTCANARYK"
        station = StationProcess({"config": str(office.config_path), "log": str(tmp_path / "station.log"),
                                  "seed": 31, "marker": marker, "count": 4, "max_photo": 20_000,
                                  "linger": 60}, stderr=tmp_path / "station.err")
        try:
            assert station.wait_for(lambda f: f[0] == "DONE", timeout=60) is not None, station.seen
        finally:
            station.kill()  # kill -9 with the packets queued
        assert len(station.saved()) == 4
        media = tmp_path / "usb"
        media.mkdir()
        res = subprocess.run([sys.executable, "-m", "agent", "export", str(media), "--config",
                              str(office.config_path)], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        exported = [p for p in media.rglob("*") if p.is_file()]
        assert exported, "the export wrote nothing: the scan would prove nothing"
        leaks = scan_for_markers([media, office.state_dir, tmp_path / "station.log", tmp_path / "station.err"],
                                 [marker])
        assert leaks == []
        # The scan does find the marker where it is in the clear.
        (media / "note.txt").write_text(f"operator note {marker}")
        assert scan_for_markers([media], [marker]) != []
    finally:
        office.stop()


def _queued(station: SimulatedStation) -> dict[str, str]:
    res = station.cli("print", "queue", "--all", "--json")
    assert res.returncode == 0, res.stderr
    return {j["order_id"]: j["state"] for j in json.loads(res.stdout)}


def _files_changed_since(root: Path, since: float, skip: list[Path]) -> list[Path]:
    # os.walk, not rglob: other processes (the fuzzing run) create and remove folders under /tmp
    # while this walks; a folder that vanishes is skipped, not an error.
    found: list[Path] = []
    for folder, _dirs, names in os.walk(root, onerror=lambda _e: None):
        for name in names:
            path = Path(folder) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if (stat.S_ISREG(st.st_mode) and st.st_mtime >= since and st.st_size < 64 << 20
                    and not any(path.is_relative_to(s) for s in skip)):
                found.append(path)
    return found


def test_pending_print_orders_leave_no_canary_through_crashes(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Orders waiting for blank cards survive kill -9 twice, sealed: no marker anywhere on the station."""
    started = time.time()
    ho = generate_headoffice_keys(tmp_path / "ho", now=datetime.now(UTC))
    kid = key_id(ho.signing.public_key())
    station = SimulatedStation(tmp_path / "station", station_id=STATION, broker_port=mosquitto.port,
                               uplink_enabled=True, printer=True)
    station.prepare(headoffice_bundle=tmp_path / "ho" / "headoffice_bundle.json")
    probe = HeadOfficeProbe(mosquitto.port)
    markers = ["QZX" + "".join(random.choice(string.ascii_uppercase) for _ in range(13)) for _ in range(3)]
    orders = []
    for m in markers:
        order = _order()
        order["card"] = {**order["card"], "name": f"BUDI {m}", "address": f"JL MAWAR {m[:8]}"}
        orders.append(order)
    topic = f"{BASE}/print/order"
    try:
        station.start()  # no blank cards: every order waits (waiting_stock) with its card data
        wait_for(lambda: "online" in probe.status, 60, "the station online")
        probe.send(topic, _sign(ho.signing, kid, topic, orders[0]))
        wait_for(lambda: orders[0]["order_id"] in _queued(station), 60, "the first order journaled")
        station.stop(kill=True)  # crash 1: one order stored, two more about to come
        for order in orders[1:]:
            probe.send(topic, _sign(ho.signing, kid, topic, order))  # kept by the broker (QoS 1)
        station.start()
        wait_for(lambda: len(_queued(station)) == 3, 60, "all three orders journaled after the restart")
        station.stop(kill=True)  # crash 2: three pending orders in the journal
        assert set(_queued(station).values()) == {"waiting_stock"}
        scanned = [station.state_dir, station.log_path, station.workdir,
                   *_files_changed_since(Path(tempfile.gettempdir()), started, [tmp_path / "ho"])]
        leaks = scan_for_markers(scanned, markers)
        assert leaks == [], leaks
        # Sealed, not lost: with blank cards the same orders print after the crashes.
        res = station.cli("stock", "add", "5", "--batch", "CANARY-1")
        assert res.returncode == 0, res.stderr
        station.start()
        wait_for(lambda: set(_queued(station).values()) == {"printed"}, 90, "the three cards printed")
        station.stop()
        assert scan_for_markers([station.state_dir, station.log_path], markers) == []
    finally:
        station.stop(kill=True)
        probe.stop()
