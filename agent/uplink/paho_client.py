"""paho-mqtt's ``Client`` with two shortcuts on the per-chunk path, measured in a backlog drain.

The uplink thread runs paho, the journal reads and the sender on one thread, so paho's Python
per message is the drain's limit (docs/performance.md, "Uplink"). Two costs there do not depend
on the bytes sent, and are cut here without changing what goes on the wire or what the
callbacks receive:

- **PUBACK decoding.** paho decodes every PUBACK into a new ``ReasonCode`` (built twice, each
  copying a table of all reason names) and a new ``Properties`` (building its own tables):
  about 36 us per PUBACK, a chunk's whole journal read. A PUBACK that carries only its packet
  id and a success reason (0x00 or 0x10, no properties: what brokers send for almost every
  publish) is answered here with shared, never-modified ``ReasonCode`` and ``Properties``
  objects equal to the ones paho would build. Anything else (a failure code, properties, MQTT
  3.1.1, paho's logging on) goes through paho's own decoder.
- **The write copy.** paho sends ``packet[pos:]``; on the ``bytearray`` a PUBLISH is built in,
  that slice copies the whole packet (256 KiB a chunk) before each ``send``. A large PUBLISH
  is queued as a ``memoryview`` of the same bytes, whose slices copy nothing.

Both override private paho methods, so both are feature-detected when the client is built
(:data:`FAST_PATHS`); a paho release that renames them gets plain paho, slower but correct,
and ``tests/test_uplink_paho_client.py`` fails so the upgrade is noticed.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

# The private paho attributes the shortcuts rely on (paho-mqtt 2.x).
_NEEDED = ("_handle_pubackcomp", "_packet_queue", "_do_on_publish", "_in_packet",
           "_out_messages", "_out_message_mutex", "_logger", "_on_log", "_protocol")
# PUBLISH packets smaller than this are left as paho builds them (the copy is negligible).
VIEW_MIN_BYTES = 64 * 1024
_PUBLISH = 0x30
# Success codes of a PUBACK (MQTT 5.0, 3.4.2.1): Success and No matching subscribers.
_SUCCESS_CODES = (0x00, 0x10)


class FastClient(mqtt.Client):
    """``mqtt.Client`` with the PUBACK and write shortcuts of the module docstring."""

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

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: mqtt.MQTTMessageInfo | None = None) -> MQTTErrorCode:
        if (self.fast_paths and command & 0xF0 == _PUBLISH and isinstance(packet, bytearray)
                and len(packet) >= VIEW_MIN_BYTES):
            # paho only slices, measures and sends the packet: a view does all three.
            view: Any = memoryview(packet)
            return super()._packet_queue(command, view, mid, qos, info)
        return super()._packet_queue(command, packet, mid, qos, info)


FAST_PATHS = all(hasattr(mqtt.Client, name) for name in _NEEDED[:3])
