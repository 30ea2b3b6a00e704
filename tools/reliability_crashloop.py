"""The long crash loop (issue 11): ``python tools/reliability_crashloop.py --cycles 5000``.

The same loop as tests/test_reliability_crashloop.py (tests/reliability/crashloop.py), for as
many cycles as asked, with a progress line every 100 cycles and a JSON summary at the end;
then the canary scan of the station's side. Exit status 0 only when no invariant was broken.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reliability.crashloop import CrashLoopResult, run_crashloop, scan_for_markers  # noqa: E402
from tests.reliability.harness import running_office  # noqa: E402


def main() -> int:
    """Run the loop; print progress and a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--workdir", type=Path, default=None, help="kept after the run (default: a temp dir, removed)")
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rekam-crashloop-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    def progress(n: int, res: CrashLoopResult) -> None:
        if (n + 1) % 100 == 0:
            print(f"[{time.monotonic() - t0:7.0f}s] cycle {n + 1}/{args.cycles}: saved {len(res.saved)}, "
                  f"violations {len(res.violations)}", flush=True)

    with running_office(workdir) as (office, zygote):
        res = run_crashloop(office, zygote, cycles=args.cycles, seed=args.seed, progress=progress)
    hits = scan_for_markers([office.state_dir, office.log_path, workdir / "zygote.err", workdir / "broker"],
                            res.markers)
    summary = {**res.summary(), "seed": args.seed, "canary_hits": len(hits),
               "violations_first": res.violations[:20], "canary_first": hits[:20]}
    print(json.dumps(summary, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if not res.violations and not hits else 1


if __name__ == "__main__":
    sys.exit(main())
