"""SVG charts: well-formed for any figures, escaped, and drawing what the figures say."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.diagweb import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    """Parse the chart as XML (fails the test when it is not well-formed)."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def rects(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(f"{SVG}rect"))


def test_service_times_colours_by_standard_and_draws_the_line() -> None:
    sessions: list[dict[str, Any]] = [{"record_seconds": 600, "service_seconds": 840},  # 14 min, printed: within
                {"record_seconds": 700, "service_seconds": 1200},   # 20 min: over
                {"record_seconds": 500, "service_seconds": None}]   # recording only, pale
    root = parse(charts.service_times(sessions, 900))
    bars = rects(root)
    assert [b.get("fill") for b in bars] == [charts.OK_COLOUR, charts.BAD_COLOUR, charts.OK_COLOUR]
    assert bars[2].get("fill-opacity") == "0.55"
    heights = [float(b.get("height") or 0) for b in bars]
    assert heights[1] / heights[0] == pytest.approx(1200 / 840, rel=0.01)
    (line,) = [ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "standard"]
    text = "".join(root.itertext())
    assert "standard 15 min" in text and "3 sessions, 2 within the standard" in text
    assert line.get("stroke-dasharray")


def test_empty_and_garbage_figures_give_an_explanation_not_a_broken_chart() -> None:
    for svg in (charts.service_times([], 900),
                charts.service_times([{"record_seconds": float("nan")}, {"record_seconds": "x"},
                                      {"record_seconds": -5}], 900),
                charts.recordings_per_kelurahan([]),
                charts.backlog([]),
                charts.stock_forecast(None, 5)):
        root = parse(svg)
        assert not rects(root)
        assert "No " in "".join(root.itertext()) or "off" in "".join(root.itertext())


def test_kelurahan_names_are_escaped() -> None:
    evil = '<script>alert(1)</script>"&'
    svg = charts.recordings_per_kelurahan([{"day": "2026-11-28", "by_kelurahan": {evil: 3, "Air Hitam": 2}}])
    assert "<script>" not in svg
    root = parse(svg)
    assert evil[:16] in "".join(root.itertext())
    stacked = [float(r.get("height") or 0) for r in rects(root) if r.get("width") != "10"]
    assert len(stacked) == 2 and math.isclose(stacked[0] / stacked[1], 2 / 3) or math.isclose(stacked[1] / stacked[0], 2 / 3)


def test_backlog_points_follow_the_history() -> None:
    history = [{"day": "2026-11-27", "packets": 0, "bytes": 0}, {"day": "2026-11-28", "packets": 4, "bytes": 4e6},
               {"day": "2026-11-29", "packets": 2, "bytes": 2e6}]
    root = parse(charts.backlog(history))
    ys = [float(c.get("cy") or 0) for c in root.iter(f"{SVG}circle")]
    assert ys[0] > ys[2] > ys[1]  # SVG y grows downwards: 0 lowest, 4 highest


def test_stock_forecast_line_reaches_zero_at_the_forecast_day() -> None:
    root = parse(charts.stock_forecast({"blanks": 100, "rate_per_day": 10, "ribbon_cards_left": 250}, 5,
                                       horizon_days=30))
    text = "".join(root.itertext())
    assert "empty in about 10 days" in text and "ribbon for 250 cards" in text
    (low,) = [r for r in rects(root)]
    assert "low stock" in "".join(low.itertext())
    flat = parse(charts.stock_forecast({"blanks": 40, "rate_per_day": 0}, 5))
    assert "no use recorded yet" in "".join(flat.itertext())


figures = st.one_of(st.none(), st.integers(-10, 10**7), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=5), st.booleans())


@given(st.lists(st.fixed_dictionaries({"record_seconds": figures, "service_seconds": figures}), max_size=30),
       st.integers(1, 7200))
def test_service_times_always_well_formed(sessions: list[dict[str, Any]], standard: int) -> None:
    parse(charts.service_times(sessions, standard))


@given(st.lists(st.fixed_dictionaries({"day": st.text(max_size=12),
                                       "by_kelurahan": st.dictionaries(st.text(max_size=20), figures, max_size=6)}),
                max_size=10))
def test_recordings_always_well_formed(days: list[dict[str, Any]]) -> None:
    parse(charts.recordings_per_kelurahan(days))


@given(st.dictionaries(st.sampled_from(["blanks", "rate_per_day", "ribbon_cards_left", "blank_days"]), figures),
       st.floats(0, 60))
def test_stock_always_well_formed(stock: dict[str, Any], low_days: float) -> None:
    parse(charts.stock_forecast(stock, low_days))
