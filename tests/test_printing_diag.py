"""Printing diagnostics: stock, ribbon and uncertain-print checks read the journal only."""

from __future__ import annotations

from pathlib import Path

from agent.config import Config, parse_config
from agent.journal import Journal
from agent.printing.diag import printing_checks
from agent.printing.stock import StockLedger


def cfg_for(tmp_path: Path, printer: bool = True) -> Config:
    state = tmp_path / "state"
    state.mkdir(mode=0o700, exist_ok=True)
    data: dict[str, object] = {"station": {"state_dir": str(state)},
                               "journal": {"free_disk_floor_bytes": 0, "reserve_bytes": 0}}
    if printer:
        data["devices"] = {"p": {"driver": "evolis", "url": "usb:0f49", "role": "printer"}}
    return parse_config(data)


def test_checks_report_empty_stock_and_missing_printer(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path, printer=False)
    checks = {c.name: c for c in printing_checks(cfg)}
    assert checks["printer config"].status == "fail"
    assert checks["uncertain prints"].status == "ok"
    assert checks["blank stock"].status == "fail" and checks["blank stock"].hint_id


def test_checks_ok_with_stock(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path)
    with Journal.open(cfg.state_dir, cfg.journal) as j:
        StockLedger(j).add_delivery(100, "B1")
    checks = {c.name: c for c in printing_checks(cfg)}
    assert checks["printer config"].status == "ok"
    assert checks["blank stock"].status == "ok"
