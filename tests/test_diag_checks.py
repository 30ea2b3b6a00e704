"""`rekam diag` offline: the checks and figures against a real state directory and journal."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent import kpi
from agent.cli import main
from agent.config import Config, load_config
from agent.diagnostics import (
    CHECKS,
    FAIL,
    OK,
    WARN,
    Check,
    ClockWatch,
    backlog_growth,
    backlog_history,
    build_report,
    clock_checks,
    device_state_checks,
    link_checks,
    power_checks,
    recordings_by_kelurahan,
    run_checks,
    stock_checks,
)
from agent.journal import Journal
from agent.keys import init_station_keys, keys_dir
from agent.packet import new_packet_id
from agent.station import KpiStore
from agent.testbed.station import write_toml


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    """A config file under tmp_path (state dir inside), loaded like the CLI does."""
    doc: dict[str, Any] = {
        "station": {"id": "st-diag-01", "district_code": "647201", "language": "en",
                    "state_dir": str(tmp_path / "state")},
        "printer": {"enabled": False},
        "diagnostics": {"port": 1},  # nothing listens on port 1: `rekam diag` goes offline
    }
    for name, body in sections.items():
        doc.setdefault(name, {}).update(body)
    write_toml(tmp_path / "agent.toml", doc)
    return load_config(tmp_path / "agent.toml")


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    """A station with keys and a journal (no packets yet)."""
    config = make_config(tmp_path)
    config.state_dir.mkdir(mode=0o700)
    init_station_keys(keys_dir(config.state_dir))
    with Journal.open(config.state_dir, config.journal):
        pass
    return config


def add_packet(journal: Journal, created_at: datetime, size: int = 10_000) -> str:
    """Commit one packet of ``size`` random bytes created at ``created_at``."""
    pid = new_packet_id()
    sink = journal.begin_packet(pid, station_id="st-diag-01", created_at=created_at.isoformat(timespec="seconds"))
    sink.write(os.urandom(size))
    sink.commit()
    return pid


def by_name(checks: list[dict[str, Any]] | list[Check]) -> dict[str, Any]:
    """Checks keyed by name (dicts or Check objects)."""
    return {(c["name"] if isinstance(c, dict) else c.name): c for c in checks}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """`rekam ARGV` in-process; (exit code, stdout)."""
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_fresh_station_without_headoffice_key_is_unhealthy(cfg: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(capsys, "diag", "--config", str(cfg.source), "--json")
    report = json.loads(out)
    assert code == 1
    assert report["source"] == "offline" and report["healthy"] is False
    checks = by_name(report["checks"])
    assert checks["keys"]["status"] == FAIL and "headoffice" in checks["keys"]["detail"]
    assert checks["journal"]["status"] == OK
    assert checks["state directory"]["status"] == OK
    assert report["journal"]["waiting_packets"] == 0
    # Every failing line says what to do, in both languages.
    for c in report["checks"]:
        if c["status"] != OK:
            assert c["hint_id"] and c["hint_en"], c


def test_text_output_in_indonesian_lists_failures_first(cfg: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(capsys, "diag", "--config", str(cfg.source), "--lang", "id")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("Kesehatan stasiun: st-diag-01 -- BERMASALAH")
    assert "luring" in lines[1]
    marks = [ln.split("]")[0].strip(" [") for ln in lines if ln.startswith("  [")]
    assert marks == sorted(marks, key=lambda m: {"FAIL": 0, "WARN": 1}.get(m, 2))
    assert "Kunci stasiun belum lengkap" in out


def test_bad_config_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.toml").write_text("[diagnostics]\nport = 0\n")
    assert main(["diag", "--config", str(tmp_path / "bad.toml")]) == 2
    err = capsys.readouterr().err
    assert "port" in err and "Traceback" not in err


def test_backlog_history_and_growth_forecast(tmp_path: Path) -> None:
    # A 1.6 MB quota with 1.2 MB waiting that all arrived within the 7-day window: about 2.3 days left.
    cfg = make_config(tmp_path, journal={"max_bytes": 1_600_000, "free_disk_floor_bytes": 0,
                                         "reserve_bytes": 0, "max_packet_bytes": 400_000})
    cfg.state_dir.mkdir(mode=0o700)
    now = datetime.now(UTC)
    with Journal.open(cfg.state_dir, cfg.journal) as journal:
        delivered = add_packet(journal, now - timedelta(days=1), size=1000)
        info = journal.packet(delivered)
        assert info is not None
        journal.mark_delivered(delivered, info.sha256)
        for days_ago in (3, 2, 2):
            add_packet(journal, now - timedelta(days=days_ago), size=400_000)
    now = datetime.now(UTC)
    history = backlog_history(cfg, days=5, now=now)
    # The delivered packet was waiting at the end of yesterday, and is gone now.
    assert [h["packets"] for h in history] == [0, 1, 3, 4, 3]
    assert history[-1]["bytes"] == 1_200_000
    growth = backlog_growth(cfg, now=now)
    assert growth["bytes_per_day"] == pytest.approx(1_200_000 / 7, rel=0.01)
    used = 1_200_000 + (1000 if journal_keeps_delivered(cfg) else 0)
    assert growth["days_to_quota"] == pytest.approx((1_600_000 - used) / (1_200_000 / 7), abs=0.1)
    disk = by_name(run_checks(cfg))["disk"]
    assert disk.status == WARN and "quota reached in about" in disk.detail


def journal_keeps_delivered(cfg: Config) -> bool:
    """Whether delivered packets still hold their bytes (retention > 0)."""
    return cfg.journal.retention_seconds > 0


def test_packet_from_the_future_means_the_clock_went_back(cfg: Config) -> None:
    with Journal.open(cfg.state_dir, cfg.journal) as journal:
        add_packet(journal, datetime.now(UTC) + timedelta(hours=3))
    (line,) = clock_checks(cfg)
    assert line.status == FAIL and "later than now" in line.detail


def test_clock_synchronised_flag_and_jumps(cfg: Config, tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    assert clock_checks(cfg, synced_flag=flag)[0].status == WARN
    flag.touch()
    assert clock_checks(cfg, synced_flag=flag)[0].status == OK
    watch = ClockWatch(60)
    assert watch.sample() == []
    watch._offset -= 3600  # as if the wall clock had been stepped one hour forward since the last sample
    jumps = watch.sample()
    assert len(jumps) == 1 and jumps[0]["seconds"] == pytest.approx(3600, abs=5)
    (line,) = clock_checks(cfg, jumps=jumps, synced_flag=flag)
    assert line.status == WARN and "jump" in line.detail


def test_recordings_per_kelurahan_from_service_times(cfg: Config) -> None:
    now = datetime.now(UTC)
    # Sessions "today" must start and end on the station's local day even just after its
    # midnight (16:00-16:30 UTC in Asia/Makassar), or the test depends on the hour it runs at.
    local = now.astimezone(ZoneInfo(cfg.station.timezone))
    since_midnight = local - local.replace(hour=0, minute=0, second=0, microsecond=0)
    back = min(timedelta(minutes=30), since_midnight / 2)
    with Journal.open(cfg.state_dir, cfg.journal) as journal:
        store = KpiStore(journal)
        kpi.install(store)
        for i, (kel, days_ago) in enumerate([("Sungai Pinang", 0), ("Sungai Pinang", 0), ("Air Hitam", 1),
                                             ("Air Hitam", 9)]):
            start = now - timedelta(days=days_ago) - back
            took = min(timedelta(minutes=12), back / 2)
            kpi.record_session(store, {"session_id": f"s{i}", "packet_id": f"p{i}", "kelurahan": kel,
                                       "started_at": start.isoformat(),
                                       "sealed_at": (start + took).isoformat(),
                                       "record_seconds": took.total_seconds(), "retry_seconds": 0, "fault_seconds": 0,
                                       "captures": 5, "first_time_pass": 5, "force_accepts": 0,
                                       "exceptions": 0}, tz=cfg.station.timezone)
    days = recordings_by_kelurahan(cfg, days=3, now=now)
    assert [sum(d["by_kelurahan"].values()) for d in days] == [0, 1, 2]
    assert days[-1]["by_kelurahan"] == {"SUNGAI PINANG": 2}
    report = build_report(cfg)
    assert report["kpis"]["total"]["recorded"] == 2
    assert len(report["charts"]["service_times"]) == 2
    assert by_name(report["checks"])["service today"]["status"] == OK


def test_device_lines_from_a_snapshot() -> None:
    lines = device_state_checks([
        {"name": "cam", "driver": "v4l2", "role": "camera", "state": "ready",
         "identity": {"model": "X1", "serial": "S9", "firmware": "1.0"}, "last_error": None},
        {"name": "fp", "driver": "zfm", "role": "fingerprint", "state": "faulted", "identity": None,
         "last_error": {"message": "checksum errors", "hint_id": "Cabut dan pasang lagi.", "hint_en": "Replug it."}},
        {"name": "iris", "driver": "iris-emulator", "role": "iris", "state": "initialising"},
        {"name": "sig", "driver": "evdev", "role": "signature", "state": "absent", "last_error": {}},
    ])
    got = by_name(lines)
    assert got["device cam"].status == OK and "X1 S9 1.0" in got["device cam"].detail
    assert got["device fp"].status == FAIL and got["device fp"].hint_en == "Replug it."
    assert "checksum errors" in got["device fp"].detail
    assert got["device iris"].status == WARN
    assert got["device sig"].status == FAIL and got["device sig"].hint_id  # a generic hint when none is known


def test_link_stock_and_power_lines(cfg: Config) -> None:
    assert link_checks(cfg, {"link_state": "connected", "drain_rate_bps": 2048})[0].status == OK
    down = link_checks(cfg, {"link_state": "down", "last_error": "connection refused"})[0]
    assert down.status == WARN and "connection refused" in down.detail
    low = by_name(stock_checks(cfg, {"blanks": 3, "rate_per_day": 10, "blank_days": 0.3, "ribbon_days": None}))
    assert low["blank stock"].status == WARN and low["ribbon"].status == OK
    assert by_name(stock_checks(cfg, {"blank_days": 0, "ribbon_days": 0}))["ribbon"].status == FAIL
    assert power_checks({"state": "mains"})[0].status == OK
    assert power_checks({"state": "battery", "charge": 80})[0].status == WARN
    assert power_checks({"state": "low", "charge": 10})[0].status == FAIL
    assert power_checks({"state": "unknown", "error": "upsd down"})[0].status == WARN


@pytest.fixture
def crashing_check() -> Iterator[None]:
    """Register a check that raises, and remove it afterwards."""
    def boom(cfg: Config) -> list[Check]:
        raise RuntimeError("disk on fire")

    CHECKS.append(boom)
    try:
        yield
    finally:
        CHECKS.remove(boom)


@pytest.mark.usefixtures("crashing_check")
def test_a_crashing_check_is_reported_not_raised(cfg: Config) -> None:
    checks = by_name(run_checks(cfg))
    assert checks["boom"].status == FAIL and "disk on fire" in checks["boom"].detail
    assert checks["keys"].status == FAIL  # the others still ran


def test_unreadable_journal_fails_clearly(cfg: Config) -> None:
    from agent.journal.store import db_path

    db_path(cfg.state_dir).write_bytes(b"this is not a database" * 100)
    report = build_report(cfg)
    assert by_name(report["checks"])["journal"]["status"] == FAIL
    assert report["healthy"] is False


def test_state_dir_open_to_others_fails(cfg: Config) -> None:
    cfg.state_dir.chmod(0o777)
    try:
        assert by_name(run_checks(cfg))["state directory"].status == FAIL
    finally:
        cfg.state_dir.chmod(0o700)


def test_report_has_no_personal_fields(cfg: Config) -> None:
    text = json.dumps(build_report(cfg)).lower()
    for word in ("nik", "nama", "\"name\": \"", "template", "minutiae"):
        assert word not in text or word == "\"name\": \"" and "\"name\": \"keys\"" in text


def test_checksum_helper_is_independent() -> None:
    # Guards the test helper above: packets are random, so two are never equal.
    assert hashlib.sha256(os.urandom(8)).hexdigest() != hashlib.sha256(os.urandom(8)).hexdigest()


def test_offline_stock_reads_the_ledger_without_opening_the_journal(tmp_path: Path) -> None:
    from agent.diagnostics import offline_stock
    from agent.printing.queue import PrintQueue
    from agent.printing.stock import StockLedger

    cfg = make_config(tmp_path, printer={"enabled": True})
    cfg.state_dir.mkdir(mode=0o700)
    with Journal.open(cfg.state_dir, cfg.journal):
        pass
    assert offline_stock(cfg) is None  # nothing printed or delivered yet: no tables
    with Journal.open(cfg.state_dir, cfg.journal) as journal:
        ledger = StockLedger(journal)
        ledger.add_delivery(250, "BATCH-1")
        PrintQueue(journal, ledger, station_id="st-diag-01")
    stock = offline_stock(cfg)
    assert stock is not None and stock["blanks"] == 250 and stock["queued_orders"] == 0
    report = build_report(cfg)
    assert report["stock"] == stock


def test_live_report_keeps_the_config_level_device_warnings(cfg: Config) -> None:
    from agent.diagnostics import LiveSources

    snapshot = [{"name": "cam", "driver": "v4l2", "role": "camera", "state": "ready"}]
    report = build_report(cfg, LiveSources(devices=lambda: snapshot, clock=ClockWatch(60)))
    checks = by_name(report["checks"])
    assert report["source"] == "daemon"
    assert checks["device cam"]["status"] == OK
    assert checks["fingerprint scanner"]["status"] == WARN  # no scanner configured: still said when live
    assert checks["link"]["detail"].startswith("the uplink is not running")  # enabled in config, no part


def test_live_report_survives_a_broken_part(cfg: Config) -> None:
    from agent.diagnostics import LiveSources

    def broken() -> dict[str, Any]:
        raise RuntimeError("uplink thread gone")

    report = build_report(cfg, LiveSources(link=broken))
    assert [c["status"] for c in report["checks"] if c["name"] == "link"] == [FAIL]
    assert "uplink thread gone" in by_name(report["checks"])["link"]["detail"]
