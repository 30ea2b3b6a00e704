"""The enrollment session as an explicit state table: (state, event) -> next state.

Every pair not in ``TRANSITIONS`` is refused with :class:`InvalidTransition` and leaves the
session where it was (the API answers 409 and nothing changes). ``SEALED``, ``CANCELLED`` and
``EXPIRED`` are terminal. Guards that depend on data (all fingers done before NEXT) live in the
session, not here: the table says what is *possible*, the session what is *ready*.
"""

from __future__ import annotations

from enum import Enum


class State(Enum):
    """Where an enrollment session stands."""

    BIODATA = "biodata"
    FACE = "face"
    FINGERS = "fingers"
    IRISES = "irises"
    SIGNATURE = "signature"
    REVIEW = "review"
    SEALED = "sealed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Event(Enum):
    """What can happen to a session."""

    SET_BIODATA = "set_biodata"
    CAPTURE_FACE = "capture_face"
    CAPTURE_FINGER = "capture_finger"
    CAPTURE_IRIS = "capture_iris"
    CAPTURE_SIGNATURE = "capture_signature"
    RETAKE_FACE = "retake_face"
    RETAKE_FINGER = "retake_finger"
    RETAKE_IRIS = "retake_iris"
    RETAKE_SIGNATURE = "retake_signature"
    EXCEPTION = "exception"
    FORCE_ACCEPT = "force_accept"
    NEXT = "next"
    SEAL = "seal"
    CANCEL = "cancel"
    EXPIRE = "expire"


TERMINAL = frozenset({State.SEALED, State.CANCELLED, State.EXPIRED})
CAPTURE_ORDER = (State.BIODATA, State.FACE, State.FINGERS, State.IRISES, State.SIGNATURE, State.REVIEW)

_RETAKE_FROM = {
    # A retake of an item re-captures it without leaving the current step.
    Event.RETAKE_FACE: State.FACE,
    Event.RETAKE_FINGER: State.FINGERS,
    Event.RETAKE_IRIS: State.IRISES,
    Event.RETAKE_SIGNATURE: State.SIGNATURE,
}


def _build() -> dict[tuple[State, Event], State]:
    t: dict[tuple[State, Event], State] = {
        (State.BIODATA, Event.SET_BIODATA): State.BIODATA,
        (State.FACE, Event.CAPTURE_FACE): State.FACE,
        (State.FACE, Event.FORCE_ACCEPT): State.FACE,
        (State.FINGERS, Event.CAPTURE_FINGER): State.FINGERS,
        (State.FINGERS, Event.EXCEPTION): State.FINGERS,
        (State.FINGERS, Event.FORCE_ACCEPT): State.FINGERS,
        (State.IRISES, Event.CAPTURE_IRIS): State.IRISES,
        (State.IRISES, Event.EXCEPTION): State.IRISES,
        (State.IRISES, Event.FORCE_ACCEPT): State.IRISES,
        (State.SIGNATURE, Event.CAPTURE_SIGNATURE): State.SIGNATURE,
        (State.SIGNATURE, Event.EXCEPTION): State.SIGNATURE,
        (State.SIGNATURE, Event.FORCE_ACCEPT): State.SIGNATURE,
        (State.REVIEW, Event.SEAL): State.SEALED,
        # Biodata can still be corrected at review (a typo found when reading it back).
        (State.REVIEW, Event.SET_BIODATA): State.REVIEW,
    }
    for before, after in zip(CAPTURE_ORDER, CAPTURE_ORDER[1:], strict=False):
        t[(before, Event.NEXT)] = after
    for state in CAPTURE_ORDER:
        t[(state, Event.CANCEL)] = State.CANCELLED
        t[(state, Event.EXPIRE)] = State.EXPIRED
        for retake, home in _RETAKE_FROM.items():
            if CAPTURE_ORDER.index(state) > CAPTURE_ORDER.index(home):
                t[(state, retake)] = state
        if CAPTURE_ORDER.index(state) > CAPTURE_ORDER.index(State.FINGERS):
            # Exceptions and force-accepts of an earlier item may be recorded up to review.
            t.setdefault((state, Event.EXCEPTION), state)
            t.setdefault((state, Event.FORCE_ACCEPT), state)
    return t


TRANSITIONS: dict[tuple[State, Event], State] = _build()


class InvalidTransition(Exception):
    """An event that is not allowed in the current state."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"{event.value} is not allowed in state {state.value}")
        self.state = state
        self.event = event


def next_state(state: State, event: Event) -> State:
    """The state after ``event`` in ``state``; raise :class:`InvalidTransition` when not listed."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state, event) from None
