"""The uplink's paho shortcuts (agent/uplink/paho_client.py) against plain paho.

A PUBACK body is handed to both clients' PUBACK handler with the same message in flight; the
callback must receive the same mid, reason and properties, and the in-flight state must end the
same. The write shortcut is checked byte for byte through a socket pair.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from agent.uplink.paho_client import FAST_PATHS, VIEW_MIN_BYTES, FastClient


def _client(cls: type[mqtt.Client], protocol: int = mqtt.MQTTv5) -> tuple[mqtt.Client, list[Any]]:
    seen: list[Any] = []
    c = cls(CallbackAPIVersion.VERSION2, client_id="t", protocol=protocol)

    def on_publish(_c: Any, _u: Any, mid: int, reason: Any, props: Any) -> None:
        seen.append((mid, reason.value, reason.getName(), reason.is_failure,
                     None if props is None else props.json()))

    c.on_publish = on_publish
    for mid in (1, 7, 300):
        msg = mqtt.MQTTMessage(mid, b"rekam/v1/s/packet")
        msg.qos = 1
        c._out_messages[mid] = msg
        c._inflight_messages += 1
    return c, seen


def _handle(client: mqtt.Client, body: bytes) -> tuple[Any, list[int], int]:
    client._in_packet["packet"] = body
    try:
        rc: Any = client._handle_pubackcomp("PUBACK")
    except Exception as exc:  # paho raises MalformedPacket on bad bodies: so must we
        rc = type(exc).__name__
    return rc, sorted(client._out_messages), client._inflight_messages


def test_the_shortcuts_are_active_with_the_installed_paho() -> None:
    """A paho upgrade that renames the private methods must be noticed, not silently slower."""
    assert FAST_PATHS
    assert FastClient(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5).fast_paths


def _puback_bodies() -> st.SearchStrategy[bytes]:
    mid = st.sampled_from([1, 7, 300, 9])  # 9 is not in flight
    code = st.sampled_from([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99, 0x05])
    reason_string = st.text(max_size=20).map(lambda t: t.encode())
    props = st.one_of(
        st.just(b"\x00"),
        reason_string.map(lambda r: bytes([3 + len(r), 0x1F]) + struct.pack("!H", len(r)) + r),
        st.binary(max_size=6),  # malformed more often than not
    )
    return st.one_of(
        mid.map(lambda m: struct.pack("!H", m)),
        st.tuples(mid, code).map(lambda t: struct.pack("!HB", *t)),
        st.tuples(mid, code, props).map(lambda t: struct.pack("!HB", t[0], t[1]) + t[2]),
        st.binary(max_size=5),
    )


@settings(max_examples=400, deadline=None)
@given(_puback_bodies())
def test_puback_handling_matches_paho(body: bytes) -> None:
    plain, plain_seen = _client(mqtt.Client)
    fast, fast_seen = _client(FastClient)
    assert _handle(fast, body) == _handle(plain, body)
    assert fast_seen == plain_seen


@pytest.mark.parametrize("body,code", [(b"\x00\x07", 0), (b"\x00\x07\x00", 0),
                                       (b"\x00\x07\x10", 0x10), (b"\x00\x07\x00\x00", 0)])
def test_success_pubacks_take_the_shortcut(body: bytes, code: int, monkeypatch: Any) -> None:
    fast, seen = _client(FastClient)

    def paho_decoder(*_a: Any) -> None:
        raise AssertionError("paho's decoder was used for a plain success PUBACK")

    monkeypatch.setattr(mqtt.Client, "_handle_pubackcomp", paho_decoder)
    _handle(fast, body)
    assert [(s[0], s[1]) for s in seen] == [(7, code)]
    assert 7 not in fast._out_messages


@pytest.mark.parametrize("body", [b"\x00\x07\x87", b"\x00\x07\x00\x03\x1f\x00\x00",
                                  b"\x00\x07\x97\x00"])
def test_failures_and_properties_go_through_paho(body: bytes) -> None:
    fast, seen = _client(FastClient)
    _handle(fast, body)
    plain, plain_seen = _client(mqtt.Client)
    _handle(plain, body)
    assert seen == plain_seen and seen[0][0] == 7


def test_mqtt311_and_paho_logging_use_paho() -> None:
    for make in (lambda: _client(FastClient, mqtt.MQTTv311),
                 lambda: _client(FastClient)):
        fast, seen = make()
        if fast._protocol == mqtt.MQTTv5:
            fast.on_log = lambda *_a: None
        _handle(fast, b"\x00\x07")
        assert [s[0] for s in seen] == [7]


def test_large_publish_is_sent_byte_for_byte_without_the_copy(monkeypatch: Any) -> None:
    queued: list[type] = []
    base = mqtt.Client._packet_queue

    def spy(self: mqtt.Client, command: int, packet: Any, *rest: Any) -> Any:
        queued.append(type(packet))
        return base(self, command, packet, *rest)

    monkeypatch.setattr(mqtt.Client, "_packet_queue", spy)
    a, b = socket.socketpair()
    a.setblocking(False)
    b.settimeout(5)
    try:
        payload = bytes(range(256)) * (VIEW_MIN_BYTES // 256 + 3)
        wire = []
        for cls in (FastClient, mqtt.Client):
            client = cls(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5)
            client._sock = a
            client._send_publish(5, b"rekam/v1/s/packet", payload, qos=1)
            got = bytearray()
            while len(got) < len(payload):
                got += b.recv(1 << 20)
            wire.append(bytes(got))
            client._sock = None
        assert queued == [memoryview, bytearray]
        assert wire[0] == wire[1]
        assert wire[0].endswith(payload)
    finally:
        a.close()
        b.close()
