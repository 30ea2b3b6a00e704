"""``rekam headoffice run|stations|import DIR|keys``: the head-office receiver and its tools.

The head office has its own TOML file (``--config FILE``, else ``$REKAM_HEADOFFICE_CONFIG``,
else ``/etc/rekam/headoffice.toml``); see docs/headoffice.md.
"""

from __future__ import annotations

import argparse
from typing import Any

HELP = "head-office receiver: run it, list stations, import export folders, manage keys"


def configure(parser: argparse.ArgumentParser) -> None:
    """Sub-actions run, stations, import, keys."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="receive, verify, store and acknowledge packets")
    run.add_argument("--client-id", help="MQTT client id of this receiver (default from config)")
    st = sub.add_parser("stations", help="list stations: last seen, online, backlog, stock, KPIs")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    imp = sub.add_parser("import", help="verify and store the packets of an export folder")
    imp.add_argument("dir", metavar="DIR", help="export folder written by `rekam export`")
    keys = sub.add_parser("keys", help="head office's keys and the registered stations' keys")
    ksub = keys.add_subparsers(dest="keys_action", metavar="KEYS_ACTION", required=True)
    ksub.add_parser("init", help="create head office's key pair in [keys] directory")
    ksub.add_parser("show", help="key ids and fingerprints of head office and every station")


def _config(args: argparse.Namespace) -> Any:
    from agent.headoffice.config import headoffice_config_path, load_headoffice_config

    return load_headoffice_config(headoffice_config_path(getattr(args, "config", None)))


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen action."""
    from agent.cli import CliError
    from agent.headoffice.storage import StorageError
    from agent.keys import KeyStoreError

    cfg = _config(args)
    try:
        if args.action == "run":
            return _run(cfg, args)
        if args.action == "stations":
            return _stations(cfg, args)
        if args.action == "import":
            return _import(cfg, args)
        return _keys(cfg, args)
    except (StorageError, KeyStoreError, ConnectionError) as exc:
        raise CliError(str(exc)) from exc


def _run(cfg: Any, args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from agent.headoffice.receiver import (
        AckSigner,
        Receiver,
        load_station_keys,
        open_storage,
        packet_verifier,
    )
    from agent.keys import key_id, load_headoffice_keys

    log = logging.getLogger("agent.headoffice")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    keys = load_headoffice_keys(cfg.keys.directory)
    storage = open_storage(cfg)
    rx = Receiver(cfg, storage,
                  verify=packet_verifier(keys.encryption, load_station_keys(cfg)),
                  signer=AckSigner(keys.signing, key_id(keys.signing.public_key())),
                  client_id=args.client_id)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        rx.start()
        log.info("head-office receiver %s running, %d stations registered", rx.client_id,
                 len(cfg.stations))
        while not stop.wait(60.0):
            s = rx.stats
            log.info("stored %d, duplicates %d, rejected %d, chunks %d, queries %d", s.stored,
                     s.duplicates, s.rejected, s.chunks, s.queries)
    finally:
        rx.stop()
        storage.close()
    return 0


def summarize_telemetry(telemetry: dict[str, Any] | None) -> dict[str, str]:
    """Backlog, stock and KPI columns from a station's latest telemetry (whatever its nesting)."""
    if not telemetry:
        return {"backlog": "-", "stock": "-", "kpi": "-"}

    def find(doc: Any, names: tuple[str, ...], depth: int = 0) -> Any:
        if not isinstance(doc, dict) or depth > 3:
            return None
        for n in names:
            if n in doc:
                return doc[n]
        for v in doc.values():
            found = find(v, names, depth + 1)
            if found is not None:
                return found
        return None

    def compact(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, dict):
            if "packets" in value and not isinstance(value["packets"], dict):
                return str(value["packets"])
            parts = [f"{k}={v}" for k, v in sorted(value.items())
                     if isinstance(v, (int, float, str, bool)) and not isinstance(v, bool)]
            return " ".join(parts)[:60] or "-"
        return str(value)[:60]

    return {
        "backlog": compact(find(telemetry, ("backlog_packets", "backlog"))),
        "stock": compact(find(telemetry, ("stock",))),
        "kpi": compact(find(telemetry, ("kpi", "kpis"))),
    }


def _stations(cfg: Any, args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from agent.headoffice.receiver import open_storage

    storage = open_storage(cfg)
    try:
        rows = storage.stations()
    finally:
        storage.close()
    registered = set(cfg.stations)
    known = {r.station_id for r in rows}

    def iso(t: float | None) -> str:
        if t is None:
            return "-"
        return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    out = [
        {
            "station": r.station_id,
            "registered": r.station_id in registered,
            "online": {True: "online", False: "offline", None: "?"}[r.online],
            "last_seen": iso(r.last_seen),
            "version": r.version or "-",
            **summarize_telemetry(r.telemetry),
            "stored": r.packets_stored,
            "events": r.events,
        }
        for r in rows
    ]
    out.extend(
        {"station": sid, "registered": True, "online": "never seen", "last_seen": "-",
         "version": "-", "backlog": "-", "stock": "-", "kpi": "-", "stored": 0, "events": 0}
        for sid in sorted(registered - known)
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    cols = ["station", "online", "last_seen", "version", "backlog", "stock", "kpi", "stored",
            "events"]
    widths = {c: max(len(c), *(len(str(o[c])) for o in out)) if out else len(c) for c in cols}
    print("  ".join(c.upper().ljust(widths[c]) for c in cols))
    for o in out:
        mark = "" if o["registered"] else "  (not registered)"
        print("  ".join(str(o[c]).ljust(widths[c]) for c in cols).rstrip() + mark)
    return 0


def _import(cfg: Any, args: argparse.Namespace) -> int:
    from pathlib import Path

    from agent.cli import CliError
    from agent.export import ImportFolderError
    from agent.headoffice.importer import import_export_folder
    from agent.headoffice.receiver import load_station_keys, open_storage
    from agent.keys import load_headoffice_keys

    folder = Path(args.dir)
    if not folder.is_dir():
        raise CliError(f"{folder}: not a folder")
    keys = load_headoffice_keys(cfg.keys.directory)
    storage = open_storage(cfg)
    try:
        report = import_export_folder(storage, folder, headoffice_private_key=keys.encryption,
                                      station_keys=load_station_keys(cfg))
    except ImportFolderError as exc:
        raise CliError(f"{folder}: export folder refused: {exc}") from exc
    finally:
        storage.close()
    print(f"imported {report.imported}, already stored {report.duplicates}, "
          f"refused {len(report.refused)}")
    for name, reason in report.refused:
        print(f"  refused {name}: {reason}")
    return 0 if not report.refused else 1


def _keys(cfg: Any, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from agent.headoffice.receiver import load_station_keys
    from agent.keys import fingerprint, generate_headoffice_keys, key_id, load_headoffice_keys

    if args.keys_action == "init":
        keys = generate_headoffice_keys(cfg.keys.directory, now=datetime.now(UTC))
        print(f"head-office keys created in {cfg.keys.directory}")
        print(f"give stations {cfg.keys.directory / 'headoffice_bundle.json'}"
              " (rekam keys trust-headoffice FILE)")
    else:
        keys = load_headoffice_keys(cfg.keys.directory)
    print(f"encryption (X25519) kid {key_id(keys.encryption.public_key())}"
          f"  {fingerprint(keys.encryption.public_key())}")
    print(f"signing    (Ed25519) kid {key_id(keys.signing.public_key())}"
          f"  {fingerprint(keys.signing.public_key())}")
    if args.keys_action == "show":
        for sid, key in sorted(load_station_keys(cfg).items()):
            print(f"station {sid}: kid {key_id(key)}  {fingerprint(key)}")
    return 0
