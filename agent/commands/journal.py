"""``rekam journal check|status``: is the local journal sound, and what does it hold?"""

from __future__ import annotations

import argparse
import json

HELP = "check the journal's integrity and every chunk hash, or show what it holds"


def configure(parser: argparse.ArgumentParser) -> None:
    """Sub-actions check and status, each with --json."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                parser_class=type(parser))
    check = sub.add_parser("check", help="full integrity check and every chunk's SHA-256; exit 1 on problems")
    status = sub.add_parser("status", help="packets and bytes by state, oldest waiting, headroom")
    for p in (check, status):
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                       help="configuration file (default: $REKAM_CONFIG, else /etc/rekam/agent.toml)")


def run(args: argparse.Namespace) -> int:
    """Run the chosen action read-only (safe beside a running daemon)."""
    from agent.cli import CliError
    from agent.config import config_path, load_config
    from agent.journal import JournalError
    from agent.journal.inspect import check_journal, journal_status

    cfg = load_config(config_path(getattr(args, "config", None)))
    try:
        if args.action == "check":
            report = check_journal(cfg.state_dir)
            if args.json:
                print(json.dumps(report.as_dict(), indent=2))
            else:
                print(f"journal {cfg.state_dir}: {'OK' if report.ok else 'PROBLEMS FOUND'}")
                print(f"  integrity_check: {'; '.join(report.integrity[:5])}")
                print(f"  packets checked: {report.packets_checked} ({report.bytes_checked:,} bytes)")
                for problem in report.problems[:50]:
                    print(f"  problem: {problem}")
                if not report.ok:
                    print("  -> Paket rusak dikarantina saat daemon berjalan; hubungi teknisi."
                          " / Damaged packets are quarantined by the daemon; call a technician.")
            return 0 if report.ok else 1
        status = journal_status(cfg.state_dir, cfg.journal)
    except JournalError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    room = status["headroom"]
    print(f"journal {cfg.state_dir}")
    for state, v in status["states"].items():
        print(f"  {state:<12} {v['packets']:>7} packets {v['bytes']:>15,} bytes")
    print(f"  waiting: {status['waiting_packets']} (oldest {status['oldest_waiting'] or '-'}),"
          f" exported and still waiting: {status['exported_waiting']}")
    print(f"  pending events: {status['pending_events']}")
    print(f"  used {status['used_bytes']:,} of quota {status['quota_bytes']:,} bytes;"
          f" database files {status['database_bytes']:,} bytes; disk free {status['free_disk_bytes']:,}")
    lang = cfg.station.language
    print(f"  {room['message_id'] if lang == 'id' else room['message_en']}")
    return 0
