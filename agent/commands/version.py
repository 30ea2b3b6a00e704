"""``rekam version``."""

from __future__ import annotations

import argparse
import platform

HELP = "print the agent's version"


def configure(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    """Print version, Python and platform."""
    from agent import __version__

    print(f"rekam {__version__} (Python {platform.python_version()}, {platform.machine()})")
    return 0
