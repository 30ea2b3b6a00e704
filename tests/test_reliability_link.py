"""Link faults of the whole uplink path (issue 11): a backlog built offline drains completely
through a flapping link, broker restarts (SIGTERM and SIGKILL) and a half-open connection.

CI: 400 small packets against a broker without persistence (the harder case: a broker crash
forgets every queued message, so only the station's journal and head office's acks count).
The 1,000-packet run, with and without persistence, is
``python tools/reliability_backlog.py --packets 1000`` (result in docs/reliability.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import require_mosquitto
from tests.reliability.backlog import run_backlog

PACKETS = int(os.environ.get("REKAM_BACKLOG_PACKETS", "400"))


@pytest.mark.slow
def test_backlog_drains_through_link_faults_nothing_lost_duplicates_absorbed(tmp_path: Path) -> None:
    require_mosquitto()
    result = run_backlog(tmp_path, packets=PACKETS, persistence=False)
    print("backlog:", result.summary())
    assert result.violations == [], result.violations[:20]
    assert result.saved == PACKETS
    assert result.ho_stored == PACKETS
    assert result.duplicates_at_ho == 0
    assert len(result.faults) == 4, f"the backlog drained before every fault had happened: {result.faults}"
