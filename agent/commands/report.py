"""``rekam report --month 2026-11 [--out FILE.csv]``: the office's indicators as CSV."""

from __future__ import annotations

import argparse

HELP = "the five office indicators per day and month, per operator and station, as CSV"


def configure(parser: argparse.ArgumentParser) -> None:
    """Options --month, --out, --no-daily."""
    parser.add_argument("--month", required=True, metavar="YYYY-MM", help="the month to report, e.g. 2026-11")
    parser.add_argument("--out", metavar="FILE.csv", help="write to this file (default: standard output)")
    parser.add_argument("--no-daily", action="store_true", help="only the month's totals, not each day")


def run(args: argparse.Namespace) -> int:
    """Compute and write the report."""
    import os
    import sys
    from pathlib import Path

    from agent.cli import CliError
    from agent.config import config_path, load_config
    from agent.journal import Journal, JournalError
    from agent.operators import csvreport
    from agent.operators.errors import OperatorError
    from agent.operators.indicators import Indicators, Period

    cfg = load_config(config_path(getattr(args, "config", None)))
    try:
        if len(args.month) != 7:
            raise CliError(f"--month {args.month[:20]!r}: expected YYYY-MM, e.g. 2026-11")
        Period.parse(args.month)
        with Journal.open(cfg.state_dir, cfg.journal, recover=False) as journal:
            indicators = Indicators(journal, cfg)
            if args.out:
                out = Path(args.out)
                tmp = out.with_name(out.name + ".tmp")
                with open(tmp, "w", encoding="utf-8", newline="") as fh:
                    n = csvreport.write(fh, indicators, args.month, station_id=cfg.station.id,
                                        daily=not args.no_daily)
                os.replace(tmp, out)
                print(f"{n} rows -> {out}", file=sys.stderr)
            else:
                csvreport.write(sys.stdout, indicators, args.month, station_id=cfg.station.id,
                                daily=not args.no_daily)
    except OperatorError as exc:
        raise CliError(exc.message_en) from None
    except JournalError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{args.out}: {exc.strerror}") from None
    return 0
