"""Named crash points for the reliability suite (docs/reliability.md).

``REKAM_CRASH_AT=<point>[:<n>]`` makes the process kill itself with SIGKILL the ``n``-th time
(default 1) it passes ``crash_point(<point>)``. Unset, a crash point costs one attribute test.
The points are the instants where a crash is most likely to break a promise:

==================  =============================================================
mid-capture         a capture result arrived, the session has not stored it yet
mid-seal            part of a packet is in the journal's open transaction
commit-to-answer    the journal committed the packet, the API has not answered
mid-chunk           a chunk was handed to paho, the window is not updated yet
after-puback        the broker acknowledged a chunk, the journal does not know
mid-ack             head office's verified ack arrived, not yet marked delivered
mid-print           the card left the printer, the result is not recorded yet
mid-purge           a delivered packet's chunks are being deleted
==================  =============================================================

SIGKILL (not ``os._exit``) so that nothing runs on the way out: no ``finally``, no atexit,
no flush of Python buffers, exactly like the kernel's OOM killer or ``kill -9``.
"""

from __future__ import annotations

import os
import signal

POINTS = ("mid-capture", "mid-seal", "commit-to-answer", "mid-chunk", "after-puback", "mid-ack",
          "mid-print", "mid-purge")
ENV = "REKAM_CRASH_AT"

_target: str | None = None
_remaining = 0


def arm(spec: str | None) -> None:
    """Arm (or with None/"" disarm) the crash point named by ``<point>[:<n>]``."""
    global _target, _remaining
    if not spec:
        _target, _remaining = None, 0
        return
    name, _, count = spec.partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV}: unknown crash point {name!r} (known: {', '.join(POINTS)})")
    _target, _remaining = name, max(1, int(count or "1"))


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when ``name`` is the armed point and its count is reached."""
    global _remaining
    if _target is None or name != _target:
        return
    _remaining -= 1
    if _remaining <= 0:
        os.kill(os.getpid(), signal.SIGKILL)


arm(os.environ.get(ENV))
