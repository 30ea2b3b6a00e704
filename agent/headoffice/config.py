"""Head-office receiver configuration: its own TOML file, validated like the agent's.

The sections are frozen dataclasses whose fields are declared with :func:`agent.config.key`, and
each table is checked by the agent's own validator, so the rules are the same: unknown keys are
errors, every error names the file, the key and what was expected, secrets are paths to files.

Example (``docs/headoffice.md`` has the full reference)::

    [broker]
    host = "broker.example.id"
    port = 8883
    [receiver]
    group = "ingest"
    [storage]
    backend = "postgresql"
    folder = "/srv/rekam/bodies"
    dsn_file = "/etc/rekam/headoffice.dsn"
    [keys]
    directory = "/etc/rekam/headoffice-keys"
    [stations.kec-samarinda-ilir-01]
    public_key = "/etc/rekam/stations/kec-samarinda-ilir-01.pub"
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import (
    ConfigError,
    build_section,
    checked_sections,
    choose_config_path,
    key,
    read_toml_file,
    require_table,
)

DEFAULT_HEADOFFICE_CONFIG = Path("/etc/rekam/headoffice.toml")
STATION_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"


@dataclass(frozen=True)
class BrokerConfig:
    """[broker] the MQTT v5 broker (cluster) the stations publish to."""

    host: str = key("Broker host name.", "localhost")
    port: int = key("Broker port.", 8883, minimum=1, maximum=65535)
    transport: str = key(
        "tls (production) or tcp (tests and the demo only; must be chosen explicitly).",
        "tls", choices=("tls", "tcp"),
    )
    ca_file: Path | None = key("CA certificate that signed the broker's certificate.", None,
                               secret_path=True)
    cert_file: Path | None = key("This receiver's client certificate.", None, secret_path=True)
    key_file: Path | None = key("This receiver's client key.", None, secret_path=True)
    username: str | None = key("MQTT user name (optional).", None)
    password_file: Path | None = key("File holding the MQTT password (optional).", None,
                                     secret_path=True)
    client_id: str = key(
        "MQTT client id; empty: rekam-ho-<host>-<pid>. Give each receiver its own.", "",
        pattern=r"[A-Za-z0-9_.-]{0,64}",
    )
    keepalive_seconds: int = key("MQTT keepalive.", 30, minimum=5, maximum=3600)
    session_expiry_seconds: int = key(
        "MQTT v5 session expiry (0: clean session; stations resend what a dead receiver lost).",
        0, minimum=0,
    )


@dataclass(frozen=True)
class ReceiverConfig:
    """[receiver] how packets are received, checked and acknowledged."""

    group: str = key("Shared-subscription group; receivers in one group split the load.",
                     "rekam-ho", pattern=r"[A-Za-z0-9_.-]{1,64}")
    max_chunk_bytes: int = key("Largest chunk accepted.", 16 * 1024**2, minimum=1024)
    max_packet_bytes: int = key("Largest packet accepted.", 512 * 1024**2, minimum=1024)
    lease_seconds: float = key(
        "How long a receiver may take to assemble and verify one packet before another may.",
        300.0, minimum=1.0,
    )
    ack_ttl_seconds: int = key("Validity of an ack (its expires_at - issued_at).", 86400,
                               minimum=60)
    inflight: int = key("Messages the broker may have in flight to this receiver.", 64,
                        minimum=1, maximum=65535)


@dataclass(frozen=True)
class StorageConfig:
    """[storage] where packets, chunks and the index live (shared by every receiver of a group)."""

    backend: str = key("sqlite: folder + SQLite index (one machine); postgresql: many machines.",
                       "sqlite", choices=("sqlite", "postgresql"))
    folder: Path = key("Folder for packet bodies (and, with sqlite, chunks and the index).",
                       Path("/var/lib/rekam-headoffice"))
    dsn_file: Path | None = key("File holding the libpq connection string (postgresql).", None,
                                secret_path=True)


@dataclass(frozen=True)
class KeysConfig:
    """[keys] head office's private keys (rekam keys init --headoffice DIR makes them)."""

    directory: Path = key("Folder with headoffice_x25519.key and headoffice_ed25519.key.",
                          Path("/etc/rekam/headoffice-keys"))


@dataclass(frozen=True)
class RegisteredStation:
    """[stations.ID] one registered station."""

    public_key: Path = key("The station's station_ed25519.pub (verifies its packets).")


@dataclass(frozen=True)
class HeadOfficeConfig:
    """The whole head-office configuration."""

    broker: BrokerConfig = field(default_factory=BrokerConfig)
    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    stations: Mapping[str, RegisteredStation] = field(default_factory=dict)
    source: Path | None = None


def headoffice_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """``--config``, else ``$REKAM_HEADOFFICE_CONFIG``, else the default path."""
    return choose_config_path(explicit, "REKAM_HEADOFFICE_CONFIG", DEFAULT_HEADOFFICE_CONFIG)


def load_headoffice_config(path: str | os.PathLike[str]) -> HeadOfficeConfig:
    """Read and validate one head-office TOML file; raise ConfigError naming file and key."""
    p = Path(path)
    return parse_headoffice_config(read_toml_file(p), source=p)


def parse_headoffice_config(data: Mapping[str, Any], *, source: Path | None = None
                            ) -> HeadOfficeConfig:
    """Validate an already-parsed TOML document into a :class:`HeadOfficeConfig`."""
    import re

    where = str(source) if source else "<headoffice config>"
    fields = {f.name for f in dataclasses.fields(HeadOfficeConfig) if f.name != "source"}
    hints = typing.get_type_hints(HeadOfficeConfig)
    kwargs: dict[str, Any] = {}
    for name, value in checked_sections(data, fields, where):
        if name == "stations":
            stations = {}
            for sid, body in value.items():
                if not re.fullmatch(STATION_ID_PATTERN, sid):
                    raise ConfigError(f"{where}: [stations.{sid}]: not a valid station id")
                section = f"stations.{sid}"
                stations[sid] = build_section(RegisteredStation,
                                              require_table(where, section, body), where, section)
            kwargs[name] = types.MappingProxyType(stations)
        else:
            kwargs[name] = build_section(hints[name], value, where, name)
    cfg = HeadOfficeConfig(**kwargs, source=source)
    if cfg.storage.backend == "postgresql" and cfg.storage.dsn_file is None:
        raise ConfigError(f"{where}: [storage] dsn_file: required when backend = \"postgresql\"")
    return cfg


def read_secret(path: Path, what: str) -> str:
    """The stripped text of a secret file; the error names the file, never its content."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from None
