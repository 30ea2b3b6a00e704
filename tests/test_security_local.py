"""A running station, seen as an attacker on the same machine or LAN, or with its disk in hand.

One daemon with emulated devices, the station API and the diagnostics page enabled, one
applicant enrolled. Then:

- every TCP socket the daemon listens on is bound to 127.0.0.1 (read from /proc, not from the
  config), and both local interfaces refuse requests without the token;
- file modes: state directory and keys directory 0700, private key and API token 0600, nothing
  in the state directory writable by group or others;
- with the whole state directory (every private key in it), the enrollment packet cannot be
  decrypted, even by a reader that skips the key-id check; no head-office private key is there;
- an export folder changed anywhere, even with its manifest rewritten to match, is refused by
  head office's import.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from agent.config import parse_config
from agent.export import ImportFolderError, export_backlog, import_export, packet_verifier
from agent.journal import Journal
from agent.keys import HeadOfficeKeys, generate_headoffice_keys, load_station_public_key
from agent.packet import PacketError, read_packet, verify_packet
from agent.testbed.mosquitto import free_port
from agent.testbed.station import SimulatedStation
from agent.workflow.synthetic import applicant

STATION = "st-local-01"


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedStation]:
    work = tmp_path_factory.mktemp("station")
    ho = generate_headoffice_keys(work / "ho-keys", now=datetime.now(UTC))
    st = SimulatedStation(work, station_id=STATION, printer=False,
                          extra={"diagnostics": {"enabled": True, "port": free_port()}})
    st.prepare(headoffice_bundle=work / "ho-keys" / "headoffice_bundle.json")
    st.enroll_operator()
    st.ho_keys = ho  # type: ignore[attr-defined]
    st.start()
    try:
        st.wait_devices_ready()
        st.sign_in()
        result = st.client().enroll(applicant(11))
        assert result["saved"] is True
        st.packet_id = result["packet_id"]  # type: ignore[attr-defined]
        yield st
    finally:
        st.stop()


def _listening(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that process ``pid`` holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, size in (("tcp", 4), ("tcp6", 16)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state != "0A" or inode not in inodes:  # 0A = TCP_LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            raw = bytes.fromhex(hex_addr)
            if size == 4:
                addr = ".".join(str(b) for b in reversed(raw))
            else:  # IPv6 in /proc is four little-endian 32-bit words
                words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                addr = ":".join(b"".join(words)[i:i + 2].hex() for i in range(0, 16, 2))
            found.append((addr, int(hex_port, 16)))
    return found


@pytest.fixture(scope="module")
def diag(station: SimulatedStation) -> Iterator[tuple[int, int]]:
    """(port, pid) of the diagnostics page: the daemon's, or, while the daemon does not serve it
    yet (agent/station.py FACTORIES has no diagnostics part), the page server started here."""
    assert station.proc is not None
    port = station.extra["diagnostics"]["port"]
    if port in {p for _a, p in _listening(station.proc.pid)}:
        yield port, station.proc.pid
        return
    from agent.config import load_config
    from agent.diagweb.server import DiagnosticsServer, SelfTests

    server = DiagnosticsServer(load_config(station.config_path), token=station.token(),
                               report=lambda: {"checks": []}, selftests=SelfTests(lambda n: {}, list, None),
                               port=free_port())
    server.start()
    try:
        yield server.port, os.getpid()
    finally:
        server.stop()


def test_daemon_listens_on_loopback_only(station: SimulatedStation, diag: tuple[int, int]) -> None:
    assert station.proc is not None
    sockets = _listening(station.proc.pid)
    assert station.api_port in {port for _a, port in sockets}
    assert {addr for addr, _p in sockets} == {"127.0.0.1"}, sockets
    port, pid = diag
    assert ("127.0.0.1", port) in _listening(pid)
    assert all(addr == "127.0.0.1" for addr, p in _listening(pid) if p == port)


def _request(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_local_interfaces_refuse_requests_without_the_token(station: SimulatedStation,
                                                            diag: tuple[int, int]) -> None:
    token = station.token()
    api = station.api_port
    wrong = [{}, {"Authorization": "Bearer " + "0" * len(token)}, {"Authorization": token},
             {"Authorization": "Bearer " + token.upper()}, {"Authorization": "Basic " + token},
             {"Authorization": "Bearer " + token[:-1]}, {"Cookie": f"token={token}"}]
    api_paths = [("GET", "/v1/health"), ("GET", "/v1/devices"), ("GET", "/v1/kpi"), ("POST", "/v1/sessions"),
                 ("POST", "/v1/operators/sign-in"), ("GET", "/v1/preview.mjpeg"), ("GET", "/v1/nonexistent"),
                 ("GET", f"/v1/health?token={token}")]
    for method, path in api_paths:
        for headers in wrong:
            assert _request(api, method, path, headers) == 401, (method, path, headers.keys())
    for method, path in [("GET", "/"), ("GET", "/api/diag.json"), ("POST", "/api/selftest/camera")]:
        for headers in wrong:
            assert _request(diag[0], method, path, headers) == 401, (method, path, headers.keys())
    # The control: the right token opens both.
    assert _request(api, "GET", "/v1/health", {"Authorization": f"Bearer {token}"}) == 200
    assert _request(diag[0], "GET", "/api/diag.json", {"Authorization": f"Bearer {token}"}) == 200


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_modes(station: SimulatedStation) -> None:
    state = station.state_dir
    keys = state / "keys"
    assert _mode(state) == 0o700
    assert _mode(keys) == 0o700
    assert _mode(keys / "station_ed25519.key") == 0o600
    assert _mode(state / "api.token") == 0o600
    for secret in keys.glob("*.key"):  # the signing key, the operator-template key, TLS keys
        assert _mode(secret) == 0o600, secret
    for path in state.rglob("*"):
        if path.is_symlink():
            continue
        assert not _mode(path) & 0o022, f"{path} is writable by group or others"
        if path.is_dir():
            assert not _mode(path) & 0o007, f"{path} is open to others"


def _private_keys(state: Path) -> list[Any]:
    """Every PEM private key found anywhere in the state directory."""
    keys = []
    for path in state.rglob("*"):
        if path.is_file() and b"PRIVATE KEY" in path.read_bytes()[:4096]:
            keys.append(serialization.load_pem_private_key(path.read_bytes(), password=None))
    return keys


class _Impostor:
    """Claims head office's public key (so the key-id check passes) but computes with other bytes."""

    def __init__(self, secret: bytes, ho_public: X25519PublicKey) -> None:
        self._key = X25519PrivateKey.from_private_bytes(secret)
        self._public = ho_public

    def public_key(self) -> X25519PublicKey:
        return self._public

    def exchange(self, peer: X25519PublicKey) -> bytes:
        return self._key.exchange(peer)


def test_station_cannot_decrypt_its_own_packets(station: SimulatedStation) -> None:
    station.stop()  # the disk as a thief would have it, daemon gone
    ho: HeadOfficeKeys = station.ho_keys  # type: ignore[attr-defined]
    journal = Journal.open(station.state_dir, parse_config({}).journal)
    try:
        info = journal.packet(station.packet_id)  # type: ignore[attr-defined]
        assert info is not None
        data = journal.read_range(info.packet_id, 0, info.size)
    finally:
        journal.close()
    station_keys = {STATION: load_station_public_key(station.state_dir / "keys")}
    found = _private_keys(station.state_dir)
    assert len(found) == 1 and isinstance(found[0], Ed25519PrivateKey)  # only the signing key
    ho_enc_public = ho.encryption.public_key().public_bytes_raw()
    secrets = [k.private_bytes_raw() for k in found]
    secrets += [path.read_bytes()[:32] for path in station.state_dir.rglob("*") if path.is_file()]
    for secret in secrets:
        if len(secret) != 32:
            continue
        candidate = X25519PrivateKey.from_private_bytes(secret)
        assert candidate.public_key().public_bytes_raw() != ho_enc_public
        with pytest.raises(PacketError):  # refused at the key id
            verify_packet(io.BytesIO(data), headoffice_private_key=candidate, station_public_keys=station_keys)
        with pytest.raises(PacketError):  # and, past it, the AEAD refuses the wrong key
            verify_packet(io.BytesIO(data),
                          headoffice_private_key=_Impostor(secret, ho.encryption.public_key()),  # type: ignore[arg-type]
                          station_public_keys=station_keys)
    # The control: head office's key opens it.
    _header, manifest, items = read_packet(io.BytesIO(data), headoffice_private_key=ho.encryption,
                                           station_public_keys=station_keys)
    assert manifest["biodata"]["nik"] and sum(1 for _ in items) > 10


def test_changed_export_is_refused_even_with_a_matching_manifest(station: SimulatedStation, tmp_path: Path) -> None:
    station.stop()
    ho: HeadOfficeKeys = station.ho_keys  # type: ignore[attr-defined]
    journal = Journal.open(station.state_dir, parse_config({}).journal)
    try:
        result = export_backlog(journal, tmp_path, station_id=STATION)
    finally:
        journal.close()
    folder = result.folder
    verify = packet_verifier(headoffice_private_key=ho.encryption,
                             station_public_keys={STATION: load_station_public_key(station.state_dir / "keys")})
    assert [p.packet_id for p in import_export(folder, verify=verify)] == [station.packet_id]  # type: ignore[attr-defined]
    rkp = folder / f"{station.packet_id}.rkp"  # type: ignore[attr-defined]
    original = rkp.read_bytes()
    manifest_path = folder / "manifest.json"
    manifest_original = manifest_path.read_bytes()
    import hashlib

    # Every byte of the fixed header and 100 spread through the rest (every byte of a small
    # packet is swept in tests/test_packet_roundtrip.py; this is the real enrollment packet).
    positions = sorted(set(range(min(160, len(original)))) | set(range(0, len(original), max(1, len(original) // 100))))
    for pos in positions:
        changed = bytearray(original)
        changed[pos] ^= 0x5A
        rkp.write_bytes(bytes(changed))
        # A careful attacker rewrites the manifest's hash to match the changed file.
        doc = json.loads(manifest_original)
        doc["packets"][0]["sha256"] = hashlib.sha256(bytes(changed)).hexdigest()
        manifest_path.write_text(json.dumps(doc))
        with pytest.raises(ImportFolderError):
            list(import_export(folder, verify=verify))
    # Every byte of the manifest itself, with the original packet.
    rkp.write_bytes(original)
    for pos in range(len(manifest_original)):
        changed = bytearray(manifest_original)
        changed[pos] ^= 0x01
        manifest_path.write_bytes(bytes(changed))
        try:
            imported = list(import_export(folder, verify=verify))
        except ImportFolderError:
            continue
        # A flip that still parses may only touch what the signed packet does not need:
        # the packet itself is verified, and it is the same one.
        assert [p.packet_id for p in imported] == [station.packet_id]  # type: ignore[attr-defined]
        assert imported[0].path.read_bytes() == original
