"""Reconnect delays: exponential backoff with full jitter, reset after a stable connection.

Full jitter (a uniform draw between the floor and the current ceiling) spreads thousands of
stations that lost the link at the same moment (a regional outage) over the whole window, so
they do not hammer head office's broker in lock-step when it comes back.
"""

from __future__ import annotations

import random


class Backoff:
    """Delay before the next connect attempt; time is passed in so tests need no clock."""

    def __init__(
        self,
        minimum: float,
        maximum: float,
        *,
        stable_after: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        if minimum <= 0 or maximum < minimum:
            raise ValueError("backoff needs 0 < minimum <= maximum")
        self.minimum = minimum
        self.maximum = maximum
        self.stable_after = stable_after
        self.failures = 0
        self._rng = rng or random.Random()
        self._connected_at: float | None = None

    def ceiling(self) -> float:
        """The largest delay the next draw may return."""
        # Cap the exponent so 2**n cannot overflow a float after months of outage.
        return min(self.maximum, self.minimum * 2.0 ** min(self.failures, 60))

    def next_delay(self) -> float:
        """Count one failed attempt and return how long to wait before the next."""
        delay = self._rng.uniform(self.minimum, self.ceiling())
        self.failures += 1
        return delay

    def connected(self, now: float) -> None:
        """A connection was established at ``now`` (monotonic seconds)."""
        self._connected_at = now

    def disconnected(self, now: float) -> None:
        """The connection ended; forget past failures only if it had been stable."""
        if self._connected_at is not None and now - self._connected_at >= self.stable_after:
            self.failures = 0
        self._connected_at = None

    def reset(self) -> None:
        """Forget past failures (for example on a network-up event)."""
        self.failures = 0
