"""``rekam demo`` runs for real against mosquitto and reports what it observed."""

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
        [sys.executable, "-m", "agent", "demo", "--json", "--applicants", "2", "--workdir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["status_online_seen"] is True
    assert summary["last_will_seen"] is True
