"""Station and head-office key files, bundles with rotation, and the `rekam keys` command."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import keys

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_station_init_creates_0600_and_refuses_overwrite(tmp_path: Path) -> None:
    kdir = tmp_path / "keys"
    pub = keys.init_station_keys(kdir)
    assert mode(kdir / keys.STATION_KEY) == 0o600
    assert mode(kdir) == 0o700
    before = (kdir / keys.STATION_KEY).read_bytes()
    with pytest.raises(keys.KeyExistsError):
        keys.init_station_keys(kdir)
    assert (kdir / keys.STATION_KEY).read_bytes() == before
    priv = keys.load_station_signing_key(kdir)
    assert keys.raw_public(priv.public_key()) == keys.raw_public(pub)
    assert keys.raw_public(keys.load_station_public_key(kdir)) == keys.raw_public(pub)
    assert not [p for p in kdir.iterdir() if p.name.endswith(".tmp")]


def test_key_id_and_fingerprint_are_sha256_of_raw_key(tmp_path: Path) -> None:
    pub = keys.init_station_keys(tmp_path)
    digest = hashlib.sha256(keys.raw_public(pub)).hexdigest()
    assert keys.key_id(pub) == digest[:16]
    assert keys.fingerprint(pub).replace(":", "") == digest


def test_loose_private_key_mode_is_refused(tmp_path: Path) -> None:
    keys.init_station_keys(tmp_path)
    os.chmod(tmp_path / keys.STATION_KEY, 0o644)
    with pytest.raises(keys.KeyPermissionError, match="chmod 600"):
        keys.load_station_signing_key(tmp_path)


def test_missing_and_garbage_keys(tmp_path: Path) -> None:
    with pytest.raises(keys.KeyMissingError):
        keys.load_station_signing_key(tmp_path)
    (tmp_path / keys.STATION_KEY).write_bytes(b"not pem")
    os.chmod(tmp_path / keys.STATION_KEY, 0o600)
    with pytest.raises(keys.KeyStoreError, match="not a valid PEM"):
        keys.load_station_signing_key(tmp_path)


def test_bundle_layout_and_first_trust(tmp_path: Path) -> None:
    ho = keys.generate_headoffice_keys(tmp_path / "ho", now=NOW)
    for name in (keys.HO_ENC_KEY, keys.HO_SIG_KEY):
        assert mode(tmp_path / "ho" / name) == 0o600
    doc = json.loads((tmp_path / "ho" / keys.BUNDLE).read_bytes())
    assert doc["type"] == "rekam-headoffice-keys" and doc["v"] == 1
    raw_sig = base64.b64decode(doc["signing"]["public_key"])
    assert raw_sig == keys.raw_public(ho.signing.public_key())
    assert doc["signing"]["kid"] == hashlib.sha256(raw_sig).hexdigest()[:16]
    assert "endorsement" not in doc
    station = tmp_path / "station"
    trusted = keys.trust_headoffice(station, (tmp_path / "ho" / keys.BUNDLE).read_bytes())
    assert trusted.signing_kid == doc["signing"]["kid"]
    loaded = keys.load_headoffice_public(station)
    assert keys.raw_public(loaded.encryption) == keys.raw_public(ho.encryption.public_key())
    assert set(loaded.verify_keys()) == {doc["signing"]["kid"]}
    # Installing the same bundle again is a no-op.
    keys.trust_headoffice(station, (tmp_path / "ho" / keys.BUNDLE).read_bytes())
    # The private half loads back.
    again = keys.load_headoffice_keys(tmp_path / "ho")
    assert keys.raw_public(again.signing.public_key()) == raw_sig
    with pytest.raises(keys.KeyExistsError):
        keys.generate_headoffice_keys(tmp_path / "ho", now=NOW)


def test_rotation_needs_endorsement_by_trusted_key(tmp_path: Path) -> None:
    old = keys.generate_headoffice_keys(tmp_path / "old", now=NOW)
    station = tmp_path / "station"
    keys.trust_headoffice(station, (tmp_path / "old" / keys.BUNDLE).read_bytes())

    rogue = keys.generate_headoffice_keys(tmp_path / "rogue", now=NOW)
    with pytest.raises(keys.BundleError, match="not endorsed"):
        keys.trust_headoffice(station, (tmp_path / "rogue" / keys.BUNDLE).read_bytes())
    # Endorsed, but by a key the station does not trust.
    keys.generate_headoffice_keys(tmp_path / "rogue2", now=NOW, previous=rogue)
    with pytest.raises(keys.BundleError, match="does not trust"):
        keys.trust_headoffice(station, (tmp_path / "rogue2" / keys.BUNDLE).read_bytes())

    new = keys.generate_headoffice_keys(tmp_path / "new", now=NOW, previous=old)
    endorsed = (tmp_path / "new" / keys.BUNDLE).read_bytes()
    # A tampered endorsed bundle (swap the encryption key) fails the endorsement.
    doc = json.loads(endorsed)
    rogue_enc = keys.raw_public(rogue.encryption.public_key())
    doc["encryption"] = {"alg": "X25519", "kid": hashlib.sha256(rogue_enc).hexdigest()[:16],
                         "public_key": base64.b64encode(rogue_enc).decode()}
    with pytest.raises(keys.BundleError, match="does not verify"):
        keys.trust_headoffice(station, json.dumps(doc).encode())
    assert keys.load_headoffice_public(station).signing_kid == old.public.signing_kid

    keys.trust_headoffice(station, endorsed)
    assert keys.load_headoffice_public(station).signing_kid == new.public.signing_kid
    # Force re-provisions without endorsement.
    keys.trust_headoffice(station, (tmp_path / "rogue" / keys.BUNDLE).read_bytes(), force=True)
    assert keys.load_headoffice_public(station).signing_kid == rogue.public.signing_kid


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(type="other"),
    lambda d: d.update(v=2),
    lambda d: d["signing"].update(kid="0" * 16),
    lambda d: d["signing"].update(public_key="AAAA"),
    lambda d: d["encryption"].update(alg="RSA"),
    lambda d: d["signing"].update(public_key="!!"),
    lambda d: d.pop("issued_at"),
    lambda d: d.update(endorsement={"kid": 1}),
])
def test_malformed_bundles(tmp_path: Path, mutate: object) -> None:
    keys.generate_headoffice_keys(tmp_path / "ho", now=NOW)
    doc = json.loads((tmp_path / "ho" / keys.BUNDLE).read_bytes())
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(keys.BundleError):
        keys.trust_headoffice(tmp_path / "st", json.dumps(doc).encode())
    with pytest.raises(keys.BundleError):
        keys.parse_bundle(b"{not json")


# --------------------------------------------------------------------------- the CLI


def rekam(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "agent.toml"
    if not cfg.exists():
        cfg.write_text(f'[station]\nid = "st-1"\nstate_dir = "{tmp_path / "state"}"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("REKAM_CONFIG", "STATE_DIRECTORY")}
    return subprocess.run([sys.executable, "-m", "agent", "keys", *args, "--config", str(cfg)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


def test_cli_init_show_trust(tmp_path: Path) -> None:
    out = rekam(tmp_path, "init")
    assert out.returncode == 0, out.stderr
    key_file = tmp_path / "state" / "keys" / keys.STATION_KEY
    assert mode(key_file) == 0o600
    pub = keys.load_station_public_key(key_file.parent)
    assert isinstance(pub, Ed25519PublicKey)
    assert keys.fingerprint(pub) in out.stdout

    again = rekam(tmp_path, "init")
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "refusing to overwrite" in again.stderr

    show = rekam(tmp_path, "show")
    assert show.returncode == 0 and keys.key_id(pub) in show.stdout
    assert "not trusted yet" in show.stdout

    ho_dir = tmp_path / "ho"
    made = subprocess.run([sys.executable, "-m", "agent", "keys", "init", "--headoffice", str(ho_dir)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert made.returncode == 0, made.stderr
    trust = rekam(tmp_path, "trust-headoffice", str(ho_dir / keys.BUNDLE))
    assert trust.returncode == 0, trust.stderr
    kid = keys.load_headoffice_public(key_file.parent).signing_kid
    assert kid in trust.stdout and kid in rekam(tmp_path, "show").stdout

    rogue = tmp_path / "rogue"
    subprocess.run([sys.executable, "-m", "agent", "keys", "init", "--headoffice", str(rogue)],
                   capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
    refused = rekam(tmp_path, "trust-headoffice", str(rogue / keys.BUNDLE))
    assert refused.returncode == 2 and "not endorsed" in refused.stderr
    missing = rekam(tmp_path, "trust-headoffice", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    # Private keys never appear in any output.
    assert "PRIVATE" not in out.stdout + show.stdout + trust.stdout


def test_key_status_for_diagnostics(tmp_path: Path) -> None:
    st = keys.key_status(tmp_path)
    assert not st.ok and len(st.problems) == 2
    assert "rekam keys init" in st.problems[0]
    assert "rekam keys trust-headoffice" in st.problems[1]
    pub = keys.init_station_keys(tmp_path)
    ho = keys.generate_headoffice_keys(tmp_path / "ho", now=NOW)
    keys.trust_headoffice(tmp_path, (tmp_path / "ho" / keys.BUNDLE).read_bytes())
    st = keys.key_status(tmp_path)
    assert st.ok and st.station_kid == keys.key_id(pub)
    assert st.headoffice_signing_kid == ho.public.signing_kid
    os.chmod(tmp_path / keys.STATION_KEY, 0o640)
    st = keys.key_status(tmp_path)
    assert not st.ok and "chmod 600" in st.problems[0]


# --------------------------------------------------------------------------- print-order key


def test_order_key_is_created_0600_once_and_never_overwritten(tmp_path: Path) -> None:
    kdir = tmp_path / "keys"
    first = keys.load_or_create_order_key(kdir, credentials_dir="")
    path = kdir / keys.ORDER_KEY
    assert first.source == "file" and len(first.key) == 32
    assert mode(path) == 0o600 and mode(kdir) == 0o700
    again = keys.load_or_create_order_key(kdir, credentials_dir="")
    assert again.key == first.key and again.kid == first.kid
    assert first.key.hex() not in repr(first)  # the key never shows in logs or tracebacks
    # A file already there (a restored backup) is used as it is, never replaced.
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    (other / keys.ORDER_KEY).write_bytes(b"k" * 32)
    os.chmod(other / keys.ORDER_KEY, 0o600)
    assert keys.load_or_create_order_key(other, credentials_dir="").key == b"k" * 32
    assert (other / keys.ORDER_KEY).read_bytes() == b"k" * 32


def test_order_key_bad_files_are_refused_with_the_fix(tmp_path: Path) -> None:
    kdir = tmp_path / "keys"
    keys.load_or_create_order_key(kdir, credentials_dir="")
    path = kdir / keys.ORDER_KEY
    before = path.read_bytes()
    path.chmod(0o640)
    with pytest.raises(keys.KeyPermissionError, match="chmod 600"):
        keys.load_or_create_order_key(kdir, credentials_dir="")
    assert path.read_bytes() == before  # refused, not replaced
    path.chmod(0o600)
    path.write_bytes(b"x" * 31)
    with pytest.raises(keys.KeyStoreError, match="32 bytes"):
        keys.load_or_create_order_key(kdir, credentials_dir="")
    assert path.read_bytes() == b"x" * 31


def test_order_key_systemd_credential_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kdir = tmp_path / "keys"
    file_key = keys.load_or_create_order_key(kdir, credentials_dir="")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / keys.ORDER_KEY_CREDENTIAL).write_bytes(b"c" * 32)
    got = keys.load_or_create_order_key(kdir, credentials_dir=str(creds))
    assert got.source == "credential" and got.key == b"c" * 32 and got.kid != file_key.kid
    # As the daemon sees it under systemd: $CREDENTIALS_DIRECTORY.
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert keys.load_or_create_order_key(kdir).source == "credential"
    # A credential directory without this credential: the key file.
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "empty"))
    assert keys.load_or_create_order_key(kdir).key == file_key.key
    (creds / keys.ORDER_KEY_CREDENTIAL).write_bytes(b"c" * 16)
    with pytest.raises(keys.KeyStoreError, match="32 bytes"):
        keys.load_or_create_order_key(kdir, credentials_dir=str(creds))


def test_no_key_file_beside_a_sealed_credential(tmp_path: Path) -> None:
    # The agent started by hand on a station whose key is a systemd credential: no second key.
    store = tmp_path / "credstore.encrypted" / keys.ORDER_KEY_CREDENTIAL
    store.parent.mkdir()
    store.write_bytes(b"sealed blob")
    kdir = tmp_path / "keys"
    with pytest.raises(keys.KeyStoreError, match="systemctl start rekam"):
        keys.load_or_create_order_key(kdir, credentials_dir="", credstore=store)
    assert not (kdir / keys.ORDER_KEY).exists()
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / keys.ORDER_KEY_CREDENTIAL).write_bytes(b"c" * 32)
    assert keys.load_or_create_order_key(kdir, credentials_dir=str(creds), credstore=store).source == "credential"
