"""``rekam diag``: is this station healthy, and if not, what do I do?"""

from __future__ import annotations

import argparse
import json

HELP = "show station health (devices, backlog, disk, link, stock, clock); exit 1 when unhealthy"


def configure(parser: argparse.ArgumentParser) -> None:
    """--json and --lang."""
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--lang", choices=("id", "en"), help="language of the hints (default: config)")


def run(args: argparse.Namespace) -> int:
    """Print every check; exit 0 when healthy, 1 when any check fails."""
    from agent.config import config_path, load_config
    from agent.diagnostics import FAIL, OK, run_checks

    cfg = load_config(config_path(getattr(args, "config", None)))
    lang = args.lang or cfg.station.language
    checks = run_checks(cfg)
    healthy = all(c.status != FAIL for c in checks)
    if args.json:
        print(json.dumps({"healthy": healthy, "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        title = "Kesehatan stasiun" if lang == "id" else "Station health"
        print(f"{title}: {cfg.station.id}")
        for c in checks:
            mark = {OK: "OK  ", "warn": "WARN"}.get(c.status, "FAIL")
            print(f"  [{mark}] {c.name}: {c.detail}")
            hint = c.hint_id if lang == "id" else c.hint_en
            if hint and c.status != OK:
                print(f"         -> {hint}")
    return 0 if healthy else 1
