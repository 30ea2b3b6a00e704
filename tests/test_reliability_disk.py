"""Disk and I/O faults under a running station (issue 11): ENOSPC on a real tmpfs, fsync/write
errors injected with libfiu's fiu-run.

The promise under test: an enrollment is either durable or refused with a visible error
(REFUSED <code>), never reported saved and then lost; the journal passes its full check after
every fault; with space back, the station saves again by itself within a minute.
Needs root (mount) and, for the I/O faults, the Debian packages ``fiu-utils libfiu0``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

from agent.testbed.linkproxy import LinkProxy
from agent.testbed.station import write_toml
from tests.conftest import IN_CI, require_mosquitto
from tests.reliability.crashloop import LIVE_STATES
from tests.reliability.harness import Office, StationProcess, station_config
from tests.test_journal_enospc import ballast

SMALL_JOURNAL = {"max_packet_bytes": 512 * 1024, "reserve_bytes": 256 * 1024, "max_bytes": 1024**3}
TMPFS = "size=16m,mode=0700"


def need(what: str) -> NoReturn:
    """Skip locally, fail in CI, when a tool the test needs is missing."""
    if IN_CI:
        pytest.fail(f"CI must provide {what}")
    pytest.skip(f"needs {what}")


@contextmanager
def tmpfs_office(tmp_path: Path, floor: int) -> Iterator[tuple[Office, LinkProxy, Path]]:
    """An office whose station state dir lives on a 16 MiB tmpfs, its link behind a proxy."""
    require_mosquitto()
    if os.geteuid() != 0:
        need("root (mount -t tmpfs)")
    mnt = tmp_path / "station"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", TMPFS, "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        need(f"a tmpfs mount ({res.stderr.strip()})")
    journal = {**SMALL_JOURNAL, "free_disk_floor_bytes": floor}
    office = Office(tmp_path)
    proxy: LinkProxy | None = None
    try:
        office.start(extra_journal=journal)
        assert office.broker is not None
        proxy = LinkProxy(office.broker.port).start()
        write_toml(office.config_path, station_config(office.state_dir, broker_port=proxy.port,
                                                      extra_journal=journal))
        yield office, proxy, mnt
    finally:
        if proxy is not None:
            proxy.stop()
        office.stop()
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill_until_refused(office: Office, proxy: LinkProxy, tmp_path: Path) -> StationProcess:
    """Start a station with the link down and enroll until three attempts in a row are refused."""
    proxy.refuse(True)  # the office link is down: the backlog can only grow
    station = StationProcess({"config": str(office.config_path), "log": str(tmp_path / "station.log"),
                              "seed": 11, "marker": "QZXDISKFULL", "count": 2000, "max_photo": 300_000,
                              "interval": 0.1, "linger": 0}, stderr=tmp_path / "station.err")
    streak = [0]

    def three_refusals(line: list[str]) -> bool:
        streak[0] = streak[0] + 1 if line[0] == "REFUSED" else 0
        return streak[0] >= 3

    try:
        assert station.wait_for(three_refusals, timeout=100) is not None, station.seen[-5:]
    except BaseException:
        station.kill()
        raise
    assert station.saved(), "nothing was saved before the disk filled"
    assert set(station.refused()) == {"journal_full"}, station.refused()  # visible, and the right reason
    return station


def check_nothing_lost(office: Office, station: StationProcess) -> None:
    """Journal reopened and fully checked; every packet reported saved is still there."""
    assert office.recover_and_check() == []
    states = office.journal_states()
    assert [p for p in station.saved() if states.get(p) not in LIVE_STATES] == []


def test_full_disk_space_returned_by_the_technician(tmp_path: Path) -> None:
    """No floor: refused by the journal's own bound; then something else takes every free byte
    (a real ENOSPC for anything that writes); then the file system grows (space returns)."""
    with tmpfs_office(tmp_path, floor=0) as (office, proxy, mnt):
        station = fill_until_refused(office, proxy, tmp_path)
        try:
            before = set(station.saved())
            ballast(mnt)
            refused = len(station.refused())
            assert station.wait_for(lambda f: f[0] == "REFUSED" and len(station.refused()) > refused + 2,
                                    timeout=30) is not None, station.seen[-5:]
            assert set(station.refused()) == {"journal_full"}, station.refused()
            subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
            t0 = time.monotonic()
            again = station.wait_for(lambda f: f[0] == "SAVED" and f[2] not in before, timeout=60)
            assert again is not None, "no enrollment saved within a minute of space returning"
            print(f"ENOSPC: {len(before)} saved, {len(station.refused())} refused; saving again "
                  f"{time.monotonic() - t0:.1f} s after space returned")
        finally:
            station.kill()
        check_nothing_lost(office, station)


def test_full_disk_space_returned_by_delivery(tmp_path: Path) -> None:
    """With the floor: refused before the disk is full; the link returns, delivery+purge free space."""
    with tmpfs_office(tmp_path, floor=4 * 1024**2) as (office, proxy, _mnt):
        station = fill_until_refused(office, proxy, tmp_path)
        try:
            before = set(station.saved())
            proxy.refuse(False)
            t0 = time.monotonic()
            again = station.wait_for(lambda f: f[0] == "SAVED" and f[2] not in before, timeout=60)
            assert again is not None, "no enrollment saved within a minute of the link returning"
            print(f"floor: saving again {time.monotonic() - t0:.1f} s after the link returned")
        finally:
            station.kill()
        check_nothing_lost(office, station)


def test_really_full_disk_space_returned_by_delivery(tmp_path: Path) -> None:
    """Reliability finding 2: every byte of the disk taken; the link returns; the acks, purges
    and events that free space are still written, every packet reaches head office and the
    space returns to the file system within a minute."""
    with tmpfs_office(tmp_path, floor=0) as (office, proxy, mnt):
        station = fill_until_refused(office, proxy, tmp_path)
        try:
            before = set(station.saved())
            ballast(mnt)
            full = shutil.disk_usage(mnt).free
            proxy.refuse(False)
            t0 = time.monotonic()
            deadline = t0 + 60
            while time.monotonic() < deadline and not all(office.stored(p) for p in before):
                time.sleep(0.2)
            stored = time.monotonic() - t0
            assert all(office.stored(p) for p in before), "not delivered within a minute"
            # Head office's ack must also reach the journal: every packet purged, space back.
            while time.monotonic() < deadline and (
                    {office.journal_states().get(p) for p in before} != {"purged"}
                    or shutil.disk_usage(mnt).free < full + 2 * 1024**2):
                time.sleep(0.2)
            purged = time.monotonic() - t0
            freed = shutil.disk_usage(mnt).free - full
            print(f"really full disk ({full} bytes free): {len(before)} packets at head office "
                  f"{stored:.1f} s after the link returned, all purged after {purged:.1f} s; "
                  f"{freed / 1024**2:.1f} MiB back on the file system")
            assert {office.journal_states().get(p) for p in before} == {"purged"}, \
                "not purged within a minute"
            assert freed >= 2 * 1024**2, "purges did not give the space back within a minute"
        finally:
            station.kill()
        check_nothing_lost(office, station)
        states = office.journal_states()
        assert {states[p] for p in before} == {"purged"}


FIU_FAULTS = ["enable_random name=posix/io/sync/fdatasync,probability=0.05",
              "enable_random name=posix/io/rw/pwrite,probability=0.02"]


def test_injected_fsync_and_write_errors_never_lose_a_saved_enrollment(tmp_path: Path) -> None:
    """fdatasync fails 5 % and pwrite 2 % of the time (libfiu), enabled once the journal is open."""
    require_mosquitto()
    fiu_run, fiu_ctrl = shutil.which("fiu-run"), shutil.which("fiu-ctrl")
    if fiu_run is None or fiu_ctrl is None:
        need("fiu-run and fiu-ctrl (apt-get install -y fiu-utils libfiu0)")
    office = Office(tmp_path)
    try:
        office.start()
        attempts = int(os.environ.get("REKAM_FIU_ATTEMPTS", "200"))
        station = StationProcess({"config": str(office.config_path), "log": str(tmp_path / "station.log"),
                                  "seed": 12, "marker": "QZXFIU", "count": attempts, "max_photo": 30_000,
                                  "interval": 0, "linger": 0, "wait_start": str(tmp_path / "go")},
                                 wrapper=[fiu_run, "-x"], stderr=tmp_path / "station.err")
        try:
            assert station.wait_for(lambda f: f[0] == "OPEN", timeout=60) is not None, station.seen
            for fault in FIU_FAULTS:
                subprocess.run([fiu_ctrl, "-c", fault, str(station.proc.pid)], check=True, timeout=30)
            (tmp_path / "go").touch()
            done = station.wait_for(lambda f: f[0] == "DONE", timeout=100)
        finally:
            station.kill()
        saved, refused = station.saved(), station.refused()
        print(f"fiu: {attempts} attempts, {len(saved)} saved, {len(refused)} refused {sorted(set(refused))}")
        assert done is not None, station.seen[-5:]
        assert len(saved) + len(refused) == attempts  # every attempt got an answer
        assert refused, "no fault was injected: the test proved nothing"
        assert set(refused) <= {"journal_error", "journal_full"}, refused
        assert saved, "the station never saved between faults"
        problems = office.recover_and_check()  # reopened without faults, fully checked
        assert problems == []
        states = office.journal_states()
        lost = [p for p in saved if states.get(p) not in LIVE_STATES]
        assert lost == []
        # Never trusted blindly: after an I/O error the journal reopened its database (and ran
        # quick_check before new work, agent/journal/store.py _reopen).
        assert "reopening the database after an I/O error" in (tmp_path / "station.log").read_text()
    finally:
        office.stop()
