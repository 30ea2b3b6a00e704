"""The 1,000-packet backlog through link faults: ``python tools/reliability_backlog.py --packets 1000``.

Runs tests/reliability/backlog.py once with a broker without persistence and once with it
(``--persistence no|yes|both``), prints each summary as JSON; exit 0 only when nothing was lost.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reliability.backlog import run_backlog  # noqa: E402


def main() -> int:
    """Run the backlog drain(s) and print the summaries."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1000)
    ap.add_argument("--persistence", choices=("no", "yes", "both"), default="both")
    ap.add_argument("--drain-timeout", type=float, default=600.0)
    args = ap.parse_args()
    modes = {"no": [False], "yes": [True], "both": [False, True]}[args.persistence]
    bad = 0
    t0 = time.monotonic()
    for persistence in modes:
        with tempfile.TemporaryDirectory(prefix="rekam-backlog-") as tmp:
            res = run_backlog(Path(tmp), packets=args.packets, persistence=persistence,
                              drain_timeout=args.drain_timeout,
                              say=lambda s: print(f"[{time.monotonic() - t0:6.1f}s] {s}", flush=True))
        print(json.dumps({"persistence": persistence, **res.summary(),
                          "violations_first": res.violations[:20]}, indent=2), flush=True)
        bad += len(res.violations)
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
