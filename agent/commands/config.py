"""``rekam config check|docs``."""

from __future__ import annotations

import argparse

HELP = "check a configuration file, or print the configuration reference"


def configure(parser: argparse.ArgumentParser) -> None:
    """Sub-actions check and docs."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                parser_class=type(parser))
    check = sub.add_parser("check", help="validate the file and print a summary; exit 2 on error")
    check.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                       help="configuration file to check")
    sub.add_parser("docs", help="print the Markdown reference of every key (docs/configuration.md)")


def run(args: argparse.Namespace) -> int:
    """Check the file or print the docs."""
    from agent.config import config_path, load_config, render_docs

    if args.action == "docs":
        print(render_docs(), end="")
        return 0
    path = config_path(getattr(args, "config", None))
    cfg = load_config(path)
    devices = ", ".join(f"{n} ({d.driver})" for n, d in cfg.devices.items()) or "none"
    print(f"{path}: OK")
    print(f"  station {cfg.station.id}, district {cfg.station.district_code}, language {cfg.station.language}")
    print(f"  state directory {cfg.state_dir}")
    print(f"  uplink {cfg.uplink.transport}://{cfg.uplink.host}:{cfg.uplink.port}"
          f" ({'enabled' if cfg.uplink.enabled else 'disabled'})")
    print(f"  devices: {devices}")
    return 0
