"""Printer status model and the errors of a print job, mapped from Evolis ASCII replies.

States follow the Evolis SDK's status-word names as a *model* only; every state here is
derived from Rev. E ASCII replies (``Rlr``, ``Rcr``, ``Rco;l``) or NACK codes. No binary
status command is ever sent (it is not public). ``HEAD_TEMPERATURE`` exists for an SDK
adapter and is never produced from Rev. E replies, which have no such report.

    DeviceFaultError
     +-- PrinterFaultError         the printer refused a step; ``state``, ``step``, ``card_consumed``
          +-- PrinterMediaError    feeder empty, ribbon ended, cover open: the operator fixes it
          +-- PrinterJamError      card jam or mechanical time-out: the card is spoiled
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from drivers.errors import DeviceFaultError


class PrinterState(enum.Enum):
    """One condition of the printer; a status holds a set of them."""

    READY = "ready"
    BUSY = "busy"
    PRINTING = "printing"
    COVER_OPEN = "cover_open"
    FEEDER_EMPTY = "feeder_empty"
    RIBBON_LOW = "ribbon_low"
    RIBBON_ENDED = "ribbon_ended"
    CARD_JAM = "card_jam"
    NEEDS_CLEANING = "needs_cleaning"
    HEAD_TEMPERATURE = "head_temperature"
    UNKNOWN = "unknown"


# States that stop printing (RIBBON_LOW and NEEDS_CLEANING only warn).
BLOCKING: frozenset[PrinterState] = frozenset({
    PrinterState.COVER_OPEN, PrinterState.FEEDER_EMPTY, PrinterState.RIBBON_ENDED,
    PrinterState.CARD_JAM, PrinterState.HEAD_TEMPERATURE, PrinterState.UNKNOWN,
})

# NACK code (guide §5) -> state.
NACK_STATE: dict[str, PrinterState] = {
    "C": PrinterState.COVER_OPEN,
    "F": PrinterState.FEEDER_EMPTY,
    "R": PrinterState.RIBBON_ENDED,
    "T": PrinterState.CARD_JAM,
}

# Plain-language hints per state (Indonesian, English).
HINTS: dict[PrinterState, tuple[str, str]] = {
    PrinterState.COVER_OPEN: ("Tutup penutup printer.", "Close the printer cover."),
    PrinterState.FEEDER_EMPTY: ("Isi blangko kartu ke dalam feeder.", "Load blank cards into the feeder."),
    PrinterState.RIBBON_ENDED: ("Pita habis atau tidak terpasang. Ganti pita.", "Ribbon ended or missing. Replace the ribbon."),
    PrinterState.RIBBON_LOW: ("Pita hampir habis. Siapkan pita baru.", "Ribbon nearly used up. Have a new ribbon ready."),
    PrinterState.CARD_JAM: ("Kartu macet. Buka penutup, keluarkan kartu, tutup kembali.", "Card jam. Open the cover, remove the card, close it."),
    PrinterState.NEEDS_CLEANING: ("Printer perlu dibersihkan (kartu pembersih).", "The printer needs cleaning (cleaning card)."),
    PrinterState.HEAD_TEMPERATURE: ("Kepala cetak terlalu panas. Tunggu beberapa menit.", "Print head too hot. Wait a few minutes."),
    PrinterState.UNKNOWN: ("Printer melaporkan kesalahan. Matikan lalu nyalakan printer.", "The printer reported an error. Switch it off and on."),
    PrinterState.BUSY: ("Printer sibuk. Tunggu sebentar.", "Printer busy. Please wait."),
    PrinterState.PRINTING: ("Printer sedang mencetak.", "The printer is printing."),
    PrinterState.READY: ("Printer siap.", "Printer ready."),
}


@dataclass(frozen=True)
class PrinterStatus:
    """What the printer reported: its states and the cards left on the ribbon (``Rco;l``)."""

    states: frozenset[PrinterState]
    ribbon_cards_left: int | None = None

    @property
    def ready(self) -> bool:
        """True when nothing blocks a print job."""
        return not (self.states & BLOCKING)

    def as_dict(self) -> dict[str, object]:
        """JSON form for diagnostics and telemetry."""
        return {
            "states": sorted(s.value for s in self.states),
            "ready": self.ready,
            "ribbon_cards_left": self.ribbon_cards_left,
        }


def status_from_replies(
    *, last_card: str, last_cleaning: str, ribbon_mark: str, ribbon_left: str, ribbon_low_at: int
) -> PrinterStatus:
    """Combine the Rev. E replies of ``Rlr;p``, ``Rlr;r``, ``Rcr`` and ``Rco;l`` into a status."""
    states: set[PrinterState] = set()
    card = last_card.strip().upper()
    if card == "NO CARD":
        states.add(PrinterState.FEEDER_EMPTY)
    elif card == "ERR CARD":
        states.add(PrinterState.CARD_JAM)
    elif card not in ("", "OK", "CARD"):
        states.add(PrinterState.UNKNOWN)
    if last_cleaning.strip().upper() == "ERR NEED CLEANING":
        states.add(PrinterState.NEEDS_CLEANING)
    # Rcr answers OK unless the ribbon sits on its black end mark.
    if ribbon_mark.strip().upper() != "OK":
        states.add(PrinterState.RIBBON_ENDED)
    left: int | None
    try:
        left = int(ribbon_left.strip())
    except ValueError:
        left = None
    if left is not None:
        if left <= 0:
            states.add(PrinterState.RIBBON_ENDED)
        elif left <= ribbon_low_at:
            states.add(PrinterState.RIBBON_LOW)
    if not states & BLOCKING:
        states.add(PrinterState.READY)
    return PrinterStatus(frozenset(states), left)


class PrinterFaultError(DeviceFaultError):
    """The printer refused a step of a job (or a query) with a NACK or an error reply.

    ``card_consumed`` says whether a blank card was taken from the feeder: True (it is spoiled
    or printed), False (no card left the feeder), None (cannot tell: the operator must look).
    """

    def __init__(self, message: str, *, state: PrinterState, step: str = "",
                 card_consumed: bool | None = None, code: str | None = None) -> None:
        hint_id, hint_en = HINTS.get(state, HINTS[PrinterState.UNKNOWN])
        super().__init__(message, code=code, hint_id=hint_id, hint_en=hint_en, device="printer")
        self.state = state
        self.step = step
        self.card_consumed = card_consumed


class PrinterMediaError(PrinterFaultError):
    """Feeder empty, ribbon ended or cover open: the operator fixes the media and retries."""


class PrinterJamError(PrinterFaultError):
    """A card jam or mechanical time-out: the card in the printer is spoiled."""


def fault_for_nack(code: str, *, step: str, card_consumed: bool | None) -> PrinterFaultError:
    """The error a NACK code means at a given step of a job."""
    state = NACK_STATE.get(code, PrinterState.UNKNOWN)
    message = f"printer refused {step}: NACK {code}"
    if state is PrinterState.CARD_JAM:
        return PrinterJamError(message, state=state, step=step, card_consumed=True, code=code)
    if state in (PrinterState.COVER_OPEN, PrinterState.FEEDER_EMPTY, PrinterState.RIBBON_ENDED):
        return PrinterMediaError(message, state=state, step=step, card_consumed=card_consumed, code=code)
    return PrinterFaultError(message, state=state, step=step, card_consumed=card_consumed, code=code)


def card_consumed_of(exc: BaseException) -> bool | None:
    """Whether a failed job took a blank card: the driver marks every error a job raises.

    Errors that are not printer faults (timeouts, unplugs) cannot carry the field in their
    class, so the driver sets it as an attribute; unmarked errors count as "cannot tell".
    """
    value = getattr(exc, "card_consumed", None)
    return value if isinstance(value, bool) else None
