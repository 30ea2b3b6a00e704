"""``rekam operators ...`` and ``rekam report`` in-process, on a config whose scanner is ``emu://zfm``."""

from __future__ import annotations

import csv
import fcntl
import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import main
from drivers.emulators import protocol_emu
from drivers.emulators.zfm import ZfmEmulator

_names = itertools.count()


@pytest.fixture
def station(tmp_path: Path) -> Iterator[tuple[Path, ZfmEmulator]]:
    emu = ZfmEmulator("r503", seed=2)
    name = f"cli{next(_names)}"
    protocol_emu.attach("zfm", name, emu)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f"""
[station]
state_dir = "{state}"
language = "en"
[journal]
free_disk_floor_bytes = 0
reserve_bytes = 0
[operators]
scanner = "opscan"
sign_in_timeout_seconds = 1.0
[devices.opscan]
driver = "zfm"
url = "emu://zfm?name={name}"
options = {{ reply_timeout = 0.3, poll_interval = 0.01, retry_delay = 0.01 }}
""")
    try:
        yield cfg, emu
    finally:
        protocol_emu.detach("zfm", name)


def test_enroll_list_sign_in_test_remove(station: tuple[Path, ZfmEmulator], capsys: pytest.CaptureFixture[str]) -> None:
    cfg, emu = station
    emu.place_finger("sup-a")
    assert main(["operators", "enroll", "sup01", "--name", "Ibu Sari", "--role", "supervisor", "--no-lift",
                 "--config", str(cfg)]) == 0
    assert "sup01 (supervisor) -> slot 0" in capsys.readouterr().out
    assert main(["operators", "enroll", "op01", "--name", "Pak Budi", "--no-lift", "--config", str(cfg)]) == 2
    assert "already enrolled for operator sup01" in capsys.readouterr().err
    emu.place_finger("op-b")
    assert main(["operators", "enroll", "op01", "--name", "Pak Budi", "--no-lift", "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["operators", "list", "--json", "--config", str(cfg)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(o["staff_id"], o["role"], o["slot"]) for o in listed] == [("op01", "operator", 1), ("sup01", "supervisor", 0)]
    assert main(["operators", "sign-in-test", "--config", str(cfg)]) == 0
    assert "op01 (operator)" in capsys.readouterr().out
    emu.place_finger("stranger")
    assert main(["operators", "sign-in-test", "--config", str(cfg)]) == 2
    assert "not an enrolled operator" in capsys.readouterr().err
    emu.lift_finger()
    assert main(["operators", "sign-in-test", "--config", str(cfg)]) == 2
    assert "NoFingerError" in capsys.readouterr().err
    assert main(["operators", "remove", "op01", "--config", str(cfg)]) == 0
    assert 1 not in emu.slots()
    assert main(["operators", "remove", "op01", "--config", str(cfg)]) == 2
    capsys.readouterr()
    assert main(["operators", "list", "--all", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "op01" in out and "Pak Budi" not in out  # the table shows ids, never names


def test_scanner_commands_refuse_while_the_daemon_runs(station: tuple[Path, ZfmEmulator],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    cfg, emu = station
    state = cfg.parent / "state"
    with open(state / "daemon.lock", "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        emu.place_finger("x")
        assert main(["operators", "enroll", "op01", "--name", "N", "--no-lift", "--config", str(cfg)]) == 2
        assert "daemon is running" in capsys.readouterr().err
        assert main(["operators", "list", "--config", str(cfg)]) == 0  # the journal alone is fine
    assert emu.slots() == frozenset()


def test_bad_scanner_config_and_pin(station: tuple[Path, ZfmEmulator], capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _emu = station
    text = cfg.read_text()
    other = cfg.with_name("other.toml")
    other.write_text(text.replace('scanner = "opscan"', 'scanner = "nothere"'))
    assert main(["operators", "sign-in-test", "--config", str(other)]) == 2
    assert "no [devices.nothere]" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("12\n"))
    assert main(["operators", "pin", "tech01", "--config", str(cfg)]) == 2
    assert "6-12 digits" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("482913\n"))
    assert main(["operators", "pin", "tech01", "--config", str(cfg)]) == 0
    pins = (cfg.parent / "state" / "operators.pins").read_text()
    assert "tech01:scrypt:" in pins and "482913" not in pins
    assert main(["operators", "pin", "tech01", "--clear", "--config", str(cfg)]) == 0
    assert "tech01" not in (cfg.parent / "state" / "operators.pins").read_text()


def test_report_month_csv(station: tuple[Path, ZfmEmulator], capsys: pytest.CaptureFixture[str]) -> None:
    cfg, emu = station
    emu.place_finger("sup-a")
    assert main(["operators", "enroll", "sup01", "--name", "S", "--role", "supervisor", "--no-lift",
                 "--config", str(cfg)]) == 0
    out = cfg.parent / "nov.csv"
    assert main(["report", "--month", "2026-11", "--out", str(out), "--config", str(cfg)]) == 0
    with out.open() as fh:
        table = list(csv.DictReader(fh))
    assert len([r for r in table if r["scope"] == "station"]) == 31  # 30 days and the month
    assert table[-1]["period"] == "2026-11"
    capsys.readouterr()
    assert main(["report", "--month", "2026-11", "--no-daily", "--config", str(cfg)]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0][:4] == ["period", "scope", "station_id", "staff_id"] and rows[1][0] == "2026-11"
    for bad in ("2026-13", "2026-11-01", "nov"):
        assert main(["report", "--month", bad, "--config", str(cfg)]) == 2
    assert "YYYY-MM" in capsys.readouterr().err


def test_restore_after_module_swap(station: tuple[Path, ZfmEmulator], capsys: pytest.CaptureFixture[str]) -> None:
    cfg, emu = station
    emu.place_finger("op-b")
    assert main(["operators", "enroll", "op01", "--name", "N", "--no-lift", "--config", str(cfg)]) == 0
    template = emu.library[0]
    emu.library.clear()  # the replacement module is empty
    assert main(["operators", "sign-in-test", "--config", str(cfg)]) == 2
    assert main(["operators", "restore", "--config", str(cfg)]) == 0
    assert "1 templates restored" in capsys.readouterr().out
    assert emu.library == {0: template}
    assert main(["operators", "sign-in-test", "--config", str(cfg)]) == 0
    key = cfg.parent / "state" / "keys" / "operator_templates.key"
    key.write_bytes(b"\x01" * 32)  # a different key: the stored copy no longer opens
    emu.library.clear()
    assert main(["operators", "restore", "--config", str(cfg)]) == 2
    out = capsys.readouterr()
    assert "0 templates restored" in out.out and "op01 do not open" in out.err and emu.library == {}
