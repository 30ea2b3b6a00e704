"""Encrypted copies of operator templates in the journal.

The ZFM module keeps templates in its own flash; a copy is kept here so a replaced module can be
refilled (``rekam operators restore``) and so a scanner without an on-board library (the
ten-print seam) has somewhere to keep them. A stolen disk must not reveal them: each template
is sealed with AES-256-GCM under a station-held key file (``STATE_DIR/keys/operator_templates.key``,
32 random bytes, mode 0600, created on first use), a fresh 96-bit nonce per template, and the
staff id bound in as associated data so a row copied onto another operator fails to open.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE = "operator_templates.key"
_AAD_PREFIX = b"rekam-operator-template-v1\x00"


class VaultError(Exception):
    """The template key file is unusable, or a sealed template does not open."""


def load_or_create_key(keys_dir: Path) -> bytes:
    """The 32-byte template key from ``keys_dir``, created (0600) when missing."""
    path = keys_dir / KEY_FILE
    if not path.exists():
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: read theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
                f.flush()
                os.fsync(f.fileno())
    if path.stat().st_mode & 0o077:
        raise VaultError(f"{path}: readable by others; run chmod 600 {path}")
    key = path.read_bytes()
    if len(key) != 32:
        raise VaultError(f"{path}: expected 32 bytes, found {len(key)}")
    return key


class TemplateVault:
    """Seal and open operator templates."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def from_keys_dir(cls, keys_dir: Path) -> TemplateVault:
        """A vault over the station's template key."""
        return cls(load_or_create_key(keys_dir))

    def seal(self, staff_id: str, template: bytes) -> tuple[bytes, bytes]:
        """(nonce, ciphertext) of ``template`` bound to ``staff_id``."""
        nonce = secrets.token_bytes(12)
        return nonce, self._aead.encrypt(nonce, template, _AAD_PREFIX + staff_id.encode())

    def open(self, staff_id: str, nonce: bytes, sealed: bytes) -> bytes:
        """The template, or VaultError when the key, the staff id or the bytes do not match."""
        try:
            return self._aead.decrypt(nonce, sealed, _AAD_PREFIX + staff_id.encode())
        except (InvalidTag, ValueError) as exc:
            raise VaultError(f"template of {staff_id} does not open (wrong key or altered)") from exc
