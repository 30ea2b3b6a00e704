"""The ``rekam`` command: one entry point, one module per subcommand.

Each subcommand lives in ``agent/commands/<name>.py`` with ``HELP``, ``configure(parser)``
and ``run(args) -> int``. Those modules import only the standard library at module level;
anything heavier is imported inside ``run`` so ``rekam run`` starts fast and light.

To add a subcommand: write its module and add one line to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

# (name, module) in the order --help lists them.
COMMANDS: list[tuple[str, str]] = [
    ("run", "agent.commands.run"),
    ("demo", "agent.commands.demo"),
    ("diag", "agent.commands.diag"),
    ("selftest", "agent.commands.selftest"),
    ("config", "agent.commands.config"),
    ("keys", "agent.commands.keys"),
    ("enroll", "agent.commands.enroll"),
    ("journal", "agent.commands.journal"),
    ("export", "agent.commands.export"),
    ("stock", "agent.commands.stock"),
    ("print", "agent.commands.print"),
    ("version", "agent.commands.version"),
    ("headoffice", "agent.commands.headoffice"),
    ("operators", "agent.commands.operators"),
    ("report", "agent.commands.report"),
]


class CliError(Exception):
    """A user-facing error: printed as one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print one clear line and exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand."""
    parser = _Parser(
        prog="rekam",
        description="Rekam: the edge agent of an e-KTP biometric recording station.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="configuration file (default: $REKAM_CONFIG, else /etc/rekam/agent.toml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module_name in COMMANDS:
        module = _load(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                       help="configuration file (default: $REKAM_CONFIG, else /etc/rekam/agent.toml)")
        module.configure(p)
        p.set_defaults(_module=module)
    return parser


def _load(module_name: str) -> ModuleType:
    return importlib.import_module(module_name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rekam`` command line; return the exit code."""
    from agent.config import ConfigError
    from agent.statedir import StateDirError

    parser = build_parser()
    args = parser.parse_args(argv)
    module = getattr(args, "_module", None)
    if module is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(module.run(args))
    except (CliError, ConfigError, StateDirError) as exc:
        print(f"rekam: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rekam: interrupted", file=sys.stderr)
        return 130
