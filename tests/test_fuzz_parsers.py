"""Every parser of outside input under hypothesis, 1,000 examples each: only its declared error.

The targets live in fuzz/targets.py and are shared with the atheris harnesses (fuzz/run.py),
so the CI property and the long coverage-guided run exercise the same code. Each target
swallows only the parser's own error; anything else escaping fails the test. Here each one is
driven twice: by raw bytes, and by a structured strategy that gets past the first checks
(JSON objects with hostile values, near-valid frames). Known traps are pinned with
``@example``: NaN/Infinity, duplicate keys, deep nesting, non-ASCII digits, path traversal,
oversize payloads.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.config import ConfigError, parse_config
from fuzz import targets as T

# 1,000 examples per parser property (issue 11); each target costs well under 5 ms.
FUZZ = settings(max_examples=1000)

BINARY = st.binary(max_size=600)

# JSON values that stress schema checks: wrong types, huge and negative numbers, bool-as-int,
# control characters, Unicode digits, long strings, nested containers.
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40), st.sampled_from(["", "0", "-1", "١٢٣", "３１７１", "../../etc/passwd",
                                           "/etc/shadow", "a\x00b", "x" * 300, "complete",
                                           "missing", "rejected", "print_order", T.STATION_ID]),
)
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=6,
)
ACK_KEYS = st.sampled_from(["type", "station_id", "id", "issued_at", "expires_at", "packet_id", "status",
                            "packet_sha256", "missing", "chunk_size", "reason"])
ORDER_KEYS = st.sampled_from(["type", "station_id", "id", "issued_at", "expires_at", "order_id", "card",
                              "photo", "signature", "print_before", "packet_id"])


def _as_json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# --------------------------------------------------------------------------- device codecs


@FUZZ
@given(BINARY)
@example(b"\xef\x01" * 300)  # start-code soup
@example(b"\xef\x01\xff\xff\xff\xff\x02\xff\xff" + b"\x00" * 40)  # data packet, length beyond max
def test_fuzz_zfm_frames(data: bytes) -> None:
    T.zfm_stream(data)


@FUZZ
@given(BINARY)
@example(b"\x1b" * 500)
@example(b"\x1bDbc;k;" + b"9" * 40 + b";")
def test_fuzz_evolis_commands(data: bytes) -> None:
    T.evolis_commands(data)


@FUZZ
@given(BINARY)
@example(b"\xff" * 64)
def test_fuzz_evolis_replies_and_ko(data: bytes) -> None:
    T.evolis_replies(data)


@FUZZ
@given(BINARY)
@example(b"\x00" * 23)  # one byte short of a 64-bit event
def test_fuzz_evdev_events(data: bytes) -> None:
    T.evdev_events(data)


# --------------------------------------------------------------------------- JSON, envelopes, messages


@FUZZ
@given(st.one_of(BINARY, JSON_VALUES.map(_as_json)))
@example(b'{"a": NaN}')
@example(b'{"a": -Infinity}')
@example(b'{"nik": "1", "nik": "2"}')
@example(b"[" * 100_000)
@example(b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
@example(b'{"n": ' + b"9" * 5000 + b"}")  # int() digit limit
@example(b'{"a": "\xed\xa0\x80"}')  # a UTF-8-encoded surrogate
@example(b"\xef\xbb\xbf{}")  # a byte-order mark
def test_fuzz_strict_json(data: bytes) -> None:
    T.strict_json(data)


@FUZZ
@given(BINARY)
@example(b" " * 70_000)  # oversize: refused before parsing
def test_fuzz_envelope_bytes(data: bytes) -> None:
    T.envelope_raw(data)


@FUZZ
@given(st.tuples(st.integers(0, 2), st.dictionaries(st.text(max_size=12) | ACK_KEYS | ORDER_KEYS,
                                                     JSON_VALUES, max_size=8)))
def test_fuzz_signed_hostile_bodies(case: tuple[int, dict[str, Any]]) -> None:
    """A body signed by the trusted key but hostile: validator + schema refuse, never crash."""
    leaf, body = case
    T.incoming_signed(bytes([leaf]) + _as_json(body))


@FUZZ
@given(st.one_of(BINARY, st.dictionaries(ACK_KEYS, JSON_VALUES, max_size=8).map(_as_json)))
@example(b'{"status": "missing", "missing": [true, 1], "chunk_size": 1}')
@example(b'{"status": "missing", "missing": [1], "chunk_size": true}')
@example(b'{"status": "complete", "packet_sha256": "\xd9\xa1' + b"0" * 62 + b'"}')
def test_fuzz_ack_schema(data: bytes) -> None:
    T.ack_body(data)


@FUZZ
@given(st.one_of(BINARY, st.dictionaries(ORDER_KEYS, JSON_VALUES, max_size=6).map(_as_json)))
@example(b'{"photo": "not base64!"}')
@example(b'{"order_id": "../../x"}')
@example(b'{"card": {"nik": "317101170845000\\uff11"}}')
def test_fuzz_print_order_schema(data: bytes) -> None:
    T.order_body(data)


@FUZZ
@given(st.binary(max_size=60))
@example(b"\x01\x00\xf0\x10")  # edits near the PNG's end: the damaged-chunk SyntaxError (fixed)
def test_fuzz_card_images(data: bytes) -> None:
    T.card_image(data)


COMMAND_PARAMS = st.dictionaries(
    st.sampled_from(["uplink.telemetry_seconds", "uplink.bandwidth_limit_bps", "quality.retries",
                     "printer.low_stock_days", "api.token_file", "station.state_dir", "uplink.ca_file",
                     "uplink", "..", "quality.", ".retries"]) | st.text(max_size=12),
    JSON_VALUES, max_size=3)


@FUZZ
@given(st.one_of(
    BINARY,
    st.fixed_dictionaries({"action": st.sampled_from(["set", "diagnostics", "telemetry", "rotate_keys", "rm -rf",
                                                      ""]) | JSON_VALUES,
                           "params": COMMAND_PARAMS | JSON_VALUES}).map(_as_json)))
@example(b'{"action": "set", "params": {"api.token_file": "/etc/shadow"}}')
@example(b'{"action": "set", "params": {"station.state_dir": "../../tmp"}}')
@example(b'{"action": "set", "params": {"uplink.telemetry_seconds": NaN}}')
@example(b'{"action": "rotate_keys", "params": {"bundle": "e30="}}')
def test_fuzz_remote_commands(data: bytes) -> None:
    T.command_body(data)


# --------------------------------------------------------------------------- NIK


UNICODE_DIGITS = st.characters(categories=["Nd"])


@FUZZ
@given(st.one_of(st.text(max_size=24), st.text(UNICODE_DIGITS, min_size=16, max_size=16),
                 st.text(st.sampled_from("0123456789\uff11\u0661\u09e7\u0967"), min_size=16, max_size=16)))
@example("317101170845000\uff11")
@example("3171011708450\u0661\u0662\u0663")
@example("3171011708450001\n")
def test_fuzz_nik(text: str) -> None:
    T.nik(text.encode("utf-8", errors="surrogatepass"))


def test_non_ascii_digit_nik_is_refused_though_python_calls_it_digits() -> None:
    """The trap itself: str.isdigit() and int() accept these; the parser must not."""
    from agent.workflow.nik import NikError, parse_nik

    for nik in ("317101170845000\uff11", "3171011708450\u0661\u0662\u0663", "\u0967" * 16):
        assert nik.isdigit()
        with pytest.raises(NikError):
            parse_nik(nik, today=T.TODAY)


# --------------------------------------------------------------------------- records and packets


@FUZZ
@given(BINARY)
def test_fuzz_iso19794_records(data: bytes) -> None:
    T.records(data)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_packet_reader(data: bytes) -> None:
    T.packet_reader(data)


# --------------------------------------------------------------------------- config


SECTIONS = st.sampled_from(["station", "uplink", "journal", "api", "printer", "devices", "logging",
                            "diagnostics", "quality", "unknown"])
TOML_SCALARS = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=30),
                         st.floats(), st.sampled_from(["/", "../..", "/etc/shadow", "a\x00b", ""]))


@FUZZ
@given(BINARY)
@example(b"[station]\nstate_dir = 1e999\n")
@example(b"[station\n")
@example(b"\xff\xfe[station]")
def test_fuzz_config_file_bytes(data: bytes) -> None:
    T.config_file(data)


@FUZZ
@given(st.dictionaries(SECTIONS, st.dictionaries(st.text(max_size=16) | st.sampled_from(
    ["id", "state_dir", "port", "host", "token_file", "ca_file", "enabled", "level", "driver", "url"]),
    TOML_SCALARS | st.dictionaries(st.text(max_size=8), TOML_SCALARS, max_size=3), max_size=4),
    max_size=4))
def test_fuzz_config_documents(doc: dict[str, Any]) -> None:
    """parse_config on arbitrary TOML-shaped documents: only ConfigError."""
    try:
        parse_config(doc)
    except ConfigError:
        pass


def test_config_text_traps_fail_closed(tmp_path: Any) -> None:
    """TOML-level traps give ConfigError with the file name, never a traceback."""
    from agent.config import load_config

    for text in (b"[station]\nid = \"a\"\nid = \"b\"\n", b"[station]\nstate_dir = nan\n",
                 b"[api]\nport = 99999999999999999999\n", b"x = [" * 2000):
        path = tmp_path / "agent.toml"
        path.write_bytes(text)
        with pytest.raises(ConfigError, match="agent.toml"):
            load_config(path)
    assert tomllib  # the parser the agent uses (stdlib) is the one these traps target


# --------------------------------------------------------------------------- export folders


NAMES = st.one_of(st.text(max_size=40), st.sampled_from([
    "../bait", "../../etc/passwd", "/etc/passwd", "a\x00b.rkp", ".rkp", "..rkp", "x/../y.rkp",
    T._EXPORT_FILE, "manifest.json", "." * 300 + ".rkp"]))
ENTRY = st.fixed_dictionaries({}, optional={
    "packet_id": NAMES, "file": NAMES, "size": st.integers(-5, 20) | JSON_VALUES,
    "sha256": st.sampled_from(["0" * 64, "G" * 64, ""]) | JSON_VALUES,
    "station_id": st.sampled_from([T.STATION_ID, "other"]) | JSON_VALUES,
    "created_at": st.text(max_size=5)})


@FUZZ
@given(st.one_of(BINARY, st.lists(ENTRY, max_size=3).flatmap(lambda entries: st.sampled_from([
    T.valid_export_manifest(packets=entries, packet_count=len(entries)),
    T.valid_export_manifest(packets=entries, packet_count=len(entries), total_bytes=10 * len(entries)),
]))))
@example(T.valid_export_manifest())
@example(T.valid_export_manifest(v=1.0))
@example(b'{"format": "rekam-export", "format": "x"}')
@example(b"[" * 100_000)
def test_fuzz_export_manifest(data: bytes) -> None:
    T.export_manifest(data)
