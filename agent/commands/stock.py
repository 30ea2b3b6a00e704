"""``rekam stock add|recount|show``: the blank-card ledger."""

from __future__ import annotations

import argparse
import json

HELP = "book blank-card deliveries and recounts, or show stock and the forecast"


def configure(parser: argparse.ArgumentParser) -> None:
    """Sub-actions add, recount and show."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                parser_class=type(parser))
    add = sub.add_parser("add", help="book a delivery of blank cards")
    add.add_argument("count", type=int, help="cards delivered")
    add.add_argument("--batch", required=True, help="batch or delivery note number")
    add.add_argument("--by", metavar="STAFF_ID", help="staff id of whoever books it (audit trail)")
    recount = sub.add_parser("recount", help="set the stock to a counted number, with a reason")
    recount.add_argument("count", type=int, help="cards counted")
    recount.add_argument("--reason", required=True, help="why the count differs (kept in the ledger)")
    recount.add_argument("--by", metavar="STAFF_ID", help="staff id of whoever counted (audit trail)")
    show = sub.add_parser("show", help="stock, ribbon, forecast and the latest ledger entries")
    show.add_argument("--json", action="store_true", help="print JSON for scripts")
    for p in (add, recount, show):
        p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                       help="configuration file (default: $REKAM_CONFIG, else /etc/rekam/agent.toml)")


def run(args: argparse.Namespace) -> int:
    """Apply the action to the ledger in the journal."""
    from agent.cli import CliError
    from agent.config import config_path, load_config
    from agent.journal import Journal, JournalError
    from agent.operators.audit import audit_cli_action
    from agent.printing.queue import PrintQueue
    from agent.printing.stock import StockError, StockLedger

    cfg = load_config(config_path(getattr(args, "config", None)))
    lang = cfg.station.language
    try:
        # recover=False: a running daemon owns packet states; the ledger is ours to append to.
        with Journal.open(cfg.state_dir, cfg.journal, recover=False) as journal:
            ledger = StockLedger(journal, window_days=cfg.printer.forecast_window_days,
                                 low_days=cfg.printer.low_stock_days)
            queue = PrintQueue(journal, ledger, station_id=cfg.station.id, recover=False)
            if args.action == "add":
                total = ledger.add_delivery(args.count, args.batch)
                audit_cli_action(journal, cfg.station.timezone, "stock.add", "ok", operator_id=args.by,
                                 details={"count": args.count, "balance": total})
                released = queue.release_waiting()
                print(f"Stok blangko: {total}" if lang == "id" else f"Blank cards in stock: {total}")
                if released:
                    print(f"{released} order menunggu stok kini siap dicetak." if lang == "id"
                          else f"{released} orders waiting for stock are ready to print.")
                ledger.check_alerts(queue.queued_count())
                return 0
            if args.action == "recount":
                total = ledger.recount(args.count, args.reason)
                audit_cli_action(journal, cfg.station.timezone, "stock.recount", "ok", operator_id=args.by,
                                 details={"count": args.count})
                print(f"Stok blangko: {total}" if lang == "id" else f"Blank cards in stock: {total}")
                ledger.check_alerts(queue.queued_count())
                return 0
            fc = ledger.forecast(queue.queued_count())
            entries = list(ledger.entries(10))
    except StockError as exc:
        raise CliError(str(exc)) from None
    except JournalError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps({"forecast": fc.as_dict(), "entries": entries}, indent=2))
        return 0
    d = fc.as_dict()

    def days(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    print(f"blanks in stock      {d['blanks']}")
    print(f"orders waiting       {d['queued_orders']}")
    print(f"ribbon cards left    {d['ribbon_cards_left'] if d['ribbon_cards_left'] is not None else '-'}")
    print(f"use per day          {d['rate_per_day']}")
    print(f"days of blanks left  {days(d['blank_days'])}  (warn under {cfg.printer.low_stock_days})")
    print(f"days of ribbon left  {days(d['ribbon_days'])}")
    print("latest entries:")
    for e in entries:
        extra = e.get("batch") or e.get("reason") or e.get("order_id") or ""
        print(f"  {e['at']}  {e['kind']:<9} {e['delta']:+5d}  -> {e['balance']:<6} {extra}")
    return 0
