"""Canary scan of the offline export path: packets exported to removable media carry no plaintext.

A light station (link down) saves packets whose applicants carry a marker in name, address and
photo bytes; it is killed; `rekam export` writes the backlog to a folder standing for a USB
stick. Neither the export folder nor the state directory nor the logs hold a marker.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent.testbed.station import write_toml
from tests.conftest import require_mosquitto
from tests.reliability.crashloop import scan_for_markers
from tests.reliability.harness import Office, StationProcess, station_config


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
