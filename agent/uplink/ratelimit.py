"""Upload bandwidth cap: a token bucket that may go into debt by one message.

A chunk (256 KiB) is usually larger than the bucket, so the bucket lets one message through
whenever it is not in debt and then charges the whole size; the next send waits until the debt
is paid. Over any long window the bytes sent are at most ``burst + rate * t``, which keeps the
average within a few percent of the cap without splitting MQTT messages.
"""

from __future__ import annotations


class TokenBucket:
    """Bytes-per-second limiter; ``rate`` 0 means unlimited. Time is passed in (monotonic)."""

    def __init__(self, rate: float, *, burst: float | None = None, now: float = 0.0) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0")
        self.rate = float(rate)
        # 50 ms of credit absorbs scheduling jitter; starting empty means the cap holds from
        # the first byte (a fresh connection does not get a free burst on top of B).
        self.burst = float(burst if burst is not None else rate * 0.05)
        self.tokens = 0.0
        self._last = now

    @property
    def unlimited(self) -> bool:
        """True when no cap is set."""
        return self.rate <= 0

    def _refill(self, now: float) -> None:
        if now > self._last:
            self.tokens = min(self.burst, self.tokens + (now - self._last) * self.rate)
        self._last = max(self._last, now)

    def delay(self, now: float) -> float:
        """Seconds until a message may be sent (0 when it may go now)."""
        if self.unlimited:
            return 0.0
        self._refill(now)
        # Within a byte of even: rounding must not produce ever tinier waits.
        if self.tokens > -1.0:
            return 0.0
        return -self.tokens / self.rate

    def consume(self, nbytes: int, now: float) -> None:
        """Charge ``nbytes`` that were just sent (may leave the bucket in debt)."""
        if self.unlimited:
            return
        self._refill(now)
        self.tokens -= nbytes

    def set_rate(self, rate: float, now: float) -> None:
        """Change the cap at run time (a head-office command may do this)."""
        self._refill(now)
        self.rate = float(max(rate, 0))
        self.burst = self.rate * 0.05
        self.tokens = min(self.tokens, self.burst)
