"""``rekam diag``: is this station healthy, and if not, what do I do?"""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "show station health (devices, backlog, disk, link, stock, clock); exit 1 when unhealthy"


def configure(parser: argparse.ArgumentParser) -> None:
    """--json, --lang, --offline and --web."""
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--lang", choices=("id", "en"), help="language of the hints (default: config)")
    parser.add_argument("--offline", action="store_true",
                        help="do not ask the running daemon; check config, state dir, journal, disk, clock, keys")
    parser.add_argument("--web", action="store_true", help="print the address of the diagnostics page and exit")


def run(args: argparse.Namespace) -> int:
    """Print every check; exit 0 when healthy, 1 when any check fails."""
    from agent.cli import CliError
    from agent.config import config_path, load_config
    from agent.diagnostics import build_report
    from agent.diagweb.client import DaemonUnavailableError, DiagClient

    cfg = load_config(config_path(getattr(args, "config", None)))
    lang = args.lang or cfg.station.language
    client = DiagClient(cfg)
    if args.web:
        try:
            client.call("GET", "/api/diag.json")
            print(client.login_url())
        except DaemonUnavailableError as exc:
            raise CliError(f"the diagnostics page is not reachable: {exc}") from None
        return 0
    report: dict[str, Any] | None = None
    why_offline = "--offline"
    if not args.offline:
        try:
            report = client.call("GET", "/api/diag.json", timeout=60.0)
        except DaemonUnavailableError as exc:
            why_offline = str(exc)
    if report is None:
        report = build_report(cfg)
        report["offline_reason"] = why_offline
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_report(report, lang)
    return 0 if report.get("healthy") else 1


MARK = {"ok": "OK  ", "warn": "WARN", "fail": "FAIL"}


def print_report(report: dict[str, Any], lang: str) -> None:
    """The terminal screen: failures first, each with what to do."""
    title = "Kesehatan stasiun" if lang == "id" else "Station health"
    words = {"ok": ("BAIK", "HEALTHY"), "warn": ("PERLU PERHATIAN", "NEEDS ATTENTION"), "fail": ("BERMASALAH", "UNHEALTHY")}
    overall = words.get(str(report.get("overall")), words["fail"])[0 if lang == "id" else 1]
    print(f"{title}: {report.get('station_id')} -- {overall}")
    if report.get("source") == "offline":
        note = ("daemon tidak berjalan; pemeriksaan luring" if lang == "id"
                else "daemon not reachable; offline checks")
        print(f"  ({note}: {report.get('offline_reason', '')})")
    order = {"fail": 0, "warn": 1}
    for c in sorted(report.get("checks", []), key=lambda c: order.get(c.get("status"), 2)):
        print(f"  [{MARK.get(c.get('status'), 'FAIL')}] {c.get('name')}: {c.get('detail')}")
        hint = c.get("hint_id") if lang == "id" else c.get("hint_en")
        if hint and c.get("status") != "ok":
            print(f"         -> {hint}")
