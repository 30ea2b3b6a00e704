"""Giving freed heap memory back to the OS between captures and sessions (issue 7's memory target)."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

_malloc_trim: Callable[[int], int] | None = None
_malloc_trim_looked_up = False


def trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``; elsewhere a no-op)."""
    # A capture's decoded frames and check buffers are freed when it ends, but glibc keeps the
    # freed pages in its heap: measured, the face step left 4.4 MB held through the rest of the
    # session, and RSS drops 6-8 MB at the seal with this (docs/performance.md, Enrollment).
    # Cost: 0.3-0.4 ms a call on a ~45 MB process (the first also looks up the symbol, ~9 ms).
    global _malloc_trim, _malloc_trim_looked_up
    if not _malloc_trim_looked_up:
        _malloc_trim_looked_up = True
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            log.debug("malloc_trim not available (not glibc): heap not trimmed")
    if _malloc_trim is not None:
        _malloc_trim(0)
