"""``rekam stock`` and ``rekam print`` end to end on a temporary state directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main


@pytest.fixture
def config(tmp_path: Path) -> str:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[station]\nid = "st-1"\nstate_dir = "{state}"\nlanguage = "en"\n'
        "[journal]\nfree_disk_floor_bytes = 0\nreserve_bytes = 0\n"
        '[devices.printer]\ndriver = "evolis"\nurl = "emulator"\nrole = "printer"\n'
    )
    return str(path)


def test_stock_and_test_card(config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stock", "add", "20", "--batch", "B-7", "--config", config]) == 0
    assert main(["stock", "recount", "18", "--reason", "two bent", "--config", config]) == 0
    png = tmp_path / "card.png"
    assert main(["print", "test-card", "--png", str(png), "--config", config]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["stock", "show", "--json", "--config", config]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["forecast"]["blanks"] == 17
    assert [e["kind"] for e in shown["entries"]] == ["test", "recount", "delivery"]
    assert main(["print", "queue", "--json", "--config", config]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_errors_are_one_line_exit_2(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stock", "add", "0", "--batch", "B", "--config", config]) == 2
    assert main(["stock", "recount", "5", "--reason", " ", "--config", config]) == 2
    assert main(["print", "confirm", "nope", "--printed", "--config", config]) == 2
    assert main(["print", "confirm", "nope", "--printed", "--card-spoiled", "--config", config]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("rekam: error:") for line in err)
    with pytest.raises(SystemExit) as info:
        main(["print", "confirm", "x", "--config", config])  # neither --printed nor --not-printed
    assert info.value.code == 2


def test_test_card_without_printer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "s"
    state.mkdir(mode=0o700)
    cfg = tmp_path / "a.toml"
    cfg.write_text(f'[station]\nstate_dir = "{state}"\n[journal]\nfree_disk_floor_bytes = 0\nreserve_bytes = 0\n')
    assert main(["print", "test-card", "--config", str(cfg)]) == 2
    assert "printer" in capsys.readouterr().err
