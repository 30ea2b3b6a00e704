"""``rekam demo``: the simulated station, end to end, on this machine."""

from __future__ import annotations

import argparse

HELP = "run a simulated station end to end (real mosquitto, emulated devices) and print a summary"


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of the demo."""
    parser.add_argument("--applicants", type=int, default=10, metavar="N",
                        help="simulated applicants to record (default 10)")
    parser.add_argument("--workdir", metavar="DIR",
                        help="keep state, broker data, card images and logs here (default: ./demo-output)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON (docs/demo.md)")
    parser.add_argument("--seed", type=int, default=1, help="seed for the synthetic applicants")


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when nothing was lost."""
    from agent.cli import CliError
    from agent.demo import DemoError, run_demo

    if args.applicants < 1 or args.applicants > 1000:
        raise CliError(f"--applicants: expected 1-1000, got {args.applicants}")
    try:
        return run_demo(args)
    except DemoError as exc:
        raise CliError(str(exc)) from exc
