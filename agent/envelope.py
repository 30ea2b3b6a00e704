"""Signed messages from head office: acks, print orders and commands (docs/security.md).

Wire form (UTF-8 JSON, at most ``max_bytes``)::

    {"v": 1, "kid": "<key id>", "body": "<base64 of body JSON bytes>", "sig": "<base64 Ed25519>"}

The signature covers ``b"rekam-envelope-v1\\0" + topic + b"\\0" + body bytes``, so a message signed
for one topic (say ``.../ack``) cannot be replayed on another (``.../command``). The body is a JSON
object with at least ``type``, ``station_id``, ``id`` (unique), ``issued_at`` and ``expires_at``
(ISO 8601 with a zone). The station refuses a body for another station, an expired body, and, with
a :class:`ReplayGuard`, the same id twice while it is still valid.

The clock is passed in (``now``), never read here: a station without a real-time clock must be able
to decide what "now" is itself (see the clock-skew check), and tests stay deterministic.

Exception tree (all carry a short English message; none carries the body)::

    EnvelopeError
     +-- MalformedError      not our JSON shape, bad base64, strict-JSON violation, bad field
     +-- OversizedError      more than max_bytes
     +-- UnknownKeyError     kid not among the trusted head-office keys
     +-- BadSignatureError   signature does not verify (wrong topic, altered body, wrong key)
     +-- WrongStationError   body addressed to another station
     +-- ExpiredError        expires_at is not after now
     +-- ReplayedError       this id was already accepted and has not expired yet
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ENVELOPE_VERSION = 1
DOMAIN = b"rekam-envelope-v1\0"
MAX_BYTES = 65536
# JSON nesting deeper than this is refused: no legitimate message needs it, and deep nesting is
# the classic way to make a recursive parser blow its stack.
MAX_DEPTH = 16
REQUIRED_BODY_FIELDS = ("type", "station_id", "id", "issued_at", "expires_at")


class EnvelopeError(Exception):
    """A message from head office was refused."""


class MalformedError(EnvelopeError):
    """The payload is not a well-formed envelope or body."""


class OversizedError(EnvelopeError):
    """The payload is larger than allowed."""


class UnknownKeyError(EnvelopeError):
    """The envelope names a key id this station does not trust."""


class BadSignatureError(EnvelopeError):
    """The signature does not verify for this topic and body."""


class WrongStationError(EnvelopeError):
    """The body is addressed to another station."""


class ExpiredError(EnvelopeError):
    """The body's expires_at is not after now."""


class ReplayedError(EnvelopeError):
    """The body's id was already accepted and is still valid (or the guard is full)."""


# --------------------------------------------------------------------------- strict JSON


def _no_constant(name: str) -> Any:
    raise MalformedError(f"JSON constant {name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise MalformedError("duplicate key in JSON object")
        out[k] = v
    return out


def _depth(value: Any) -> int:
    """Nesting depth, iteratively (a recursive walk would be the bug we guard against)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, d)
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, d)
            stack.extend((v, d + 1) for v in item)
    return deepest


def strict_json_loads(data: bytes, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Parse UTF-8 JSON strictly: object root, no NaN/Infinity, no duplicate keys, bounded depth."""
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise MalformedError("not UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)
    except MalformedError:
        raise
    except RecursionError:
        raise MalformedError("JSON nested too deeply") from None
    except ValueError as exc:
        # json.JSONDecodeError, and int() refusing absurdly long digit strings.
        raise MalformedError(f"invalid JSON: {type(exc).__name__}") from None
    if not isinstance(value, dict):
        raise MalformedError("JSON root must be an object")
    if _depth(value) > max_depth:
        raise MalformedError(f"JSON nested deeper than {max_depth}")
    return value


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """Compact, key-sorted UTF-8 JSON; NaN/Infinity refused."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def utc_iso(dt: datetime) -> str:
    """ISO 8601 UTC text with millisecond precision and a trailing Z."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware datetime")
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    """Parse ISO 8601 text that carries a zone; raise ValueError otherwise."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError("timestamp has no zone")
    return dt.astimezone(UTC)


# --------------------------------------------------------------------------- replay guard


class ReplayGuard:
    """Remembers accepted message ids until they expire, so a replay within validity is refused.

    Memory is bounded twice: entries are forgotten once their message has expired (a replay after
    that is refused as expired anyway), and at most ``max_entries`` live ids are kept. When full,
    new messages are refused rather than evicting a live id, because eviction would reopen a
    replay window. Thread-safe.
    """

    def __init__(self, max_entries: int = 100_000,
                 entries: Mapping[str, datetime] | None = None) -> None:
        """Start empty, or from ``entries`` (id -> expiry) saved with :meth:`snapshot`."""
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._lock = threading.Lock()
        self._seen: dict[str, datetime] = dict(entries or {})

    def __len__(self) -> int:
        """Number of ids remembered right now."""
        with self._lock:
            return len(self._seen)

    def snapshot(self) -> dict[str, datetime]:
        """Copy of id -> expiry, for persisting across restarts."""
        with self._lock:
            return dict(self._seen)

    def check_and_add(self, message_id: str, expires_at: datetime, now: datetime) -> None:
        """Record ``message_id``; raise ReplayedError if it is already recorded and live."""
        with self._lock:
            self._check_locked(message_id, now)
            self._seen[message_id] = expires_at

    def check(self, message_id: str, now: datetime) -> None:
        """Raise ReplayedError if ``message_id`` is recorded and live, without recording it.

        With :meth:`add` after the message's effect is durable, a crash in between means the
        broker's redelivery is carried out (idempotently) instead of refused as a replay.
        """
        with self._lock:
            self._check_locked(message_id, now)

    def add(self, message_id: str, expires_at: datetime, now: datetime) -> None:
        """Record ``message_id`` as accepted until ``expires_at``."""
        with self._lock:
            self._seen[message_id] = expires_at

    def _check_locked(self, message_id: str, now: datetime) -> None:
        # Prune lazily; O(n) only when something expired, which keeps the common path cheap.
        if any(exp <= now for exp in self._seen.values()):
            self._seen = {k: exp for k, exp in self._seen.items() if exp > now}
        if message_id in self._seen:
            raise ReplayedError("message id already accepted (replay)")
        if len(self._seen) >= self._max:
            raise ReplayedError("replay guard full: too many unexpired messages; refused")


# --------------------------------------------------------------------------- sign / open


def _signed_bytes(topic: str, body: bytes) -> bytes:
    return DOMAIN + topic.encode("utf-8") + b"\0" + body


def sign_envelope(private_key: Ed25519PrivateKey, kid: str, topic: str,
                  body: Mapping[str, Any]) -> bytes:
    """Serialise and sign ``body`` for ``topic``; returns the UTF-8 JSON payload."""
    body_bytes = canonical_json(body)
    sig = private_key.sign(_signed_bytes(topic, body_bytes))
    return canonical_json({
        "v": ENVELOPE_VERSION,
        "kid": kid,
        "body": base64.b64encode(body_bytes).decode("ascii"),
        "sig": base64.b64encode(sig).decode("ascii"),
    })


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise MalformedError(f"{what} is not valid base64") from None


def open_envelope(
    payload: bytes,
    *,
    topic: str,
    public_keys: Mapping[str, Ed25519PublicKey],
    station_id: str,
    now: datetime,
    max_bytes: int = MAX_BYTES,
    seen: ReplayGuard | None = None,
) -> dict[str, Any]:
    """Verify a signed envelope received on ``topic`` and return its body.

    Checks, in order: size, outer shape, key id, signature, body shape, station, expiry, replay.
    The replay guard records the id only after every other check passed.

    Raises:
        EnvelopeError: one of its subclasses (see the module docstring).
        ValueError: ``now`` is naive (a programming error, not a bad message).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if len(payload) > max_bytes:
        raise OversizedError(f"envelope of {len(payload)} bytes exceeds {max_bytes}")
    outer = strict_json_loads(payload, max_depth=1)
    if set(outer) != {"v", "kid", "body", "sig"}:
        raise MalformedError("envelope must have exactly the keys v, kid, body, sig")
    if type(outer["v"]) is not int or outer["v"] != ENVELOPE_VERSION:
        raise MalformedError(f"unsupported envelope version {outer['v']!r}")
    kid = outer["kid"]
    if not isinstance(kid, str):
        raise MalformedError("kid must be a string")
    body_bytes = _b64(outer["body"], "body")
    sig = _b64(outer["sig"], "sig")
    key = public_keys.get(kid)
    if key is None:
        raise UnknownKeyError(f"unknown head-office key id {kid[:64]!r}")
    try:
        key.verify(sig, _signed_bytes(topic, body_bytes))
    except InvalidSignature:
        raise BadSignatureError("signature does not verify for this topic and body") from None
    body = strict_json_loads(body_bytes)
    for name in REQUIRED_BODY_FIELDS:
        if not isinstance(body.get(name), str) or not body[name]:
            raise MalformedError(f"body field {name!r} missing or not a non-empty string")
    try:
        issued = parse_utc(body["issued_at"])
        expires = parse_utc(body["expires_at"])
    except ValueError:
        raise MalformedError("issued_at/expires_at must be ISO 8601 with a zone") from None
    if expires < issued:
        raise MalformedError("expires_at is before issued_at")
    if body["station_id"] != station_id:
        raise WrongStationError("message is addressed to another station")
    if expires <= now:
        raise ExpiredError("message has expired")
    if seen is not None:
        seen.check_and_add(body["id"], expires, now)
    return body
