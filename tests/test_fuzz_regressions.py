"""Every input that once broke a parser (tests/fixtures/fuzz/<target>/) still runs clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.targets import TARGETS

FIXTURES = Path(__file__).parent / "fixtures" / "fuzz"
CASES = sorted(p for p in FIXTURES.glob("*/*") if p.is_file())


def test_every_fixture_names_a_target() -> None:
    assert CASES, "no regression inputs found"
    assert {p.parent.name for p in CASES} <= set(TARGETS)


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_regression_input(case: Path) -> None:
    TARGETS[case.parent.name](case.read_bytes())


def test_broken_png_is_refused_as_an_order_rejection() -> None:
    """The bug the card_image fixture found, through the order parser head office's orders use."""
    import base64

    from agent.printing.orders import OrderRejectedError, order_from_body
    from fuzz.targets import _order_sample

    body = _order_sample()
    body["photo"] = base64.b64encode((FIXTURES / "card_image" / "broken-png-chunk-syntaxerror.png").read_bytes()).decode()
    with pytest.raises(OrderRejectedError):
        order_from_body(body)
