"""Station and head-office keys (docs/security.md, "Key handling").

Station side, in ``<state_dir>/keys/`` (directory 0700)::

    station_ed25519.key       PKCS#8 PEM, mode 0600: signs every packet (never leaves the station)
    station_ed25519.pub       SubjectPublicKeyInfo PEM: registered at head office
    headoffice_x25519.pub     packets are encrypted to this key; the station cannot decrypt them
    headoffice_ed25519.pub    verifies acks, print orders and commands (agent.envelope)
    headoffice_bundle.json    the bundle these two came from, kept for audit and rotation
    print_orders.key          32 random bytes, mode 0600: encrypts pending print orders at rest,
                              used only when no systemd credential ``rekam-order-key`` is given

Head-office side (demo and tests; production keeps these in an HSM), in any directory::

    headoffice_x25519.key, headoffice_ed25519.key   (0600)
    headoffice_bundle.json                          the public bundle stations install

A key id ("kid") is the first 16 hex digits of SHA-256 over the raw 32-byte public key; a
fingerprint is the whole SHA-256, in groups of four hex digits, for reading aloud over the phone.

Bundle rotation: a bundle that replaces installed head-office keys must carry ``endorsement``,
an Ed25519 signature by the currently trusted head-office signing key over the bundle's canonical
bytes (without the endorsement). The first install (no keys yet) is trust-on-first-use by a
technician; ``force=True`` overrides for re-provisioning.

Exception tree::

    KeyStoreError
     +-- KeyExistsError       refusing to overwrite a key file
     +-- KeyMissingError      a key file is absent (run `rekam keys init` / `trust-headoffice`)
     +-- KeyPermissionError   a private key file is readable by group or others
     +-- BundleError          a head-office bundle is malformed or not endorsed
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from agent.envelope import EnvelopeError, canonical_json, strict_json_loads, utc_iso

log = logging.getLogger(__name__)

STATION_KEY = "station_ed25519.key"
STATION_PUB = "station_ed25519.pub"
HO_ENC_PUB = "headoffice_x25519.pub"
HO_SIG_PUB = "headoffice_ed25519.pub"
HO_ENC_KEY = "headoffice_x25519.key"
HO_SIG_KEY = "headoffice_ed25519.key"
BUNDLE = "headoffice_bundle.json"
BUNDLE_TYPE = "rekam-headoffice-keys"
BUNDLE_ENDORSE_DOMAIN = b"rekam-keybundle-v1\0"
ORDER_KEY = "print_orders.key"
ORDER_KEY_CREDENTIAL = "rekam-order-key"
ORDER_KEY_BYTES = 32
# Where install.sh puts the sealed credential; systemd finds it there by name.
ORDER_KEY_CREDSTORE = Path("/etc/credstore.encrypted") / ORDER_KEY_CREDENTIAL

PublicKey = Ed25519PublicKey | X25519PublicKey


class KeyStoreError(Exception):
    """A key file cannot be used."""


class KeyExistsError(KeyStoreError):
    """Refusing to overwrite an existing key file."""


class KeyMissingError(KeyStoreError):
    """A key file is absent."""


class KeyPermissionError(KeyStoreError):
    """A private key file is readable or writable by group or others."""


class BundleError(KeyStoreError):
    """A head-office key bundle is malformed or not endorsed by the trusted key."""


# --------------------------------------------------------------------------- ids


def raw_public(key: PublicKey) -> bytes:
    """The raw 32-byte public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: PublicKey) -> str:
    """16 hex digits of SHA-256 over the raw public key."""
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def fingerprint(key: PublicKey) -> str:
    """Full SHA-256 of the raw public key in groups of four hex digits."""
    h = hashlib.sha256(raw_public(key)).hexdigest()
    return ":".join(h[i:i + 4] for i in range(0, len(h), 4))


# --------------------------------------------------------------------------- file helpers


def keys_dir(state_dir: Path) -> Path:
    """``<state_dir>/keys``, created 0700."""
    d = state_dir / "keys"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def _write_new(path: Path, data: bytes, mode: int, *, overwrite: bool = False) -> None:
    """Write atomically via a temp file; without ``overwrite`` an existing file is never replaced."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow what we asked for
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails when the target exists: no window where a second init could clobber.
            os.link(tmp, path)
            os.unlink(tmp)
    except FileExistsError:
        os.unlink(tmp)
        raise KeyExistsError(f"{path}: already exists; refusing to overwrite") from None
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _read(path: Path, *, private: bool) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError:
        hint = ("rekam keys trust-headoffice FILE" if path.name.startswith("headoffice")
                else "rekam keys init")
        raise KeyMissingError(f"{path}: missing (run: {hint})") from None
    if private and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyPermissionError(
            f"{path}: private key is accessible by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}")
    return path.read_bytes()


def _pem_private(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_public(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_private(path: Path) -> Any:
    try:
        return serialization.load_pem_private_key(_read(path, private=True), password=None)
    except ValueError:
        raise KeyStoreError(f"{path}: not a valid PEM private key") from None


def _load_public(path: Path) -> Any:
    try:
        return serialization.load_pem_public_key(_read(path, private=False))
    except ValueError:
        raise KeyStoreError(f"{path}: not a valid PEM public key") from None


# --------------------------------------------------------------------------- station


def init_station_keys(kdir: Path) -> Ed25519PublicKey:
    """Generate the station's Ed25519 key pair; refuses if a key already exists."""
    kdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (kdir / STATION_KEY).exists():
        raise KeyExistsError(f"{kdir / STATION_KEY}: already exists; refusing to overwrite")
    priv = Ed25519PrivateKey.generate()
    _write_new(kdir / STATION_KEY, _pem_private(priv), 0o600)
    pub = priv.public_key()
    _write_new(kdir / STATION_PUB, _pem_public(pub), 0o644, overwrite=True)
    log.info("station signing key created, kid %s", key_id(pub))
    return pub


def load_station_signing_key(kdir: Path) -> Ed25519PrivateKey:
    """The station's private signing key (mode must be 0600 or stricter)."""
    key = _load_private(kdir / STATION_KEY)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyStoreError(f"{kdir / STATION_KEY}: not an Ed25519 key")
    return key


def load_station_public_key(kdir: Path) -> Ed25519PublicKey:
    """The station's public key (from the .pub file, else derived from the private key)."""
    if (kdir / STATION_PUB).exists():
        key = _load_public(kdir / STATION_PUB)
        if not isinstance(key, Ed25519PublicKey):
            raise KeyStoreError(f"{kdir / STATION_PUB}: not an Ed25519 key")
        return key
    return load_station_signing_key(kdir).public_key()


# --------------------------------------------------------------------------- print-order key


@dataclass(frozen=True)
class OrderKey:
    """The symmetric key that encrypts pending print orders at rest (docs/security.md)."""

    key: bytes = field(repr=False)
    source: str  # "credential" (systemd, TPM-sealed where there is one) or "file"

    @property
    def kid(self) -> str:
        """16 hex digits naming the key (a hash of it, not the key): tells a wrong key from tampering."""
        return hashlib.sha256(b"rekam-order-key-id\0" + self.key).hexdigest()[:16]


def _order_key_bytes(data: bytes, where: Path) -> bytes:
    if len(data) != ORDER_KEY_BYTES:
        raise KeyStoreError(f"{where}: print-order key must be {ORDER_KEY_BYTES} bytes, "
                            f"found {len(data)}")
    return data


def load_or_create_order_key(kdir: Path, *, credentials_dir: str | None = None,
                             credstore: Path = ORDER_KEY_CREDSTORE) -> OrderKey:
    """The print-order key: the systemd credential if given, else ``kdir/print_orders.key``.

    The key file is created (0600) on first use and never overwritten. ``credentials_dir``
    defaults to ``$CREDENTIALS_DIRECTORY`` (set by systemd for ``LoadCredentialEncrypted=``).
    When the station has a sealed credential (``credstore``) but this process did not get it
    (started by hand, not by systemd), no key file is made: orders are sealed under the
    credential and a second key would make them unreadable.
    """
    cred_dir = credentials_dir if credentials_dir is not None else os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        cred = Path(cred_dir) / ORDER_KEY_CREDENTIAL
        if cred.exists():
            # systemd makes the credential readable by the service only; no mode check to fail on.
            return OrderKey(_order_key_bytes(_read(cred, private=False), cred), "credential")
    path = kdir / ORDER_KEY
    if not path.exists() and credstore.exists():
        raise KeyStoreError(f"the print-order key is the systemd credential {credstore}, which this "
                            "process did not receive; run the agent as the service: systemctl start rekam")
    if not path.exists():
        kdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            _write_new(path, os.urandom(ORDER_KEY_BYTES), 0o600)
            log.info("print-order key created in %s", kdir)
        except KeyExistsError:
            pass  # another process created it between the check and the link: use that one
    return OrderKey(_order_key_bytes(_read(path, private=True), path), "file")


# --------------------------------------------------------------------------- head office


@dataclass(frozen=True)
class HeadOfficePublicKeys:
    """Head office's public keys as a station trusts them."""

    encryption: X25519PublicKey
    signing: Ed25519PublicKey

    @property
    def encryption_kid(self) -> str:
        """Key id of the encryption key."""
        return key_id(self.encryption)

    @property
    def signing_kid(self) -> str:
        """Key id of the signing key."""
        return key_id(self.signing)

    def verify_keys(self) -> dict[str, Ed25519PublicKey]:
        """kid -> key mapping for agent.envelope.open_envelope."""
        return {self.signing_kid: self.signing}


@dataclass(frozen=True)
class HeadOfficeKeys:
    """Head office's private keys (demo/tests; production keeps them in an HSM)."""

    encryption: X25519PrivateKey
    signing: Ed25519PrivateKey

    @property
    def public(self) -> HeadOfficePublicKeys:
        """The public half."""
        return HeadOfficePublicKeys(self.encryption.public_key(), self.signing.public_key())


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def make_bundle(public: HeadOfficePublicKeys, *, issued_at: datetime,
                endorse_with: Ed25519PrivateKey | None = None) -> bytes:
    """The public bundle JSON; ``endorse_with`` (the previous signing key) signs a rotation."""
    doc: dict[str, Any] = {
        "v": 1,
        "type": BUNDLE_TYPE,
        "issued_at": utc_iso(issued_at),
        "encryption": {"alg": "X25519", "kid": public.encryption_kid,
                       "public_key": _b64(raw_public(public.encryption))},
        "signing": {"alg": "Ed25519", "kid": public.signing_kid,
                    "public_key": _b64(raw_public(public.signing))},
    }
    if endorse_with is not None:
        sig = endorse_with.sign(BUNDLE_ENDORSE_DOMAIN + canonical_json(doc))
        doc["endorsement"] = {"kid": key_id(endorse_with.public_key()), "sig": _b64(sig)}
    return canonical_json(doc) + b"\n"


@dataclass(frozen=True)
class Bundle:
    """A parsed head-office bundle."""

    keys: HeadOfficePublicKeys
    issued_at: str
    endorsement_kid: str | None
    endorsement_sig: bytes | None
    signed_bytes: bytes  # what the endorsement covers


def parse_bundle(data: bytes) -> Bundle:
    """Parse and check a bundle's shape and key ids (not its endorsement)."""
    try:
        doc = strict_json_loads(data.strip(), max_depth=3)
    except EnvelopeError as exc:
        raise BundleError(f"bundle: {exc}") from None
    if doc.get("v") != 1 or doc.get("type") != BUNDLE_TYPE:
        raise BundleError("bundle: not a rekam head-office key bundle (v/type)")

    def part(name: str, alg: str) -> bytes:
        p = doc.get(name)
        if not isinstance(p, dict) or p.get("alg") != alg or not isinstance(p.get("public_key"), str):
            raise BundleError(f"bundle: {name} must be an {alg} key")
        try:
            raw = base64.b64decode(p["public_key"], validate=True)
        except binascii.Error:
            raise BundleError(f"bundle: {name}.public_key is not base64") from None
        if len(raw) != 32:
            raise BundleError(f"bundle: {name}.public_key must be 32 bytes")
        if hashlib.sha256(raw).hexdigest()[:16] != p.get("kid"):
            raise BundleError(f"bundle: {name}.kid does not match its key")
        return raw

    keys = HeadOfficePublicKeys(X25519PublicKey.from_public_bytes(part("encryption", "X25519")),
                                Ed25519PublicKey.from_public_bytes(part("signing", "Ed25519")))
    issued = doc.get("issued_at")
    if not isinstance(issued, str):
        raise BundleError("bundle: issued_at missing")
    e = doc.pop("endorsement", None)
    kid: str | None = None
    sig: bytes | None = None
    if e is not None:
        if not isinstance(e, dict) or not isinstance(e.get("kid"), str) or not isinstance(e.get("sig"), str):
            raise BundleError("bundle: endorsement must have kid and sig")
        try:
            sig = base64.b64decode(e["sig"], validate=True)
        except binascii.Error:
            raise BundleError("bundle: endorsement.sig is not base64") from None
        kid = e["kid"]
    return Bundle(keys, issued, kid, sig, canonical_json(doc))


def generate_headoffice_keys(directory: Path, *, now: datetime,
                             previous: HeadOfficeKeys | None = None) -> HeadOfficeKeys:
    """Create a head-office key set and its public bundle in ``directory`` (refuses to overwrite).

    With ``previous`` the bundle is endorsed by the previous signing key (rotation); the new set
    must then go to a fresh directory, because the old one keeps the previous keys.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in (HO_ENC_KEY, HO_SIG_KEY, BUNDLE):
        if (directory / name).exists():
            raise KeyExistsError(f"{directory / name}: already exists; refusing to overwrite")
    keys = HeadOfficeKeys(X25519PrivateKey.generate(), Ed25519PrivateKey.generate())
    _write_new(directory / HO_ENC_KEY, _pem_private(keys.encryption), 0o600)
    _write_new(directory / HO_SIG_KEY, _pem_private(keys.signing), 0o600)
    bundle = make_bundle(keys.public, issued_at=now,
                         endorse_with=previous.signing if previous else None)
    _write_new(directory / BUNDLE, bundle, 0o644)
    return keys


def load_headoffice_keys(directory: Path) -> HeadOfficeKeys:
    """Head office's private keys from ``directory``."""
    enc = _load_private(directory / HO_ENC_KEY)
    sig = _load_private(directory / HO_SIG_KEY)
    if not isinstance(enc, X25519PrivateKey) or not isinstance(sig, Ed25519PrivateKey):
        raise KeyStoreError(f"{directory}: head-office keys have the wrong types")
    return HeadOfficeKeys(enc, sig)


def load_headoffice_public(kdir: Path) -> HeadOfficePublicKeys:
    """The head-office public keys this station trusts."""
    enc = _load_public(kdir / HO_ENC_PUB)
    sig = _load_public(kdir / HO_SIG_PUB)
    if not isinstance(enc, X25519PublicKey) or not isinstance(sig, Ed25519PublicKey):
        raise KeyStoreError(f"{kdir}: head-office public keys have the wrong types")
    return HeadOfficePublicKeys(enc, sig)


def trust_headoffice(kdir: Path, bundle_bytes: bytes, *, force: bool = False) -> HeadOfficePublicKeys:
    """Install head office's public keys from a bundle.

    First install: accepted. Replacing installed keys: the bundle must be endorsed by the
    currently trusted signing key, unless ``force`` (a technician re-provisioning the station).
    Installing the same keys again is a no-op.
    """
    bundle = parse_bundle(bundle_bytes)
    kdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    current: HeadOfficePublicKeys | None = None
    if (kdir / HO_SIG_PUB).exists():
        current = load_headoffice_public(kdir)
    if current is not None and not force:
        same = (raw_public(current.signing) == raw_public(bundle.keys.signing)
                and raw_public(current.encryption) == raw_public(bundle.keys.encryption))
        if same:
            return current
        if bundle.endorsement_sig is None:
            raise BundleError("bundle would replace the trusted head-office keys but is not "
                              "endorsed by the current signing key (use --force to re-provision)")
        if bundle.endorsement_kid != current.signing_kid:
            raise BundleError("bundle is endorsed by a key this station does not trust")
        try:
            current.signing.verify(bundle.endorsement_sig,
                                   BUNDLE_ENDORSE_DOMAIN + bundle.signed_bytes)
        except InvalidSignature:
            raise BundleError("bundle endorsement signature does not verify") from None
    # Encryption key first: a crash between the writes leaves the old signing key trusted, so a
    # re-run of the same bundle still verifies.
    _write_new(kdir / HO_ENC_PUB, _pem_public(bundle.keys.encryption), 0o644, overwrite=True)
    _write_new(kdir / HO_SIG_PUB, _pem_public(bundle.keys.signing), 0o644, overwrite=True)
    _write_new(kdir / BUNDLE, bundle_bytes, 0o644, overwrite=True)
    log.info("head-office keys installed: encryption kid %s, signing kid %s",
             bundle.keys.encryption_kid, bundle.keys.signing_kid)
    return bundle.keys


# --------------------------------------------------------------------------- diagnostics


@dataclass(frozen=True)
class KeyStatus:
    """What a diagnostics check needs to know about the station's keys (no key material)."""

    station_kid: str | None
    headoffice_encryption_kid: str | None
    headoffice_signing_kid: str | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the station can sign packets and encrypt them for head office."""
        return not self.problems


def key_status(kdir: Path) -> KeyStatus:
    """Check the key files without raising: each problem is one line with its fix."""
    problems: list[str] = []
    station: str | None = None
    enc: str | None = None
    sig: str | None = None
    try:
        station = key_id(load_station_signing_key(kdir).public_key())
    except KeyStoreError as exc:
        problems.append(str(exc))
    try:
        ho = load_headoffice_public(kdir)
        enc, sig = ho.encryption_kid, ho.signing_kid
    except KeyStoreError as exc:
        problems.append(str(exc))
    return KeyStatus(station, enc, sig, tuple(problems))
