"""Streaming packet writer: hash items, sign the manifest, encrypt everything for head office.

Memory: the writer never holds an item or the packet. Items are given as re-readable sources
(bytes, a path, or a seekable binary file): :meth:`PacketWriter.add_item` reads one once to learn
its size and SHA-256 (the manifest must carry them, and the manifest comes first so the reader can
verify the signature before it yields any item); :meth:`PacketWriter.finish` reads it again and
streams it through the cipher into the sink in ``chunk_size`` pieces. If the second read differs
from the first, :class:`SourceChangedError` is raised and the caller must abort the sink.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from agent.envelope import canonical_json, utc_iso
from agent.faults import crash_point
from agent.keys import key_id, raw_public
from agent.packet.format import (
    CIPHER,
    DEFAULT_CHUNK_SIZE,
    FORMAT_VERSION,
    MAGIC,
    MANIFEST_LEN,
    MAX_CHUNK_SIZE,
    MAX_HEADER_JSON,
    MAX_MANIFEST,
    MIN_CHUNK_SIZE,
    PREFIX,
    SIG_DOMAIN,
    SIG_SIZE,
    PacketError,
    SourceChangedError,
    chunk_count,
    derive_key,
    nonce,
)
from agent.packet.ids import is_packet_id

log = logging.getLogger(__name__)



class SeekableReader(Protocol):
    """A binary file-like item source that can be re-read: read, seek, tell."""

    def read(self, n: int = -1, /) -> bytes:
        """Up to n bytes; b"" at the end."""

    def seek(self, pos: int, whence: int = 0, /) -> int:
        """Move to pos."""

    def tell(self) -> int:
        """Current position."""


ItemSource = bytes | bytearray | memoryview | str | os.PathLike[str] | SeekableReader | BinaryIO


class Sink(Protocol):
    """Anything with ``write(bytes)``: a PacketSink of the journal, a file, a BytesIO."""

    def write(self, b: bytes, /) -> int | None:
        """Write all of ``b``."""


@dataclass(frozen=True)
class PacketSummary:
    """What finish() wrote."""

    packet_id: str
    size: int          # bytes written to the sink
    sha256: str        # hex SHA-256 of the whole packet file
    body_size: int     # plaintext body bytes (manifest, signature, items)
    item_count: int


class _Item:
    """One item source and what the first pass learned about it."""

    def __init__(self, source: ItemSource, read_size: int) -> None:
        self.source = source
        self.start = 0
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.kind = "bytes"
        elif isinstance(source, (str, os.PathLike)):
            self.kind = "path"
        elif hasattr(source, "read") and hasattr(source, "seek"):
            self.kind = "file"
            self.start = source.tell()
        else:
            raise TypeError("item source must be bytes, a path or a seekable binary file")
        self.read_size = read_size
        h = hashlib.sha256()
        size = 0
        for block in self.blocks():
            h.update(block)
            size += len(block)
        self.size = size
        self.sha256 = h.hexdigest()

    def blocks(self) -> Iterator[bytes | memoryview]:
        """The source's bytes in blocks of at most read_size."""
        if self.kind == "bytes":
            view = memoryview(self.source)  # type: ignore[arg-type]
            for i in range(0, len(view), self.read_size):
                yield view[i:i + self.read_size]
            return
        if self.kind == "path":
            with open(self.source, "rb") as fh:  # type: ignore[arg-type]
                yield from _read_blocks(fh, self.read_size)
            return
        src: Any = self.source
        src.seek(self.start)
        yield from _read_blocks(src, self.read_size)


def _read_blocks(fh: Any, n: int) -> Iterator[bytes]:
    while True:
        block = fh.read(n)
        if not block:
            return
        yield block


class _StreamEncryptor:
    """Cuts plaintext into fixed chunks and writes each sealed chunk to the sink."""

    def __init__(self, aead: ChaCha20Poly1305, aad: bytes, chunk_size: int, body_size: int,
                 out: _CountingSink) -> None:
        self.aead, self.aad, self.chunk_size, self.body_size = aead, aad, chunk_size, body_size
        self.chunks = chunk_count(body_size, chunk_size)
        self.out = out
        self.buf = bytearray()
        self.index = 0
        self.taken = 0

    def write(self, data: bytes | memoryview) -> None:
        self.taken += len(data)
        if self.taken > self.body_size:
            raise SourceChangedError("more body bytes than announced (an item source grew)")
        self.buf += data
        cs = self.chunk_size
        # Keep the final chunk back until close(): only it may carry the last flag.
        while len(self.buf) >= cs and self.index < self.chunks - 1:
            self._seal(bytes(self.buf[:cs]), last=False)
            del self.buf[:cs]

    def close(self) -> None:
        if self.taken != self.body_size:
            raise SourceChangedError("fewer body bytes than announced (an item source shrank)")
        self._seal(bytes(self.buf), last=True)
        self.buf = bytearray()

    def _seal(self, plain: bytes, *, last: bool) -> None:
        self.out.write(self.aead.encrypt(nonce(self.index, last), plain, self.aad))
        self.index += 1


class _CountingSink:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.size = 0
        self.hash = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.sink.write(data)
        crash_point("mid-seal")
        self.size += len(data)
        self.hash.update(data)


def _opt_time(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return utc_iso(value)


class PacketWriter:
    """Builds one packet into ``sink``: add items, then finish() with the manifest fields."""

    def __init__(
        self,
        sink: Sink,
        *,
        station_id: str,
        packet_id: str,
        station_signing_key: Ed25519PrivateKey,
        headoffice_encryption_key: X25519PublicKey,
        key_ids: Mapping[str, str] | None = None,
        created_at: datetime | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        """Prepare a writer; nothing is written until finish().

        ``key_ids`` may name {"station": kid, "headoffice": kid}; they must match the keys
        (a mismatch is a provisioning bug caught here rather than at head office).
        """
        if not is_packet_id(packet_id):
            raise ValueError("packet_id must be a canonical UUIDv7 (agent.packet.new_packet_id)")
        if not station_id or len(station_id) > 64:
            raise ValueError("station_id must be 1..64 characters")
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}")
        self._sink = sink
        self._station_id = station_id
        self._packet_id = packet_id
        self._sign_key = station_signing_key
        self._ho_key = headoffice_encryption_key
        self._station_kid = key_id(station_signing_key.public_key())
        self._ho_kid = key_id(headoffice_encryption_key)
        if key_ids is not None:
            if key_ids.get("station", self._station_kid) != self._station_kid or \
                    key_ids.get("headoffice", self._ho_kid) != self._ho_kid:
                raise ValueError("key_ids do not match the keys given")
        self._created_at = utc_iso(created_at or datetime.now(UTC))
        self._chunk_size = chunk_size
        self._items: list[tuple[dict[str, Any], _Item]] = []
        self._names: set[str] = set()
        self._finished = False

    def add_item(
        self,
        name: str,
        source: ItemSource,
        *,
        kind: str,
        format: str,
        quality: float | int | None = None,
        retries: int = 0,
        force_accept_reason: str | None = None,
        captured_at: datetime | str | None = None,
        position: str | None = None,
        device: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Hash one item now (first read) and queue it; returns its manifest entry."""
        if self._finished:
            raise PacketError("packet already finished")
        if not name or name in self._names:
            raise ValueError(f"item name {name!r} is empty or already used")
        item = _Item(source, self._chunk_size)
        entry: dict[str, Any] = {
            "name": name, "kind": kind, "format": format, "size": item.size,
            "sha256": item.sha256, "quality": quality, "retries": retries,
            "force_accept_reason": force_accept_reason, "captured_at": _opt_time(captured_at),
            "position": position, "device": device,
        }
        if meta:
            entry["meta"] = dict(meta)
        self._names.add(name)
        self._items.append((entry, item))
        return dict(entry)

    def finish(
        self,
        *,
        biodata: Mapping[str, Any] | None = None,
        devices: Sequence[Mapping[str, Any]] = (),
        operator_id: str | None = None,
        exceptions: Sequence[Mapping[str, Any]] = (),
        stages: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> PacketSummary:
        """Write header, encrypted manifest + signature + items; return the summary."""
        if self._finished:
            raise PacketError("packet already finished")
        self._finished = True
        manifest: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "packet_id": self._packet_id,
            "station_id": self._station_id,
            "created_at": self._created_at,
            "operator_id": operator_id,
            "biodata": dict(biodata or {}),
            "items": [entry for entry, _ in self._items],
            "devices": [dict(d) for d in devices],
            "exceptions": [dict(e) for e in exceptions],
            "stages": dict(stages or {}),
        }
        if extra:
            manifest["extra"] = dict(extra)
        try:
            manifest_bytes = canonical_json(manifest)
        except (TypeError, ValueError) as exc:
            # Not JSON (a datetime object, NaN, a lone surrogate in a string): name the problem
            # class only; the manifest holds personal data that must not reach a log line.
            raise PacketError(f"manifest is not serialisable as strict JSON: "
                              f"{type(exc).__name__}") from None
        if len(manifest_bytes) > MAX_MANIFEST:
            raise PacketError(f"manifest of {len(manifest_bytes)} bytes exceeds {MAX_MANIFEST}")
        body_size = (MANIFEST_LEN.size + len(manifest_bytes) + SIG_SIZE
                     + sum(item.size for _, item in self._items))

        ephemeral = X25519PrivateKey.generate()
        eph_pub = raw_public(ephemeral.public_key())
        header_json = canonical_json({
            "station_id": self._station_id, "packet_id": self._packet_id,
            "created_at": self._created_at, "station_kid": self._station_kid,
            "headoffice_kid": self._ho_kid, "cipher": CIPHER,
            "ephemeral_key": base64.b64encode(eph_pub).decode("ascii"),
            "chunk_size": self._chunk_size, "body_size": body_size,
        })
        if len(header_json) > MAX_HEADER_JSON:
            raise PacketError("header too large (station id too long?)")
        header = PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_json)) + header_json
        header_hash = hashlib.sha256(header).digest()
        key = derive_key(ephemeral.exchange(self._ho_key), eph_pub, raw_public(self._ho_key),
                         header_hash)
        # Drop our reference to the ephemeral private key now: with it gone the station holds
        # nothing that can decrypt this packet (sealed-box semantics).
        del ephemeral
        signature = self._sign_key.sign(SIG_DOMAIN + header + manifest_bytes)

        out = _CountingSink(self._sink)
        out.write(header)
        enc = _StreamEncryptor(ChaCha20Poly1305(key), header_hash, self._chunk_size, body_size, out)
        enc.write(MANIFEST_LEN.pack(len(manifest_bytes)))
        enc.write(manifest_bytes)
        enc.write(signature)
        for entry, item in self._items:
            h = hashlib.sha256()
            for block in item.blocks():
                h.update(block)
                enc.write(block)
            if h.hexdigest() != entry["sha256"]:
                raise SourceChangedError(f"item {entry['name']!r} changed after it was added")
        enc.close()
        log.debug("packet %s written: %d bytes, %d items", self._packet_id, out.size,
                  len(self._items))
        return PacketSummary(self._packet_id, out.size, out.hash.hexdigest(), body_size,
                             len(self._items))

