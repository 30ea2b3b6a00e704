"""The device manager: one owner thread per configured device, its state, hotplug and self-test.

Each ``[devices.NAME]`` entry of the configuration becomes a :class:`ManagedDevice`: a driver
built through ``drivers.registry`` and a thread that alone touches it (docs/architecture.md).
Other threads ask for work with :meth:`DeviceManager.call` (or the capture helpers); the owner
runs one job at a time, and a second caller while one runs gets :class:`DeviceBusyError` at once
instead of queueing behind a person's finger.

Connection state is a table (STYLE.md §6)::

    absent --open--> initialising --opened--> ready --job--> busy --done--> ready
    initialising/ready/busy --lost--> absent        (DeviceMissingError)
    initialising/ready/busy --fault--> faulted      (any other DeviceError)
    absent/faulted --open--> initialising           (after a capped, doubling back-off)

A device that disappears is logged once ("absent"), retried quietly with capped exponential
back-off, and logged once when it is back ("back"). A capture running when the cable comes out
fails with :class:`DeviceLostError`, whose hint tells the operator what to do. On a fault the
device's recent frames are dumped at TRACE (drivers elide image and template payloads).

Drivers may offer ``health() -> None`` (raising ``DeviceError``); the owner calls it every
``probe_seconds`` while idle so an unplugged, idle device is noticed without a capture. Drivers
may expose ``frame_log`` or ``frames`` (a ``drivers.base.FrameLog``) for the fault dump.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from agent.config import Config, DeviceConfig
from agent.diagnostics import FAIL, OK, WARN, Check
from agent.hotplug import HotplugListener
from agent.logs import TRACE
from drivers import registry
from drivers.base import Device, DeviceIdentity, FrameLog, SelfTestResult
from drivers.errors import (
    DeviceError,
    DeviceFaultError,
    DeviceMissingError,
    DeviceTimeoutError,
    UserRetryError,
)
from drivers.fingerprint.base import (
    CaptureArgumentError,
    CaptureNotSupportedError,
    FingerCapture,
    FingerPosition,
    FingerprintScanner,
    Slap,
    SlapCapture,
)

if TYPE_CHECKING:
    from agent.daemon import Daemon

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that say the request was wrong, not the device: it stays ready.
_CALLER_ERRORS = (CaptureNotSupportedError, CaptureArgumentError)
_JOIN_SECONDS = 5.0  # how long stop() waits for an owner to finish its current step
_RESULT_MARGIN_SECONDS = 10.0  # beyond a job's own timeout: image transfer and decoding


class DeviceState(enum.StrEnum):
    """Where a device is in its life."""

    ABSENT = "absent"
    INITIALISING = "initialising"
    READY = "ready"
    BUSY = "busy"
    FAULTED = "faulted"


class DeviceEvent(enum.StrEnum):
    """What happens to a device (inputs of the state table)."""

    OPEN = "open"
    OPENED = "opened"
    JOB = "job"
    DONE = "done"
    LOST = "lost"
    FAULT = "fault"


S, E = DeviceState, DeviceEvent
TRANSITIONS: Mapping[tuple[DeviceState, DeviceEvent], DeviceState] = {
    (S.ABSENT, E.OPEN): S.INITIALISING,
    (S.FAULTED, E.OPEN): S.INITIALISING,
    (S.INITIALISING, E.OPENED): S.READY,
    (S.INITIALISING, E.LOST): S.ABSENT,
    (S.INITIALISING, E.FAULT): S.FAULTED,
    (S.READY, E.JOB): S.BUSY,
    (S.READY, E.LOST): S.ABSENT,
    (S.READY, E.FAULT): S.FAULTED,
    (S.BUSY, E.DONE): S.READY,
    (S.BUSY, E.LOST): S.ABSENT,
    (S.BUSY, E.FAULT): S.FAULTED,
}


class InvalidTransitionError(RuntimeError):
    """A (state, event) pair the table does not list: a bug in the manager, never the device."""


def next_state(state: DeviceState, event: DeviceEvent) -> DeviceState:
    """The state after ``event`` in ``state``; InvalidTransitionError for unlisted pairs."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransitionError(f"no transition from {state} on {event}") from None


class DeviceBusyError(DeviceError):
    """The device is already running a job for someone else."""

    hint_id = "Perangkat sedang dipakai. Tunggu sampai selesai, lalu coba lagi."
    hint_en = "The device is in use. Wait until it finishes, then try again."


class DeviceUnavailableError(DeviceMissingError):
    """The device is not ready (absent, starting or faulted); the manager is retrying it."""


class DeviceLostError(DeviceMissingError):
    """The device vanished while a capture was running; the capture is void."""

    hint_id = (
        "Perangkat terlepas saat pengambilan. Sambungkan kembali kabelnya, tunggu lampu menyala, "
        "lalu ulangi pengambilan."
    )
    hint_en = (
        "The device was disconnected during the capture. Plug the cable back in, wait for the "
        "light, then capture again."
    )


def _error_dict(exc: BaseException) -> dict[str, str]:
    out = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, DeviceError):
        out["hint_id"] = exc.hint_id
        out["hint_en"] = exc.hint_en
        code = getattr(exc, "code", None)
        if code is not None:
            out["code"] = str(code)
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class _Job(Generic[T]):
    label: str
    fn: Callable[[Device, threading.Event], T]
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None


class ManagedDevice:
    """One configured device, its driver and the thread that owns it."""

    def __init__(
        self,
        name: str,
        config: DeviceConfig,
        *,
        factory: Callable[[DeviceConfig], Device] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._factory: Callable[[DeviceConfig], Device] = factory or registry.build
        self._state = DeviceState.ABSENT
        self._since = _now()
        self._last_error: dict[str, str] | None = None
        self._identity: DeviceIdentity | None = None
        self._capabilities: dict[str, object] | None = None
        self._driver: Device | None = None
        # One job at most (the slot guarantees it) plus room for stop()'s wake-up sentinel.
        self._jobs: queue.Queue[_Job[Any] | None] = queue.Queue(maxsize=2)
        self._slot = threading.Lock()  # held from submit until the owner finishes the job
        self._current: _Job[Any] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        # Cleared by DeviceManager(defer_open=True): the owner says "initialising" and waits for
        # DeviceManager.after_ready(), so opening (driver imports, emulators) never delays READY=1.
        self._may_open = threading.Event()
        self._may_open.set()
        self._state_lock = threading.Lock()
        self._announced_down = False  # one "absent"/"faulted" line per episode
        self._ever_ready = False
        self.ops = FrameLog(size=32)  # what the manager asked of the driver, for fault dumps
        self._last_frames: FrameLog | None = None  # the closed driver's frames, for the dump
        self.counters = {
            "opens": 0,
            "open_failures": 0,
            "jobs": 0,
            "user_retries": 0,
            "faults": 0,
            "lost": 0,
        }
        self._beat = time.monotonic()  # owner loop heartbeat, for the watchdog
        self._thread = threading.Thread(target=self._run, name=f"rekam-dev-{name}", daemon=True)

    # ----------------------------------------------------------------- public

    @property
    def state(self) -> DeviceState:
        """Current state."""
        with self._state_lock:
            return self._state

    def start(self) -> None:
        """Start the owner thread (it opens the device)."""
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the owner to stop: cancel the current job and wake it; does not wait."""
        self._stop.set()
        self._wake.set()
        self._may_open.set()
        try:
            self._jobs.put_nowait(None)  # wakes an idle owner now instead of at its next probe
        except queue.Full:
            pass  # a job is queued: the owner is about to wake anyway
        current = self._current
        if current is not None:
            current.cancel.set()

    def stop(self) -> None:
        """Cancel the current job, fail queued ones, close the driver, join the thread."""
        self.request_stop()
        if self._thread.is_alive():
            self._thread.join(_JOIN_SECONDS)

    def alive(self) -> bool:
        """False when the owner thread died, or made no progress for far longer than any step."""
        if self._stop.is_set():
            return True
        if not self._thread.is_alive():
            return False
        # The longest legitimate step: a capture (plus transfer margin), or a back-off wait.
        bound = (
            2 * (max(self.config.capture_timeout_seconds, 30.0) + _RESULT_MARGIN_SECONDS)
            + self.config.retry_max_seconds
            + self.config.probe_seconds
        )
        return time.monotonic() - self._beat < bound

    def rescan(self) -> None:
        """Retry an absent or faulted device now (for example on a udev "add" event)."""
        self._wake.set()

    def call(self, fn: Callable[[Device, threading.Event], T], *, timeout: float, label: str) -> T:
        """Run ``fn(driver, cancel)`` on the owner thread; wait at most ``timeout`` + a margin.

        Raises:
            DeviceBusyError: another job runs on this device.
            DeviceUnavailableError: the device is absent, starting or faulted.
            DeviceLostError: the device vanished during the job.
            DeviceTimeoutError: the owner did not finish in time (the job is cancelled).
            whatever ``fn`` raised (UserRetryError and other DeviceErrors pass through).
        """
        if not self._slot.acquire(blocking=False):
            raise DeviceBusyError(f"device {self.name} is busy", device=self.name)
        job: _Job[T] = _Job(label=label, fn=fn)
        try:
            state = self.state
            if state is DeviceState.INITIALISING and not self._stop.is_set():
                # Opening (after READY=1, or after a re-plug): not "missing", just not yet.
                raise DeviceUnavailableError(
                    f"device {self.name} is {state}", device=self.name,
                    hint_id="Perangkat sedang disiapkan. Coba lagi sebentar lagi.",
                    hint_en="The device is starting. Try again in a moment.",
                )
            if state is not DeviceState.READY or self._stop.is_set():
                raise DeviceUnavailableError(f"device {self.name} is {state}", device=self.name)
            self._jobs.put_nowait(job)
        except BaseException:
            self._slot.release()
            raise
        # Should the device have dropped out just now, the owner is in its back-off wait: wake
        # it so the job is failed at once rather than after the wait.
        self._wake.set()
        # From here the owner thread releases the slot when the job ends.
        if not job.done.wait(timeout + _RESULT_MARGIN_SECONDS):
            job.cancel.set()
            raise DeviceTimeoutError(
                f"device {self.name} did not finish {label} in {timeout:.0f} s", device=self.name
            )
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def snapshot(self) -> dict[str, object]:
        """JSON-able status for diagnostics (no biometric data)."""
        with self._state_lock:
            return {
                "name": self.name,
                "driver": self.config.driver,
                "role": self.config.role,
                "url": self.config.url,
                "state": str(self._state),
                "since": self._since,
                "identity": self._identity.as_dict() if self._identity else None,
                "capabilities": self._capabilities,
                "last_error": dict(self._last_error) if self._last_error else None,
                "counters": dict(self.counters),
            }

    # ----------------------------------------------------------------- owner thread

    def _set(self, event: DeviceEvent, error: BaseException | None = None) -> DeviceState:
        with self._state_lock:
            self._state = next_state(self._state, event)
            self._since = _now()
            if error is not None:
                self._last_error = _error_dict(error)
            return self._state

    def _run(self) -> None:
        delay = self.config.retry_min_seconds
        try:
            while not self._stop.is_set():
                self._beat = time.monotonic()
                if self._driver is None:
                    self._fail_queued(str(self.state))
                    if self._open():
                        delay = self.config.retry_min_seconds
                    else:
                        # Quiet retries: the episode was announced once; counters tell the rest.
                        self._wake.wait(delay)
                        self._wake.clear()
                        delay = min(delay * 2, self.config.retry_max_seconds)
                    continue
                try:
                    job = self._jobs.get(timeout=self.config.probe_seconds)
                except queue.Empty:
                    self._probe()
                    continue
                if job is not None:
                    self._run_job(job)
        finally:
            self._shutdown()

    def _open(self) -> bool:
        self._set(DeviceEvent.OPEN)
        self._may_open.wait()
        if self._stop.is_set():
            return False  # stopped before it was allowed to open: nothing to close
        driver: Device | None = None
        try:
            driver = self._factory(self.config)
            self.ops.record("tx", "open")
            driver.open()
            identity = driver.identify()
            caps = (
                driver.capabilities().as_dict() if isinstance(driver, FingerprintScanner) else None
            )
        except DeviceError as exc:
            self.counters["open_failures"] += 1
            if driver is not None:
                self._close_quietly(driver)
            self._went_down(exc, self._event_for(exc))
            return False
        except Exception as exc:  # a driver bug must not kill the owner thread
            self.counters["open_failures"] += 1
            if driver is not None:
                self._close_quietly(driver)
            if not self._announced_down:  # the traceback once per episode, not every retry
                log.exception("device %s: driver %s failed to open", self.name, self.config.driver)
            self._went_down(
                DeviceFaultError(f"driver error: {type(exc).__name__}"),
                DeviceEvent.FAULT,
                logged=True,
            )
            return False
        self.counters["opens"] += 1
        self._driver = driver
        with self._state_lock:
            self._identity = identity
            self._capabilities = caps
        self.ops.record("rx", f"ready {identity.make} {identity.model}")
        # Log before the state flips, so whoever sees "ready" also finds the line in the log.
        if self._announced_down:
            log.info("device %s back: ready (%s %s)", self.name, identity.make, identity.model)
        elif not self._ever_ready:
            log.info(
                "device %s ready (%s %s, %s)",
                self.name,
                identity.make,
                identity.model,
                identity.evidence,
            )
        self._announced_down = False
        self._ever_ready = True
        self._set(DeviceEvent.OPENED)
        return True

    @staticmethod
    def _event_for(exc: BaseException) -> DeviceEvent:
        return DeviceEvent.LOST if isinstance(exc, DeviceMissingError) else DeviceEvent.FAULT

    def _went_down(self, exc: BaseException, event: DeviceEvent, *, logged: bool = False) -> None:
        state = self._set(event, exc)
        if event is DeviceEvent.FAULT:
            self._dump_frames()
        if not self._announced_down:
            # Counters and the log line count episodes, not the quiet retries inside one.
            self.counters["lost" if event is DeviceEvent.LOST else "faults"] += 1
            self._announced_down = True
            if not logged:
                log.warning("device %s %s: %s", self.name, state, exc)

    def _probe(self) -> None:
        driver = self._driver
        health = getattr(driver, "health", None)
        if driver is None or not callable(health):
            return
        try:
            health()
        except DeviceError as exc:
            self._lose_driver(exc, self._event_for(exc))
        except Exception as exc:
            log.exception("device %s: health check crashed", self.name)
            self._lose_driver(
                DeviceFaultError(f"driver error: {type(exc).__name__}"), DeviceEvent.FAULT
            )

    def _lose_driver(self, exc: BaseException, event: DeviceEvent) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            self._close_quietly(driver)
        self._went_down(exc, event)

    def _run_job(self, job: _Job[Any]) -> None:
        driver = self._driver
        self._current = job
        try:
            if driver is None or self._stop.is_set():
                job.error = DeviceUnavailableError(
                    f"device {self.name} is not ready", device=self.name
                )
                return
            self._set(DeviceEvent.JOB)
            self.counters["jobs"] += 1
            self.ops.record("tx", job.label)
            try:
                job.result = job.fn(driver, job.cancel)
            except UserRetryError as exc:
                # The applicant must try again: the device is fine and stays ready.
                self.counters["user_retries"] += 1
                self.ops.record("rx", f"{job.label}: retry ({type(exc).__name__})")
                job.error = exc
                self._set(DeviceEvent.DONE)
            except _CALLER_ERRORS as exc:
                # The caller asked for something this device cannot do: nothing is wrong with it.
                self.ops.record("rx", f"{job.label}: refused ({type(exc).__name__})")
                job.error = exc
                self._set(DeviceEvent.DONE)
            except DeviceMissingError as exc:
                self.ops.record("rx", f"{job.label}: lost")
                job.error = DeviceLostError(
                    f"device {self.name} disconnected during {job.label}", device=self.name
                )
                job.error.__cause__ = exc
                self._lose_driver(exc, DeviceEvent.LOST)
            except DeviceError as exc:
                self.ops.record("rx", f"{job.label}: {type(exc).__name__}")
                job.error = exc
                self._lose_driver(exc, DeviceEvent.FAULT)
            except Exception as exc:  # a driver bug: fault the device, keep the thread
                log.exception("device %s: driver crashed during %s", self.name, job.label)
                fault = DeviceFaultError(f"driver error during {job.label}: {type(exc).__name__}")
                fault.__cause__ = exc
                job.error = fault
                self._lose_driver(fault, DeviceEvent.FAULT)
            else:
                self.ops.record("rx", f"{job.label}: ok")
                self._set(DeviceEvent.DONE)
        finally:
            self._current = None
            job.done.set()
            self._slot.release()

    def _dump_frames(self) -> None:
        if not log.isEnabledFor(TRACE):
            return
        log.log(TRACE, "device %s fault: last manager operations follow", self.name)
        for direction, summary in self.ops:
            log.log(TRACE, "device %s op %s %s", self.name, direction, summary)
        if self._last_frames is not None:
            for direction, summary in self._last_frames:
                log.log(TRACE, "device %s frame %s %s", self.name, direction, summary)

    def _close_quietly(self, driver: Device) -> None:
        # Keep the driver's frames for the dump that follows: the driver object goes away.
        for attr in ("frame_log", "frames"):  # drivers name their ring buffer either way
            frames = getattr(driver, attr, None)
            if isinstance(frames, FrameLog):
                self._last_frames = frames
                break
        try:
            driver.close()
        except DeviceError as exc:  # closing a vanished device often fails; that is expected
            log.debug("device %s: close failed: %s", self.name, exc)
        except Exception:  # a driver bug; the device is being dropped anyway
            log.exception("device %s: driver crashed while closing", self.name)

    def _fail_queued(self, why: str) -> None:
        """Fail a job that slipped into the queue while the device went away (no waiting it out)."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is None:
                continue
            job.error = DeviceUnavailableError(f"device {self.name} is {why}", device=self.name)
            job.done.set()
            self._slot.release()

    def _shutdown(self) -> None:
        self._fail_queued("stopping")
        driver, self._driver = self._driver, None
        if driver is not None:
            self._close_quietly(driver)


class DeviceManager:
    """All configured devices; the daemon component that owns them."""

    name = "devices"

    def __init__(
        self,
        devices: Mapping[str, DeviceConfig],
        *,
        factory: Callable[[DeviceConfig], Device] | None = None,
        defer_open: bool = False,
        hotplug: bool = False,
    ) -> None:
        # hotplug: listen for kernel uevents and retry absent/faulted devices on "add" (the
        # daemon turns it on; tests of the manager itself leave it off).
        self._hotplug: HotplugListener | None = (
            HotplugListener(self.rescan_down) if hotplug else None
        )
        self.devices: dict[str, ManagedDevice] = {
            name: ManagedDevice(name, cfg, factory=factory) for name, cfg in sorted(devices.items())
        }
        if defer_open:
            for device in self.devices.values():
                device._may_open.clear()

    # ----------------------------------------------------------------- Component

    def start(self) -> None:
        """Start every device's owner thread (with ``defer_open`` they wait in "initialising")."""
        for device in self.devices.values():
            device.start()
        if self._hotplug is not None:
            self._hotplug.start()

    def after_ready(self) -> None:
        """Let every owner open its device (the daemon calls this right after READY=1)."""
        for device in self.devices.values():
            device._may_open.set()

    def stop(self) -> None:
        """Stop every device (captures in progress are cancelled)."""
        if self._hotplug is not None:
            self._hotplug.stop()
        # Ask all first, so their captures are cancelled together rather than one join at a time.
        for device in self.devices.values():
            device.request_stop()
        for device in self.devices.values():
            device.stop()

    def rescan_down(self) -> list[str]:
        """Wake every absent or faulted device to retry now (a hot-plug "add"); their names."""
        woken = [n for n, d in self.devices.items()
                 if d.state in (DeviceState.ABSENT, DeviceState.FAULTED)]
        for name in woken:
            self.devices[name].rescan()
        if woken:
            log.info("hot-plug: retrying %s now", ", ".join(woken))
        return woken

    def healthy(self) -> bool:
        """False when an owner thread died."""
        return all(d.alive() for d in self.devices.values())

    def status(self) -> str:
        """STATUS= fragment, e.g. "devices 3/4 ready"."""
        if not self.devices:
            return ""
        ready = sum(d.state in (DeviceState.READY, DeviceState.BUSY) for d in self.devices.values())
        return f"devices {ready}/{len(self.devices)} ready"

    # ----------------------------------------------------------------- use

    def device(self, name: str) -> ManagedDevice:
        """The managed device ``name``; KeyError naming the known ones."""
        try:
            return self.devices[name]
        except KeyError:
            raise KeyError(
                f"no device {name!r} (configured: {', '.join(self.devices) or 'none'})"
            ) from None

    def by_role(self, role: str) -> list[str]:
        """Names of the devices configured for ``role``."""
        return [n for n, d in self.devices.items() if d.config.role == role]

    def wait_ready(self, name: str, timeout: float) -> bool:
        """Wait up to ``timeout`` for ``name`` to be ready (start-up, demos, tests)."""
        deadline = time.monotonic() + timeout
        device = self.device(name)
        while device.state is not DeviceState.READY:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def call(
        self, name: str, fn: Callable[[Device, threading.Event], T], *, timeout: float, label: str
    ) -> T:
        """Run ``fn`` on device ``name``'s owner thread (see ManagedDevice.call)."""
        return self.device(name).call(fn, timeout=timeout, label=label)

    def _scanner(self, driver: Device) -> FingerprintScanner:
        if not isinstance(driver, FingerprintScanner):
            raise CaptureNotSupportedError(
                "this device is not a fingerprint scanner",
                hint_id="Perangkat ini bukan pemindai sidik jari. Periksa konfigurasi.",
                hint_en="This device is not a fingerprint scanner. Check the configuration.",
            )
        return driver

    def capture_finger(
        self,
        name: str,
        position: FingerPosition,
        *,
        timeout: float | None = None,
        rolled: bool = False,
    ) -> FingerCapture:
        """One finger from scanner ``name``."""
        dev = self.device(name)
        wait = timeout if timeout is not None else dev.config.capture_timeout_seconds
        return dev.call(
            lambda d, cancel: self._scanner(d).capture_finger(
                position, timeout=wait, rolled=rolled, cancel=cancel
            ),
            timeout=wait,
            label=f"capture_finger {FingerPosition(position).name}{' rolled' if rolled else ''}",
        )

    def capture_slap(
        self,
        name: str,
        slap: Slap,
        *,
        timeout: float | None = None,
        skip: Collection[FingerPosition] = (),
    ) -> SlapCapture:
        """One slap from scanner ``name``."""
        dev = self.device(name)
        wait = timeout if timeout is not None else dev.config.capture_timeout_seconds
        return dev.call(
            lambda d, cancel: self._scanner(d).capture_slap(
                slap, timeout=wait, skip=skip, cancel=cancel
            ),
            timeout=wait,
            label=f"capture_slap {Slap(slap).name}",
        )

    def self_test(self, name: str, *, timeout: float = 30.0) -> SelfTestResult:
        """The device's self-test; an absent or busy device yields a failed result, not an error."""
        dev = self.device(name)
        try:
            return dev.call(lambda d, _cancel: d.self_test(), timeout=timeout, label="self_test")
        except DeviceError as exc:
            return SelfTestResult(
                ok=False, steps=((f"device {dev.state}", False, f"{exc} -- {exc.hint_en}"),)
            )

    def snapshot(self) -> dict[str, object]:
        """Diagnostics view of every device (JSON-able, no biometrics)."""
        return {"devices": [d.snapshot() for d in self.devices.values()]}


# The card printer has its own owner thread (agent/printing's PrinterWorker): two owners of one
# USB device would interleave commands, so the manager leaves that role alone.
OWNED_ELSEWHERE = frozenset({"printer"})


def managed_devices(config: Config) -> dict[str, DeviceConfig]:
    """The ``[devices.*]`` entries the device manager owns (all but the printer)."""
    return {n: d for n, d in config.devices.items() if d.role not in OWNED_ELSEWHERE}


def device_component(config: Config, daemon: Daemon) -> DeviceManager | None:
    """Daemon component factory: a DeviceManager for ``[devices.*]``, or None when none are set."""
    del daemon  # the manager needs nothing from the daemon beyond start/stop
    devices = managed_devices(config)
    if not devices:
        return None
    # Devices come and go anyway (hot-plug): READY=1 means the API answers, and it reports each
    # device "initialising" until its owner has opened it (docs/architecture.md, start-up).
    return DeviceManager(devices, defer_open=True, hotplug=True)


# --------------------------------------------------------------------------- diagnostics


def device_checks(config: Config, *, dev_root: Path = Path("/dev")) -> list[Check]:
    """``rekam diag`` lines for ``[devices.*]`` without opening anything (the daemon holds them).

    Checks that each driver name exists, that a ``/dev`` path is present and read-writable by
    this user, that a vendor SDK shim is installed where one is configured, and warns about
    emulated devices and a station without a fingerprint scanner.
    """
    out: list[Check] = []
    known = set(registry.known())
    for name, dev in sorted(managed_devices(config).items()):
        label = f"device {name}"
        if dev.driver not in known:
            out.append(
                Check(
                    label,
                    FAIL,
                    f"unknown driver {dev.driver!r}",
                    "Nama driver perangkat salah di konfigurasi; hubungi teknisi.",
                    f"Unknown driver; use one of: {', '.join(sorted(known))}.",
                )
            )
            continue
        url = dev.url
        if url.startswith("emu://"):
            out.append(
                Check(
                    label,
                    WARN,
                    f"{dev.driver} emulator ({url}): for demos and tests, not real hardware",
                    "Perangkat ini tiruan (emulator), bukan perangkat asli.",
                    "This device is an emulator, not real hardware.",
                )
            )
            continue
        if url.startswith("/dev/"):
            if not os.path.exists(url):
                out.append(
                    Check(
                        label,
                        FAIL,
                        f"{url} not present",
                        "Perangkat tidak terdeteksi. Periksa kabel USB dan sambungkan ulang.",
                        "Device not detected: check the cable; check the udev rule (/dev/rekam/).",
                    )
                )
                continue
            if not os.access(url, os.R_OK | os.W_OK):
                out.append(
                    Check(
                        label,
                        FAIL,
                        f"{url} present but not readable and writable by this user",
                        "Izin akses perangkat salah; hubungi teknisi.",
                        "No permission: add the user to the device's group (udev rule, "
                        "dialout/video/input/lp).",
                    )
                )
                continue
        library = dev.options.get("sdk_library")
        if isinstance(library, str) and library and not os.path.isfile(library):
            out.append(
                Check(
                    label,
                    FAIL,
                    f"vendor SDK shim {library} not installed",
                    "Perangkat lunak pemindai (SDK) belum terpasang. Hubungi teknisi.",
                    "Install the vendor SDK shim at options.sdk_library.",
                )
            )
            continue
        out.append(Check(label, OK, f"{dev.driver} at {url or '(default)'} ({dev.role})"))
    out.extend(
        Check(
            f"found {node.path}",
            WARN,
            f"present but not configured (try driver {node.suggested_driver}, role {node.role})",
            "Ada perangkat tersambung yang belum diatur; hubungi teknisi.",
            f'Add [devices.NAME] with url = "{node.path}" if the station should use it.',
        )
        for node in discover(config, dev_root=dev_root)
        if node.configured_as is None and node.role not in OWNED_ELSEWHERE
    )
    roles = {dev.role for dev in config.devices.values()}
    if not roles & {"fingerprint", "tenprint"}:
        out.append(
            Check(
                "fingerprint scanner",
                WARN,
                "no device with role fingerprint or tenprint configured",
                "Belum ada pemindai sidik jari di konfigurasi.",
                "No fingerprint scanner is configured.",
            )
        )
    return out


# --------------------------------------------------------------------------- discovery

# What the udev rules (systemd/99-rekam.rules) name under /dev/rekam/, and what to configure
# for each: (suggested driver, role).
_REKAM_NODES: Mapping[str, tuple[str, str]] = {
    "fingerprint": ("zfm", "fingerprint"),
    "fingerprint-uart": ("zfm", "fingerprint"),
    "camera": ("v4l2", "camera"),
    "signature": ("evdev", "signature"),
    "printer": ("evolis", "printer"),
    "printer-usb": ("evolis", "printer"),
}


@dataclass(frozen=True)
class Discovered:
    """A device node found on this machine, and whether the configuration uses it."""

    path: str
    suggested_driver: str
    role: str
    configured_as: str | None  # the [devices.NAME] that points at it, if any

    def as_dict(self) -> dict[str, str | None]:
        """JSON form."""
        return {
            "path": self.path,
            "suggested_driver": self.suggested_driver,
            "role": self.role,
            "configured_as": self.configured_as,
        }


def discover(config: Config, *, dev_root: Path = Path("/dev")) -> list[Discovered]:
    """Device nodes present here that a station could use, matched against ``[devices.*]``.

    Looks only at names: the udev rule's ``/dev/rekam/*`` links (which already pick tablets and
    capture-capable video nodes) and USB-serial ports by id (a ZFM module sits behind one).
    Opens nothing, so it is safe beside a running daemon.
    """
    configured: dict[str, str] = {}
    for name, dev in config.devices.items():
        if dev.url.startswith("/"):
            configured[dev.url] = name
            with contextlib.suppress(OSError):
                configured[os.path.realpath(dev.url)] = name

    def owner(path: Path) -> str | None:
        text = str(path)
        if text in configured:
            return configured[text]
        with contextlib.suppress(OSError):
            return configured.get(os.path.realpath(path))
        return None

    found: list[Discovered] = []
    seen: set[str] = set()

    def add(path: Path, driver: str, role: str) -> None:
        real = os.path.realpath(path)
        if real in seen:  # one physical node seen through several names: report it once
            return
        seen.add(real)
        found.append(Discovered(str(path), driver, role, owner(path)))

    rekam = dev_root / "rekam"
    for node, (driver, role) in _REKAM_NODES.items():
        if (rekam / node).exists():
            add(rekam / node, driver, role)
    for path in sorted((dev_root / "serial" / "by-id").glob("*")):
        add(path, "zfm", "fingerprint")
    return found
