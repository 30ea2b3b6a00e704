"""Driver against the emulated printer as a Hypothesis state machine.

Invariant: a job never reports success while the printer is in an error state, every success
ejects exactly one card, and a refused job tells the truth about whether a card was fed.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from drivers.emulators.evolis import EVOLIS_VID, emulated_usb_printer
from drivers.printer.evolis import EvolisPrinter
from drivers.printer.status import PrinterFaultError, PrinterState
from drivers.printer.usb import UsbTransport
from firmware_protocols import evolis as ev

BLANK_K = ev.PanelData("k", 2, np.zeros(ev.PANEL_PIXELS, dtype=np.uint8))


class PrinterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.backend, self.emu = emulated_usb_printer()
        self.model = self.emu.model
        self.model.render = False  # the PNG is tested elsewhere; here only the count matters
        self.model.cards = 2
        self.model.ribbon_left = 3
        self.drv = EvolisPrinter(UsbTransport(vid=EVOLIS_VID, backend=self.backend), timeout_s=0.5)
        self.drv.open()
        self.printed = 0

    @rule(n=st.integers(1, 3))
    def load_cards(self, n: int) -> None:
        self.model.cards += n

    @rule()
    def remove_cards(self) -> None:
        self.model.cards = 0

    @rule()
    def open_cover(self) -> None:
        self.model.cover_open = True

    @rule()
    def close_cover(self) -> None:
        self.model.cover_open = False

    @rule()
    def jam(self) -> None:
        self.model.jammed = True

    @rule()
    def clear_jam(self) -> None:
        self.model.jammed = False

    @rule(n=st.integers(0, 3))
    def load_ribbon(self, n: int) -> None:
        self.model.ribbon_left = n

    @rule()
    def print_card(self) -> None:
        ready = (not self.model.cover_open and not self.model.jammed and self.model.cards > 0
                 and self.model.ribbon_left > 0)
        cards_before = self.model.cards
        try:
            self.drv.print_job(ev.job_frames([BLANK_K], ribbon="k"))
        except PrinterFaultError as exc:
            assert not ready
            fed = self.model.cards < cards_before
            if exc.card_consumed is None:
                # Only a jam reported at insertion is ambiguous, and then no card moved here.
                assert exc.state is PrinterState.CARD_JAM and exc.step == "Ss" and not fed
            else:
                assert exc.card_consumed is fed
            assert exc.state in (PrinterState.COVER_OPEN, PrinterState.CARD_JAM,
                                 PrinterState.FEEDER_EMPTY, PrinterState.RIBBON_ENDED)
        else:
            assert ready
            self.printed += 1

    @precondition(lambda self: True)
    @rule()
    def read_status(self) -> None:
        st_ = self.drv.status()
        if self.model.jammed:
            assert PrinterState.CARD_JAM in st_.states and not st_.ready
        if self.model.cards <= 0 and not self.model.jammed:
            assert PrinterState.FEEDER_EMPTY in st_.states and not st_.ready

    @invariant()
    def one_png_per_success(self) -> None:
        assert len(self.model.printed) == self.printed

    def teardown(self) -> None:
        self.drv.close()


TestPrinterMachine = PrinterMachine.TestCase
