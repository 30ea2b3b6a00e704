"""Run the atheris (libFuzzer) harness of each parser for a set time and report the figures.

    /work/venv/bin/python fuzz/run.py --minutes 10            # every target, 10 min each
    /work/venv/bin/python fuzz/run.py --minutes 3 zfm order   # some targets

Each target (fuzz/targets.py) runs in its own child process (``fuzz/run.py --child NAME``)
under ``atheris.instrument_imports`` so coverage guides the mutations. The corpus is kept in
fuzz/corpus/<target>/ between runs; a crash (an exception other than the parser's declared
error, an assertion of a target, more than ``--timeout`` seconds (default 1) on one input or more than
512 MB) is written
to fuzz/crashes/<target>/ and should become a regression input in tests/fixtures/fuzz/.
The summary table (target, executions, seconds, crashes) is printed as Markdown for
docs/security.md.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _child(name: str, libfuzzer_args: list[str]) -> None:
    import atheris

    sys.path.insert(0, str(ROOT))
    with atheris.instrument_imports(include=["agent", "firmware_protocols", "fuzz"]):
        from fuzz.targets import TARGETS
    target = TARGETS[name]
    atheris.Setup([sys.argv[0], *libfuzzer_args], target)
    atheris.Fuzz()


def _run_one(name: str, seconds: int, max_len: int, timeout: int) -> tuple[int, float, int, str]:
    corpus = HERE / "corpus" / name
    crashes = HERE / "crashes" / name
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--",
            f"-max_total_time={seconds}", f"-max_len={max_len}", "-rss_limit_mb=512",
            f"-timeout={timeout}", f"-artifact_prefix={crashes}/", "-print_final_stats=1", str(corpus)]
    started = time.monotonic()
    # Bounded wait: libFuzzer stops itself at max_total_time; the margin covers start-up.
    proc = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120, check=False)
    elapsed = time.monotonic() - started
    log = proc.stdout + proc.stderr
    (HERE / "logs").mkdir(exist_ok=True)
    (HERE / "logs" / f"{name}.log").write_text(log)
    execs = 0
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    if m:
        execs = int(m.group(1))
    else:
        found = re.findall(r"#(\d+)\s", log)
        execs = int(found[-1]) if found else 0
    crashed = len([p for p in crashes.iterdir() if p.is_file()])
    status = "ok" if proc.returncode == 0 and crashed == 0 else f"exit {proc.returncode}"
    return execs, elapsed, crashed, status


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the chosen targets one after another."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[3:] if argv[2:3] == ["--"] else argv[2:])
        return 0
    sys.path.insert(0, str(ROOT))
    from fuzz.targets import TARGETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="time per target (default 10)")
    parser.add_argument("--max-len", type=int, default=65536, help="largest input in bytes")
    parser.add_argument("--timeout", type=int, default=1,
                        help="seconds one input may take before it counts as a hang (default 1; the "
                             "config and export targets touch the file system, give them more on a busy machine)")
    parser.add_argument("targets", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    args = parser.parse_args(argv)
    names = args.targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; known: {', '.join(TARGETS)}")
    print("| target | executions | seconds | exec/s | crashes | result |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    failed = False
    for name in names:
        execs, elapsed, crashed, status = _run_one(name, max(1, int(args.minutes * 60)), args.max_len,
                                                   args.timeout)
        failed |= status != "ok"
        print(f"| {name} | {execs:,} | {elapsed:.0f} | {execs / max(elapsed, 1e-9):,.0f} | {crashed} "
              f"| {status} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
