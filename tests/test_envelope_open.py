"""Signed head-office envelopes: the contract's wire form, every refusal, replay guard, strict JSON."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from agent import envelope as env
from agent.keys import key_id

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
TOPIC = "rekam/v1/st-1/ack"
HO = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KID = key_id(HO.public_key())
KEYS = {KID: HO.public_key()}


def body(**over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "type": "ack", "station_id": "st-1", "id": "m-1",
        "issued_at": "2026-11-29T09:59:00Z", "expires_at": "2026-11-29T10:05:00Z",
        "packet_id": "p", "status": "complete",
    }
    b.update(over)
    return b


def opened(payload: bytes, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"topic": TOPIC, "public_keys": KEYS, "station_id": "st-1", "now": NOW}
    args.update(kw)
    return env.open_envelope(payload, **args)


def hand_signed(body_bytes: bytes, *, topic: str = TOPIC, key: Ed25519PrivateKey = HO,
                kid: str = KID, outer: dict[str, Any] | None = None) -> bytes:
    """Built from the contract text, independently of sign_envelope."""
    sig = key.sign(b"rekam-envelope-v1\0" + topic.encode() + b"\0" + body_bytes)
    doc = {"v": 1, "kid": kid, "body": base64.b64encode(body_bytes).decode(),
           "sig": base64.b64encode(sig).decode()}
    doc.update(outer or {})
    return json.dumps(doc).encode()


def test_round_trip() -> None:
    assert opened(env.sign_envelope(HO, KID, TOPIC, body())) == body()


def test_hand_built_envelope_opens() -> None:
    assert opened(hand_signed(json.dumps(body()).encode()))["status"] == "complete"


def test_signature_matches_contract_bytes() -> None:
    payload = json.loads(env.sign_envelope(HO, KID, TOPIC, body()))
    assert set(payload) == {"v", "kid", "body", "sig"} and payload["v"] == 1
    raw = base64.b64decode(payload["body"])
    HO.public_key().verify(base64.b64decode(payload["sig"]),
                           b"rekam-envelope-v1\0" + TOPIC.encode() + b"\0" + raw)


def test_wrong_topic_is_bad_signature() -> None:
    with pytest.raises(env.BadSignatureError):
        opened(env.sign_envelope(HO, KID, "rekam/v1/st-1/command", body()))


def test_altered_body_is_bad_signature() -> None:
    doc = json.loads(env.sign_envelope(HO, KID, TOPIC, body()))
    doc["body"] = base64.b64encode(json.dumps(body(status="missing")).encode()).decode()
    with pytest.raises(env.BadSignatureError):
        opened(json.dumps(doc).encode())


def test_other_key_under_trusted_kid_is_bad_signature() -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(env.BadSignatureError):
        opened(env.sign_envelope(other, KID, TOPIC, body()))


def test_unknown_kid() -> None:
    with pytest.raises(env.UnknownKeyError):
        opened(env.sign_envelope(HO, "0000000000000000", TOPIC, body()))


def test_wrong_station() -> None:
    with pytest.raises(env.WrongStationError):
        opened(env.sign_envelope(HO, KID, TOPIC, body(station_id="st-2")))


def test_expired_at_and_after_expiry() -> None:
    p = env.sign_envelope(HO, KID, TOPIC, body())
    for now in (datetime(2026, 11, 29, 10, 5, tzinfo=UTC), NOW + timedelta(days=1)):
        with pytest.raises(env.ExpiredError):
            opened(p, now=now)


def test_replay_refused_within_validity_then_forgotten() -> None:
    guard = env.ReplayGuard()
    p = env.sign_envelope(HO, KID, TOPIC, body())
    opened(p, seen=guard)
    with pytest.raises(env.ReplayedError):
        opened(p, seen=guard)
    # A different id passes; once expired, entries are pruned (bounded by expiry).
    opened(env.sign_envelope(HO, KID, TOPIC, body(id="m-2")), seen=guard)
    assert len(guard) == 2
    later = datetime(2026, 11, 29, 11, 0, tzinfo=UTC)
    opened(env.sign_envelope(HO, KID, TOPIC, body(id="m-3", expires_at="2026-11-29T12:00:00Z")),
           seen=guard, now=later)
    assert len(guard) == 1


def test_replay_guard_full_refuses_instead_of_evicting() -> None:
    guard = env.ReplayGuard(max_entries=2)
    opened(env.sign_envelope(HO, KID, TOPIC, body(id="a")), seen=guard)
    opened(env.sign_envelope(HO, KID, TOPIC, body(id="b")), seen=guard)
    with pytest.raises(env.ReplayedError, match="full"):
        opened(env.sign_envelope(HO, KID, TOPIC, body(id="c")), seen=guard)
    with pytest.raises(env.ReplayedError):
        opened(env.sign_envelope(HO, KID, TOPIC, body(id="a")), seen=guard)


def test_rejected_message_is_not_recorded_as_seen() -> None:
    guard = env.ReplayGuard()
    with pytest.raises(env.WrongStationError):
        opened(env.sign_envelope(HO, KID, TOPIC, body(station_id="x")), seen=guard)
    assert len(guard) == 0


def test_oversized() -> None:
    p = env.sign_envelope(HO, KID, TOPIC, body(pad="x" * 70000))
    with pytest.raises(env.OversizedError):
        opened(p)
    assert opened(p, max_bytes=200000)["pad"] == "x" * 70000


@pytest.mark.parametrize("raw", [
    b'{"type":"ack","x":NaN}',
    b'{"type":"ack","x":Infinity}',
    b'{"type":"ack","x":-Infinity}',
    b'{"type":"ack","type":"order"}',
    b'["not","an","object"]',
    b'"string"',
    b'{"a":' * 30 + b'1' + b'}' * 30,
    b'[' * 5000 + b']' * 5000,
    b'{"x":1' + b'1' * 5000 + b'}',
    b'\xff\xfe{}',
    b'{"truncated": ',
])
def test_strict_json_in_signed_body(raw: bytes) -> None:
    """Even correctly signed, a body that breaks strict JSON is refused as malformed."""
    with pytest.raises(env.MalformedError):
        opened(hand_signed(raw))


@pytest.mark.parametrize("field", env.REQUIRED_BODY_FIELDS)
def test_missing_required_field(field: str) -> None:
    b = body()
    del b[field]
    with pytest.raises(env.MalformedError):
        opened(env.sign_envelope(HO, KID, TOPIC, b))


@pytest.mark.parametrize("over", [
    {"issued_at": "yesterday"},
    {"expires_at": "2026-11-29T10:05:00"},  # no zone
    {"expires_at": "2026-11-29T09:00:00Z"},  # before issued_at
    {"id": 7},
    {"station_id": ""},
])
def test_bad_body_fields(over: dict[str, Any]) -> None:
    with pytest.raises(env.MalformedError):
        opened(env.sign_envelope(HO, KID, TOPIC, body(**over)))


@pytest.mark.parametrize("outer", [
    {"v": 2}, {"v": True}, {"v": "1"}, {"extra": 1}, {"kid": 5}, {"body": "!!notbase64"},
    {"sig": 12}, {"sig": "AAAA"},
])
def test_bad_outer(outer: dict[str, Any]) -> None:
    with pytest.raises((env.MalformedError, env.BadSignatureError)):
        opened(hand_signed(json.dumps(body()).encode(), outer=outer))


def test_duplicate_outer_key() -> None:
    p = hand_signed(json.dumps(body()).encode())
    with pytest.raises(env.MalformedError):
        opened(p[:-1] + b', "v": 1}')


def test_naive_now_is_programming_error() -> None:
    with pytest.raises(ValueError):
        opened(env.sign_envelope(HO, KID, TOPIC, body()), now=datetime(2026, 1, 1))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_envelope_errors(data: bytes) -> None:
    try:
        opened(data)
    except env.EnvelopeError:
        pass


@given(st.integers(min_value=0), st.integers(min_value=0, max_value=7))
def test_any_flipped_bit_is_refused(pos: int, bit: int) -> None:
    p = bytearray(env.sign_envelope(HO, KID, TOPIC, body()))
    i = pos % len(p)
    p[i] ^= 1 << bit
    try:
        got = opened(bytes(p))
    except env.EnvelopeError:
        return
    # A flip inside JSON whitespace-free text can only "succeed" if it left the meaning intact,
    # which base64 padding bits allow; the body must then be identical.
    assert got == body()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=12)


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=4))
def test_strict_json_round_trips_canonical_json(doc: dict[str, Any]) -> None:
    if env._depth(doc) <= env.MAX_DEPTH:
        assert env.strict_json_loads(env.canonical_json(doc)) == doc
