"""``rekam run``: the station daemon."""

from __future__ import annotations

import argparse

HELP = "run the station daemon (what systemd starts)"


def configure(parser: argparse.ArgumentParser) -> None:
    """No options beyond --config."""


def run(args: argparse.Namespace) -> int:
    """Load the config and run the daemon until SIGTERM."""
    from agent.config import config_path, load_config
    from agent.daemon import Daemon

    cfg = load_config(config_path(getattr(args, "config", None)))
    return Daemon(cfg).run()
