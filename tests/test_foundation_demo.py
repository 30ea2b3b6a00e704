"""``rekam demo`` runs the whole station for real and reports only what it observed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_mosquitto

ROOT = Path(__file__).resolve().parents[1]


def test_demo_json_summary(tmp_path: Path) -> None:
    require_mosquitto()
    env = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
    out = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--json", "--applicants", "3", "--workdir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["recorded"] == 3
    assert summary["delivered"] == 3 and summary["lost"] == 0
    assert summary["duplicates_stored"] == 0
    assert summary["print_orders"] == 3 and summary["cards_printed"] == 3
    assert all(Path(p).stat().st_size > 10_000 for p in summary["card_images"])
    assert summary["stock_left"] == 12 - 3
    assert summary["low_stock_warnings"] >= 1
    assert summary["within_15_min_share"] == 1.0


def test_demo_without_mosquitto_says_how_to_install(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
    env["PATH"] = str(tmp_path)  # no mosquitto on this PATH
    fake_sbin = "import agent.testbed.mosquitto as m; m.find_mosquitto = lambda: None; "
    code = (fake_sbin + "import sys; from agent.cli import main; "
            f"sys.exit(main(['demo', '--workdir', {str(tmp_path)!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=120)
    assert out.returncode == 2
    assert "apt-get install -y mosquitto" in out.stderr and "Traceback" not in out.stderr
