"""``rekam operators enroll|remove|list|sign-in-test|pin|restore``: the station's operators.

Enrolment, removal, the sign-in test and restore use the ZFM module named by ``[operators]
scanner`` directly, so they refuse to run while the daemon owns the scanner (stop it first:
``systemctl stop rekam``); ``list`` and ``pin`` only touch the journal and the PIN file.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "enrol, remove and list station operators; test a sign-in; set a technician's PIN"


def configure(parser: argparse.ArgumentParser) -> None:
    """Sub-actions enroll, remove, list, sign-in-test, pin and restore."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(parser))
    enroll = sub.add_parser("enroll", help="enrol an operator: two captures of one finger on the module")
    enroll.add_argument("staff_id", help="staff id (NIP), letters, digits, . _ -")
    enroll.add_argument("--name", required=True, help="the operator's name (kept on the station only)")
    enroll.add_argument("--role", choices=("operator", "supervisor", "technician"), default="operator")
    enroll.add_argument("--no-lift", action="store_true",
                        help="do not wait for the finger to be lifted between the two captures")
    enroll.add_argument("--by", metavar="STAFF_ID", help="staff id of whoever does the enrolment (audit)")
    remove = sub.add_parser("remove", help="remove an operator and free their template slot")
    remove.add_argument("staff_id")
    remove.add_argument("--by", metavar="STAFF_ID", help="staff id of whoever removes (audit)")
    listing = sub.add_parser("list", help="list operators")
    listing.add_argument("--all", action="store_true", help="include removed operators")
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    sub.add_parser("sign-in-test", help="capture a finger and say whose it is (signs nobody in)")
    pin = sub.add_parser("pin", help="set or clear the fallback PIN of an operator (read from stdin)")
    pin.add_argument("staff_id")
    pin.add_argument("--clear", action="store_true", help="remove the PIN instead of setting it")
    sub.add_parser("restore", help="write the stored templates back into a replaced module")
    for p in (enroll, remove, listing, sub.choices["sign-in-test"], pin, sub.choices["restore"]):
        p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                       help="configuration file (default: $REKAM_CONFIG, else /etc/rekam/agent.toml)")


def _open_scanner(cfg: Any) -> Any:
    """The [operators] scanner's ZFM driver, opened (the caller closes it)."""
    from agent.cli import CliError
    from drivers.errors import DeviceError
    from drivers.fingerprint.zfm import from_config

    name = cfg.operators.scanner
    dev = cfg.devices.get(name)
    if dev is None:
        raise CliError(f"[operators] scanner = {name!r}: no [devices.{name}] in the configuration")
    if dev.driver != "zfm":
        raise CliError(f"[devices.{name}] driver = {dev.driver!r}: operator templates need a ZFM module (driver zfm)")
    try:
        scanner = from_config(dev.url, dev.options, name=name)
        scanner.open()
    except DeviceError as exc:
        raise CliError(f"{name}: {exc} -- {exc.hint_en}") from None
    return scanner


def _daemon_lock(cfg: Any) -> Any:
    """Hold the daemon's lock file while the scanner is ours; refuse when the daemon runs."""
    import fcntl

    from agent.cli import CliError

    path = cfg.state_dir / "daemon.lock"
    fh = open(path, "a+b")  # held for the command's lifetime
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise CliError("the rekam daemon is running and owns the scanner; stop it first "
                       "(systemctl stop rekam), or sign in through the station") from None
    return fh


def run(args: argparse.Namespace) -> int:
    """Carry out the action."""
    import getpass
    import sys

    from agent.cli import CliError
    from agent.config import config_path, load_config
    from agent.journal import Journal, JournalError
    from agent.keys import keys_dir
    from agent.operators.audit import AuditLog
    from agent.operators.errors import OperatorError
    from agent.operators.pin import PinFile, PinFileError
    from agent.operators.registry import DirectAccess, OperatorRegistry
    from agent.operators.routes import pin_path
    from agent.operators.vault import TemplateVault, VaultError
    from agent.statedir import prepare_state_dir
    from drivers.errors import DeviceError

    cfg = load_config(config_path(getattr(args, "config", None)))
    prepare_state_dir(cfg.state_dir)
    id_lang = cfg.station.language == "id"
    timeout = cfg.operators.sign_in_timeout_seconds
    try:
        if args.action == "pin":
            pins = PinFile(pin_path(cfg))
            if args.clear:
                done = pins.remove(args.staff_id)
                print(("PIN dihapus." if id_lang else "PIN removed.") if done else
                      ("Tidak ada PIN." if id_lang else "No PIN was set."))
                return 0
            pin = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass("PIN: ")
            pins.set(args.staff_id, pin)
            with Journal.open(cfg.state_dir, cfg.journal, recover=False) as journal:
                AuditLog(journal, tz=cfg.station.timezone).record(
                    "operator.pin_set", "ok", details={"staff_id": args.staff_id})
            print("PIN disimpan." if id_lang else "PIN stored.")
            return 0
        with Journal.open(cfg.state_dir, cfg.journal, recover=False) as journal:
            audit = AuditLog(journal, tz=cfg.station.timezone)
            vault = TemplateVault.from_keys_dir(keys_dir(cfg.state_dir))
            registry = OperatorRegistry(journal, audit=audit, vault=vault)
            if args.action == "list":
                ops = registry.operators(include_removed=args.all)
                if args.json:
                    print(json.dumps([o.public() for o in ops], indent=2))
                else:
                    print(f"{'staff id':<16} {'role':<11} {'slot':>4}  enrolled             removed")
                    for o in ops:
                        print(f"{o.staff_id:<16} {o.role:<11} {o.slot if o.slot is not None else '-':>4}  "
                              f"{o.enrolled_at[:19]:<20} {(o.removed_at or '')[:19]}")
                return 0
            lock = _daemon_lock(cfg)
            try:
                scanner = _open_scanner(cfg)
                try:
                    access = DirectAccess(scanner)
                    if args.action == "enroll":
                        print("Letakkan jari petugas pada pemindai..." if id_lang
                              else "Place the operator's finger on the scanner...", flush=True)
                        op = registry.enroll(args.staff_id, args.name, args.role, access, timeout=timeout,
                                             require_lift=not args.no_lift, by=args.by)
                        print(f"{op.staff_id} ({op.role}) -> slot {op.slot}")
                    elif args.action == "remove":
                        op = registry.remove(args.staff_id, access, by=args.by)
                        print(f"{op.staff_id} removed")
                    elif args.action == "sign-in-test":
                        print("Letakkan jari..." if id_lang else "Place a finger...", flush=True)
                        op, score = registry.identify(access, timeout=timeout)
                        print(f"{op.staff_id} ({op.role}), score {score}; nobody was signed in")
                    else:
                        n, skipped = registry.restore(access)
                        print(f"{n} templates restored")
                        if skipped:
                            raise CliError(f"stored templates of {', '.join(skipped)} do not open (wrong "
                                           "template key?); enrol them again")
                finally:
                    scanner.close()
            finally:
                lock.close()
    except OperatorError as exc:
        raise CliError(exc.message_id if id_lang else exc.message_en) from None
    except DeviceError as exc:
        raise CliError(f"{exc.hint_id if id_lang else exc.hint_en} ({type(exc).__name__})") from None
    except (JournalError, PinFileError, VaultError) as exc:
        raise CliError(str(exc)) from None
    return 0
