"""A head office in one call, for the demo and integration tests: keys, storage, one receiver.

    ho = EmbeddedHeadOffice.start(workdir, broker_port=1883,
                                  stations={"station-demo": station_public_key})
    ...                       # the station's uplink delivers; ho.receiver acks
    ho.send(*ho.print_order(...))
    ho.stop()

Plain TCP on 127.0.0.1 only (the demo's broker); production uses ``rekam headoffice run``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.headoffice.config import parse_headoffice_config
from agent.headoffice.receiver import (
    AckSigner,
    Receiver,
    load_station_keys,
    open_storage,
    packet_verifier,
)
from agent.keys import HeadOfficeKeys, generate_headoffice_keys, key_id, load_headoffice_keys


@dataclass
class EmbeddedHeadOffice:
    """A running head office: its keys, the signer for orders, and its receiver."""

    keys: HeadOfficeKeys
    signer: AckSigner
    receiver: Receiver
    bundle: Path

    @classmethod
    def start(cls, workdir: Path, *, broker_port: int,
              stations: Mapping[str, Ed25519PublicKey], group: str = "demo") -> EmbeddedHeadOffice:
        """Create (or reuse) keys under ``workdir/keys``, then start one receiver."""
        kdir = workdir / "keys"
        keys = (load_headoffice_keys(kdir) if (kdir / "headoffice_ed25519.key").exists()
                else generate_headoffice_keys(kdir, now=datetime.now(UTC)))
        registered: dict[str, Any] = {}
        for sid, pub in stations.items():
            path = workdir / "stations" / f"{sid}.pub"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pub.public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
            registered[sid] = {"public_key": str(path)}
        cfg = parse_headoffice_config({
            "broker": {"host": "127.0.0.1", "port": broker_port, "transport": "tcp"},
            "receiver": {"group": group},
            "storage": {"backend": "sqlite", "folder": str(workdir / "store")},
            "keys": {"directory": str(kdir)},
            "stations": registered,
        })
        signer = AckSigner(keys.signing, key_id(keys.signing.public_key()))
        receiver = Receiver(cfg, open_storage(cfg),
                            verify=packet_verifier(keys.encryption, load_station_keys(cfg)),
                            signer=signer, client_id=f"{group}-headoffice")
        receiver.start()
        return cls(keys, signer, receiver, kdir / "headoffice_bundle.json")

    def send(self, topic: str, payload: bytes) -> None:
        """Publish a signed order or command built with agent.headoffice.orders (QoS 1)."""
        self.receiver.client.publish(topic, payload, qos=1)

    def stop(self) -> None:
        """Stop the receiver and close its storage."""
        self.receiver.stop()
        self.receiver.storage.close()
