"""Station actions taken with `rekam` commands are audited (ids, times, outcomes; no personal data)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agent.config import parse_config
from agent.journal import Journal

ROOT = Path(__file__).resolve().parents[1]


def rekam(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
    return subprocess.run([sys.executable, "-m", "agent", *args, "--config", str(cfg)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_stock_and_export_actions_are_audited(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[station]\nstate_dir = "{state}"\n')
    assert rekam(cfg, "stock", "add", "20", "--batch", "B-7", "--by", "OP-9").returncode == 0
    assert rekam(cfg, "stock", "recount", "18", "--reason", "two damaged in the box", "--by", "SPV-1").returncode == 0
    media = tmp_path / "usb"
    media.mkdir()
    out = rekam(cfg, "export", str(media), "--by", "TECH-2")
    assert out.returncode == 0, out.stderr
    with Journal.open(state, parse_config({}).journal, recover=False) as journal:
        rows = journal.query("SELECT action, outcome, operator_id FROM audit_trail ORDER BY id")
    assert ("stock.add", "ok", "OP-9") in rows
    assert ("stock.recount", "ok", "SPV-1") in rows
    assert ("export", "ok", "TECH-2") in rows
