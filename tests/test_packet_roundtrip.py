"""Packet writer and reader: layout, round trips, every distinct error, and tamper detection."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import example, given
from hypothesis import strategies as st

from agent import packet
from agent.keys import key_id
from agent.packet import ids

STATION = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
HO = X25519PrivateKey.from_private_bytes(b"\x02" * 32)
KEYS = {"st-1": STATION.public_key()}
PID = "01900000-0000-7000-8000-000000000001"
CREATED = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
CS = 1024  # the smallest chunk size, so small packets still span many chunks


def build(items: list[tuple[str, bytes]], *, chunk_size: int = CS, station: str = "st-1",
          sign: Ed25519PrivateKey = STATION, ho: X25519PrivateKey = HO,
          pid: str = PID) -> bytes:
    out = io.BytesIO()
    w = packet.PacketWriter(out, station_id=station, packet_id=pid, station_signing_key=sign,
                            headoffice_encryption_key=ho.public_key(), created_at=CREATED,
                            chunk_size=chunk_size)
    for name, data in items:
        w.add_item(name, data, kind="finger", format="iso19794-4", quality=80, retries=1,
                   captured_at=CREATED, position="1", device="emu-fp")
    summary = w.finish(biodata={"nik": "6472010101900001", "name": "Contoh"}, operator_id="op-7",
                       devices=[{"name": "emu-fp", "serial": "X1"}],
                       exceptions=[{"position": "10", "reason": "amputated"}],
                       stages={"biodata": "2026-11-29T03:00:00.000Z"})
    data = out.getvalue()
    assert summary.size == len(data)
    assert summary.sha256 == hashlib.sha256(data).hexdigest()
    return data


def read_all(data: bytes, **kw: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    args: dict[str, Any] = {"headoffice_private_key": HO, "station_public_keys": KEYS}
    args.update(kw)
    header, manifest, items = packet.read_packet(io.BytesIO(data), **args)
    got = {item.name: item.read() for item in items}
    return manifest, got


SAMPLE = [("face", b"\xff\xd8jpeg" * 300), ("finger-1", bytes(range(256)) * 9), ("empty", b"")]


def test_round_trip_and_manifest() -> None:
    manifest, got = read_all(build(SAMPLE))
    assert got == dict(SAMPLE)
    assert manifest["biodata"]["nik"] == "6472010101900001"
    assert manifest["operator_id"] == "op-7"
    entry = manifest["items"][1]
    assert entry["sha256"] == hashlib.sha256(SAMPLE[1][1]).hexdigest()
    assert entry["size"] == len(SAMPLE[1][1])
    assert entry["quality"] == 80 and entry["retries"] == 1 and entry["position"] == "1"
    assert entry["captured_at"] == "2026-11-29T03:00:00.000Z"
    assert manifest["exceptions"][0]["reason"] == "amputated"


def test_layout_decrypts_with_independent_code() -> None:
    """Decrypt the file from the documented layout with raw primitives, not the reader."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    data = build(SAMPLE)
    assert data[:8] == b"\x89RKMPKT\n"
    version, hlen = struct.unpack(">HI", data[8:14])
    assert version == 1
    header = data[:14 + hlen]
    h = json.loads(header[14:])
    assert h["station_id"] == "st-1" and h["packet_id"] == PID
    assert h["headoffice_kid"] == key_id(HO.public_key())
    assert h["station_kid"] == key_id(STATION.public_key())
    assert b"nik" not in header and b"Contoh" not in data and b"6472010101900001" not in data
    eph = base64.b64decode(h["ephemeral_key"])
    hh = hashlib.sha256(header).digest()
    ho_raw = HO.public_key().public_bytes_raw()
    key = HKDF(hashes.SHA256(), 32, salt=eph + ho_raw, info=b"rekam-packet-v1\0" + hh).derive(
        HO.exchange(X25519PublicKey.from_public_bytes(eph)))
    aead = ChaCha20Poly1305(key)
    body = b""
    rest = data[14 + hlen:]
    n = -(-h["body_size"] // h["chunk_size"])
    for i in range(n):
        size = min(h["chunk_size"], h["body_size"] - i * h["chunk_size"]) + 16
        body += aead.decrypt(i.to_bytes(11, "big") + bytes([i == n - 1]), rest[:size], hh)
        rest = rest[size:]
    assert rest == b""
    (mlen,) = struct.unpack(">I", body[:4])
    manifest = body[4:4 + mlen]
    sig = body[4 + mlen:4 + mlen + 64]
    STATION.public_key().verify(sig, b"rekam-packet-sig-v1\0" + header + manifest)
    assert body[4 + mlen + 64:] == b"".join(d for _, d in SAMPLE)


def test_sources_bytes_path_and_seekable_file(tmp_path: Path) -> None:
    p = tmp_path / "iris.png"
    p.write_bytes(b"P" * 5000)
    fh = io.BytesIO(b"junk" + b"F" * 3000)
    fh.seek(4)  # the item starts where the file position is when added
    out = io.BytesIO()
    w = packet.PacketWriter(out, station_id="st-1", packet_id=PID, station_signing_key=STATION,
                            headoffice_encryption_key=HO.public_key(), chunk_size=CS)
    w.add_item("a", b"A" * 10, kind="x", format="raw")
    w.add_item("b", p, kind="iris", format="iso19794-6")
    w.add_item("c", fh, kind="x", format="raw")
    w.add_item("d", str(p), kind="x", format="raw")
    w.finish()
    _, got = read_all(out.getvalue())
    assert got == {"a": b"A" * 10, "b": b"P" * 5000, "c": b"F" * 3000, "d": b"P" * 5000}


def test_source_changed_between_passes(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"1" * 3000)
    w = packet.PacketWriter(io.BytesIO(), station_id="st-1", packet_id=PID,
                            station_signing_key=STATION, headoffice_encryption_key=HO.public_key())
    w.add_item("f", p, kind="x", format="raw")
    p.write_bytes(b"2" * 3000)
    with pytest.raises(packet.SourceChangedError):
        w.finish()
    for new in (b"1" * 2999, b"1" * 3001):
        w = packet.PacketWriter(io.BytesIO(), station_id="st-1", packet_id=PID,
                                station_signing_key=STATION,
                                headoffice_encryption_key=HO.public_key())
        p.write_bytes(b"1" * 3000)
        w.add_item("f", p, kind="x", format="raw")
        p.write_bytes(new)
        with pytest.raises(packet.SourceChangedError):
            w.finish()


def test_writer_misuse() -> None:
    def writer(**kw: Any) -> packet.PacketWriter:
        args: dict[str, Any] = {"station_id": "st-1", "packet_id": PID,
                                "station_signing_key": STATION,
                                "headoffice_encryption_key": HO.public_key()}
        args.update(kw)
        return packet.PacketWriter(io.BytesIO(), **args)

    with pytest.raises(ValueError):
        writer(packet_id=str(uuid.uuid4()))
    with pytest.raises(ValueError):
        writer(chunk_size=10)
    with pytest.raises(ValueError):
        writer(key_ids={"station": "0" * 16})
    w = writer(key_ids={"station": key_id(STATION.public_key())})
    w.add_item("a", b"x", kind="x", format="raw")
    with pytest.raises(ValueError):
        w.add_item("a", b"y", kind="x", format="raw")
    with pytest.raises(TypeError):
        w.add_item("b", 42, kind="x", format="raw")  # type: ignore[arg-type]
    w.finish()
    with pytest.raises(packet.PacketError):
        w.finish()


def test_wrong_key() -> None:
    other = X25519PrivateKey.generate()
    with pytest.raises(packet.WrongKeyError):
        read_all(build(SAMPLE), headoffice_private_key=other)


def test_unknown_station_and_wrong_station_key() -> None:
    with pytest.raises(packet.UnknownStationError):
        read_all(build(SAMPLE), station_public_keys={})
    impostor = Ed25519PrivateKey.generate()
    # st-2 signs a packet claiming to be st-1: the key registered for st-1 does not match.
    with pytest.raises(packet.BadSignatureError):
        read_all(build(SAMPLE, sign=impostor))


def test_bad_signature_with_matching_key_id() -> None:
    """Head office can re-seal a body (it holds the decryption key); a changed signature byte
    inside an otherwise valid encrypted body must fail as a bad signature, not as tampering."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    from agent.packet import format as fmt

    cs = 4096
    data = bytearray(build(SAMPLE, chunk_size=cs))
    hlen = struct.unpack(">I", data[10:14])[0]
    header = bytes(data[:14 + hlen])
    h = json.loads(header[14:])
    eph = base64.b64decode(h["ephemeral_key"])
    aad = hashlib.sha256(header).digest()
    key = fmt.derive_key(HO.exchange(X25519PublicKey.from_public_bytes(eph)), eph,
                         HO.public_key().public_bytes_raw(), aad)
    aead = ChaCha20Poly1305(key)
    region = slice(14 + hlen, 14 + hlen + cs + 16)
    body = bytearray(aead.decrypt(fmt.nonce(0, False), bytes(data[region]), aad))
    (mlen,) = struct.unpack(">I", body[:4])
    assert 4 + mlen + 64 <= cs  # the signature sits in chunk 0 for this sample
    body[4 + mlen] ^= 1
    data[region] = aead.encrypt(fmt.nonce(0, False), bytes(body), aad)
    with pytest.raises(packet.BadSignatureError):
        read_all(bytes(data))


def test_unknown_version_and_not_a_packet() -> None:
    data = bytearray(build(SAMPLE))
    data[8:10] = struct.pack(">H", 2)
    with pytest.raises(packet.UnknownVersionError):
        read_all(bytes(data))
    with pytest.raises(packet.NotAPacketError):
        read_all(b"PK\x03\x04" + bytes(100))
    with pytest.raises(packet.NotAPacketError):
        read_all(b"")


def test_truncated_at_every_chunk_boundary_and_inside() -> None:
    data = build(SAMPLE)
    hlen = struct.unpack(">I", data[10:14])[0]
    cuts = [5, 14, 14 + hlen - 1, 14 + hlen, 14 + hlen + CS + 16, len(data) - 1, len(data) - 17]
    for cut in cuts:
        with pytest.raises(packet.TruncatedError):
            read_all(data[:cut])


def test_trailing_data_is_tampering() -> None:
    with pytest.raises(packet.TamperedError):
        read_all(build(SAMPLE) + b"\0")


def test_reordered_and_spliced_chunks() -> None:
    data = build(SAMPLE)
    hlen = struct.unpack(">I", data[10:14])[0]
    start = 14 + hlen
    c = CS + 16
    chunks = [data[start + i * c:start + (i + 1) * c] for i in range(3)]
    swapped = data[:start] + chunks[1] + chunks[0] + data[start + 2 * c:]
    with pytest.raises(packet.TamperedError):
        read_all(swapped)
    # Splice chunk 1 of another packet (same station, same sizes) into this one.
    other = build(SAMPLE)
    spliced = data[:start + c] + other[start + c:start + 2 * c] + data[start + 2 * c:]
    with pytest.raises(packet.TamperedError):
        read_all(spliced)
    # Drop a whole middle chunk: either authentication or the length check fails.
    with pytest.raises((packet.TamperedError, packet.TruncatedError)):
        read_all(data[:start + c] + data[start + 2 * c:])


def test_items_stream_in_bounded_pieces() -> None:
    big = bytes(range(256)) * 64  # 16 KiB over 1 KiB chunks
    _, _, items = packet.read_packet(io.BytesIO(build([("big", big)])),
                                     headoffice_private_key=HO, station_public_keys=KEYS)
    pieces = list(next(items).chunks())
    assert b"".join(pieces) == big
    assert max(len(p) for p in pieces) <= CS
    assert list(items) == []


def test_skipping_items_still_checks_the_rest() -> None:
    data = bytearray(build(SAMPLE))
    data[-5] ^= 0x40
    _, _, items = packet.read_packet(io.BytesIO(bytes(data)), headoffice_private_key=HO,
                                     station_public_keys=KEYS)
    with pytest.raises(packet.TamperedError):
        for _ in items:
            pass  # never read: drained and checked anyway


def test_verify_packet_and_read_header() -> None:
    data = build(SAMPLE)
    header, manifest = packet.verify_packet(io.BytesIO(data), headoffice_private_key=HO,
                                            station_public_keys=KEYS)
    assert header.packet_id == PID and manifest["packet_id"] == PID
    h2 = packet.read_header(io.BytesIO(data))
    assert h2.as_dict()["station_id"] == "st-1" and h2.raw == header.raw


def test_packet_ids_are_uuid7_and_ordered() -> None:
    made = [packet.new_packet_id() for _ in range(3000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    for pid in made[:10]:
        u = uuid.UUID(pid)
        assert u.version == 7 and u.variant == uuid.RFC_4122
        assert packet.is_packet_id(pid)
    assert not packet.is_packet_id(str(uuid.uuid4()))
    assert not packet.is_packet_id("nonsense")
    assert not packet.is_packet_id(made[0].upper())
    assert abs((packet.packet_id_time(made[0]) - datetime.now(UTC)).total_seconds()) < 3600
    assert str(ids.uuid7_from(0x0190_0000_0000, 0, 1)) == "01900000-0000-7000-8000-000000000001"
    with pytest.raises(ValueError):
        ids.uuid7_from(1 << 48, 0, 0)


# --------------------------------------------------------------------------- hypothesis

items_st = st.lists(st.tuples(st.text(min_size=1, max_size=8), st.binary(max_size=3000)),
                    max_size=4, unique_by=lambda t: t[0])


@given(items_st, st.sampled_from([1024, 1500, 4096]))
def test_any_packet_round_trips(items: list[tuple[str, bytes]], cs: int) -> None:
    _, got = read_all(build(items, chunk_size=cs))
    assert got == dict(items)


SMALL = build([("a", bytes(range(200)) * 12), ("b", b"z" * 700)])


@given(st.integers(min_value=0, max_value=len(SMALL) - 1), st.integers(min_value=0, max_value=7))
@example(0, 0)
@example(9, 0)   # version
@example(13, 0)  # header length
@example(len(SMALL) - 1, 7)
def test_any_flipped_bit_is_detected(pos: int, bit: int) -> None:
    data = bytearray(SMALL)
    data[pos] ^= 1 << bit
    with pytest.raises(packet.PacketError):
        read_all(bytes(data))


@given(st.integers(min_value=0, max_value=len(SMALL) - 1))
@example(0)
@example(len(SMALL) - 1)
def test_any_dropped_byte_is_detected(pos: int) -> None:
    with pytest.raises(packet.PacketError):
        read_all(SMALL[:pos] + SMALL[pos + 1:])


@given(st.integers(min_value=0, max_value=len(SMALL) - 1), st.binary(min_size=1, max_size=1))
def test_any_inserted_byte_is_detected(pos: int, extra: bytes) -> None:
    with pytest.raises(packet.PacketError):
        read_all(SMALL[:pos] + extra + SMALL[pos:])


@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_raise_packet_errors(data: bytes) -> None:
    with pytest.raises(packet.PacketError):
        read_all(data)
    with pytest.raises(packet.PacketError):
        read_all(SMALL[:60] + data)


def test_every_position_flipped_or_dropped_is_detected() -> None:
    """Exhaustive over a small packet: every byte flipped (all bits) and every byte dropped."""
    for pos in range(len(SMALL)):
        flipped = bytearray(SMALL)
        flipped[pos] ^= 0xFF
        with pytest.raises(packet.PacketError):
            read_all(bytes(flipped))
        with pytest.raises(packet.PacketError):
            read_all(SMALL[:pos] + SMALL[pos + 1:])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=10)


@given(st.dictionaries(st.text(max_size=12), json_values, max_size=5),
       st.text(min_size=1, max_size=64), st.none() | st.text(max_size=20))
def test_any_manifest_round_trips(biodata: dict[str, Any], station: str,
                                  operator: str | None) -> None:
    out = io.BytesIO()
    key = Ed25519PrivateKey.from_private_bytes(b"\x03" * 32)
    w = packet.PacketWriter(out, station_id=station, packet_id=PID, station_signing_key=key,
                            headoffice_encryption_key=HO.public_key(), chunk_size=CS)
    w.add_item("x", b"payload", kind="k", format="f")
    w.finish(biodata=biodata, operator_id=operator)
    header, manifest, items = packet.read_packet(
        io.BytesIO(out.getvalue()), headoffice_private_key=HO,
        station_public_keys={station: key.public_key()})
    assert header.station_id == station
    assert manifest["biodata"] == biodata and manifest["operator_id"] == operator
    assert [i.read() for i in items] == [b"payload"]


@pytest.mark.parametrize("biodata", [{"x": float("nan")}, {"x": datetime.now(UTC)},
                                     {"x": "\ud800"}, {"x": b"bytes"}])
def test_unserialisable_manifest_is_a_packet_error(biodata: dict[str, Any]) -> None:
    w = packet.PacketWriter(io.BytesIO(), station_id="st-1", packet_id=PID,
                            station_signing_key=STATION, headoffice_encryption_key=HO.public_key())
    with pytest.raises(packet.PacketError, match="not serialisable") as exc:
        w.finish(biodata=biodata)
    assert "\ud800" not in str(exc.value)


class Trickle:
    """A stream that returns at most 7 bytes per read (a slow pipe or socket)."""

    def __init__(self, data: bytes) -> None:
        self.buf = io.BytesIO(data)

    def read(self, n: int) -> bytes:
        return self.buf.read(min(n, 7))


def test_short_reads_are_not_truncation() -> None:
    header, manifest, items = packet.read_packet(Trickle(build(SAMPLE)), headoffice_private_key=HO,
                                                 station_public_keys=KEYS)
    assert {i.name: i.read() for i in items} == dict(SAMPLE)
