"""The PIN fallback: a file of salted scrypt hashes, one operator a line.

For a technician when the scanner itself is broken (config ``[operators] pin_roles``). The file
(``[operators] pin_file``, default ``STATE_DIR/operators.pins``) is mode 0600 and rewritten
atomically (temporary file, fsync, rename). A line is::

    staff_id:scrypt:N:r:p:<salt base64>:<hash base64>

scrypt with N=2**14, r=8, p=1 (about 16 MiB and tens of milliseconds a check on a Pi), a
16-byte random salt per PIN, and a constant-time comparison. The PIN itself is never stored or
logged. Lock-out after repeated failures lives in :mod:`agent.operators.signin`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
from pathlib import Path

from agent.operators.errors import BadOperatorInput
from agent.operators.registry import check_staff_id

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
PIN_RE = re.compile(r"[0-9]{6,12}")
_LINE_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31}):scrypt:(\d+):(\d+):(\d+):([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)")
_MAX_N = 2**20  # a hand-edited line must not make one check take minutes or gigabytes


class PinFileError(Exception):
    """The PIN file is unreadable, too open, or has a malformed line (the message names it)."""


def _hash(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024**2, dklen=32)


class PinFile:
    """Read, set, remove and check PINs in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, str]:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return {}
        if mode & 0o077:
            raise PinFileError(f"{self.path}: readable by others; run chmod 600 {self.path}")
        lines: dict[str, str] = {}
        for number, line in enumerate(self.path.read_text(encoding="ascii").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            m = _LINE_RE.fullmatch(line.strip())
            n = int(m.group(2)) if m else 0
            if (m is None or not 2 <= n <= _MAX_N or n & (n - 1)
                    or not 1 <= int(m.group(3)) <= 32 or not 1 <= int(m.group(4)) <= 16):
                raise PinFileError(f"{self.path}:{number}: malformed line (expected staff_id:scrypt:N:r:p:salt:hash)")
            lines[m.group(1)] = line.strip()
        return lines

    def _write(self, lines: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write("# rekam operator PINs (salted scrypt hashes); edit with `rekam operators pin`\n")
            for staff_id in sorted(lines):
                f.write(lines[staff_id] + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def set(self, staff_id: str, pin: str) -> None:
        """Store a new salted hash of ``pin`` for ``staff_id`` (replacing any old one)."""
        check_staff_id(staff_id)
        if not isinstance(pin, str) or not PIN_RE.fullmatch(pin):
            raise BadOperatorInput("PIN harus 6-12 angka.", "The PIN must be 6-12 digits.")
        salt = secrets.token_bytes(16)
        digest = _hash(pin, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        line = (f"{staff_id}:scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}:"
                f"{base64.b64encode(salt).decode()}:{base64.b64encode(digest).decode()}")
        with self._lock:
            lines = self._read()
            lines[staff_id] = line
            self._write(lines)

    def remove(self, staff_id: str) -> bool:
        """Drop the PIN of ``staff_id``; True when there was one."""
        with self._lock:
            lines = self._read()
            if lines.pop(staff_id, None) is None:
                return False
            self._write(lines)
            return True

    def has(self, staff_id: str) -> bool:
        """True when ``staff_id`` has a PIN."""
        with self._lock:
            return staff_id in self._read()

    def verify(self, staff_id: str, pin: str) -> bool:
        """True when ``pin`` is the PIN of ``staff_id``.

        A staff id without a PIN still costs one scrypt run, so timing does not tell which
        staff ids have one.
        """
        with self._lock:
            line = self._read().get(staff_id)
        if not isinstance(pin, str) or len(pin) > 64:
            return False
        if line is None:
            _hash(pin, b"\0" * 16, SCRYPT_N, SCRYPT_R, SCRYPT_P)
            return False
        m = _LINE_RE.fullmatch(line)
        if m is None:  # pragma: no cover - _read only keeps matching lines
            return False
        n, r, p = int(m.group(2)), int(m.group(3)), int(m.group(4))
        salt, want = base64.b64decode(m.group(5)), base64.b64decode(m.group(6))
        return hmac.compare_digest(_hash(pin, salt, n, r, p), want)
