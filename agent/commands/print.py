"""``rekam print test-card|queue|confirm``: the operator's printing tasks."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config import Config
    from agent.operators.audit import audit_cli_action
    from agent.printing.stock import StockLedger

HELP = "print a test card, show the print queue, or confirm an uncertain print"


def configure(parser: argparse.ArgumentParser) -> None:
    """Sub-actions test-card, queue and confirm."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                parser_class=type(parser))
    test = sub.add_parser("test-card", help="print the sample card (uses one blank)")
    test.add_argument("--png", metavar="FILE",
                      help="also write the rendered card as PNG")
    queue = sub.add_parser("queue", help="print orders and their states")
    queue.add_argument("--all", action="store_true", help="include printed and failed orders")
    queue.add_argument("--json", action="store_true", help="print JSON for scripts")
    confirm = sub.add_parser("confirm", help="say whether a card came out for an uncertain order")
    confirm.add_argument("order", metavar="ORDER", help="order id")
    which = confirm.add_mutually_exclusive_group(required=True)
    which.add_argument("--printed", action="store_true", help="a good card came out")
    which.add_argument("--not-printed", action="store_true", help="no usable card came out")
    confirm.add_argument("--by", metavar="STAFF_ID", help="staff id of whoever checked the printer (audit trail)")
    confirm.add_argument("--card-spoiled", action="store_true",
                         help="with --not-printed: a blank was used up (jammed or misprinted)")
    for p in (test, queue, confirm):
        p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                       help="configuration file (default: $REKAM_CONFIG, else /etc/rekam/agent.toml)")


def run(args: argparse.Namespace) -> int:
    """Run the chosen action."""
    from agent.cli import CliError
    from agent.config import config_path, load_config
    from agent.journal import Journal, JournalError
    from agent.printing.queue import PrintQueue, QueueError
    from agent.printing.stock import StockLedger

    cfg = load_config(config_path(getattr(args, "config", None)))
    try:
        with Journal.open(cfg.state_dir, cfg.journal, recover=False) as journal:
            ledger = StockLedger(journal, window_days=cfg.printer.forecast_window_days,
                                 low_days=cfg.printer.low_stock_days)
            queue = PrintQueue(journal, ledger, station_id=cfg.station.id,
                               max_attempts=cfg.printer.max_attempts, recover=False)
            if args.action == "test-card":
                return _test_card(args, cfg, ledger)
            if args.action == "confirm":
                if args.printed and args.card_spoiled:
                    raise CliError("--card-spoiled goes with --not-printed only")
                view = queue.confirm(args.order, printed=bool(args.printed),
                                     card_spoiled=bool(args.card_spoiled))
                audit_cli_action(journal, cfg.station.timezone, "print.confirm",
                                 "printed" if args.printed else "not_printed", operator_id=args.by,
                                 details={"order_id": view.order_id, "state": view.state})
                print(f"order {view.order_id}: {view.state}")
                return 0
            states = None if args.all else ["received", "waiting_stock", "printing", "uncertain"]
            jobs = queue.jobs(states, limit=500)
    except QueueError as exc:
        raise CliError(str(exc)) from None
    except JournalError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps([j.as_dict() for j in jobs], indent=2))
        return 0
    if not jobs:
        print("Tidak ada order cetak." if cfg.station.language == "id" else "No print orders.")
        return 0
    for j in jobs:
        print(f"{j.order_id:<40} {j.state:<14} attempts {j.attempts} spoiled {j.spoiled}"
              f"  {j.reason or ''}")
    if any(j.state == "uncertain" for j in jobs):
        print("-> uncertain: look in the printer, then run"
              " `rekam print confirm ORDER --printed` or `--not-printed`.")
    return 0


def _test_card(args: argparse.Namespace, cfg: Config, ledger: StockLedger) -> int:
    from pathlib import Path

    from agent.cli import CliError
    from agent.printing.device import PrinterConfigError, open_printer
    from agent.printing.render import render_card, to_panels
    from agent.printing.samples import sample_card
    from drivers.errors import DeviceError
    from firmware_protocols import evolis as ev

    rendered = render_card(sample_card())
    if args.png:
        Path(args.png).write_bytes(rendered.preview_png())
    try:
        printer = open_printer(cfg)
    except PrinterConfigError as exc:
        raise CliError(str(exc)) from None
    except DeviceError as exc:
        raise CliError(f"{exc} ({exc.hint('en')})") from None
    try:
        printer.print_job(ev.job_frames(to_panels(rendered).panel_data()))
    except DeviceError as exc:
        raise CliError(f"test card failed: {exc} ({exc.hint('en')})") from None
    finally:
        printer.close()
    ledger.record_test()
    print("Test card printed.")
    return 0
