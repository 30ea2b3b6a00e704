"""Hot-plug listener: kernel uevents wake the device manager's absent or faulted devices.

Without it a device plugged back in is noticed only at its owner's next back-off retry (up to
``retry_max_seconds`` later). With it, the kernel's ``add`` event for a USB device, serial port,
camera or input device makes the manager retry at once (``ManagedDevice.rescan``).

One thread (``rekam-hotplug``) owns one ``AF_NETLINK`` / ``NETLINK_KOBJECT_UEVENT`` socket bound
to the kernel's multicast group 1: the same events ``udevadm monitor --kernel`` shows, straight
from the kernel, so the agent needs neither udevd nor libudev. Plugging one USB device makes a
burst of events (the device, each interface, then the tty or video node); the listener waits
until the burst has been quiet for ``debounce_seconds`` and then calls back once.

Where netlink is not available (no permission, a container without it, not Linux) the listener
logs one line and does nothing more: devices are then retried on their back-off timer only.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable, Collection

from firmware_protocols.errors import FrameError
from firmware_protocols.uevent import UEvent, parse_uevent

log = logging.getLogger(__name__)

NETLINK_KOBJECT_UEVENT = 15  # linux/netlink.h; the socket module does not name it
KERNEL_GROUP = 1  # multicast group of the kernel's own uevents (udevd re-sends on group 2)
# The subsystems of the devices Rekam drives: USB scanners, printers and pads (usb), serial
# fingerprint modules (tty), UVC cameras (video4linux), signature pads and pens (input).
DEVICE_SUBSYSTEMS = frozenset({"usb", "tty", "video4linux", "input"})
_RECV_BYTES = 8192  # > the kernel's 2048-byte uevent buffer: a datagram is never cut
_POLL_SECONDS = 0.5  # how soon stop() is noticed
_MAX_BURST_FACTOR = 4  # an endless stream of events still rescans every 4 debounce periods
_RCVBUF_BYTES = 256 * 1024  # a hub of devices plugged at once must not overflow the queue


def open_uevent_socket() -> socket.socket:
    """A netlink socket subscribed to the kernel's uevents; OSError when the system refuses."""
    family = getattr(socket, "AF_NETLINK", None)
    if family is None:
        raise OSError("this system has no netlink sockets (not Linux)")
    sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF_BYTES)
        except OSError:
            pass  # the default buffer still works; only a very large burst could overflow it
        sock.bind((0, KERNEL_GROUP))  # port id 0: the kernel assigns one
    except BaseException:
        sock.close()
        raise
    return sock


def wanted(event: UEvent, subsystems: Collection[str] = DEVICE_SUBSYSTEMS) -> bool:
    """True for an ``add`` of one of ``subsystems``: the only event that can bring a device back."""
    return event.action == "add" and event.subsystem in subsystems


class HotplugListener:
    """The thread that turns kernel ``add`` uevents into one debounced ``on_add()`` call."""

    def __init__(
        self,
        on_add: Callable[[], object],
        *,
        subsystems: Collection[str] = DEVICE_SUBSYSTEMS,
        debounce_seconds: float = 0.5,
        open_socket: Callable[[], socket.socket] = open_uevent_socket,
        on_event: Callable[[UEvent], None] | None = None,
    ) -> None:
        """``on_event`` (tests, diagnostics) sees every wanted event as it arrives."""
        self._on_add = on_add
        self._on_event = on_event
        self._subsystems = frozenset(subsystems)
        self._debounce = debounce_seconds
        self._open_socket = open_socket
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.available = False
        self.received = 0  # wanted events seen (diagnostics)
        self.malformed = 0  # datagrams the codec refused
        self.rescans = 0  # on_add() calls

    def start(self) -> bool:
        """Open the socket and start the thread; False (logged once) when netlink is unavailable."""
        try:
            self._sock = self._open_socket()
        except OSError as exc:
            log.warning("hot-plug events unavailable (%s): unplugged devices are retried on their "
                        "back-off timer only", exc.strerror or exc)
            return False
        self._sock.settimeout(_POLL_SECONDS)
        self.available = True
        self._thread = threading.Thread(target=self._run, name="rekam-hotplug", daemon=True)
        self._thread.start()
        log.info("listening for hot-plug events (%s)", ", ".join(sorted(self._subsystems)))
        return True

    def stop(self) -> None:
        """Stop the thread and close the socket (waits at most one poll interval)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5 * _POLL_SECONDS)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _run(self) -> None:
        sock = self._sock
        if sock is None:
            return
        due: float | None = None  # when the current burst counts as over
        burst_start = 0.0
        while not self._stop.is_set():
            if due is not None:
                wait = due - time.monotonic()
                if wait <= 0:
                    due = None
                    self._fire()
                    continue
                sock.settimeout(min(wait, _POLL_SECONDS))
            else:
                sock.settimeout(_POLL_SECONDS)
            try:
                data = sock.recv(_RECV_BYTES)
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stop.is_set():
                    return
                if exc.errno != errno.ENOBUFS:
                    log.warning("hot-plug listener stopped (%s): unplugged devices are retried on "
                                "their back-off timer only", exc.strerror or exc)
                    self.available = False
                    return
                # The kernel dropped events for us. Some may have been "add"s: rescan rather
                # than lose them.
                log.warning("hot-plug events were dropped (receive buffer full); rescanning")
                due = time.monotonic() + self._debounce
                continue
            if self._handle(data):
                now = time.monotonic()
                if due is None:
                    burst_start = now
                # A quiet gap ends a burst; a burst that never pauses still fires after a bound.
                due = min(now + self._debounce, burst_start + _MAX_BURST_FACTOR * self._debounce)

    def _handle(self, data: bytes) -> bool:
        try:
            event = parse_uevent(data)
        except FrameError as exc:
            self.malformed += 1
            log.debug("ignoring a malformed uevent: %s", exc)
            return False
        if not wanted(event, self._subsystems):
            return False
        self.received += 1
        log.debug("uevent %s %s (%s)", event.action, event.subsystem, event.devpath)
        if self._on_event is not None:
            self._on_event(event)
        return True

    def _fire(self) -> None:
        self.rescans += 1
        try:
            self._on_add()
        except Exception:
            # The listener must outlive a bug in the callback: hot-plug is an optimisation.
            log.exception("hot-plug rescan failed")
