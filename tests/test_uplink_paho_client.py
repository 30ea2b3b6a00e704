"""The uplink's paho shortcuts (agent/uplink/paho_client.py) against plain paho.

A PUBACK body is handed to both clients' PUBACK handler with the same message in flight; the
callback must receive the same mid, reason and properties, and the in-flight state must end the
same. The write shortcut is checked byte for byte through a socket pair, including partial
writes; tests/test_uplink_tls.py sends 64 KiB chunks through it over real TLS.
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

from agent.uplink.client import PackedProperties, encode_publish_properties
from agent.uplink.paho_client import FAST_PATHS, GATHER_MIN_BYTES, FastClient, Gather


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


def _wire(cls: type[mqtt.Client], protocol: int, payload: bytes, sndbuf: int = 0,
          **publish: Any) -> bytes:
    """What ``_send_publish`` writes to a socket pair, read back whole (partial writes resumed)."""
    a, b = socket.socketpair()
    if sndbuf:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    a.setblocking(False)
    b.setblocking(False)
    try:
        client = cls(CallbackAPIVersion.VERSION2, client_id="t", protocol=protocol)
        client._sock = a
        client._send_publish(5, b"rekam/v1/s/packet", payload, info=mqtt.MQTTMessageInfo(5),
                             **publish)
        partial = client.want_write()
        got = bytearray()
        while True:
            done = not client.want_write()
            try:
                while data := b.recv(1 << 20):
                    got += data
            except BlockingIOError:
                pass
            if done:
                break
            client.loop_write()
        client._sock = None
        assert partial == bool(sndbuf), "the socket buffer size did not decide partial writes"
        return bytes(got)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311])
@pytest.mark.parametrize("publish", [
    dict(qos=1),
    dict(qos=0, retain=True),
    dict(qos=1, dup=True, properties=PackedProperties(
        encode_publish_properties([("packet_id", "p-1"), ("chunk", "3")], "x/y"))),
])
def test_large_publish_is_sent_byte_for_byte_as_paho_sends_it(
        protocol: int, publish: dict[str, Any], monkeypatch: Any) -> None:
    queued: list[Any] = []
    base = mqtt.Client._packet_queue

    def spy(self: mqtt.Client, command: int, packet: Any, *rest: Any) -> Any:
        queued.append(packet)
        return base(self, command, packet, *rest)

    monkeypatch.setattr(mqtt.Client, "_packet_queue", spy)
    payload = bytes(range(256)) * (GATHER_MIN_BYTES // 256 + 3)
    if protocol != mqtt.MQTTv5:
        publish = {k: v for k, v in publish.items() if k != "properties"}
    fast = _wire(FastClient, protocol, payload, **publish)
    assert fast == _wire(mqtt.Client, protocol, payload, **publish)
    assert fast.endswith(payload)
    # The shortcut queued the caller's payload itself: no copy was made of it.
    assert isinstance(queued[0], Gather) and queued[0].body is payload
    assert isinstance(queued[1], bytearray)


def test_small_publishes_and_paho_logging_keep_pahos_packet(monkeypatch: Any) -> None:
    queued: list[type] = []
    base = mqtt.Client._packet_queue
    monkeypatch.setattr(mqtt.Client, "_packet_queue",
                        lambda self, c, packet, *r: queued.append(type(packet)) or base(
                            self, c, packet, *r))
    small = b"x" * (GATHER_MIN_BYTES - 1)
    assert _wire(FastClient, mqtt.MQTTv5, small, qos=1) == _wire(mqtt.Client, mqtt.MQTTv5, small,
                                                                  qos=1)
    assert queued == [bytearray, bytearray]


@settings(max_examples=60, deadline=None)
@given(head=st.binary(min_size=1, max_size=40), body=st.binary(min_size=1, max_size=200),
       data=st.data())
def test_a_queued_publish_slices_like_the_bytes_it_stands_for(head: bytes, body: bytes,
                                                              data: st.DataObject) -> None:
    packet = Gather(head, body)
    whole = head + body
    assert len(packet) == len(whole)
    pos = data.draw(st.integers(0, len(whole) - 1))
    part = packet[pos:]
    flat = bytes(part) if isinstance(part, memoryview) else part.head + bytes(part.body)
    assert flat == whole[pos:]
    with pytest.raises(TypeError):
        packet[pos:pos + 1]


class _Trickle:
    """A stream that is not a plain socket (as TLS and WebSocket are), taking 1000 bytes a write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def send(self, buf: Any) -> int:
        self.writes.append(bytes(buf[:1000]))
        return len(self.writes[-1])


def test_tls_like_streams_get_the_header_then_the_payload_across_partial_writes() -> None:
    payload = bytes(range(256)) * (GATHER_MIN_BYTES // 256 + 3)
    client = FastClient(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5)
    stream = _Trickle()
    client._sock = stream  # type: ignore[assignment]
    client._send_publish(5, b"rekam/v1/s/packet", payload, qos=1)
    while client.want_write():
        client.loop_write()
    client._sock = None
    wire = b"".join(stream.writes)
    assert wire == _wire(mqtt.Client, mqtt.MQTTv5, payload, qos=1)
    assert len(stream.writes[0]) < 100  # the header alone; payload views after it


def test_a_partly_written_publish_resumes_on_a_full_socket() -> None:
    """sendmsg writes part of the packet when the socket buffer fills; the rest follows."""
    payload = bytes(range(256)) * 4096  # 1 MiB: more than the socket buffer takes at once
    fast = _wire(FastClient, mqtt.MQTTv5, payload, sndbuf=32768, qos=1)
    assert fast == _wire(mqtt.Client, mqtt.MQTTv5, payload, sndbuf=32768, qos=1)
    assert fast.endswith(payload)
