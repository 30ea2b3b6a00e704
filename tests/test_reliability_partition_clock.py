"""Partitions of hours, on a simulated clock (issue 11): the reconnect schedule stays bounded.

A real six-hour outage cannot run in CI. What decides how a station behaves through one is its
reconnect schedule (agent/uplink/backoff.py, time passed in) and the station's configured bounds;
the journal holds the backlog on disk whatever the outage's length (tests/test_reliability_link.py
and tests/test_reliability_netns.py drain real backlogs after real, shorter partitions).
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import UplinkConfig
from agent.uplink.backoff import Backoff

CONNECT_TIMEOUT = 10.0  # a refused or black-holed connect attempt costs at most this


def _partition(b: Backoff, outage_s: float) -> tuple[int, float, float]:
    """Attempts during the outage, the longest gap between attempts, the wait after it ends."""
    now, attempts, longest = 0.0, 0, 0.0
    while True:
        delay = b.next_delay()
        longest = max(longest, delay)
        now += delay
        if now >= outage_s:
            return attempts, longest, now - outage_s
        attempts += 1
        now += CONNECT_TIMEOUT


@settings(max_examples=200, deadline=None)
@given(outage_s=st.floats(min_value=1.0, max_value=6 * 3600.0), seed=st.integers(0, 2**32 - 1))
def test_an_outage_of_any_length_is_retried_at_a_bounded_pace(outage_s: float, seed: int) -> None:
    cfg = UplinkConfig()
    b = Backoff(cfg.reconnect_min_seconds, cfg.reconnect_max_seconds, rng=random.Random(seed))
    attempts, longest, late = _partition(b, outage_s)
    # Never a gap longer than the configured maximum, so the link is found again within it (plus
    # the attempt that was under way when it came back) ...
    assert longest <= cfg.reconnect_max_seconds
    assert late <= cfg.reconnect_max_seconds + CONNECT_TIMEOUT
    # ... and never a storm: at most one attempt per minimum delay plus connect timeout.
    assert attempts <= outage_s / (cfg.reconnect_min_seconds + CONNECT_TIMEOUT) + 1


def test_six_hour_outage_then_a_stable_link_resets_the_schedule() -> None:
    cfg = UplinkConfig()
    b = Backoff(cfg.reconnect_min_seconds, cfg.reconnect_max_seconds, stable_after=60.0, rng=random.Random(7))
    attempts, _, _ = _partition(b, 6 * 3600.0)
    assert b.ceiling() == cfg.reconnect_max_seconds
    # The exponent is capped: months of failures never overflow the ceiling.
    b.failures = 10**9
    assert b.ceiling() == cfg.reconnect_max_seconds
    b.failures = attempts
    b.connected(100_000.0)
    b.disconnected(100_000.0 + 120.0)  # two stable minutes: the next outage starts small again
    assert b.failures == 0 and b.ceiling() == cfg.reconnect_min_seconds
