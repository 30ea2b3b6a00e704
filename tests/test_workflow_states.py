"""The state table: every (state, event) pair either is listed or is refused."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.workflow.states import TERMINAL, TRANSITIONS, Event, InvalidTransition, State, next_state


@given(st.sampled_from(State), st.sampled_from(Event))
def test_every_pair(state: State, event: Event) -> None:
    if (state, event) in TRANSITIONS:
        assert next_state(state, event) == TRANSITIONS[(state, event)]
    else:
        try:
            next_state(state, event)
        except InvalidTransition as exc:
            assert exc.state is state and exc.event is event
        else:
            raise AssertionError("unlisted pair accepted")


def test_terminal_states_accept_nothing() -> None:
    for state in TERMINAL:
        for event in Event:
            assert (state, event) not in TRANSITIONS


def test_cancel_and_expire_from_every_live_state() -> None:
    for state in set(State) - TERMINAL:
        assert next_state(state, Event.CANCEL) is State.CANCELLED
        assert next_state(state, Event.EXPIRE) is State.EXPIRED


def test_happy_path_and_retakes() -> None:
    s = State.BIODATA
    for _ in range(5):
        s = next_state(s, Event.NEXT)
    assert s is State.REVIEW
    for retake in (Event.RETAKE_FACE, Event.RETAKE_FINGER, Event.RETAKE_IRIS, Event.RETAKE_SIGNATURE):
        assert next_state(State.REVIEW, retake) is State.REVIEW
    assert next_state(State.REVIEW, Event.SEAL) is State.SEALED


def test_cannot_skip_or_seal_early() -> None:
    for state in (State.BIODATA, State.FACE, State.FINGERS, State.IRISES, State.SIGNATURE):
        assert (state, Event.SEAL) not in TRANSITIONS
    assert (State.FACE, Event.CAPTURE_FINGER) not in TRANSITIONS
    assert (State.FACE, Event.RETAKE_FINGER) not in TRANSITIONS


@given(st.lists(st.sampled_from(Event), max_size=40))
def test_random_walks_stay_in_the_table(events: list[Event]) -> None:
    state = State.BIODATA
    for event in events:
        try:
            state = next_state(state, event)
        except InvalidTransition:
            continue
        assert state in State
    if state in TERMINAL:
        for event in Event:
            assert (state, event) not in TRANSITIONS
