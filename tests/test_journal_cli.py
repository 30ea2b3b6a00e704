"""``rekam journal check|status`` and ``rekam export DIR`` through the real CLI entry point."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load_config
from agent.export import open_export
from agent.journal import Journal, db_path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[station]\nid = "st-cli"\nstate_dir = "{state}"\nlanguage = "en"\n'
        "[journal]\nchunk_bytes = 1024\nmax_packet_bytes = 65536\nmax_bytes = 1048576\n"
        "free_disk_floor_bytes = 0\nreserve_bytes = 0\n"
    )
    return path


def fill(config: Path, n: int = 3) -> list[str]:
    cfg = load_config(config)
    ids = []
    with Journal.open(cfg.state_dir, cfg.journal) as j:
        for i in range(n):
            pid = f"pk-{i}"
            with j.begin_packet(pid, station_id="st-cli", created_at=f"2026-11-0{i + 1}T08:00:00Z") as s:
                s.write(os.urandom(3000 + i))
                s.commit()
            ids.append(pid)
        j.mark_sending("pk-0")
    return ids


def test_status_and_check_json(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(config)
    assert main(["journal", "status", "--json", "--config", str(config)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["states"]["queued"]["packets"] == 2
    assert status["states"]["sending"]["packets"] == 1
    assert status["waiting_packets"] == 3 and status["used_bytes"] == 9003
    assert status["oldest_waiting"] == "2026-11-01T08:00:00.000000Z"
    assert status["headroom"]["ok"] is True
    assert main(["journal", "check", "--json", "--config", str(config)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["integrity"] == ["ok"] and report["packets_checked"] == 3


def test_status_text(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(config, 1)
    assert main(["journal", "status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "queued" in out and "Storage OK." in out


def test_check_finds_a_corrupt_chunk(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(config)
    cfg = load_config(config)
    with sqlite3.connect(db_path(cfg.state_dir)) as c:
        c.execute("UPDATE chunks SET data = zeroblob(1024) WHERE packet_id = 'pk-2' AND idx = 0")
    assert main(["journal", "check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "PROBLEMS FOUND" in out and "pk-2: chunk 0" in out
    # check is read-only: the daemon, not the tool, quarantines.
    with sqlite3.connect(db_path(cfg.state_dir)) as c:
        assert c.execute("SELECT state FROM packets WHERE packet_id = 'pk-2'").fetchone() == ("queued",)


def test_no_journal_is_a_one_line_error(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "status", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rekam: error:") and "no journal" in err


def test_export_command(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = fill(config)
    stick = tmp_path / "stick"
    stick.mkdir()
    assert main(["export", str(stick), "--json", "--config", str(config)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["packets"] == 3
    checked = open_export(Path(out["folder"]), station_id="st-cli")
    assert sorted(p.packet_id for p in checked) == ids
    # Exported, still waiting: recover=False left the 'sending' packet alone.
    cfg = load_config(config)
    with sqlite3.connect(db_path(cfg.state_dir)) as c:
        rows = dict(c.execute("SELECT packet_id, state FROM packets").fetchall())
        assert rows == {"pk-0": "sending", "pk-1": "queued", "pk-2": "queued"}
        assert c.execute("SELECT count(*) FROM packets WHERE exported_at IS NULL").fetchone() == (0,)
    assert main(["journal", "status", "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["exported_waiting"] == 3


def test_export_to_missing_dir_exits_2(config: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    fill(config, 1)
    assert main(["export", str(tmp_path / "nowhere"), "--config", str(config)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_diagnostics_lines(config: Path) -> None:
    from agent.journal.diag import journal_checks

    cfg = load_config(config)
    assert [c.status for c in journal_checks(cfg)] == ["warn"]  # no journal yet
    fill(config, 2)
    lines = journal_checks(cfg)
    assert [(c.name, c.status) for c in lines] == [("journal", "ok")]
    assert "2 packets waiting" in lines[0].detail
    with Journal.open(cfg.state_dir, cfg.journal) as j:
        assert j.record_reject("pk-1", "bad signature", max_rejects=1)
    lines = journal_checks(cfg)
    assert ("journal quarantine", "warn") in [(c.name, c.status) for c in lines]


def test_export_without_a_journal_creates_nothing(config: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    stick = tmp_path / "stick"
    stick.mkdir()
    assert main(["export", str(stick), "--config", str(config)]) == 2
    assert "no journal" in capsys.readouterr().err
    assert not db_path(load_config(config).state_dir).exists()
    assert list(stick.iterdir()) == []
