"""Open the configured card printer: ``[devices.NAME]`` with ``driver = "evolis"``.

``url`` forms: ``usb:VID`` or ``usb:VID:PID`` (hex; pyusb, printer class), a path such as
``/dev/usb/lp0`` (usblp), or ``emulator`` (the in-process emulated Evolis printer, for the
demo and tests; its printed cards are PNGs in ``EvolisModel.printed``, and also files in the
``output_dir`` option's folder when it is set).
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.config import Config, DeviceConfig, PrinterConfig
from drivers.printer.evolis import EvolisPrinter, PrinterTransport


class PrinterConfigError(ValueError):
    """The printer's device entry cannot be used; names the key."""


def printer_device(cfg: Config) -> tuple[str, DeviceConfig]:
    """The one device with role "printer"."""
    found = [(n, d) for n, d in cfg.devices.items() if d.role == "printer"]
    if not found:
        raise PrinterConfigError('no [devices.NAME] with role = "printer" in the configuration')
    if len(found) > 1:
        raise PrinterConfigError(f"more than one printer configured: {', '.join(n for n, _ in found)}")
    name, dev = found[0]
    if dev.driver != "evolis":
        raise PrinterConfigError(f'[devices.{name}] driver: only "evolis" is supported, got "{dev.driver}"')
    return name, dev


def transport_for(url: str, options: Mapping[str, object] | None = None) -> tuple[PrinterTransport, bool]:
    """The transport for ``url`` and whether it is emulated."""
    if url == "emulator":
        from drivers.emulators.evolis import EVOLIS_VID, EvolisModel, emulated_usb_printer
        from drivers.printer.usb import UsbTransport

        output = (options or {}).get("output_dir")
        backend, _ = emulated_usb_printer(EvolisModel(output_dir=str(output) if output else None))
        return UsbTransport(vid=EVOLIS_VID, backend=backend), True
    if url.startswith("usb:"):
        from drivers.printer.usb import UsbTransport

        parts = url.split(":")[1:]
        try:
            ids = [int(p, 16) for p in parts]
        except ValueError:
            raise PrinterConfigError(f"url {url!r}: expected usb:VID or usb:VID:PID in hex") from None
        if not 1 <= len(ids) <= 2:
            raise PrinterConfigError(f"url {url!r}: expected usb:VID or usb:VID:PID in hex")
        return UsbTransport(vid=ids[0], pid=ids[1] if len(ids) == 2 else None), False
    if url.startswith("/"):
        from drivers.printer.lp import LpTransport

        return LpTransport(url), False
    raise PrinterConfigError(f"url {url!r}: expected usb:VID[:PID], a /dev path, or emulator")


def open_printer(cfg: Config) -> EvolisPrinter:
    """Build and open the configured printer driver."""
    _, dev = printer_device(cfg)
    transport, emulated = transport_for(dev.url, dev.options)
    pcfg: PrinterConfig = cfg.printer
    printer = EvolisPrinter(transport, timeout_s=pcfg.command_timeout_seconds,
                            print_timeout_s=pcfg.print_timeout_seconds,
                            ribbon_low_at=pcfg.ribbon_low_cards, emulated=emulated)
    printer.open()
    return printer
