"""paho-mqtt's ``Client`` with two shortcuts on the per-chunk path, measured in a backlog drain.

The uplink thread runs paho, the journal reads and the sender on one thread, so paho's Python
per message, and every copy of a chunk, count against the drain (docs/performance.md,
"Station uplink"). Two costs are cut here without changing what goes on the wire or what the
callbacks receive:

- **PUBACK decoding.** paho decodes every PUBACK into a new ``ReasonCode`` (built twice, each
  copying a table of all reason names) and a new ``Properties`` (building its own tables):
  about 36 us per PUBACK, a chunk's whole journal read. A PUBACK that carries only its packet
  id and a success reason (0x00 or 0x10, no properties: what brokers send for almost every
  publish) is answered here with shared, never-modified ``ReasonCode`` and ``Properties``
  objects equal to the ones paho would build. Anything else (a failure code, properties, MQTT
  3.1.1, paho's logging on) goes through paho's own decoder.
- **The payload copies.** paho builds each PUBLISH in a new ``bytearray``: the fixed header,
  topic, packet id and properties, then the payload appended (a 256 KiB copy a chunk); and it
  sends ``packet[pos:]``, which copies the whole packet again. A PUBLISH with a payload of
  64 KiB or more is queued here as its header and the caller's payload side by side
  (:class:`Gather`): on a plain TCP socket one ``sendmsg`` writes both with no copy in Python;
  on TLS or WebSocket the header is one write and the payload (a view) the next. The bytes
  on the wire are the same.

Both override private paho methods, so both are feature-detected when the client is built
(:data:`FAST_PATHS`); a paho release that renames them gets plain paho, slower but correct,
and ``tests/test_uplink_paho_client.py`` fails so the upgrade is noticed.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

# The private paho methods the shortcuts override or call, and the attributes they read
# (paho-mqtt 2.x).
_METHODS = ("_handle_pubackcomp", "_send_publish", "_sock_send", "_packet_queue",
            "_pack_remaining_length", "_pack_str16", "_call_socket_register_write",
            "_do_on_publish")
_NEEDED = (*_METHODS, "_in_packet", "_out_messages", "_out_message_mutex", "_logger",
           "_on_log", "_protocol", "_sock")
# Payloads smaller than this are built into one packet as paho does (the copy is negligible).
GATHER_MIN_BYTES = 64 * 1024
_PUBLISH = 0x30
# Success codes of a PUBACK (MQTT 5.0, 3.4.2.1): Success and No matching subscribers.
_SUCCESS_CODES = (0x00, 0x10)


class Gather:
    """A queued PUBLISH as its header and payload, sliced and measured the way paho does."""

    __slots__ = ("head", "body")

    def __init__(self, head: bytes, body: bytes | bytearray | memoryview) -> None:
        self.head = head
        self.body = body

    def __len__(self) -> int:
        return len(self.head) + len(self.body)

    def __getitem__(self, key: slice) -> Gather | memoryview:
        # paho only ever asks for packet[pos:], the part not yet written.
        if not isinstance(key, slice) or key.stop is not None or key.step is not None:
            raise TypeError("a queued PUBLISH is only sliced from a position to its end")
        pos = key.start or 0
        if pos >= len(self.head):
            return memoryview(self.body)[pos - len(self.head):]
        return Gather(self.head[pos:], self.body)


class FastClient(mqtt.Client):
    """``mqtt.Client`` with the PUBACK and payload shortcuts of the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_paths = all(hasattr(self, name) for name in _NEEDED)
        # One instance per success code, as paho would build them; shared, so never modified.
        self._acks = {code: ReasonCode(PacketTypes.PUBACK, identifier=code)
                      for code in _SUCCESS_CODES}
        self._no_props = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]

    def _handle_pubackcomp(self, cmd: Any) -> MQTTErrorCode:
        if (cmd != "PUBACK" or not self.fast_paths or self._protocol != MQTTProtocolVersion.MQTTv5
                or self._logger is not None or self._on_log is not None):
            return super()._handle_pubackcomp(cmd)
        body = self._in_packet["packet"]
        size = len(body)
        # Packet id; then an optional reason code; then an optional property length of 0.
        if size == 2:
            code = 0
        elif size in (3, 4) and body[2] in _SUCCESS_CODES and (size == 3 or body[3] == 0):
            code = body[2]
        else:
            return super()._handle_pubackcomp(cmd)
        mid = (body[0] << 8) | body[1]
        with self._out_message_mutex:
            if mid in self._out_messages:
                return self._do_on_publish(mid, self._acks[code], self._no_props)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _send_publish(self, mid: int, topic: bytes, payload: bytes | bytearray = b"",
                      qos: int = 0, retain: bool = False, dup: bool = False,
                      info: mqtt.MQTTMessageInfo | None = None,
                      properties: Properties | None = None) -> MQTTErrorCode:
        if (not self.fast_paths or not isinstance(topic, bytes)
                or not isinstance(payload, (bytes, bytearray)) or len(payload) < GATHER_MIN_BYTES
                or self._sock is None or self._logger is not None or self._on_log is not None):
            return super()._send_publish(mid, topic, payload, qos, retain, dup, info, properties)
        # The header exactly as paho's _send_publish writes it (MQTT 5.0 3.3.1-3.3.2).
        packed: bytes = b""
        if self._protocol == MQTTProtocolVersion.MQTTv5:
            packed = b"\x00" if properties is None else properties.pack()  # type: ignore[no-untyped-call]
        head = bytearray((_PUBLISH | ((dup & 0x1) << 3) | (qos << 1) | retain,))
        self._pack_remaining_length(
            head, 2 + len(topic) + (2 if qos > 0 else 0) + len(packed) + len(payload))
        self._pack_str16(head, topic)
        if qos > 0:
            head += struct.pack("!H", mid)
        head += packed
        packet: Any = Gather(bytes(head), payload)
        return self._packet_queue(_PUBLISH, packet, mid, qos, info)

    def _sock_send(self, buf: bytes | bytearray) -> int:
        if not isinstance(buf, Gather):
            return super()._sock_send(buf)
        sock = self._sock
        if type(sock) is not socket.socket:
            # TLS or WebSocket: the header is one write; paho then sends the payload's view.
            return super()._sock_send(buf.head)
        try:
            return sock.sendmsg((buf.head, buf.body))
        except BlockingIOError:
            self._call_socket_register_write()
            raise


FAST_PATHS = all(hasattr(mqtt.Client, name) for name in _METHODS)
