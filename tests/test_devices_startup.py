"""Start-up ordering: the daemon's device manager opens its devices only after READY=1."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import Config, DeviceConfig, load_config
from agent.daemon import Daemon
from agent.devices import DeviceManager, DeviceState, DeviceUnavailableError, device_component
from drivers.base import Device
from drivers.emulators.tenprint import forget, hardware
from drivers.registry import build


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait (bounded) for a state the owner thread will reach; fail the test otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.005)


def tenprint(name: str) -> DeviceConfig:
    return DeviceConfig(driver="tenprint-emulator", url=f"emu://tenprint?name={name}", role="tenprint",
                        retry_min_seconds=0.01, retry_max_seconds=0.05, probe_seconds=0.02)


def test_deferred_devices_say_initialising_and_open_only_after_ready() -> None:
    name = f"s-{uuid.uuid4().hex[:8]}"
    hardware(name, person_seed=3)
    built: list[str] = []

    def factory(cfg: DeviceConfig) -> Device:
        built.append(cfg.url)
        return build(cfg)

    manager = DeviceManager({"tp": tenprint(name)}, factory=factory, defer_open=True)
    manager.start()
    try:
        dev = manager.devices["tp"]
        # Truthful before READY=1: starting, not absent, and a caller is told so.
        wait_for(lambda: dev.state is DeviceState.INITIALISING)
        assert manager.snapshot()["devices"][0]["state"] == "initialising"  # type: ignore[index]
        with pytest.raises(DeviceUnavailableError, match="initialising") as refused:
            manager.call("tp", lambda d, _c: d.identify(), timeout=1.0, label="identify")
        assert "starting" in refused.value.hint_en  # not "not detected, check the cable"
        assert manager.healthy()  # waiting for READY is not a stuck owner
        assert built == []  # no driver built (no driver imports) before READY=1
        manager.after_ready()
        assert manager.wait_ready("tp", 20)
        assert built == [f"emu://tenprint?name={name}"]
    finally:
        manager.stop()
        forget(name)
    assert not manager.devices["tp"]._thread.is_alive()


def test_stop_before_ready_leaves_without_opening() -> None:
    built: list[str] = []

    def factory(cfg: DeviceConfig) -> Device:
        built.append(cfg.url)
        return build(cfg)

    manager = DeviceManager({"tp": tenprint("never-opened")}, factory=factory, defer_open=True)
    manager.start()
    wait_for(lambda: manager.devices["tp"].state is DeviceState.INITIALISING)
    manager.stop()  # SIGTERM during start-up: the owner must not open the device on its way out
    assert not manager.devices["tp"]._thread.is_alive()
    assert built == []


def test_without_defer_the_manager_opens_at_start_as_before() -> None:
    name = f"s-{uuid.uuid4().hex[:8]}"
    hardware(name, person_seed=4)
    manager = DeviceManager({"tp": tenprint(name)})
    manager.start()
    try:
        assert manager.wait_ready("tp", 20)  # tests, demo and the CLI need no after_ready()
    finally:
        manager.stop()
        forget(name)


def test_the_daemon_factory_defers_opening() -> None:
    manager = device_component(Config(devices={"tp": tenprint("factory")}), object())  # type: ignore[arg-type]
    assert manager is not None
    manager.start()
    try:
        wait_for(lambda: manager.devices["tp"].state is DeviceState.INITIALISING)
        time.sleep(0.05)  # a window in which an undeferred owner would have tried to open
        assert manager.devices["tp"].counters["opens"] == 0
        assert manager.devices["tp"].counters["open_failures"] == 0
    finally:
        manager.stop()


class Recorder:
    """A daemon component that notes when it is started and when READY=1 has gone out."""

    name = "recorder"

    def __init__(self, daemon: Daemon, seen: list[str]) -> None:
        self.daemon = daemon
        self.seen = seen

    def start(self) -> None:
        self.seen.append("start")

    def after_ready(self) -> None:
        self.seen.append("after_ready")
        self.daemon.stopping.set()  # nothing else to test: leave the main loop at once

    def stop(self) -> None:
        self.seen.append("stop")

    def healthy(self) -> bool:
        return True

    def status(self) -> str:
        return ""


def test_daemon_calls_after_ready_once_after_ready_and_before_serving(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.daemon as daemon_module

    seen: list[str] = []
    monkeypatch.setattr(daemon_module, "notify", lambda msg: seen.append(msg))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    path = tmp_path / "agent.toml"
    path.write_text(f'[station]\nstate_dir = "{tmp_path / "state"}"\n')
    cfg = load_config(path)
    d = Daemon(cfg, factories=[lambda _c, dm: Recorder(dm, seen)])
    assert d.run() == 0
    assert seen.index("start") < seen.index("READY=1") < seen.index("after_ready") < seen.index("stop")
    assert seen.count("after_ready") == 1
