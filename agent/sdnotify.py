"""The sd_notify protocol, spoken directly (one datagram to $NOTIFY_SOCKET)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


def notify(message: str) -> bool:
    """Send ``message`` (e.g. "READY=1") to systemd; False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when not asked."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


@contextmanager
def extending_start(budget: float, status: str, every: float = 10.0) -> Iterator[None]:
    """Keep systemd's start timeout from expiring while the block runs, for at most ``budget`` s.

    A thread sends ``EXTEND_TIMEOUT_USEC`` (three periods) and ``STATUS`` every ``every``
    seconds. After ``budget`` seconds it stops, so a start that hangs is still killed: systemd
    then times the start out one extension (3 x ``every``) after the last message.
    """
    if not os.environ.get("NOTIFY_SOCKET"):
        yield
        return
    done = threading.Event()

    def extend() -> None:
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            notify(f"EXTEND_TIMEOUT_USEC={int(every * 3_000_000)}\nSTATUS={status}")
            if done.wait(every):
                return

    thread = threading.Thread(target=extend, name="sd-extend-start", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
