"""The head-office receiver: one paho-mqtt v5 client in a shared-subscription group.

Every receiver of a group subscribes to ``$share/<group>/rekam/v1/+/packet`` (and telemetry,
event, print/result), so the broker hands each message to one of them. Chunks go straight into
the shared :class:`~agent.headoffice.storage.Storage`; the receiver that stores the last missing
chunk (or answers a query for a complete packet) claims, assembles, verifies and stores the
packet, then publishes the signed ack (docs/protocol.md, "Acks"). Status is subscribed without
``$share`` because MQTT v5 does not send retained messages to shared subscriptions, and every
receiver writing the same status row is harmless.

Threads: paho's network thread runs :meth:`Receiver._on_message`; all work for a message is
done there, before paho sends the PUBACK, so a chunk is on disk before the broker forgets it. A
receiver killed at any point loses nothing the station cannot resend: chunk rows are durable, an
assembly lease runs out, and the station's ack query is answered by whichever receiver gets it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.envelope import EnvelopeError, sign_envelope, strict_json_loads, utc_iso
from agent.headoffice.config import HeadOfficeConfig, read_secret
from agent.headoffice.storage import (
    REJECTED,
    STORED,
    ChunkMeta,
    ChunkRefused,
    PacketInvalid,
    PacketRecord,
    Storage,
    StorageError,
    Verifier,
    assemble,
)
from agent.uplink.topics import CONTENT_TYPE_JSON, ROOT, STATION_ID_RE

log = logging.getLogger(__name__)

# Same forms the station checks in acks (agent/uplink/incoming.py), so what we accept we can ack.
PACKET_ID_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
DECIMAL_RE = re.compile(r"[0-9]{1,19}")
MAX_JSON_BYTES = 65536
SUBSCRIBE_TIMEOUT_S = 10.0


class BadChunk(Exception):
    """A chunk message that breaks contract C; ``index`` is set when a resend would help."""

    def __init__(self, reason: str, index: int | None = None) -> None:
        """Keep the reason short; it is logged and may be sent back."""
        super().__init__(reason)
        self.reason = reason
        self.index = index


@dataclass
class Stats:
    """Counters for diagnostics and the benchmark."""

    chunks: int = 0
    duplicate_chunks: int = 0
    bad_chunks: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    queries: int = 0
    acks: int = 0
    storage_errors: int = 0
    internal_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        """Increment one counter."""
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


class AckSigner:
    """Signs head-office messages (acks, print orders, commands) as envelopes (contract B)."""

    def __init__(self, private_key: Ed25519PrivateKey, kid: str) -> None:
        """Use head office's Ed25519 signing key and its key id."""
        self.private_key = private_key
        self.kid = kid

    def sign(self, topic: str, body: Mapping[str, Any]) -> bytes:
        """The envelope payload for ``topic``."""
        return sign_envelope(self.private_key, self.kid, topic, body)


def _user_props(msg: mqtt.MQTTMessage) -> dict[str, str]:
    props = getattr(msg, "properties", None)
    pairs = getattr(props, "UserProperty", None) or []
    out: dict[str, str] = {}
    for k, v in pairs:
        if k in out:
            raise BadChunk(f"user property {k} given twice")
        out[k] = v
    return out


def _int_prop(props: Mapping[str, str], name: str, *, minimum: int = 0,
              maximum: int = 2**63) -> int:
    raw = props.get(name)
    # ASCII digits only: str.isdigit() and int() also take "²" or Arabic-Indic digits.
    if raw is None or not DECIMAL_RE.fullmatch(raw):
        raise BadChunk(f"property {name} missing or not a decimal integer")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise BadChunk(f"property {name}={value} out of range {minimum}-{maximum}")
    return value


def parse_chunk(station_id: str, props: Mapping[str, str], payload: bytes, *,
                max_chunk_bytes: int, max_packet_bytes: int) -> ChunkMeta:
    """Check one chunk's properties and payload against contract C; raise BadChunk."""
    chunk_size = _int_prop(props, "chunk_size", minimum=1, maximum=max_chunk_bytes)
    max_chunks = max(1, -(-max_packet_bytes // chunk_size))
    chunks = _int_prop(props, "chunks", minimum=1, maximum=max_chunks)
    index = _int_prop(props, "chunk", maximum=chunks - 1)
    offset = _int_prop(props, "offset", maximum=max_packet_bytes)
    if offset != index * chunk_size:
        raise BadChunk(f"offset {offset} is not chunk {index} x chunk_size {chunk_size}")
    last = index == chunks - 1
    if len(payload) > chunk_size or (not last and len(payload) != chunk_size) or (
            last and not payload):
        raise BadChunk(f"chunk {index} has {len(payload)} bytes, chunk_size {chunk_size}", index)
    chunk_sha = props.get("chunk_sha256", "")
    if not SHA256_RE.fullmatch(chunk_sha):
        raise BadChunk("property chunk_sha256 missing or not 64 lowercase hex digits")
    if hashlib.sha256(payload).hexdigest() != chunk_sha:
        raise BadChunk(f"chunk {index} does not match its chunk_sha256", index)
    packet_size = packet_sha = None
    if last:
        packet_size = _int_prop(props, "packet_size", minimum=1, maximum=max_packet_bytes)
        if packet_size != offset + len(payload):
            raise BadChunk(f"packet_size {packet_size} disagrees with the last chunk's end")
        packet_sha = props.get("packet_sha256", "")
        if not SHA256_RE.fullmatch(packet_sha):
            raise BadChunk("property packet_sha256 missing or malformed on the last chunk")
    return ChunkMeta(
        station_id=station_id, packet_id=props["packet_id"], index=index, chunks=chunks,
        chunk_size=chunk_size, offset=offset, chunk_sha256=chunk_sha, packet_size=packet_size,
        packet_sha256=packet_sha,
    )


class Receiver:
    """One receiver of a shared-subscription group."""

    def __init__(
        self,
        cfg: HeadOfficeConfig,
        storage: Storage,
        *,
        verify: Verifier,
        signer: AckSigner,
        client_id: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Build the client; nothing connects until :meth:`start`."""
        self.cfg = cfg
        self.storage = storage
        self.verify = verify
        self.signer = signer
        self.clock = clock
        self.stats = Stats()
        self.client_id = client_id or cfg.broker.client_id or (
            f"rekam-ho-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        self.owner = self.client_id
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(cfg.receiver.inflight)
        # Acks are small and few; bound paho's queue anyway so a dead broker cannot grow it.
        self.client.max_queued_messages_set(10_000)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        b = cfg.broker
        if b.transport == "tls":
            self.client.tls_set(
                ca_certs=str(b.ca_file) if b.ca_file else None,
                certfile=str(b.cert_file) if b.cert_file else None,
                keyfile=str(b.key_file) if b.key_file else None,
            )
        if b.username:
            password = read_secret(b.password_file, "MQTT password") if b.password_file else None
            self.client.username_pw_set(b.username, password)

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up right now (for diagnostics)."""
        return self._connected.is_set()

    def subscriptions(self) -> list[str]:
        """The topic filters this receiver subscribes to."""
        group = self.cfg.receiver.group
        shared = [f"$share/{group}/{ROOT}/+/{leaf}"
                  for leaf in ("packet", "telemetry", "event", "print/result")]
        return [*shared, f"{ROOT}/+/status"]

    def start(self, timeout: float = SUBSCRIBE_TIMEOUT_S) -> Receiver:
        """Connect, subscribe and finish packets a dead receiver left complete; bounded wait."""
        self.recover()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.cfg.broker.session_expiry_seconds
        # Bounds what the broker may send us at once (flow control, MQTT v5 Receive Maximum).
        props.ReceiveMaximum = self.cfg.receiver.inflight
        self.client.connect_async(
            self.cfg.broker.host, self.cfg.broker.port, keepalive=self.cfg.broker.keepalive_seconds,
            clean_start=self.cfg.broker.session_expiry_seconds == 0, properties=props,
        )
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            why = self._connect_error or "no answer from the broker"
            raise ConnectionError(f"receiver {self.client_id} not subscribed within {timeout} s: {why}")
        return self

    def stop(self) -> None:
        """Disconnect and stop paho's thread."""
        self.client.disconnect()
        self.client.loop_stop()
        self._detach()

    def kill(self) -> None:
        """Drop the connection without a DISCONNECT (tests: a receiver dying mid-packet)."""
        sock = self.client.socket()
        self.client.loop_stop()
        if sock is not None:
            sock.close()
        self._detach()

    def _detach(self) -> None:
        # paho's loop_stop() leaves its internal wake-up socket pair open until the client is
        # finalised; our bound-method callbacks make client and receiver a reference cycle, so
        # that would wait for the cyclic GC (and warn about unclosed sockets). Without the
        # callbacks the client is freed, and its sockets closed, as soon as we drop it.
        self.client.on_connect = None
        self.client.on_disconnect = None
        self.client.on_message = None
        self.client.on_subscribe = None

    def recover(self, limit: int = 1000) -> int:
        """Assemble packets whose chunks are all in (a receiver died before finishing them)."""
        done = 0
        for record in self.storage.incomplete(limit):
            final = self._assemble(record)
            if final is not None:
                done += 1
                self._ack_final(final)
        return done

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            # Do not carry on as if connected; paho retries with its backoff.
            self._connect_error = str(reason)
            log.warning("receiver %s: broker refused connection: %s", self.client_id, reason)
            return
        self._connected.set()
        log.info("receiver %s connected (group %s)", self.client_id, self.cfg.receiver.group)
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.subscriptions()])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            self._connect_error = f"subscription refused: {', '.join(failed)}"
            log.error("receiver %s: %s", self.client_id, self._connect_error)
            return
        self._subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self._connected.clear()
        if reason.is_failure:
            log.warning("receiver %s lost the broker: %s", self.client_id, reason)

    # ------------------------------------------------------------------ dispatch

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) < 4 or "/".join(parts[:2]) != ROOT or not STATION_ID_RE.fullmatch(parts[2]):
            log.warning("receiver: message on unexpected topic ignored")
            return
        station_id, leaf = parts[2], "/".join(parts[3:])
        payload = bytes(msg.payload)
        try:
            if leaf == "packet":
                self._on_packet(station_id, msg, payload)
            elif leaf == "status":
                self._on_status(station_id, payload)
            elif leaf == "telemetry":
                self.storage.record_telemetry(station_id, self._json(payload))
            elif leaf in ("event", "print/result"):
                self._on_event(station_id, leaf, payload)
        except StorageError as exc:
            # The station keeps its packet until a complete ack; its next query repairs this.
            self.stats.add("storage_errors")
            log.error("receiver %s: storage failed for %s from %s: %s", self.client_id, leaf,
                      station_id, exc)
        except (BadChunk, ValueError, EnvelopeError) as exc:
            log.warning("receiver: bad %s message from station %s: %s", leaf, station_id, exc)
        except Exception:  # an exception escaping here would kill paho's network thread
            # A bug met by one message must not stop the receiver for every station; the
            # station's next query retries, and the traceback names no packet content.
            self.stats.add("internal_errors")
            log.exception("receiver %s: unexpected error handling %s from %s", self.client_id,
                          leaf, station_id)

    @staticmethod
    def _json(payload: bytes) -> dict[str, Any]:
        if len(payload) > MAX_JSON_BYTES:
            raise ValueError(f"JSON payload of {len(payload)} bytes is too large")
        return strict_json_loads(payload)

    def _on_status(self, station_id: str, payload: bytes) -> None:
        if not payload:
            return  # a cleared retained message
        doc = self._json(payload)
        state = doc.get("state")
        if state not in ("online", "offline"):
            raise ValueError("status state must be online or offline")
        version = doc.get("version")
        started = doc.get("started_at")
        self.storage.record_status(
            station_id, state == "online", version if isinstance(version, str) else None,
            started if isinstance(started, str) else None,
        )

    def _on_event(self, station_id: str, leaf: str, payload: bytes) -> None:
        doc = self._json(payload)
        event_id = doc.get("id")
        if not isinstance(event_id, (str, int)) or isinstance(event_id, bool):
            raise ValueError("event without an id")
        kind = doc.get("kind") if leaf == "event" else "print_result"
        at = doc.get("at", "")
        self.storage.record_event(station_id, f"{leaf}:{event_id}", str(kind),
                                  at if isinstance(at, str) else "", doc)

    # ------------------------------------------------------------------ packets

    def _on_packet(self, station_id: str, msg: mqtt.MQTTMessage, payload: bytes) -> None:
        props = _user_props(msg)
        if props.get("v") != "1":
            raise BadChunk("property v must be 1")
        packet_id = props.get("packet_id", "")
        if not PACKET_ID_RE.fullmatch(packet_id):
            raise BadChunk("property packet_id missing or malformed")
        if props.get("query") == "1":
            self._on_query(station_id, packet_id, props)
            return
        try:
            meta = parse_chunk(station_id, props, payload,
                               max_chunk_bytes=self.cfg.receiver.max_chunk_bytes,
                               max_packet_bytes=self.cfg.receiver.max_packet_bytes)
        except BadChunk as exc:
            self.stats.add("bad_chunks")
            if exc.index is not None:
                # A corrupted chunk: ask for it again right away if we can form a valid ack.
                known = self.storage.packet(packet_id)
                if known is not None and known.packet_sha256 and known.state not in (STORED,
                                                                                     REJECTED):
                    self._publish_ack(station_id, packet_id, "missing", known.packet_sha256,
                                      sorted({*known.missing, exc.index}), known.chunk_size)
            raise
        try:
            record = self.storage.put_chunk(meta, payload)
        except ChunkRefused as exc:
            self.stats.add("bad_chunks")
            self._publish_ack(station_id, packet_id, "rejected", meta.packet_sha256 or "",
                              [], meta.chunk_size, reason=str(exc))
            return
        self.stats.add("chunks")
        if record.state == STORED:
            self.stats.add("duplicate_chunks")
            if meta.packet_sha256 is not None:
                # The last chunk of a second copy: the station did not get our ack; repeat it.
                self.stats.add("duplicates")
                self._ack_final(record)
            return
        if record.complete:
            final = self._assemble(record)
            if final is not None:
                self._ack_final(final)

    def _assemble(self, record: PacketRecord) -> PacketRecord | None:
        final = assemble(self.storage, record, self.owner, self.verify,
                         self.cfg.receiver.lease_seconds)
        if final is not None:
            if final.state == STORED:
                self.stats.add("stored")
                log.info("packet %s from %s stored (%s bytes)", final.packet_id,
                         final.station_id, final.packet_size)
            else:
                self.stats.add("rejected")
                log.warning("packet %s from %s rejected: %s", final.packet_id, final.station_id,
                            final.reason)
        return final

    def _on_query(self, station_id: str, packet_id: str, props: Mapping[str, str]) -> None:
        self.stats.add("queries")
        sha = props.get("packet_sha256", "")
        if not SHA256_RE.fullmatch(sha):
            raise BadChunk("ack query without a valid packet_sha256")
        chunk_size = _int_prop(props, "chunk_size", minimum=1,
                               maximum=self.cfg.receiver.max_chunk_bytes)
        chunks = _int_prop(props, "chunks", minimum=1,
                           maximum=max(1, -(-self.cfg.receiver.max_packet_bytes // chunk_size)))
        record = self.storage.packet(packet_id)
        if record is None:
            self._publish_ack(station_id, packet_id, "missing", sha, list(range(chunks)),
                              chunk_size)
            return
        if record.station_id != station_id:
            self._publish_ack(station_id, packet_id, "rejected", sha, [], chunk_size,
                              reason="packet id already used by another station")
            return
        if record.state == STORED:
            if record.packet_sha256 != sha:
                self._publish_ack(station_id, packet_id, "rejected", sha, [], chunk_size,
                                  reason="packet id already stored with different content")
            else:
                self._ack_final(record)
            return
        if record.state == REJECTED:
            self._ack_final(record)
            return
        if record.complete:
            final = self._assemble(record)
            if final is not None:
                self._ack_final(final)
                return
        # Not complete, or another receiver is verifying it right now (an empty missing list).
        self._publish_ack(station_id, packet_id, "missing", record.packet_sha256 or sha,
                          record.missing if (record.chunks, record.chunk_size) == (chunks, chunk_size)
                          else list(range(chunks)), chunk_size)

    def _ack_final(self, record: PacketRecord) -> None:
        if record.state == STORED:
            self._publish_ack(record.station_id, record.packet_id, "complete",
                              record.packet_sha256 or "", [], record.chunk_size)
        elif record.state == REJECTED:
            self._publish_ack(record.station_id, record.packet_id, "rejected",
                              record.packet_sha256 or "", [], record.chunk_size,
                              reason=record.reason or "rejected")

    def _publish_ack(self, station_id: str, packet_id: str, status: str, packet_sha256: str,
                     missing: list[int], chunk_size: int, *, reason: str | None = None) -> None:
        now = self.clock()
        topic = f"{ROOT}/{station_id}/ack"
        body: dict[str, Any] = {
            "type": "ack",
            "station_id": station_id,
            "id": str(uuid.uuid4()),
            "issued_at": utc_iso(now),
            "expires_at": utc_iso(now + timedelta(seconds=self.cfg.receiver.ack_ttl_seconds)),
            "packet_id": packet_id,
            "status": status,
            "packet_sha256": packet_sha256,
            "missing": missing,
            "chunk_size": chunk_size,
        }
        if reason is not None:
            body["reason"] = reason[:512]
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ContentType = CONTENT_TYPE_JSON
        info = self.client.publish(topic, self.signer.sign(topic, body), qos=1, properties=props)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            # Broker unreachable for long: the station keeps the packet and asks again.
            log.warning("ack for packet %s not queued: outgoing queue full", packet_id)
            return
        self.stats.add("acks")


# ---------------------------------------------------------------------- wiring helpers


def open_storage(cfg: HeadOfficeConfig) -> Storage:
    """The configured backend."""
    if cfg.storage.backend == "postgresql":
        from agent.headoffice.storage_pg import PostgresStorage

        if cfg.storage.dsn_file is None:
            raise StorageError("[storage] dsn_file is required for postgresql")
        return PostgresStorage(read_secret(cfg.storage.dsn_file, "PostgreSQL DSN"),
                               cfg.storage.folder)
    from agent.headoffice.storage_sqlite import SqliteStorage

    return SqliteStorage(cfg.storage.folder)


def load_station_keys(cfg: HeadOfficeConfig) -> dict[str, Ed25519PublicKey]:
    """Each registered station's public signing key, by station id."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from agent.config import ConfigError

    out: dict[str, Ed25519PublicKey] = {}
    for sid, reg in cfg.stations.items():
        try:
            key = load_pem_public_key(reg.public_key.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"[stations.{sid}] public_key: {reg.public_key}: cannot load:"
                              f" {type(exc).__name__}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"[stations.{sid}] public_key: {reg.public_key}: not Ed25519")
        out[sid] = key
    return out


def packet_verifier(headoffice_private_key: Any,
                    station_keys: Mapping[str, Ed25519PublicKey]) -> Verifier:
    """A Verifier that reads the whole packet with agent.packet (signature, decryption, hashes)."""

    def verify(path: Path, record: PacketRecord) -> None:
        from agent.packet import PacketError, verify_packet

        key = station_keys.get(record.station_id)
        if key is None:
            raise PacketInvalid("station is not registered at head office")
        try:
            with open(path, "rb") as f:
                # Only the sending station's key is offered: a packet signed by (or claiming to
                # be from) another station must not pass under this station's topic.
                header, _manifest = verify_packet(
                    f, headoffice_private_key=headoffice_private_key,
                    station_public_keys={record.station_id: key})
        except PacketError as exc:
            raise PacketInvalid(f"{type(exc).__name__}: {exc}"[:300]) from None
        if header.packet_id != record.packet_id:
            raise PacketInvalid("packet id inside differs from the one it was sent under")

    return verify
