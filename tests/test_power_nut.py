"""agent.power against a real upsd with the dummy-ups driver (Debian package nut-server).

The test writes a NUT configuration under tmp_path, starts ``dummy-ups`` and ``upsd`` on a free
loopback port, and switches the UPS state by rewriting the dummy-ups ``.dev`` file (the driver
re-reads it when its mtime changes).
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import JournalConfig, PowerConfig
from agent.journal import Journal
from agent.power import (
    MESSAGE_EN,
    NutClient,
    NutProtocolError,
    NutUnavailableError,
    PowerMonitor,
    PowerState,
    classify,
    parse_var_line,
)
from agent.testbed.mosquitto import free_port
from agent.workflow.session import WorkflowError

UPSD = Path("/lib/nut/upsd")
DUMMY = Path("/lib/nut/dummy-ups")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


class Nut:
    """dummy-ups + upsd under ``root``, on a free 127.0.0.1 port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.dev = root / "ups.dev"
        self.procs: list[subprocess.Popen[bytes]] = []
        self._mtime = 0.0

    def set(self, status: str, charge: int) -> None:
        """Rewrite the .dev file; bump its mtime so the driver notices within its poll interval."""
        self.dev.write_text(f"ups.status: {status}\nbattery.charge: {charge}\nbattery.runtime: 600\n")
        # dummy-ups re-reads the file when its mtime moved on; two writes in one second would
        # not, so every write gets a strictly later mtime.
        self._mtime = max(time.time(), self._mtime + 2)
        os.utime(self.dev, (self._mtime, self._mtime))

    def start(self) -> Nut:
        state = self.root / "state"
        state.mkdir(parents=True)
        state.chmod(0o777)  # the driver and upsd may drop to the nut user
        (self.root / "ups.conf").write_text(
            f"pollinterval = 1\n[ups]\ndriver = dummy-ups\nport = {self.dev}\ndesc = \"test\"\n")
        (self.root / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {self.port}\n")
        (self.root / "upsd.users").write_text("")
        (self.root / "nut.conf").write_text("MODE=standalone\n")
        self.set("OL", 100)
        env = {**os.environ, "NUT_CONFPATH": str(self.root), "NUT_STATEPATH": str(state),
               "NUT_ALTPIDPATH": str(state)}
        user = ["-u", "root"] if os.geteuid() == 0 else []
        log = (self.root / "nut.log").open("ab")
        self.procs.append(subprocess.Popen([str(DUMMY), "-a", "ups", *user, "-F"], env=env,
                                           stdout=log, stderr=log, stdin=subprocess.DEVNULL))
        deadline = time.monotonic() + 20
        while not any(state.glob("dummy-ups-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.procs.append(subprocess.Popen([str(UPSD), "-F", *user], env=env,
                                           stdout=log, stderr=log, stdin=subprocess.DEVNULL))
        log.close()
        client = NutClient("127.0.0.1", self.port, timeout=2)
        while time.monotonic() < deadline:
            try:
                # upsd says WAIT until the driver has delivered its first reading.
                if client.get_var("ups", "ups.status") == "OL":
                    return self
            except (NutUnavailableError, NutProtocolError):
                pass
            time.sleep(0.1)
        raise RuntimeError((self.root / "nut.log").read_text())

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
        self.procs.clear()


def _require_nut() -> None:
    if not (UPSD.exists() and DUMMY.exists()):
        if IN_CI:
            pytest.fail("NUT is not installed, and CI must run the power tests")
        pytest.skip("NUT is not installed (apt-get install -y nut-server)")


@pytest.fixture(scope="module")
def nut_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nut]:
    """One upsd + dummy-ups for the module (starting them takes seconds)."""
    _require_nut()
    server = Nut(tmp_path_factory.mktemp("nut")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nut(nut_server: Nut) -> Nut:
    """The shared upsd, back on mains at full charge before each test."""
    nut_server.set("OL", 100)
    client = NutClient("127.0.0.1", nut_server.port, timeout=2)
    wait_for(lambda: client.list_vars("ups").get("battery.charge") == "100"
             and client.list_vars("ups").get("ups.status") == "OL")
    return nut_server


@pytest.fixture
def own_nut(tmp_path: Path) -> Iterator[Nut]:
    """A upsd of its own, for a test that stops it."""
    _require_nut()
    server = Nut(tmp_path / "nut").start()
    try:
        yield server
    finally:
        server.stop()


def wait_for(pred: object, timeout: float = 20.0) -> None:
    """Poll ``pred`` until true (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def test_client_reads_real_upsd(nut: Nut) -> None:
    client = NutClient("127.0.0.1", nut.port, timeout=2)
    values = client.list_vars("ups")
    assert values["ups.status"] == "OL"
    assert values["battery.charge"] == "100"
    assert values["driver.name"] == "dummy-ups"
    with pytest.raises(NutProtocolError) as err:
        client.list_vars("nosuchups")
    assert err.value.code == "UNKNOWN-UPS"
    with pytest.raises(NutProtocolError):
        client.get_var("nosuchups", "ups.status")


def test_power_save_and_resume_with_real_upsd(nut: Nut, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    cfg = PowerConfig(enabled=True, port=nut.port, poll_seconds=0.2, low_battery_percent=40)
    woke = threading.Event()
    with Journal.open(state_dir, JournalConfig()) as journal:
        mon = PowerMonitor(cfg, journal=journal, wake_uplink=woke.set)
        mon.start()
        try:
            assert mon.state().state == "mains"
            mon.check_new_session()  # allowed

            nut.set("OB", 80)  # on battery but charged: recording goes on
            wait_for(lambda: mon.state().state == "battery")
            assert mon.power_ok()

            nut.set("OB", 30)  # below the threshold: power save
            wait_for(lambda: mon.state().state == "low")
            assert not mon.power_ok()
            with pytest.raises(WorkflowError) as err:
                mon.check_new_session()
            assert err.value.code == "power_low" and err.value.status == 503
            room = mon.gate_headroom(journal.headroom)()
            assert not room.ok and room.message_en == MESSAGE_EN
            assert woke.is_set()

            nut.set("OL CHRG", 31)  # mains back: resume even with a low battery
            wait_for(lambda: mon.state().state == "mains")
            assert mon.power_ok()
            assert mon.gate_headroom(journal.headroom)().ok
        finally:
            mon.stop()
        kinds = [e.kind for e in journal.pending_events(50)]
    assert kinds == ["power_battery", "power_low", "power_restored"]


def test_low_battery_flag_alone_means_power_save(nut: Nut) -> None:
    cfg = PowerConfig(enabled=True, port=nut.port, low_battery_percent=10)
    mon = PowerMonitor(cfg)
    nut.set("OB LB", 60)
    wait_for(lambda: mon.poll().state == "low")


def test_upsd_gone_is_unknown_and_never_blocks(own_nut: Nut) -> None:
    cfg = PowerConfig(enabled=True, port=own_nut.port, timeout_seconds=1)
    mon = PowerMonitor(cfg)
    assert mon.poll().state == "mains"
    own_nut.stop()
    state = mon.poll()
    assert state.state == "unknown" and "upsd" in state.error
    assert mon.power_ok()


def test_nothing_listening(tmp_path: Path) -> None:
    mon = PowerMonitor(PowerConfig(enabled=True, port=free_port(), timeout_seconds=0.5))
    assert mon.poll().state == "unknown"
    assert mon.power_ok()


def _fake_upsd(answer: bytes) -> tuple[int, threading.Thread]:
    """A one-shot TCP server that sends ``answer`` whatever it is asked (for garbage tests)."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        with srv:
            srv.settimeout(10)
            conn, _ = srv.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(answer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return port, t


@pytest.mark.parametrize("answer", [
    b"HELLO\n",
    b"BEGIN LIST VAR ups\nVAR ups ups.status OL\nEND LIST VAR ups\n",  # unquoted value
    b"BEGIN LIST VAR ups\nVAR other ups.status \"OL\"\nEND LIST VAR ups\n",  # another UPS's line
    b"BEGIN LIST VAR ups\n" + b"x" * 5000,  # a line longer than upsd would ever send
    b"BEGIN LIST VAR ups\nVAR ups ups.status \"OL\n",  # cut mid-answer
    b"\xff\xfe\n",
])
def test_garbage_from_upsd_is_a_power_error(answer: bytes) -> None:
    port, t = _fake_upsd(answer)
    client = NutClient("127.0.0.1", port, timeout=2)
    with pytest.raises((NutProtocolError, NutUnavailableError)):
        client.list_vars("ups")
    t.join(timeout=5)


def test_parse_var_line_escapes_and_errors() -> None:
    assert parse_var_line('VAR ups ups.model "A \\"big\\" one\\\\"', "ups") == ("ups.model", 'A "big" one\\')
    with pytest.raises(NutProtocolError) as err:
        parse_var_line("ERR DATA-STALE", "ups")
    assert err.value.code == "DATA-STALE"
    for bad in ('VAR ups x "a"b"', 'VAR ups x "a\\', "VAR ups x", 'VAR ups x "'):
        with pytest.raises(NutProtocolError):
            parse_var_line(bad, "ups")


@pytest.mark.parametrize(("values", "expected"), [
    ({"ups.status": "OL", "battery.charge": "100"}, "mains"),
    ({"ups.status": "OL CHRG LB", "battery.charge": "5"}, "mains"),
    ({"ups.status": "OB DISCHRG", "battery.charge": "51"}, "battery"),
    ({"ups.status": "OB DISCHRG", "battery.charge": "50"}, "low"),
    ({"ups.status": "OB", "battery.charge": "nan"}, "battery"),
    ({"ups.status": "OB LB"}, "low"),
    ({"ups.status": "LB"}, "low"),
    ({"battery.charge": "100"}, "unknown"),
    ({"ups.status": "BYPASS"}, "unknown"),
])
def test_classify(values: dict[str, str], expected: str) -> None:
    state = classify(values, PowerConfig(low_battery_percent=50))
    assert state.state == expected
    assert state.sessions_allowed == (expected != "low")
    assert isinstance(PowerState(expected).as_dict()["sessions_allowed"], bool)


def test_diag_reports_power_save_from_upsd(nut: Nut, tmp_path: Path) -> None:
    from agent.config import parse_config
    from agent.diagnostics import build_report

    cfg = parse_config({"station": {"id": "st-power-01", "state_dir": str(tmp_path / "state")},
                        "printer": {"enabled": False},
                        "power": {"enabled": True, "port": nut.port, "low_battery_percent": 40}})
    nut.set("OB DISCHRG", 25)
    wait_for(lambda: PowerMonitor(cfg.power).poll().state == "low")
    lines = {c["name"]: c for c in build_report(cfg)["checks"]}
    assert lines["power"]["status"] == "fail" and lines["power"]["hint_en"] == MESSAGE_EN


def test_power_component_factory(nut: Nut) -> None:
    from agent.config import parse_config
    from agent.daemon import Daemon
    from agent.power import power_component

    off = parse_config({})
    assert power_component(off, Daemon(off)) is None
    on = parse_config({"power": {"enabled": True, "port": nut.port, "poll_seconds": 0.2}})
    daemon = Daemon(on)
    part = power_component(on, daemon)
    assert part is not None and daemon.parts["power"] is part and part.journal is None
    part.start()
    try:
        assert part.healthy() and part.status() == ""
        nut.set("OB", 90)
        wait_for(lambda: part.status() == "power battery")
    finally:
        part.stop()
    assert not part.healthy()


class ScriptedUpsd:
    """A TCP server answering LIST VAR from ``self.answer`` (for transitions upsd cannot be made to do)."""

    def __init__(self) -> None:
        self.answer = b""
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.srv.settimeout(0.2)
        self.port = self.srv.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def set(self, status: str | None, charge: int = 100) -> None:
        self.answer = (b"ERR DATA-STALE\n" if status is None else
                       f'BEGIN LIST VAR ups\nVAR ups ups.status "{status}"\nVAR ups battery.charge "{charge}"\n'
                       "END LIST VAR ups\n".encode())

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                conn.recv(256)
                conn.sendall(self.answer)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.srv.close()


def test_upsd_hiccups_neither_lose_nor_repeat_events(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    ups = ScriptedUpsd()
    try:
        with Journal.open(state_dir, JournalConfig()) as journal:
            mon = PowerMonitor(PowerConfig(enabled=True, port=ups.port, low_battery_percent=40), journal=journal)
            seen = []
            for status, charge in [("OL", 100), (None, 0), ("OL", 100),        # stale data: no event
                                   ("OB", 90), (None, 0), ("OB", 85),           # one battery event
                                   ("OB", 30), (None, 0), ("OB", 29),           # one power_low
                                   ("OL", 30)]:                                 # restored
                ups.set(status, charge)
                state = mon.poll()
                seen.append(state.state)
                if status is None:
                    assert state.state == "unknown" and "DATA-STALE" in state.error
                    assert mon.power_ok()  # an unreadable UPS never blocks recording
            kinds = [e.kind for e in journal.pending_events(50)]
    finally:
        ups.close()
    assert seen == ["mains", "unknown", "mains", "battery", "unknown", "battery", "low", "unknown", "low", "mains"]
    assert kinds == ["power_battery", "power_low", "power_restored"]
