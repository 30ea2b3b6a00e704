"""``rekam export DIR``: copy the unacknowledged backlog to removable media."""

from __future__ import annotations

import argparse
import json

HELP = "export every unacknowledged packet (still encrypted) with a manifest to removable media"


def configure(parser: argparse.ArgumentParser) -> None:
    """DIR and --json."""
    parser.add_argument("dir", metavar="DIR", help="mounted removable media (a new folder is made inside)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--by", metavar="STAFF_ID", help="staff id of whoever exports (audit trail)")


def run(args: argparse.Namespace) -> int:
    """Export, print the folder and counts; exit 2 with one clear line on failure."""
    from pathlib import Path

    from agent.cli import CliError
    from agent.config import config_path, load_config
    from agent.export import ExportError, export_backlog
    from agent.journal import Journal, JournalError, db_path
    from agent.operators.audit import audit_cli_action

    cfg = load_config(config_path(getattr(args, "config", None)))
    lang = cfg.station.language
    if not db_path(cfg.state_dir).is_file():
        # Never create an empty journal just to export nothing from it.
        raise CliError(f"{db_path(cfg.state_dir)}: no journal here (wrong --config or state directory?)")
    try:
        # recover=False: a running daemon owns the outbox states; export only reads and
        # marks packets exported.
        with Journal.open(cfg.state_dir, cfg.journal, recover=False) as journal:
            result = export_backlog(journal, Path(args.dir), station_id=cfg.station.id)
            audit_cli_action(journal, cfg.station.timezone, "export", "ok", operator_id=args.by,
                             details={"packets": result.packets, "bytes": result.total_bytes})
    except ExportError as exc:
        raise CliError(exc.message_id if lang == "id" else str(exc)) from None
    except JournalError as exc:
        raise CliError(exc.message_id if lang == "id" else str(exc)) from None
    if args.json:
        print(json.dumps({"folder": str(result.folder), "packets": result.packets,
                          "bytes": result.total_bytes,
                          "skipped_corrupt": list(result.skipped_corrupt)}, indent=2))
    else:
        if lang == "id":
            print(f"{result.packets} paket ({result.total_bytes:,} byte) diekspor ke {result.folder}.")
            print("Paket tetap disimpan sampai kantor pusat mengonfirmasi penerimaan.")
        else:
            print(f"Exported {result.packets} packets ({result.total_bytes:,} bytes) to {result.folder}.")
            print("They stay in the journal until head office acknowledges them.")
        if result.skipped_corrupt:
            print(f"  skipped (damaged, quarantined): {', '.join(result.skipped_corrupt)}")
    return 0
