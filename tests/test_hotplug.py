"""Hot-plug: the uevent codec, the netlink listener (against the real kernel when root), and
the device manager retrying absent devices on an "add"."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agent.config import DeviceConfig
from agent.devices import DeviceManager, DeviceState
from agent.hotplug import DEVICE_SUBSYSTEMS, HotplugListener, open_uevent_socket, wanted
from drivers.base import DeviceIdentity, SelfTestResult
from drivers.errors import DeviceMissingError
from firmware_protocols.errors import CodecError, EncodeError, FrameError
from firmware_protocols.uevent import MAX_UEVENT_BYTES, UEvent, encode_uevent, parse_uevent
from tests.test_devices_manager import wait_for

# Recorded from this kernel (6.18) with a netlink socket while writing to sysfs uevent files.
RECORDED_NET_CHANGE = (
    b"change@/devices/virtual/net/lo\x00ACTION=change\x00DEVPATH=/devices/virtual/net/lo\x00"
    b"SUBSYSTEM=net\x00SYNTH_UUID=11111111-2222-3333-4444-555555555555\x00SYNTH_ARG_REKAM=1\x00"
    b"INTERFACE=lo\x00IFINDEX=1\x00SEQNUM=836\x00"
)
RECORDED_TTY_ADD = (
    b"add@/devices/virtual/tty/tty0\x00ACTION=add\x00DEVPATH=/devices/virtual/tty/tty0\x00"
    b"SUBSYSTEM=tty\x00SYNTH_UUID=11111111-2222-3333-4444-555555555556\x00MAJOR=4\x00MINOR=0\x00"
    b"DEVNAME=tty0\x00SEQNUM=837\x00"
)


# --------------------------------------------------------------------------- codec


def test_recorded_events_parse() -> None:
    tty = parse_uevent(RECORDED_TTY_ADD)
    assert (tty.action, tty.devpath, tty.subsystem, tty.seqnum) == (
        "add", "/devices/virtual/tty/tty0", "tty", 837)
    assert tty.env["DEVNAME"] == "tty0"
    assert wanted(tty)
    net = parse_uevent(RECORDED_NET_CHANGE)
    assert (net.action, net.subsystem, net.env["SYNTH_ARG_REKAM"]) == ("change", "net", "1")
    assert not wanted(net)
    # An "add" of a subsystem no device uses is not wanted either.
    assert not wanted(parse_uevent(RECORDED_TTY_ADD.replace(b"SUBSYSTEM=tty", b"SUBSYSTEM=net")))


def test_missing_final_nul_is_tolerated_and_seqnum_optional() -> None:
    event = parse_uevent(b"add@/devices/x\x00SUBSYSTEM=usb")
    assert event.subsystem == "usb" and event.seqnum is None
    assert parse_uevent(b"remove@/devices/x\x00").env == {}
    assert parse_uevent(b"add@/d\x00SEQNUM=12a\x00").seqnum is None


@pytest.mark.parametrize(("data", "why"), [
    (b"", "empty"),
    (b"\x00", "not ACTION@/DEVPATH"),
    (b"add/devices/x\x00", "not ACTION@/DEVPATH"),
    (b"add@devices/x\x00", "not ACTION@/DEVPATH"),
    (b"plug@/devices/x\x00", "unknown uevent action"),
    (b"libudev\x00\xfe\xed\xca\xfe" + b"\x00" * 32, "libudev"),
    (b"add@/d\x00SUBSYSTEM\x00", "not KEY=VALUE"),
    (b"add@/d\x00=usb\x00", "not KEY=VALUE"),
    (b"add@/d\x00SUB-SYSTEM=usb\x00", "not KEY=VALUE"),
    (b"add@/d\x00\x00SUBSYSTEM=usb\x00", "not KEY=VALUE"),
    (b"add@/d\x00A=1\x00A=2\x00", "repeats A"),
    (b"add@/d\x00ACTION=remove\x00", "ACTION= contradicts"),
    (b"add@/d\x00DEVPATH=/e\x00", "DEVPATH= contradicts"),
    (b"add@/d\xff\x00", "not UTF-8"),
    (b"add@/d\x00NAME=\xff\x00", "not UTF-8"),
    (b"add@/d\x00X=" + b"a" * MAX_UEVENT_BYTES + b"\x00", "exceeds"),
])
def test_malformed_datagrams_are_refused_by_name(data: bytes, why: str) -> None:
    with pytest.raises(FrameError, match=why):
        parse_uevent(data)


@given(st.binary(max_size=600))
@example(b"add@/\x00")
@example(b"@/\x00")
@example(RECORDED_TTY_ADD[:-5])
def test_any_bytes_give_an_event_or_a_frame_error(data: bytes) -> None:
    try:
        event = parse_uevent(data)
    except FrameError:
        return
    assert event.devpath.startswith("/")


_keys = st.from_regex(r"[A-Z][A-Z0-9_]{0,11}", fullmatch=True).filter(
    lambda k: k not in ("ACTION", "DEVPATH"))
_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                  max_size=40)


@given(st.sampled_from(["add", "remove", "change", "bind"]),
       st.from_regex(r"/[a-z0-9/:._-]{0,60}", fullmatch=True),
       st.dictionaries(_keys, _values, max_size=8))
def test_encode_parse_round_trip(action: str, devpath: str, env: dict[str, str]) -> None:
    full = {"ACTION": action, "DEVPATH": devpath, **env}
    event = UEvent(action, devpath, full)
    assert parse_uevent(encode_uevent(event)) == event


@given(st.binary(max_size=300), st.integers(0, 299), st.integers(0, 255))
def test_corrupting_a_real_event_never_raises_anything_else(
        junk: bytes, where: int, byte: int) -> None:
    data = bytearray(RECORDED_TTY_ADD)
    data[where % len(data)] = byte
    for candidate in (bytes(data), RECORDED_TTY_ADD + junk, junk + RECORDED_TTY_ADD):
        try:
            parse_uevent(candidate)
        except CodecError:
            pass


def test_encode_refuses_what_the_kernel_could_not_send() -> None:
    for bad in (UEvent("plug", "/d"), UEvent("add", "d"), UEvent("add", "/d", {"A=B": "1"}),
                UEvent("add", "/d", {"A": "x\x00y"}), UEvent("add", "/d", {"A": "x" * 5000})):
        with pytest.raises(EncodeError):
            encode_uevent(bad)


# --------------------------------------------------------------------------- listener


@pytest.fixture
def datagram_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A real datagram socket pair: the listener reads one end, the test writes the other."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        yield ours, theirs
    finally:
        ours.close()
        theirs.close()


def tty_add(n: int) -> bytes:
    return encode_uevent(UEvent("add", f"/devices/usb1/1-1/ttyUSB{n}",
                                {"ACTION": "add", "DEVPATH": f"/devices/usb1/1-1/ttyUSB{n}",
                                 "SUBSYSTEM": "tty", "DEVNAME": f"ttyUSB{n}"}))


def test_a_burst_of_adds_rescans_once_and_others_are_ignored(
        datagram_pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = datagram_pair
    fired = threading.Event()
    calls: list[int] = []

    def on_add() -> None:
        calls.append(1)
        fired.set()

    seen: list[UEvent] = []
    # A long debounce so the whole burst below lands inside it even on a loaded machine.
    listener = HotplugListener(on_add, debounce_seconds=2.0, open_socket=lambda: ours,
                               on_event=seen.append)
    assert listener.start()
    try:
        theirs.send(b"garbage\x00")
        theirs.send(RECORDED_NET_CHANGE.replace(b"change", b"add"))  # net: not a device of ours
        theirs.send(tty_add(0).replace(b"add@", b"remove@").replace(b"ACTION=add", b"ACTION=remove"))
        for n in range(3):
            theirs.send(tty_add(n))
        wait_for(fired.is_set)
        assert calls == [1]
        assert [e.env["DEVNAME"] for e in seen] == ["ttyUSB0", "ttyUSB1", "ttyUSB2"]
        assert (listener.received, listener.malformed, listener.rescans) == (3, 1, 1)
        fired.clear()
        theirs.send(tty_add(7))
        wait_for(fired.is_set)
        assert listener.rescans == 2
    finally:
        listener.stop()


def test_a_failing_callback_does_not_stop_the_listener(
        datagram_pair: tuple[socket.socket, socket.socket],
        caplog: pytest.LogCaptureFixture) -> None:
    ours, theirs = datagram_pair
    calls: list[int] = []

    def on_add() -> None:
        calls.append(1)
        raise RuntimeError("bug in the callback")

    listener = HotplugListener(on_add, debounce_seconds=0.05, open_socket=lambda: ours)
    caplog.set_level(logging.ERROR, logger="agent.hotplug")
    listener.start()
    try:
        theirs.send(tty_add(1))
        wait_for(lambda: len(calls) == 1)
        theirs.send(tty_add(2))
        wait_for(lambda: len(calls) == 2)
        assert sum("hot-plug rescan failed" in r.getMessage() for r in caplog.records) == 2
    finally:
        listener.stop()


def test_netlink_unavailable_is_one_line_and_nothing_else(
        caplog: pytest.LogCaptureFixture) -> None:
    def refused() -> socket.socket:
        raise PermissionError(1, "Operation not permitted")

    caplog.set_level(logging.DEBUG, logger="agent.hotplug")
    listener = HotplugListener(lambda: None, open_socket=refused)
    assert listener.start() is False
    assert not listener.available
    listener.stop()  # harmless when it never started
    lines = [r for r in caplog.records if r.name == "agent.hotplug"]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "hot-plug events unavailable (Operation not permitted)" in lines[0].getMessage()
    assert "back-off timer" in lines[0].getMessage()


def test_a_socket_error_stops_the_listener_with_one_line(
        caplog: pytest.LogCaptureFixture) -> None:
    # An unconnected stream socket: every recv fails with ENOTCONN, a real error that is not
    # the kernel's "events dropped" (ENOBUFS).
    broken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    caplog.set_level(logging.WARNING, logger="agent.hotplug")
    listener = HotplugListener(lambda: None, open_socket=lambda: broken)
    assert listener.start()
    try:
        wait_for(lambda: not listener.available)
        assert sum("hot-plug listener stopped" in r.getMessage() for r in caplog.records) == 1
    finally:
        listener.stop()
    assert broken.fileno() == -1  # closed by stop()


# --------------------------------------------------------------------------- manager


class Pluggable:
    """A device that is absent until the test 'plugs it in'."""

    plugged = threading.Event()

    def open(self) -> None:
        if not self.plugged.is_set():
            raise DeviceMissingError("not plugged in")

    def identify(self) -> DeviceIdentity:
        return DeviceIdentity("printer", "X", "Y", "1", "f", "emulator only", True)

    def self_test(self) -> SelfTestResult:
        return SelfTestResult(True, ())

    def close(self) -> None: ...


def slow_retry() -> DeviceConfig:
    # The back-off alone would not retry within any test's patience: only a rescan can.
    return DeviceConfig(driver="x", role="printer", retry_min_seconds=600.0,
                        retry_max_seconds=600.0)


@pytest.fixture
def pluggable() -> Iterator[type[Pluggable]]:
    class Fresh(Pluggable):
        plugged = threading.Event()

    yield Fresh


def test_rescan_down_wakes_only_absent_or_faulted_devices(pluggable: type[Pluggable]) -> None:
    manager = DeviceManager({"p": slow_retry()}, factory=lambda cfg: pluggable())
    manager.start()
    try:
        wait_for(lambda: manager.devices["p"].counters["open_failures"] >= 1)
        assert manager.devices["p"].state is DeviceState.ABSENT
        pluggable.plugged.set()
        assert manager.rescan_down() == ["p"]
        assert manager.wait_ready("p", 20)
        assert manager.rescan_down() == []  # ready devices are left alone
    finally:
        manager.stop()


def test_a_parsed_add_event_brings_an_absent_device_back(
        pluggable: type[Pluggable], datagram_pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = datagram_pair
    manager = DeviceManager({"p": slow_retry()}, factory=lambda cfg: pluggable())
    listener = HotplugListener(manager.rescan_down, debounce_seconds=0.05,
                               open_socket=lambda: ours)
    manager.start()
    listener.start()
    try:
        wait_for(lambda: manager.devices["p"].counters["open_failures"] >= 1)
        pluggable.plugged.set()
        theirs.send(RECORDED_NET_CHANGE.replace(b"change", b"add"))  # filtered out: stays absent
        theirs.send(tty_add(0))
        assert manager.wait_ready("p", 20)
        assert listener.received == 1
    finally:
        listener.stop()
        manager.stop()


# --------------------------------------------------------------------------- the real kernel


def _netlink_or_skip() -> socket.socket:
    try:
        return open_uevent_socket()
    except OSError as exc:
        pytest.skip(f"netlink uevents unavailable here: {exc}")


def _synth(path: Path, action: str) -> str:
    """Ask the kernel to emit a synthetic uevent (tagged with a fresh UUID) for a device."""
    tag = str(uuid.uuid4())
    try:
        path.write_text(f"{action} {tag}")
    except OSError as exc:
        pytest.skip(f"cannot write {path}: {exc}")
    return tag


LO = Path("/sys/devices/virtual/net/lo/uevent")
TTY0 = Path("/sys/devices/virtual/tty/tty0/uevent")


@pytest.mark.skipif(os.geteuid() != 0, reason="synthetic uevents need root")
@pytest.mark.skipif(not (LO.exists() and TTY0.exists()), reason="no lo or tty0 in sysfs")
def test_real_kernel_uevents_reach_the_listener_and_wake_the_manager(
        pluggable: type[Pluggable]) -> None:
    _netlink_or_skip().close()
    manager = DeviceManager({"p": slow_retry()}, factory=lambda cfg: pluggable(), hotplug=True)
    seen: list[UEvent] = []
    assert manager._hotplug is not None
    manager._hotplug._on_event = seen.append  # observe what the daemon's own listener receives
    manager._hotplug._debounce = 0.05
    manager.start()
    try:
        assert manager._hotplug.available
        wait_for(lambda: manager.devices["p"].counters["open_failures"] >= 1)
        pluggable.plugged.set()
        net_tag = _synth(LO, "add")  # subsystem net: must be filtered out
        tty_tag = _synth(TTY0, "add")
        wait_for(lambda: any(e.env.get("SYNTH_UUID") == tty_tag for e in seen))
        assert manager.wait_ready("p", 20)
        ours = [e for e in seen if e.env.get("SYNTH_UUID") in (net_tag, tty_tag)]
        assert [(e.action, e.subsystem, e.devpath) for e in ours] == [
            ("add", "tty", "/devices/virtual/tty/tty0")]
        assert all(e.subsystem in DEVICE_SUBSYSTEMS for e in seen)
    finally:
        manager.stop()
    assert manager._hotplug is not None and manager._hotplug._sock is None
