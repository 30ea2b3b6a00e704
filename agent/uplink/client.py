"""The uplink thread: one paho-mqtt 2.x MQTT v5 session to head office, and the sender.

One thread owns the paho client and the :class:`~agent.uplink.sender.Sender` (no paho network
thread: ``publish`` writes at once and ``loop`` reads PUBACKs and head-office messages in the
same thread, so the sender's state needs no lock). It connects with clean start off and a
session expiry, so the broker keeps our subscriptions and queues head office's acks while the
link is down; the Last Will says ``offline`` (retained) and every connect publishes ``online``.

Connect failures (refused, TLS, bad CONNACK, no CONNACK in time) are never carried on from:
the thread backs off with full jitter and tries again. Half-open links are found by paho's
keepalive and by a PUBACK timeout of our own (MQTT-4.4.0-1: resend only on a new connection).
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import UplinkConfig
from agent.envelope import ReplayGuard
from agent.journal.errors import JournalError
from agent.uplink.backoff import Backoff
from agent.uplink.incoming import (
    IncomingValidator,
    JournalReplayGuard,
    RejectedMessage,
    parse_ack,
    remember,
)
from agent.uplink.paho_client import FastClient
from agent.uplink.sender import EVENT_WINDOW, JournalLike, OutboxSource, Sender
from agent.uplink.topics import Topics

log = logging.getLogger(__name__)

# Room for the fixed header, topic and the user properties of a chunk when clamping the chunk
# to the broker's Maximum Packet Size (a chunk's properties take about 400 bytes).
PACKET_OVERHEAD = 1024
# Extra QoS 1 slots beyond the chunk window: events, status, ack queries.
RESERVED_SLOTS = EVENT_WINDOW + 2
LINK_STATES = ("stopped", "connecting", "connected", "down", "disabled")
Handler = Callable[[dict[str, Any]], None]


class UplinkConfigError(Exception):
    """The [uplink] configuration cannot be used (names the key)."""


# MQTT v5 property identifiers (MQTT 5.0 section 2.2.2.2).
_CONTENT_TYPE = b"\x03"
_USER_PROPERTY = b"\x26"


def _utf8(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError(f"MQTT string of {len(raw)} bytes is longer than 65535")
    return len(raw).to_bytes(2, "big") + raw


@lru_cache(maxsize=256)
def _property(identifier: bytes, *texts: str) -> bytes:
    # Most of a chunk's properties repeat from chunk to chunk (version, packet id, count,
    # size, small indexes and offsets): encoding them once per packet, not once per chunk,
    # cuts the encoding from 11 to 4 us a chunk (measured alone).
    return identifier + b"".join([_utf8(text) for text in texts])


def encode_publish_properties(user_properties: list[tuple[str, str]],
                              content_type: str | None) -> bytes:
    """The PUBLISH properties field as paho's ``Properties.pack()`` writes it (same order)."""
    body = b"".join([_property(_USER_PROPERTY, key, value) for key, value in user_properties])
    if content_type:
        body = _property(_CONTENT_TYPE, content_type) + body
    return bytes(VariableByteIntegers.encode(len(body))) + body  # type: ignore[no-untyped-call]


class PackedProperties(Properties):
    """PUBLISH properties already encoded: paho only calls ``pack()`` on what it is given.

    paho's own ``Properties`` builds its name tables per instance and encodes in Python, about
    0.2 ms per chunk, comparable to reading the chunk; a chunk's properties are encoded once.
    """

    def __init__(self, packed: bytes) -> None:
        # Properties.__init__ (its tables) is skipped on purpose; its __setattr__ checks names.
        object.__setattr__(self, "packed", packed)

    def pack(self) -> bytes:
        """The encoded properties (length prefix included)."""
        packed: bytes = object.__getattribute__(self, "packed")
        return packed


def utc_iso(ts: datetime | None = None) -> str:
    """ISO 8601 UTC text with a Z."""
    return (ts or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _read_secret(path: Path, key: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UplinkConfigError(f"[uplink] {key}: cannot read {path}: {exc.strerror}") from exc


def tls_context(cfg: UplinkConfig) -> ssl.SSLContext:
    """Client TLS context: verify the broker against ca_file, present cert_file/key_file."""
    missing = [name for name in ("ca_file", "cert_file", "key_file") if getattr(cfg, name) is None]
    if missing:
        raise UplinkConfigError(
            f"[uplink] transport = \"tls\" needs {', '.join(missing)} (or transport = \"tcp\")")
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cfg.ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cfg.cert_file), str(cfg.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise UplinkConfigError(f"[uplink] cert_file/key_file: cannot load: {exc}") from exc
    return ctx


class Uplink:
    """The uplink component: ``start``/``stop``/``healthy``/``status`` for agent.daemon."""

    name = "uplink"

    def __init__(
        self,
        cfg: UplinkConfig,
        *,
        station_id: str,
        journal: JournalLike,
        chunk_bytes: int,
        public_keys: Callable[[], Mapping[str, Ed25519PublicKey]],
        version: str,
        office_tz: tzinfo | None = None,
        replay_guard: ReplayGuard | None = None,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.cfg = cfg
        self.topics = Topics(station_id)
        self.journal = journal
        self.version = version
        self.started_at = utc_iso()
        self.wall_clock = wall_clock or (lambda: datetime.now(UTC))
        if replay_guard is None and callable(getattr(journal, "register_schema", None)):
            replay_guard = JournalReplayGuard(journal, self.wall_clock())
        self.validator = IncomingValidator(self.topics, public_keys, replay_guard=replay_guard)
        self.sender = Sender(
            journal, self.topics, chunk_bytes=chunk_bytes, window=cfg.inflight_window,
            ack_timeout=cfg.ack_timeout_seconds, max_rejects=cfg.max_rejects,
            max_unacked_packets=cfg.max_unacked_packets,
            bandwidth_limit_bps=cfg.bandwidth_limit_bps, today_first=cfg.today_first,
            office_tz=office_tz, wall_clock=self.wall_clock,
        )
        self.backoff = Backoff(cfg.reconnect_min_seconds, cfg.reconnect_max_seconds,
                               stable_after=max(60.0, 2.0 * cfg.keepalive_seconds))
        self.handlers: dict[str, Handler] = {}
        self.telemetry_providers: list[Callable[[], Mapping[str, Any]]] = []
        self._tls = tls_context(cfg) if cfg.transport == "tls" else None
        self._password = (_read_secret(cfg.password_file, "password_file")
                          if cfg.password_file else None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._connack: tuple[ReasonCode, Properties, bool] | None = None
        self._sent_at: dict[int, float] = {}
        self._drop_reason: str | None = None
        self._next_attempt = 0.0
        self._next_telemetry = 0.0
        self._heartbeat = time.monotonic()
        self._down_since: float | None = None
        # Diagnostics, read by other threads (plain attribute reads are atomic in CPython).
        self.link_state = "disabled" if not cfg.enabled else "stopped"
        self.last_error: str | None = None
        self.connects = 0
        self.attempts = 0
        self.rejected_messages = 0
        self._reject_event_failed = False  # one log line per episode, not one per message
        self.broker_max_packet: int | None = None
        self.broker_receive_max: int | None = None

    # ------------------------------------------------------------------ component API
    def register_handler(self, leaf: str, handler: Handler) -> None:
        """Call ``handler(body)`` for each valid message on ``print/order`` or ``command``.

        Handlers run on the uplink thread: they must hand work to their own owner quickly.
        """
        if leaf not in ("print/order", "command"):
            raise ValueError(f"no handlers for {leaf!r}; acks are the uplink's own")
        self.handlers[leaf] = handler

    def add_outbox(self, leaf: str, pending: Callable[[int], Sequence[tuple[int, bytes]]],
                   mark_sent: Callable[[int], None]) -> None:
        """Publish another owner's durable messages on ``leaf`` (QoS 1), e.g. print results.

        ``pending(limit)`` returns (id, JSON payload) pairs not yet sent; ``mark_sent(id)`` is
        called on the broker's PUBACK. Both run on the uplink thread.
        """
        if leaf not in ("print/result", "event"):
            raise ValueError(f"no outbox for {leaf!r}")
        self.sender.add_source(OutboxSource(self.topics.leaf(leaf), pending, mark_sent))

    def wake(self) -> None:
        """Something new is in the journal: send it without waiting for the next poll."""
        self.sender.wake()

    def telemetry_now(self) -> None:
        """Publish telemetry at the next turn of the loop (head office's "telemetry" command)."""
        self._next_telemetry = 0.0
        self.wake()

    def add_telemetry_provider(self, provider: Callable[[], Mapping[str, Any]]) -> None:
        """Merge ``provider()`` into each telemetry message (latest values only)."""
        self.telemetry_providers.append(provider)

    def start(self) -> None:
        """Start the uplink thread (no-op when [uplink] enabled = false)."""
        if not self.cfg.enabled or self._thread is not None:
            return
        self._stop.clear()
        self.link_state = "connecting"
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish offline, disconnect and join the thread (bounded)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("uplink thread did not stop within %.0f s", timeout)
            self._thread = None
        if self.cfg.enabled:
            self.link_state = "stopped"

    def healthy(self) -> bool:
        """False when the uplink thread died or has not turned its loop for a minute."""
        if not self.cfg.enabled:
            return True
        if self._thread is None or not self._thread.is_alive():
            return False
        return time.monotonic() - self._heartbeat < 60.0

    def status(self) -> str:
        """Short STATUS= fragment."""
        return f"uplink {self.link_state}, {len(self.sender.packets)} in transfer"

    def snapshot(self) -> dict[str, Any]:
        """Link state, last error, last ack, drain rate and backlog, for diagnostics."""
        headroom: dict[str, Any] = {}
        headroom_fn = getattr(self.journal, "headroom", None)
        if callable(headroom_fn):
            try:
                h = headroom_fn()
                headroom = {"backlog_packets": h.backlog_packets,
                            "oldest_unacked": h.oldest_created}
            except Exception as exc:  # noqa: BLE001 - diagnostics must not fail on a journal error
                headroom = {"backlog_error": type(exc).__name__}
        stats = self.sender.stats
        return {
            "link_state": self.link_state,
            "broker": f"{self.cfg.host}:{self.cfg.port}",
            "transport": self.cfg.transport,
            "last_error": self.last_error,
            "last_ack_at": stats.last_ack_at,
            "drain_rate_bps": round(self.sender.drain_rate()),
            "connects": self.connects,
            "connect_attempts": self.attempts,
            "chunk_bytes": self.sender.chunk_bytes,
            "window": self.sender.window,
            "packets_in_transfer": len(self.sender.packets),
            "packets_delivered": stats.packets_delivered,
            "packets_quarantined": stats.packets_quarantined,
            "chunks_sent": stats.chunks_sent,
            "chunks_resent": stats.resent_chunks,
            "ack_queries": stats.ack_queries,
            "events_sent": stats.events_sent,
            "rejected_messages": self.rejected_messages,
            "broker_max_packet": self.broker_max_packet,
            "broker_receive_max": self.broker_receive_max,
            **headroom,
        }

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        while not self._stop.is_set():
            self._heartbeat = time.monotonic()
            try:
                if self.link_state == "connected":
                    self._connected_step()
                else:
                    self._connect_step()
            except Exception as exc:  # the uplink must outlive any one bug
                log.exception("uplink loop error; reconnecting")
                self._drop(f"internal error: {type(exc).__name__}")
        self._shutdown()

    def _status_payload(self, state: str) -> bytes:
        return json.dumps({"v": 1, "state": state, "version": self.version,
                           "started_at": self.started_at}, separators=(",", ":")).encode()

    def _new_client(self) -> mqtt.Client:
        client = FastClient(CallbackAPIVersion.VERSION2, client_id=self.topics.station_id,
                            protocol=mqtt.MQTTv5)
        if self._tls is not None:
            client.tls_set_context(self._tls)
        if self.cfg.username:
            client.username_pw_set(self.cfg.username, self._password)
        client.will_set(self.topics.status, self._status_payload("offline"), qos=1, retain=True)
        slots = self.cfg.inflight_window + RESERVED_SLOTS
        client.max_inflight_messages_set(slots)
        # Kept at the window: the backlog lives in the journal, never in paho's memory.
        client.max_queued_messages_set(slots + 4)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _connect_step(self) -> None:
        now = time.monotonic()
        if now < self._next_attempt:
            self._stop.wait(min(self._next_attempt - now, 0.5))
            return
        if self._client is None:
            self._client = self._new_client()
        client = self._client
        self.link_state = "connecting"
        self.attempts += 1
        self._connack = None
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.cfg.session_expiry_seconds
        try:
            client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_seconds,
                           clean_start=False, properties=props)
        except (OSError, ValueError) as exc:  # refused, DNS, TLS handshake (SSLError is OSError)
            self._fail(f"connect: {type(exc).__name__}: {exc}")
            return
        deadline = time.monotonic() + self.cfg.keepalive_seconds
        while self._connack is None and time.monotonic() < deadline and not self._stop.is_set():
            rc = client.loop(0.1)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                break
        if self._connack is None:
            self._fail("no CONNACK (connection closed or timed out)")
            return
        reason, props_in, _session = self._connack
        if reason.is_failure:
            self._fail(f"broker refused the connection: {reason.getName()}")
            return
        self.broker_max_packet = getattr(props_in, "MaximumPacketSize", None)
        self.broker_receive_max = getattr(props_in, "ReceiveMaximum", None)
        try:
            self.sender.connected(max_packet_size=self.broker_max_packet,
                                  receive_maximum=self.broker_receive_max,
                                  overhead=PACKET_OVERHEAD + len(self.topics.packet))
        except ValueError as exc:
            self._fail(str(exc))
            return
        # Messages still in flight from the last connection are resent by paho now: their
        # PUBACK clocks start again, or a long outage would fail every new connection at once.
        now = time.monotonic()
        for mid in self._sent_at:
            self._sent_at[mid] = now
        # Always publish online (retained) and subscribe: a broker that lost our session
        # (restart without persistence) must get both again.
        client.publish(self.topics.status, self._status_payload("online"), qos=1, retain=True)
        client.subscribe([(t, 1) for t in self.topics.subscriptions()])
        self.connects += 1
        self._drop_reason = None
        self.link_state = "connected"
        self.backoff.connected(time.monotonic())
        if self._down_since is not None:
            log.info("uplink link back to %s:%d after %.0f s (%d attempts)", self.cfg.host,
                     self.cfg.port, time.monotonic() - self._down_since, self.attempts)
        elif self.connects == 1:
            log.info("uplink connected to %s:%d (chunk %d B, window %d)", self.cfg.host,
                     self.cfg.port, self.sender.chunk_bytes, self.sender.window)
        self._down_since = None
        self.attempts = 0
        self._next_telemetry = 0.0

    def _fail(self, reason: str) -> None:
        """A connect attempt failed: remember why, close the socket, schedule the next one."""
        self.last_error = reason
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("uplink cannot reach %s:%d: %s (retrying with backoff)",
                        self.cfg.host, self.cfg.port, reason)
        else:
            log.debug("uplink connect attempt failed: %s", reason)
        self._close_socket()
        self.link_state = "down"
        self._next_attempt = time.monotonic() + self.backoff.next_delay()

    def _drop(self, reason: str) -> None:
        """Leave a connection that is (or must be treated as) broken."""
        if self.link_state == "connected":
            log.warning("uplink link to %s:%d lost: %s", self.cfg.host, self.cfg.port, reason)
            self._down_since = time.monotonic()
        self.last_error = reason
        # paho may also have reported this same loss through on_disconnect: it is handled now.
        self._drop_reason = None
        self.backoff.disconnected(time.monotonic())
        self._close_socket()
        self.link_state = "down"
        self._next_attempt = time.monotonic() + self.backoff.next_delay()

    def _close_socket(self) -> None:
        client = self._client
        if client is None:
            return
        sock = client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _connected_step(self) -> None:
        client = self._client
        assert client is not None  # connected implies a client
        wait = self.sender.pump(self._publish)
        now = time.monotonic()
        if now >= self._next_telemetry:
            self._publish_telemetry()
            self._next_telemetry = now + self.cfg.telemetry_seconds
        if self._sent_at:
            oldest = min(self._sent_at.values())
            if now - oldest > self.cfg.puback_timeout_seconds:
                self._drop(f"no PUBACK within {self.cfg.puback_timeout_seconds} s")
                return
        if self._drop_reason is not None:
            reason, self._drop_reason = self._drop_reason, None
            self._drop(reason)
            return
        rc = client.loop(min(wait, 0.1))
        if rc != mqtt.MQTT_ERR_SUCCESS and self.link_state == "connected":
            self._drop(f"connection lost ({mqtt.error_string(rc)})")

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool,
                 user_properties: list[tuple[str, str]], content_type: str | None) -> int | None:
        client = self._client
        if client is None or self.link_state != "connected":
            return None
        props = PackedProperties(encode_publish_properties(user_properties, content_type))
        info = client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            if info.rc != mqtt.MQTT_ERR_QUEUE_SIZE:
                self._drop_reason = f"publish failed ({mqtt.error_string(info.rc)})"
            return None
        if qos > 0:
            self._sent_at[info.mid] = time.monotonic()
        return info.mid

    def _publish_telemetry(self) -> None:
        body: dict[str, Any] = {"v": 1, "at": utc_iso(self.wall_clock()), "uplink": self.snapshot()}
        for provider in self.telemetry_providers:
            try:
                body.update(provider())
            except Exception:  # one broken provider must not stop telemetry
                log.exception("telemetry provider failed")
        payload = json.dumps(body, separators=(",", ":"), default=str).encode()
        client = self._client
        if client is not None:
            client.publish(self.topics.telemetry, payload, qos=0)

    def _shutdown(self) -> None:
        self.sender.close()
        client = self._client
        if client is None:
            return
        if self.link_state == "connected":
            # An orderly stop is not a crash: say offline ourselves (the Will is not sent on a
            # normal DISCONNECT), wait for its PUBACK briefly, then disconnect.
            info = client.publish(self.topics.status, self._status_payload("offline"), qos=1,
                                  retain=True)
            deadline = time.monotonic() + 2.0
            while not info.is_published() and time.monotonic() < deadline:
                if client.loop(0.05) != mqtt.MQTT_ERR_SUCCESS:
                    break
            client.disconnect()
            client.loop(0.05)
        self._close_socket()
        self._client = None

    # ------------------------------------------------------------------ paho callbacks
    def _on_connect(self, _c: mqtt.Client, _u: object, flags: mqtt.ConnectFlags,
                    reason: ReasonCode, props: Properties | None) -> None:
        self._connack = (reason, props or Properties(PacketTypes.CONNACK),  # type: ignore[no-untyped-call]
                         flags.session_present)

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, _props: Properties | None) -> None:
        if self.link_state == "connected":
            self._drop_reason = f"disconnected: {reason.getName()}"

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, reason: ReasonCode,
                    _props: Properties | None) -> None:
        self._sent_at.pop(mid, None)
        ok = not reason.is_failure
        if not ok:
            # A PUBACK >= 0x80 (not authorised, too large, quota): keep the chunk, back off.
            self.last_error = f"broker refused a publish: {reason.getName()}"
            self._drop_reason = self.last_error
        self.sender.on_puback(mid, ok)

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int,
                      reasons: list[ReasonCode], _props: Properties | None) -> None:
        for reason in reasons:
            if reason.is_failure:
                self.last_error = f"subscription refused: {reason.getName()}"
                log.error("uplink %s", self.last_error)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        now = self.wall_clock()
        try:
            # Orders and commands are recorded against replay only after their handler has
            # made them durable (an ack's effect is idempotent, so it is recorded at once).
            leaf, body = self.validator.open(msg.topic, bytes(msg.payload), now,
                                             defer_record=self.topics.incoming_leaf(msg.topic) != "ack")
            if leaf == "ack":
                ack = parse_ack(body)
                self.sender.on_ack(ack, utc_iso(now))
                return
        except RejectedMessage as exc:
            self._reject(msg.topic, exc)
            return
        handler = self.handlers.get(leaf)
        try:
            if handler is None:
                log.warning("no handler for valid %s message %s; ignored", leaf, body.get("id"))
                return
            handler(body)
        except Exception:  # a handler bug must not take the link down
            log.exception("handler for %s failed on message %s", leaf, body.get("id"))
        finally:
            remember(self.validator.replay_guard, body, now)

    def _reject(self, topic: str, exc: RejectedMessage) -> None:
        self.rejected_messages += 1
        leaf = self.topics.incoming_leaf(topic) or "unknown"
        log.warning("uplink rejected a message on %s: %s", leaf, exc.reason)
        try:
            self.journal.add_event("uplink_message_rejected", {"topic": leaf, "reason": exc.reason})
        except JournalError as err:
            # Runs in paho's on_message: raising would take the link down (and a full disk
            # would do it for every forged message). The message stays refused either way.
            if not self._reject_event_failed:
                log.warning("uplink cannot journal rejected-message events (%s); they are "
                            "counted in rejected_messages only until the journal accepts them",
                            type(err).__name__)
                self._reject_event_failed = True
            return
        if self._reject_event_failed:
            log.info("uplink journals rejected-message events again")
            self._reject_event_failed = False


def public_keys_from(state_dir: Path) -> Callable[[], Mapping[str, Ed25519PublicKey]]:
    """Head office's verifying keys from STATE_DIR/keys, reloaded when the file changes."""
    from agent.keys import HO_SIG_PUB, keys_dir, load_headoffice_public

    kdir = keys_dir(state_dir)
    cache: dict[str, Any] = {"mtime": None, "keys": {}}

    def load() -> Mapping[str, Ed25519PublicKey]:
        try:
            mtime = os.stat(kdir / HO_SIG_PUB).st_mtime_ns
        except OSError:
            return {}  # no trusted key: every signed message is refused as UnknownKey
        if mtime != cache["mtime"]:
            cache["keys"] = load_headoffice_public(kdir).verify_keys()
            cache["mtime"] = mtime
        keys: Mapping[str, Ed25519PublicKey] = cache["keys"]
        return keys

    return load
