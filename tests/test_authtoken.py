"""The one token check used by the station API and the diagnostics page."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.authtoken import bearer_matches, token_matches

TOKEN = "a" * 16 + "0123456789abcdef"


def test_bearer_header_forms() -> None:
    assert bearer_matches(f"Bearer {TOKEN}", TOKEN)
    assert bearer_matches(f"Bearer   {TOKEN}  ", TOKEN)
    assert not bearer_matches(None, TOKEN)
    assert not bearer_matches("", TOKEN)
    assert not bearer_matches(TOKEN, TOKEN)  # no scheme
    assert not bearer_matches(f"bearer {TOKEN}", TOKEN)  # the scheme is case-sensitive here
    assert not bearer_matches(f"Basic {TOKEN}", TOKEN)
    assert not bearer_matches("Bearer ", TOKEN)
    assert not bearer_matches(f"Bearer {TOKEN[:-1]}", TOKEN)
    assert not bearer_matches(f"Bearer {TOKEN}x", TOKEN)


def test_empty_never_matches_even_an_empty_token() -> None:
    assert not token_matches("", "")
    assert not token_matches("", TOKEN)
    assert not token_matches(TOKEN, "")


@given(st.text())
def test_any_text_is_refused_without_raising(value: str) -> None:
    # Headers arrive as Latin-1 text, forms as UTF-8 with replacement, and hostile input may hold
    # lone surrogates: none of it may raise, and none but the token itself may match.
    assert token_matches(value, TOKEN) is (value == TOKEN)
    assert bearer_matches(value, TOKEN) is (value.startswith("Bearer ") and value[7:].strip() == TOKEN)
