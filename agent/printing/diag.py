"""Diagnostics checks for printing: blank stock, ribbon, uncertain prints, printer config.

Importing this module registers :func:`printing_checks` with :mod:`agent.diagnostics`. It reads
the journal without recovery (safe beside a running daemon) and does not open the printer,
which the daemon holds; the daemon reports the printer's own status.
"""

from __future__ import annotations

from agent.config import Config
from agent.diagnostics import FAIL, OK, WARN, Check, check


@check
def printing_checks(cfg: Config) -> list[Check]:
    """Stock forecast, uncertain jobs and the printer's device entry."""
    from agent.journal import Journal, JournalError
    from agent.printing.device import PrinterConfigError, printer_device, transport_for
    from agent.printing.queue import PrintQueue
    from agent.printing.stock import StockLedger

    out: list[Check] = []
    if not cfg.printer.enabled:
        return [Check("printing", OK, "disabled ([printer] enabled = false)")]
    try:
        _, dev = printer_device(cfg)
        if dev.url != "emulator":
            transport_for(dev.url)
        out.append(Check("printer config", OK, f"evolis at {dev.url}"))
    except PrinterConfigError as exc:
        out.append(Check("printer config", FAIL, str(exc),
                         "Printer belum diatur; hubungi teknisi.",
                         "No usable printer entry; add [devices.NAME] with role = \"printer\"."))
    try:
        with Journal.open(cfg.state_dir, cfg.journal, recover=False) as journal:
            ledger = StockLedger(journal, window_days=cfg.printer.forecast_window_days,
                                 low_days=cfg.printer.low_stock_days)
            queue = PrintQueue(journal, ledger, station_id=cfg.station.id, recover=False)
            fc = ledger.forecast(queue.queued_count())
            uncertain = queue.jobs(["uncertain"])
    except JournalError as exc:
        return [*out, Check("blank stock", WARN, f"journal not readable: {exc}")]
    low = cfg.printer.low_stock_days
    for name, days, what_id, what_en in (("blank stock", fc.blank_days, "blangko", "blank cards"),
                                         ("ribbon", fc.ribbon_days, "pita", "ribbon")):
        if days is not None and days <= 0:
            out.append(Check(name, FAIL, f"{what_en} used up ({fc.blanks} blanks, {fc.queued} orders waiting)",
                             f"Stok {what_id} habis. Minta kiriman ke Disdukcapil.",
                             f"No {what_en} left. Ask the population office for a delivery."))
        elif days is not None and days < low:
            out.append(Check(name, WARN, f"about {days:.1f} days left at {fc.rate_per_day:.1f} a day",
                             f"Stok {what_id} hampir habis. Minta kiriman sekarang.",
                             f"{what_en.capitalize()} running low. Ask for a delivery now."))
        else:
            left = "no use recorded yet" if days is None else f"about {days:.1f} days left"
            out.append(Check(name, OK, f"{fc.blanks if name == 'blank stock' else fc.ribbon_cards_left} ({left})"))
    if uncertain:
        out.append(Check("uncertain prints", WARN, f"{len(uncertain)} order(s) need a look",
                         "Periksa printer, lalu jalankan `rekam print confirm ORDER --printed|--not-printed`.",
                         "Look in the printer, then run `rekam print confirm ORDER --printed|--not-printed`."))
    else:
        out.append(Check("uncertain prints", OK, "none"))
    return out
