"""agent/faults.py: the named crash points kill the process at the n-th pass, and only there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from agent import faults

PROBE = "import sys; from agent.faults import crash_point\n" \
        "for name in sys.argv[1:]:\n    crash_point(name)\n    print(name, flush=True)\n"


def run(spec: str | None, *names: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != faults.ENV}
    if spec is not None:
        env[faults.ENV] = spec
    return subprocess.run([sys.executable, "-c", PROBE, *names], capture_output=True, text=True,
                          env=env, timeout=60)


def test_unarmed_points_do_nothing() -> None:
    res = run(None, "mid-seal", "mid-seal", "mid-ack")
    assert res.returncode == 0
    assert res.stdout.split() == ["mid-seal", "mid-seal", "mid-ack"]


def test_armed_point_kills_with_sigkill_at_the_nth_pass_only() -> None:
    res = run("mid-seal:2", "mid-ack", "mid-seal", "mid-ack", "mid-seal", "mid-ack")
    assert res.returncode == -signal.SIGKILL
    assert res.stdout.split() == ["mid-ack", "mid-seal", "mid-ack"]  # died on the second mid-seal


def test_default_count_is_one() -> None:
    res = run("mid-purge", "mid-seal", "mid-purge", "mid-seal")
    assert res.returncode == -signal.SIGKILL
    assert res.stdout.split() == ["mid-seal"]


@pytest.mark.parametrize("spec", ["mid-sael", "MID-SEAL", "mid-seal:x", "mid-seal:"])
def test_bad_specs(spec: str) -> None:
    if spec == "mid-seal:":
        faults.arm(spec)  # an empty count means 1
        faults.arm(None)
        return
    with pytest.raises(ValueError):
        faults.arm(spec)
    faults.arm(None)


def test_every_listed_point_is_hooked_somewhere() -> None:
    from pathlib import Path

    root = Path(faults.__file__).resolve().parent
    source = "\n".join(p.read_text() for p in root.rglob("*.py") if p.name != "faults.py")
    missing = [p for p in faults.POINTS if f'crash_point("{p}")' not in source]
    assert missing == []
