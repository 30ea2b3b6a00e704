"""Kernel-level link faults in a network namespace of the test's own (issue 11).

The user-space LinkProxy (tests/test_reliability_link.py) cannot show what the kernel's TCP
stack does with a dropped or reset link; nftables rules in a private namespace can. The scenario
itself is tests/reliability/netns_link.py, run inside the namespace; this test creates the
namespace (loopback only, nothing routed outside), runs it and checks the invariants.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI, require_mosquitto

ROOT = Path(__file__).resolve().parent.parent
PACKETS = int(os.environ.get("REKAM_NETNS_PACKETS", "300"))


def _require_netns() -> None:
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    reason = ""
    if os.geteuid() != 0:
        reason = "network namespaces need root"
    elif missing:
        reason = f"{', '.join(missing)} not installed (apt-get install -y iproute2 nftables)"
    if reason:
        if IN_CI:
            pytest.fail(f"{reason}, and CI must run the namespace tests")
        pytest.skip(reason)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_backlog_drains_through_kernel_link_faults(tmp_path: Path) -> None:
    require_mosquitto()
    _require_netns()
    ns = f"rekam-test-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True,
                       capture_output=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.reliability.netns_link",
             str(tmp_path), str(PACKETS)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=400, check=False)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print("netns:", result)
    assert result["violations"] == [], result["violations"][:20]
    assert result["saved"] == PACKETS
    assert result["ho_stored"] == PACKETS
    assert result["duplicates_at_ho"] == 0
    assert len(result["faults"]) == 4, f"the backlog drained before every fault had happened: {result['faults']}"
    # The half-open link must have been noticed by the station itself (keepalive), not by luck.
    assert result["link_lost_lines"] >= 1 and result["link_back_lines"] >= 1, result
