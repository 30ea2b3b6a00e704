"""``rekam enroll``: drive the station API through one simulated applicant."""

from __future__ import annotations

import argparse

HELP = "record simulated applicants through the running daemon's station API (demo and tests)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of the simulated enrollment."""
    parser.add_argument("--count", type=int, default=1, help="applicants to record (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first synthetic applicant")
    parser.add_argument("--operator", metavar="STAFF_ID", help="operator id to record the sessions under")
    parser.add_argument("--json", action="store_true", help="print one JSON line per applicant")


def run(args: argparse.Namespace) -> int:
    """Record ``--count`` applicants; exit 0 when every one was saved."""
    import json

    from agent.api.client import ApiError, StationClient
    from agent.api.server import api_token_path
    from agent.cli import CliError
    from agent.config import config_path, load_config
    from agent.workflow.synthetic import applicant

    cfg = load_config(config_path(getattr(args, "config", None)))
    token_file = api_token_path(cfg)
    try:
        token = token_file.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise CliError(f"{token_file}: cannot read the API token ({exc.strerror}); is the daemon running?") from None
    client = StationClient(cfg.api.port, token)
    failures = 0
    for n in range(args.count):
        person = applicant(args.seed + n, district_code=cfg.station.district_code)
        try:
            result = client.enroll(person, operator_id=args.operator)
        except ApiError as exc:
            failures += 1
            print(json.dumps({"saved": False, "error": str(exc)}) if args.json else f"not saved: {exc}")
            continue
        except OSError as exc:
            raise CliError(f"station API on 127.0.0.1:{cfg.api.port} not reachable: {exc}") from None
        if args.json:
            print(json.dumps(result))
        else:
            print(f"saved: packet {result['packet_id']} ({result['retries']} retries)")
    return 1 if failures else 0
