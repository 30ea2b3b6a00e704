"""Streaming packet reader for head office: verify, decrypt, yield items.

Memory is bounded by one chunk plus the manifest (at most ``MAX_MANIFEST``): the reader pulls one
sealed chunk at a time from the stream, authenticates it before releasing any plaintext, and
checks the station's signature over header and manifest before it yields the first item.

Order of checks, each with its own error: header shape and magic (NotAPacketError), version
(UnknownVersionError), the head-office key the packet was sealed for (WrongKeyError), the
station's registered key (UnknownStationError, or BadSignatureError when the packet names another
key), then every chunk (TamperedError for a changed, reordered or spliced chunk; TruncatedError
when the file ends early), the signature (BadSignatureError), each item's SHA-256 against the
manifest and that nothing trails the last chunk (TamperedError).

``station_public_keys`` maps a *station id* to that station's registered Ed25519 public key: a
packet is only accepted when signed by the key registered for the station it claims to come from.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from agent.envelope import EnvelopeError, strict_json_loads
from agent.keys import key_id, raw_public
from agent.packet.format import (
    CIPHER,
    FORMAT_VERSION,
    HEADER_FIELDS,
    MAGIC,
    MANIFEST_LEN,
    MAX_CHUNK_SIZE,
    MAX_HEADER_JSON,
    MAX_MANIFEST,
    MIN_CHUNK_SIZE,
    PREFIX,
    SIG_DOMAIN,
    SIG_SIZE,
    TAG_SIZE,
    BadSignatureError,
    NotAPacketError,
    PacketError,
    PacketHeader,
    TamperedError,
    TruncatedError,
    UnknownStationError,
    UnknownVersionError,
    WrongKeyError,
    chunk_count,
    derive_key,
    nonce,
)


class Readable(Protocol):
    """Anything with ``read(n)``."""

    def read(self, n: int, /) -> bytes:
        """Read up to n bytes."""


def _read_exact(stream: Readable | BinaryIO, n: int) -> bytes:
    """Read exactly n bytes unless the stream ends first (then fewer)."""
    parts = []
    got = 0
    while got < n:
        block = stream.read(n - got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def read_header(stream: Readable | BinaryIO) -> PacketHeader:
    """Read and check the plaintext header (no keys needed); the stream is left after it."""
    prefix = _read_exact(stream, PREFIX.size)
    if len(prefix) < PREFIX.size:
        if MAGIC.startswith(prefix[:len(MAGIC)]) and prefix:
            raise TruncatedError("packet ends inside its header")
        raise NotAPacketError("not a rekam packet (too short)")
    magic, version, hlen = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise NotAPacketError("not a rekam packet (bad magic)")
    if version != FORMAT_VERSION:
        raise UnknownVersionError(f"packet format version {version} is not supported "
                                  f"(this reader knows {FORMAT_VERSION})")
    if not 2 <= hlen <= MAX_HEADER_JSON:
        raise TamperedError(f"header length {hlen} out of range")
    hjson = _read_exact(stream, hlen)
    if len(hjson) < hlen:
        raise TruncatedError("packet ends inside its header")
    try:
        doc = strict_json_loads(hjson, max_depth=1)
    except EnvelopeError as exc:
        raise TamperedError(f"header JSON invalid: {exc}") from None
    if set(doc) != set(HEADER_FIELDS):
        raise TamperedError("header fields differ from the format")
    for name in ("station_id", "packet_id", "created_at", "station_kid", "headoffice_kid",
                 "cipher", "ephemeral_key"):
        if not isinstance(doc[name], str):
            raise TamperedError(f"header field {name} must be a string")
    for name in ("chunk_size", "body_size"):
        if type(doc[name]) is not int:
            raise TamperedError(f"header field {name} must be an integer")
    if doc["cipher"] != CIPHER:
        raise UnknownVersionError(f"cipher {doc['cipher'][:80]!r} is not supported")
    if not MIN_CHUNK_SIZE <= doc["chunk_size"] <= MAX_CHUNK_SIZE:
        raise TamperedError("header chunk_size out of range")
    if doc["body_size"] < MANIFEST_LEN.size + SIG_SIZE:
        raise TamperedError("header body_size too small")
    try:
        eph = base64.b64decode(doc["ephemeral_key"], validate=True)
    except binascii.Error:
        raise TamperedError("header ephemeral_key is not base64") from None
    if len(eph) != 32:
        raise TamperedError("header ephemeral_key must be 32 bytes")
    return PacketHeader(version=version, station_id=doc["station_id"],
                        packet_id=doc["packet_id"], created_at=doc["created_at"],
                        station_kid=doc["station_kid"], headoffice_kid=doc["headoffice_kid"],
                        cipher=doc["cipher"], ephemeral_key=eph, chunk_size=doc["chunk_size"],
                        body_size=doc["body_size"], raw=prefix + hjson)


class _Body:
    """Decrypted body as a byte stream, one authenticated chunk at a time."""

    def __init__(self, stream: Readable | BinaryIO, header: PacketHeader, key: bytes) -> None:
        self.stream = stream
        self.aead = ChaCha20Poly1305(key)
        self.aad = header.sha256
        self.cs = header.chunk_size
        self.body_size = header.body_size
        self.chunks = chunk_count(header.body_size, header.chunk_size)
        self.index = 0
        self.buf = b""
        self.pos = 0  # read position inside buf
        self.consumed = 0

    def _next_chunk(self) -> None:
        i = self.index
        if i >= self.chunks:
            raise TamperedError("body is longer than its header says")
        plain_len = min(self.cs, self.body_size - i * self.cs)
        sealed = _read_exact(self.stream, plain_len + TAG_SIZE)
        if len(sealed) < plain_len + TAG_SIZE:
            raise TruncatedError(f"packet ends inside chunk {i} of {self.chunks}")
        last = i == self.chunks - 1
        try:
            self.buf = self.aead.decrypt(nonce(i, last), sealed, self.aad)
        except InvalidTag:
            raise TamperedError(f"chunk {i} of {self.chunks} fails authentication") from None
        self.pos = 0
        self.index += 1
        if last and self.stream.read(1):
            raise TamperedError("data after the last chunk")

    def read(self, n: int) -> bytes:
        """Exactly n body bytes (n is small: lengths, manifest, signature)."""
        out = bytearray()
        while len(out) < n:
            piece = self.read_some(n - len(out))
            out += piece
        return bytes(out)

    def read_some(self, n: int) -> bytes:
        """Between 1 and n body bytes (from the current chunk)."""
        if self.consumed + n > self.body_size:
            raise TamperedError("manifest sizes exceed the body")
        if self.pos >= len(self.buf):
            self._next_chunk()
        piece = self.buf[self.pos:self.pos + n]
        self.pos += len(piece)
        self.consumed += len(piece)
        return piece

    def finish(self) -> None:
        """Check the whole body, and nothing more, was read."""
        if self.consumed != self.body_size or self.index != self.chunks or self.pos != len(self.buf):
            raise TamperedError("body has bytes no manifest item accounts for")


class PacketItem:
    """One item of a packet, streamed; its hash is checked when its last byte is read."""

    def __init__(self, info: Mapping[str, Any], body: _Body) -> None:
        self.info = dict(info)
        self._body = body
        self._left = int(info["size"])
        self._hash = hashlib.sha256()
        self._done = False

    @property
    def name(self) -> str:
        """The item's manifest name (e.g. "finger-r-thumb")."""
        return str(self.info["name"])

    @property
    def size(self) -> int:
        """Bytes in the item."""
        return int(self.info["size"])

    def chunks(self) -> Iterator[bytes]:
        """The item's bytes in pieces of at most one chunk; raises TamperedError on a bad hash."""
        while self._left > 0:
            piece = self._body.read_some(self._left)
            self._left -= len(piece)
            self._hash.update(piece)
            yield piece
        if not self._done:
            self._done = True
            if self._hash.hexdigest() != self.info["sha256"]:
                raise TamperedError(f"item {self.name!r} does not match its manifest hash")

    def read(self) -> bytes:
        """The whole item (for small items; use chunks() for large ones)."""
        return b"".join(self.chunks())

    def drain(self) -> None:
        """Skip what is left of the item, still checking its hash."""
        for _ in self.chunks():
            pass


def _check_manifest(manifest: dict[str, Any], header: PacketHeader) -> list[dict[str, Any]]:
    if manifest.get("packet_id") != header.packet_id or manifest.get("station_id") != header.station_id:
        raise TamperedError("manifest names another packet or station than the header")
    items = manifest.get("items")
    if not isinstance(items, list):
        raise TamperedError("manifest has no item list")
    for it in items:
        if (not isinstance(it, dict) or type(it.get("size")) is not int or it["size"] < 0
                or not isinstance(it.get("sha256"), str) or not isinstance(it.get("name"), str)):
            raise TamperedError("manifest item lacks name, size or sha256")
    return items


def read_packet(
    stream: Readable | BinaryIO,
    *,
    headoffice_private_key: X25519PrivateKey,
    station_public_keys: Mapping[str, Ed25519PublicKey],
) -> tuple[PacketHeader, dict[str, Any], Iterator[PacketItem]]:
    """Verify header, key, signature and manifest; return them with an iterator of items.

    Consume items in order; moving on drains the previous one. The iterator raises a
    PacketError subclass when a later chunk is tampered with or the file is truncated, so the
    packet as a whole is accepted only when the iterator ends without error.
    """
    header = read_header(stream)
    ho_pub: X25519PublicKey = headoffice_private_key.public_key()
    if header.headoffice_kid != key_id(ho_pub):
        raise WrongKeyError(f"packet is sealed for head-office key {header.headoffice_kid}, "
                            f"not {key_id(ho_pub)}")
    station_key = station_public_keys.get(header.station_id)
    if station_key is None:
        raise UnknownStationError(f"no registered key for station {header.station_id[:64]!r}")
    if key_id(station_key) != header.station_kid:
        raise BadSignatureError(f"packet names station key {header.station_kid[:32]}, but the key "
                                f"registered for its station is {key_id(station_key)}")
    try:
        eph = X25519PublicKey.from_public_bytes(header.ephemeral_key)
        shared = headoffice_private_key.exchange(eph)
    except ValueError:
        raise TamperedError("header ephemeral key is not a valid X25519 key") from None
    key = derive_key(shared, header.ephemeral_key, raw_public(ho_pub), header.sha256)
    body = _Body(stream, header, key)
    (mlen,) = MANIFEST_LEN.unpack(body.read(MANIFEST_LEN.size))
    if mlen > MAX_MANIFEST or mlen + MANIFEST_LEN.size + SIG_SIZE > header.body_size:
        raise TamperedError(f"manifest length {mlen} out of range")
    manifest_bytes = body.read(mlen)
    signature = body.read(SIG_SIZE)
    try:
        station_key.verify(signature, SIG_DOMAIN + header.raw + manifest_bytes)
    except InvalidSignature:
        raise BadSignatureError("station signature over header and manifest does not verify") from None
    try:
        manifest = strict_json_loads(manifest_bytes)
    except EnvelopeError as exc:
        raise PacketError(f"signed manifest is not valid JSON: {exc}") from None
    items = _check_manifest(manifest, header)
    if MANIFEST_LEN.size + mlen + SIG_SIZE + sum(i["size"] for i in items) != header.body_size:
        raise TamperedError("manifest item sizes do not add up to the body size")

    def iterate() -> Iterator[PacketItem]:
        for info in items:
            item = PacketItem(info, body)
            yield item
            item.drain()
        body.finish()

    return header, manifest, iterate()


def verify_packet(
    stream: Readable | BinaryIO,
    *,
    headoffice_private_key: X25519PrivateKey,
    station_public_keys: Mapping[str, Ed25519PublicKey],
) -> tuple[PacketHeader, dict[str, Any]]:
    """Read a whole packet, checking everything, without keeping any item."""
    header, manifest, items = read_packet(stream, headoffice_private_key=headoffice_private_key,
                                          station_public_keys=station_public_keys)
    for item in items:
        item.drain()
    return header, manifest
