"""The station daemon: start the owners of each resource, serve until SIGTERM, stop cleanly.

Components are started in order and stopped in reverse. Each one owns a resource (the journal,
a device, the uplink, the HTTP servers) and its own thread(s); see docs/architecture.md.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import IO, Any, Protocol

from agent.config import Config
from agent.logs import setup_logging
from agent.sdnotify import notify, watchdog_interval
from agent.statedir import lock_state_dir, prepare_state_dir

log = logging.getLogger(__name__)


class Component(Protocol):
    """Something the daemon starts and stops."""

    name: str

    def start(self) -> None:
        """Start owning the resource (may start threads)."""

    def stop(self) -> None:
        """Finish or safely abandon current work and release the resource."""

    def healthy(self) -> bool:
        """False when the component's thread is stuck or dead (stops the watchdog)."""

    def status(self) -> str:
        """A short STATUS= fragment (for example "backlog 3")."""


# A component may also have ``after_ready() -> None``: work that need not hold up READY=1 (the
# device manager opens its devices there, and says "initialising" for them until they are open).

# Factories that build the daemon's components from the config; agent/station.py lists them in
# start-up order (journal, devices, enrollment, printing, uplink).
ComponentFactory = Callable[[Config, "Daemon"], Component | None]


class Daemon:
    """The running station."""

    def __init__(self, config: Config, factories: list[ComponentFactory] | None = None) -> None:
        self.config = config
        self.stopping = threading.Event()
        self.components: list[Component] = []
        # Started parts by name, so later parts can find earlier ones (the uplink finds the journal).
        self.parts: dict[str, Any] = {}
        self._factories = factories
        self._lock: IO[bytes] | None = None

    def run(self) -> int:
        """Start everything, notify READY=1, loop until asked to stop; return the exit code."""
        setup_logging(self.config.logging.level)
        state_dir = prepare_state_dir(self.config.state_dir)
        self._lock = lock_state_dir(state_dir)
        from agent.remote import apply_settings

        # Settings head office changed remotely (a short whitelist) apply from this start on.
        self.config = apply_settings(self.config)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        started = time.monotonic()
        try:
            if self._factories is None:
                from agent.station import FACTORIES

                self._factories = list(FACTORIES)
            for factory in self._factories:
                component = factory(self.config, self)
                if component is None:
                    continue
                component.start()
                self.components.append(component)
            notify("READY=1")
            log.info(
                "station %s ready in %.2f s (state %s)",
                self.config.station.id, time.monotonic() - started, state_dir,
            )
            for component in self.components:
                after_ready = getattr(component, "after_ready", None)
                if after_ready is not None:
                    after_ready()
            self._main_loop()
        finally:
            notify("STOPPING=1")
            for component in reversed(self.components):
                try:
                    component.stop()
                except Exception:
                    log.exception("component %s failed to stop cleanly", component.name)
            self._lock.close()
            log.info("station %s stopped", self.config.station.id)
        return 0

    def _main_loop(self) -> None:
        interval = watchdog_interval() or 5.0
        while not self.stopping.wait(min(interval, 5.0)):
            if all(c.healthy() for c in self.components):
                # Only a healthy loop pets the watchdog; a stuck owner lets systemd restart us.
                notify("WATCHDOG=1")
            status = "; ".join(s for c in self.components if (s := c.status()))
            notify(f"STATUS={status or 'running'}")

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("signal %s received, stopping", signal.Signals(signum).name)
        self.stopping.set()
