"""``rekam keys init|show|trust-headoffice FILE``: the station's and head office's keys."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HELP = "create the station key, show it, or install head office's public keys"


def configure(parser: argparse.ArgumentParser) -> None:
    """Sub-actions init, show and trust-headoffice."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                parser_class=type(parser))
    init = sub.add_parser("init", help="create the station signing key (refuses to overwrite)")
    init.add_argument("--headoffice", metavar="DIR",
                      help="instead create a HEAD-OFFICE key set and public bundle in DIR "
                           "(demo/tests; production keeps head-office keys in an HSM)")
    init.add_argument("--endorse-with", metavar="OLD_DIR",
                      help="with --headoffice: endorse the new bundle with the key set in OLD_DIR "
                           "(key rotation)")
    sub.add_parser("show", help="print the station public key, key id and fingerprint")
    trust = sub.add_parser("trust-headoffice", help="install head office's public key bundle")
    trust.add_argument("file", metavar="FILE", help="headoffice_bundle.json from head office")
    trust.add_argument("--force", action="store_true",
                       help="replace trusted keys even without an endorsement (re-provisioning)")
    for p in (init, sub.choices["show"], trust):
        p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                       help="configuration file")


def run(args: argparse.Namespace) -> int:
    """Do the requested action; key-store problems become one-line CLI errors."""
    from agent.cli import CliError
    from agent.keys import KeyStoreError

    try:
        return _run(args)
    except KeyStoreError as exc:
        raise CliError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime
    from pathlib import Path

    from agent import keys
    from agent.cli import CliError

    if args.action == "init" and args.headoffice:
        previous = keys.load_headoffice_keys(Path(args.endorse_with)) if args.endorse_with else None
        ho = keys.generate_headoffice_keys(Path(args.headoffice), now=datetime.now(UTC),
                                           previous=previous)
        pub = ho.public
        print(f"head-office keys created in {args.headoffice}")
        print(f"  encryption X25519 kid {pub.encryption_kid}")
        print(f"  signing    Ed25519 kid {pub.signing_kid}  {keys.fingerprint(pub.signing)}")
        print(f"  give stations: {Path(args.headoffice) / keys.BUNDLE}")
        return 0
    if args.action == "init" and args.endorse_with:
        raise CliError("--endorse-with needs --headoffice DIR")

    from agent.config import config_path, load_config
    from agent.statedir import prepare_state_dir

    cfg = load_config(config_path(getattr(args, "config", None)))
    kdir = keys.keys_dir(prepare_state_dir(cfg.state_dir))
    if args.action == "init":
        pub_s = keys.init_station_keys(kdir)
        print(f"station key created: {kdir / keys.STATION_KEY} (mode 0600)")
        _show(pub_s)
        return 0
    if args.action == "show":
        _show(keys.load_station_public_key(kdir))
        try:
            ho_pub = keys.load_headoffice_public(kdir)
        except keys.KeyMissingError:
            print("head office: not trusted yet (run: rekam keys trust-headoffice FILE)")
        else:
            print(f"head office encryption kid {ho_pub.encryption_kid}, "
                  f"signing kid {ho_pub.signing_kid}")
        return 0
    # trust-headoffice
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise CliError(f"{args.file}: cannot read: {exc.strerror}") from None
    ho_pub = keys.trust_headoffice(kdir, data, force=args.force)
    print(f"head-office keys trusted: encryption kid {ho_pub.encryption_kid}, "
          f"signing kid {ho_pub.signing_kid}")
    print(f"  signing fingerprint {keys.fingerprint(ho_pub.signing)} (compare with head office)")
    return 0


def _show(pub: Ed25519PublicKey) -> None:
    import base64

    from agent.keys import fingerprint, key_id, raw_public

    print(f"station public key (Ed25519, base64): {base64.b64encode(raw_public(pub)).decode()}")
    print(f"  key id      {key_id(pub)}")
    print(f"  fingerprint {fingerprint(pub)}")
