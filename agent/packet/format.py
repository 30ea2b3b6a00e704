"""Enrollment packet file format, version 1: constants, header, errors (docs/packet-format.md).

Layout::

    plaintext header
      0   8  MAGIC  b"\\x89RKMPKT\\n"   (a high-bit byte and a newline: mangled transfers show)
      8   2  format version, u16 big-endian (1)
     10   4  header JSON length N, u32 big-endian (<= MAX_HEADER_JSON)
     14   N  header JSON (canonical): station_id, packet_id, created_at, station_kid,
             headoffice_kid, cipher, ephemeral_key (base64 X25519), chunk_size, body_size
    encrypted body, ChaCha20-Poly1305 STREAM, chunk_size plaintext bytes per chunk (+16 tag),
    the last chunk shorter or equal; nonce = 11-byte big-endian chunk index || last flag (0/1);
    associated data = SHA-256 of the plaintext header. Plaintext body:
      u32 manifest length M · manifest JSON (M bytes) · 64-byte Ed25519 signature · items, in
      manifest order, each exactly its manifest "size" bytes.

The key is HKDF-SHA256(X25519(ephemeral, head office), salt = ephemeral_pub || headoffice_pub,
info = b"rekam-packet-v1\\0" || SHA-256(header)). The ephemeral private key is discarded after
writing, so the station cannot decrypt its own packet. The signature covers
SIG_DOMAIN || header || manifest; the header carries the ephemeral key (so the signature binds the
ciphertext stream) and the manifest carries every item's SHA-256 and size.

Exception tree::

    PacketError
     +-- NotAPacketError       bad magic or an unparseable header
     +-- UnknownVersionError   a format version this reader does not know
     +-- WrongKeyError         encrypted for another head-office key
     +-- UnknownStationError   no registered public key for the header's station
     +-- BadSignatureError     the station signature does not verify
     +-- TamperedError         a chunk fails authentication, trailing data, a hash mismatch
     +-- TruncatedError        the file ends early
     +-- SourceChangedError    (writer) an item source changed between hashing and writing
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any

MAGIC = b"\x89RKMPKT\n"
FORMAT_VERSION = 1
PREFIX = struct.Struct(">8sHI")  # magic, version, header JSON length
CIPHER = "X25519-HKDF-SHA256/ChaCha20-Poly1305-STREAM64"
HKDF_INFO = b"rekam-packet-v1\0"
SIG_DOMAIN = b"rekam-packet-sig-v1\0"
TAG_SIZE = 16
SIG_SIZE = 64
DEFAULT_CHUNK_SIZE = 64 * 1024
MIN_CHUNK_SIZE = 1024
MAX_CHUNK_SIZE = 4 * 1024 * 1024
MAX_HEADER_JSON = 4096
# A manifest is a few kilobytes (biodata, ~20 item entries); the cap bounds reader memory.
MAX_MANIFEST = 1024 * 1024
MANIFEST_LEN = struct.Struct(">I")
HEADER_FIELDS = ("station_id", "packet_id", "created_at", "station_kid", "headoffice_kid",
                 "cipher", "ephemeral_key", "chunk_size", "body_size")


class PacketError(Exception):
    """A packet cannot be written or read."""


class NotAPacketError(PacketError):
    """The bytes do not start with a packet header."""


class UnknownVersionError(PacketError):
    """The packet uses a format version this reader does not know."""


class WrongKeyError(PacketError):
    """The packet was encrypted for another head-office key."""


class UnknownStationError(PacketError):
    """No public key is registered for the packet's station."""


class BadSignatureError(PacketError):
    """The station's signature over header and manifest does not verify."""


class TamperedError(PacketError):
    """Some byte of the packet was changed, reordered or appended."""


class TruncatedError(PacketError):
    """The packet file ends before its last chunk."""


class SourceChangedError(PacketError):
    """An item's source changed between the hashing pass and the writing pass."""


@dataclass(frozen=True)
class PacketHeader:
    """The plaintext header: who, when, which keys; no personal data."""

    version: int
    station_id: str
    packet_id: str
    created_at: str
    station_kid: str
    headoffice_kid: str
    cipher: str
    ephemeral_key: bytes
    chunk_size: int
    body_size: int
    raw: bytes  # the exact header bytes (prefix + JSON): signed and hashed into the AAD

    @property
    def sha256(self) -> bytes:
        """SHA-256 of the raw header."""
        return hashlib.sha256(self.raw).digest()

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view (no raw bytes)."""
        return {"version": self.version, "station_id": self.station_id,
                "packet_id": self.packet_id, "created_at": self.created_at,
                "station_kid": self.station_kid, "headoffice_kid": self.headoffice_kid,
                "cipher": self.cipher, "chunk_size": self.chunk_size, "body_size": self.body_size}


def nonce(index: int, last: bool) -> bytes:
    """12-byte nonce: 11-byte big-endian chunk index, then 1 for the last chunk else 0."""
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def chunk_count(body_size: int, chunk_size: int) -> int:
    """Number of chunks for a body (at least one)."""
    return max(1, -(-body_size // chunk_size))


def encrypted_size(body_size: int, chunk_size: int) -> int:
    """Ciphertext bytes for a body of ``body_size`` plaintext bytes."""
    return body_size + TAG_SIZE * chunk_count(body_size, chunk_size)


def derive_key(shared_secret: bytes, ephemeral_pub: bytes, headoffice_pub: bytes,
               header_sha256: bytes) -> bytes:
    """The packet's 32-byte ChaCha20-Poly1305 key (HKDF-SHA256, bound to both keys and header)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_pub + headoffice_pub,
                info=HKDF_INFO + header_sha256).derive(shared_secret)
