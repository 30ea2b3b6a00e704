"""Strict validation of what head office sends: acks, print orders and commands.

Every message on ``ack``, ``print/order`` and ``command`` is a signed envelope
(agent/envelope.py): size limit, strict JSON, known key, signature over topic + body, this
station, not expired, not replayed. On top of that, this module checks the body's schema for
its topic. Anything that fails is refused with :class:`RejectedMessage`, which names the reason
without carrying the message (it may be hostile and is never logged).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.envelope import EnvelopeError, ReplayGuard, open_envelope, parse_utc
from agent.uplink.topics import Topics

# The longest body we accept per topic; an ack with a missing list of a 200 MB packet at 64 KiB
# chunks is about 20 KB of JSON, well inside the envelope's 64 KiB.
MAX_MESSAGE_BYTES = 65536
ACK_STATUSES = ("complete", "missing", "rejected")
PACKET_ID_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
# A missing list longer than this cannot be right for any packet we send.
MAX_MISSING = 65536
EXPECTED_TYPE = {"ack": "ack", "print/order": "print_order", "command": "command"}


class RejectedMessage(Exception):
    """A head-office message that failed validation; ``reason`` is a short safe code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Ack:
    """A validated head-office ack (docs/protocol.md, "Acks")."""

    id: str
    packet_id: str
    status: str
    packet_sha256: str
    missing: tuple[int, ...]
    chunk_size: int
    reason: str
    issued_at: str


def _int(body: Mapping[str, Any], name: str, *, minimum: int = 0) -> int:
    value = body.get(name)
    # bool is an int subclass in Python; JSON true must not pass as 1.
    if type(value) is not int or value < minimum:
        raise RejectedMessage("schema", f"{name} must be an integer >= {minimum}")
    return value


def _str(body: Mapping[str, Any], name: str, *, max_len: int = 256,
         pattern: re.Pattern[str] | None = None, required: bool = True) -> str:
    value = body.get(name)
    if value in (None, "") and not required:
        return ""
    if not isinstance(value, str) or len(value) > max_len:
        raise RejectedMessage("schema", f"{name} must be a string of at most {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise RejectedMessage("schema", f"{name} has the wrong form")
    return value


def parse_ack(body: Mapping[str, Any]) -> Ack:
    """Check an ack body's schema and return it typed; raise RejectedMessage."""
    status = _str(body, "status", max_len=16)
    if status not in ACK_STATUSES:
        raise RejectedMessage("schema", "status must be complete, missing or rejected")
    missing_raw = body.get("missing", [])
    if not isinstance(missing_raw, list) or len(missing_raw) > MAX_MISSING:
        raise RejectedMessage("schema", "missing must be a list of chunk indices")
    missing: list[int] = []
    for item in missing_raw:
        if type(item) is not int or item < 0:
            raise RejectedMessage("schema", "missing must hold non-negative integers")
        missing.append(item)
    return Ack(
        id=str(body["id"]),
        packet_id=_str(body, "packet_id", pattern=PACKET_ID_RE),
        status=status,
        packet_sha256=_str(body, "packet_sha256", pattern=SHA256_RE,
                           required=status != "rejected"),
        missing=tuple(sorted(set(missing))),
        chunk_size=_int(body, "chunk_size", minimum=1 if status == "missing" else 0)
        if status == "missing" or "chunk_size" in body else 0,
        reason=_str(body, "reason", max_len=512, required=status == "rejected"),
        issued_at=str(body["issued_at"]),
    )


REPLAY_SCHEMA = """CREATE TABLE IF NOT EXISTS uplink_replay (
    id TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
)"""


class JournalReplayGuard(ReplayGuard):
    """A replay guard that survives restarts: accepted ids are kept in the journal until expiry.

    Without it, a command or order captured on the wire could be replayed once after every
    station restart while it is still valid. Rows are written only for accepted messages (a
    few a day) and pruned once expired.
    """

    def __init__(self, journal: Any, now: datetime, max_entries: int = 100_000) -> None:
        self.journal = journal
        journal.register_schema("uplink_replay", REPLAY_SCHEMA)
        # A plain read (not ``journal.db``): sqlite_utils costs the station 5-13 MB of RSS and
        # the uplink only needs it for the rare write below.
        rows = journal.query("SELECT id, expires_at FROM uplink_replay WHERE expires_at > ?",
                             (_iso(now),))
        super().__init__(max_entries, {r[0]: parse_utc(r[1]) for r in rows})

    def check_and_add(self, message_id: str, expires_at: datetime, now: datetime) -> None:
        """Refuse a replay; remember the id durably (synchronous with acceptance)."""
        super().check_and_add(message_id, expires_at, now)
        self._persist(message_id, expires_at, now)

    def add(self, message_id: str, expires_at: datetime, now: datetime) -> None:
        """Remember the id durably (after the message's effect is durable)."""
        super().add(message_id, expires_at, now)
        self._persist(message_id, expires_at, now)

    def _persist(self, message_id: str, expires_at: datetime, now: datetime) -> None:
        with self.journal.transaction() as db:
            db.execute("INSERT OR REPLACE INTO uplink_replay (id, expires_at) VALUES (?, ?)",
                       (message_id, _iso(expires_at)))
            db.execute("DELETE FROM uplink_replay WHERE expires_at <= ?", (_iso(now),))


def remember(guard: ReplayGuard, body: dict[str, Any], now: datetime) -> None:
    """Record an accepted message's id until its expiry (see IncomingValidator.open)."""
    guard.add(str(body["id"]), parse_utc(str(body["expires_at"])), now)


def _iso(ts: datetime) -> str:
    # Fixed-width UTC text so that SQL string comparison is time comparison.
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class IncomingValidator:
    """Opens and checks messages from head office for one station."""

    def __init__(
        self,
        topics: Topics,
        public_keys: Callable[[], Mapping[str, Ed25519PublicKey]],
        *,
        replay_guard: ReplayGuard | None = None,
        max_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.topics = topics
        # A callable so a key rotation (a command) takes effect without rebuilding the uplink.
        self.public_keys = public_keys
        self.replay_guard = replay_guard if replay_guard is not None else ReplayGuard()
        self.max_bytes = max_bytes

    def open(self, topic: str, payload: bytes, now: datetime, *,
             defer_record: bool = False) -> tuple[str, dict[str, Any]]:
        """Return (leaf, body) of a valid message; raise RejectedMessage otherwise.

        With ``defer_record`` a replay is still refused, but the id is recorded only by
        :meth:`remember`, which the caller runs once the message's effect is durable (a print
        job journaled): a crash in between then leads to an idempotent redelivery, not a loss.
        """
        leaf = self.topics.incoming_leaf(topic)
        if leaf is None:
            raise RejectedMessage("topic", "not a head-office topic of this station")
        try:
            body = open_envelope(
                payload, topic=topic, public_keys=self.public_keys(),
                station_id=self.topics.station_id, now=now, max_bytes=self.max_bytes,
                seen=None if defer_record else self.replay_guard,
            )
            if defer_record:
                self.replay_guard.check(body["id"], now)
        except EnvelopeError as exc:
            # The class name is the reason code (OversizedError, ReplayedError, ...).
            raise RejectedMessage(type(exc).__name__, str(exc)) from exc
        if body.get("type") != EXPECTED_TYPE[leaf]:
            raise RejectedMessage("schema", f"type must be {EXPECTED_TYPE[leaf]!r} on {leaf}")
        return leaf, body
