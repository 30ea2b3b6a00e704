"""The one benchmark command: every bench/bench_*.py suite, one table, one JSON file.

Run: /work/venv/bin/python bench/run.py [--quick] [--out DIR] [--only SUITE,...] [--jobs N]

Each suite is the engineer's own script, run as a subprocess with its own arguments; its
Markdown table rows are parsed into rows of {figure, value, baseline, ratio, target, result}
and written to DIR/bench-results.md and DIR/bench-results.json, with the machine (nproc,
lscpu, Python) and the exact command. ``result`` is "pass"/"miss" when the target is a plain
comparison that can be read off the row, otherwise "reported". Nothing here asserts a timing.

``--quick`` runs every suite on tiny sizes (the CI smoke, tests/test_bench_smoke.py); its
figures only show that every row is produced, they are not measurements to quote. With
``--quick`` the suites all run side by side (``--jobs``) for the same reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


@dataclass(frozen=True)
class Suite:
    """One bench script and its arguments for a full and a quick run."""

    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    min_rows: int  # fewer parsed rows than this means the suite broke somewhere
    timeout_s: float = 3600.0


SUITES: tuple[Suite, ...] = (
    Suite("journal", "bench_journal.py", ("--rounds", "5"),
          ("--packets", "4", "--packet-mib", "1", "--rounds", "1", "--mem-mib", "8"), 6),
    Suite("packet", "bench_packet.py", (), ("--mb", "8"), 5),
    Suite("zfm", "bench_zfm.py", (), (), 7),
    Suite("tenprint", "bench_tenprint.py", (), (), 5),
    Suite("camera", "bench_camera.py", (), (), 7),
    Suite("printing", "bench_printing.py", ("--cards", "50"), ("--cards", "3"), 6),
    Suite("operators", "bench_operators.py", (), ("--enrollments", "50", "--rounds", "1"), 2),
    Suite("diag", "bench_diag.py", (), ("--packets", "100", "--sessions", "30", "--rounds", "1"), 3),
    Suite("uplink", "bench_uplink.py", (), ("--quick",), 6),
    Suite("uplink-bridge", "bench_uplink.py", ("--bridge",), ("--bridge", "--quick"), 4),
    Suite("headoffice", "bench_headoffice.py", (),
          ("--stations", "4", "--packets", "1", "--repeat", "1"), 3),
    # The station cases run as separate suites so a quick run can start them side by side.
    Suite("station-ready", "bench_station.py", ("--only", "ready"), ("--quick", "--only", "ready"), 3),
    Suite("station-backlog", "bench_station.py", ("--only", "backlog"), ("--quick", "--only", "backlog"), 2),
    Suite("station-send", "bench_station.py", ("--only", "send200"), ("--quick", "--only", "send200"), 1),
    Suite("station-enroll", "bench_station.py", ("--only", "enroll"), ("--quick", "--only", "enroll"), 2),
    Suite("station-card", "bench_station.py", ("--only", "card"), ("--quick", "--only", "card"), 1),
)

# bench_uplink's own --quick still drains 100 packets (122 MB); the smoke caps every backlog it
# builds at this many packets by wrapping its sizes_for (row labels keep the nominal count).
TINY_UPLINK_PACKETS = 6


@dataclass
class Row:
    """One figure of the suite table."""

    suite: str
    figure: str
    value: str
    baseline: str
    ratio: str
    target: str
    result: str = "reported"
    note: str = ""


@dataclass
class SuiteRun:
    """How one suite's process went."""

    name: str
    command: str
    seconds: float
    returncode: int
    rows: int
    problems: list[str] = field(default_factory=list)
    stderr_tail: str = ""
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- parsing


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table in ``text`` as (header cells, body rows)."""
    tables: list[tuple[list[str], list[list[str]]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|\s*-{3}", lines[i + 1]):
            header = _cells(lines[i])
            body: list[list[str]] = []
            i += 2
            while i < len(lines) and lines[i].startswith(("|", "<!--")):
                if lines[i].startswith("<!--"):
                    # A comment (e.g. a failed attempt) inside a table does not end it.
                    while i < len(lines) and "-->" not in lines[i]:
                        i += 1
                else:
                    body.append(_cells(lines[i]))
                i += 1
            tables.append((header, body))
            continue
        i += 1
    return tables


def rows_from_output(suite: str, text: str) -> list[Row]:
    """The suite's rows, whatever the shape of its tables (three shapes exist)."""
    rows: list[Row] = []
    for header, body in parse_tables(text):
        if header[0].startswith("receivers"):  # bench_headoffice: one row per receiver count
            one: float | None = None
            for c in body:
                mbs = _num(c[2])
                one = mbs if one is None else one
                rows.append(Row(
                    suite, f"head-office receivers in one shared group: {c[0]} (range {c[3]} MB/s)",
                    f"{c[1]} packets/s, {c[2]} MB/s", f"plain subscribers {c[4]} MB/s; plain + fsync "
                    f"per chunk {c[6]} MB/s", f"{c[5]} / {c[7]} (x{(mbs or 0) / (one or 1):.2f} of 1 receiver)",
                    c[8] or "(reported: scaling)"))
        elif header[0].startswith("store-and-forward"):  # bench_uplink --bridge
            by_fault = {c[1].split(" (")[0]: c for c in body if c[0].startswith("local mosquitto")}
            ours = next((c for c in body if c[0].startswith("Rekam")), None)
            for fault, c in by_fault.items():
                rows.append(Row(suite, f"mosquitto bridge with persistence, outage then fault: {fault}",
                                f"delivered {c[2]}; drain {c[4]}", f"memory {c[3]}", "-",
                                "(peer comparison)"))
            if ours is not None and "kill -9" in by_fault:
                peer = by_fault["kill -9"]
                rows.append(Row(
                    suite, f"{header[0]}: power cut (kill -9) before the link returns, Rekam uplink "
                    "+ journal vs mosquitto bridge", f"delivered {ours[2]}; {ours[3]}; drain {ours[4]}",
                    f"bridge delivered {peer[2]}; {peer[3]}", f"{_num(ours[2]) or 0:.0f} vs "
                    f"{_num(peer[2]) or 0:.0f} packets delivered", "no packet lost"))
                rows[-1].result = "pass" if _lost(ours[2]) == 0 else "miss"
        elif len(header) >= 5:
            for c in body:
                c = (c + [""] * 5)[:5]
                rows.append(Row(suite, *c))
    for r in rows:
        if not r.result or r.result == "reported":
            r.result = judge(r.value, r.ratio, r.target)
        if not r.baseline.strip():
            r.baseline = "(none measured: absolute target)"
        if not r.ratio.strip() and r.result in ("pass", "miss"):
            r.ratio = _ratio_to_target(r.value, r.target)
        if not r.ratio.strip():
            r.ratio = "n/a (the suite gives none)"
    return rows


def _lost(delivered: str) -> int:
    m = re.match(r"\s*(\d+)\s*/\s*(\d+)", delivered)
    return int(m.group(2)) - int(m.group(1)) if m else -1


_NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_UNITS = {"ms": 1e-3, "us": 1e-6, "s": 1.0, "b": 1.0, "kib": 1024.0, "kb": 1e3, "mib": 2.0**20,
          "mb": 1e6, "gb": 1e9, "mib/s": 2.0**20, "mb/s": 1e6, "frames/s": 1.0}


def _num(text: str) -> float | None:
    m = _NUM.search(text)
    return float(m.group().replace(",", "")) if m else None


def _quantities(text: str) -> list[tuple[float, str]]:
    return [(float(m.group(1).replace(",", "")), (m.group(2) or "").lower())
            for m in re.finditer(r"(-?\d[\d,]*(?:\.\d+)?)\s*(ms|us|s|B|KiB|kB|MiB/s|MB/s|MiB|MB|GB|frames/s)?\b",
                                 text)]


def judge(value: str, ratio: str, target: str) -> str:
    """pass/miss when the target is a plain comparison the row answers, else "reported"."""
    t = target.strip()
    if "not met" in value or "not met" in ratio:
        return "miss"
    m = re.match(r"^within\s+\d+%.*\(([\d.]+)-([\d.]+)\)", t)
    if m:
        r = _num(ratio)
        return "reported" if r is None else ("pass" if float(m.group(1)) <= r <= float(m.group(2)) else "miss")
    m = re.match(r"^(>=|<=|<|>)\s*(\d[\d,]*(?:\.\d+)?)\s*(%|x|ms|s|KiB|MiB|MB|frames/s)?(.*)$", t)
    if not m or "+" in m.group(4):
        return "reported"
    op, limit, unit = m.group(1), float(m.group(2).replace(",", "")), (m.group(3) or "")
    if unit in ("%", "x", ""):
        got = _num(ratio)
        if got is None:
            return "reported"
        if unit == "%":
            limit /= 100
            got = got / 100 if "%" in ratio else got
    else:
        scale = _UNITS[unit.lower()]
        found = [v * _UNITS.get(u, 0.0) / scale for v, u in _quantities(value) if u]
        if not found:
            return "reported"
        # "first / max" style values: the largest is the one a ceiling must hold for, the
        # smallest the one a floor must.
        got = max(found) if op in ("<=", "<") else min(found)
    ok = {">=": got >= limit, "<=": got <= limit, "<": got < limit, ">": got > limit}[op]
    return "pass" if ok else "miss"


def _ratio_to_target(value: str, target: str) -> str:
    m = re.match(r"^(<=|<)\s*(\d+(?:\.\d+)?)\s*(ms|s|KiB|MiB|MB)", target.strip())
    found = [v * _UNITS.get(u, 0.0) for v, u in _quantities(value) if u]
    if not m or not found:
        return "-"
    return f"{max(found) / (float(m.group(2)) * _UNITS[m.group(3).lower()]):.2f} of target"


# ----------------------------------------------------------------------------- running


def run_suite(suite: Suite, quick: bool, log_dir: Path) -> tuple[SuiteRun, list[Row]]:
    """Run one suite's script and parse its rows."""
    argv = [sys.executable, str(BENCH / suite.script), *(suite.quick if quick else suite.full)]
    if quick and suite.name == "uplink":
        argv = [sys.executable, str(BENCH / "run.py"), "--tiny-uplink", *suite.quick]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=suite.timeout_s,
                             check=False)
        stdout, stderr, rc = out.stdout, out.stderr, out.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr, rc = f"timed out after {suite.timeout_s:.0f} s", -1
    seconds = time.perf_counter() - t0
    (log_dir / f"{suite.name}.out.md").write_text(stdout)
    (log_dir / f"{suite.name}.err.txt").write_text(stderr)
    rows = rows_from_output(suite.name, stdout)
    failures = [f"{suite.name}: {m.group(1).strip()}"
                for m in re.finditer(r"<!--\s*(\S+ failed\b.*?)-->", stdout, re.S)]
    # A case that failed once and then passed on its retry is a note, not a broken suite.
    problems = [f for f in failures if "(attempt 1)" not in f]
    notes = [f for f in failures if "(attempt 1)" in f]
    if rc != 0:
        problems.append(f"{suite.name}: exit {rc}")
    if len(rows) < suite.min_rows:
        problems.append(f"{suite.name}: {len(rows)} rows, expected at least {suite.min_rows}")
    shown = [str(Path(a).relative_to(ROOT)) if a.startswith(str(ROOT)) else a for a in argv[1:]]
    run = SuiteRun(suite.name, shlex.join(shown), round(seconds, 1), rc, len(rows), problems,
                   stderr[-1500:] if rc != 0 else "", notes)
    return run, rows


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    def sh(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        except OSError:
            return ""
    return {"nproc": sh("nproc"), "lscpu": "\n".join(sh("lscpu").splitlines()[:10]),
            "python": platform.python_version(), "platform": platform.platform(),
            "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def write_markdown(path: Path, doc: dict[str, Any]) -> None:
    """bench-results.md: machine, command, one table, then the problems."""
    m = doc["machine"]
    lines = [f"# Rekam benchmark results ({'quick smoke: sizes too small to quote' if doc['quick'] else 'full'})",
             "", f"Command: `{doc['command']}`  ", f"Started {doc['started']}, took {doc['seconds']:.0f} s. "
             f"Machine: {m['nproc']} CPUs, Python {m['python']}, {m['platform']}, load average at start "
             f"{m['loadavg_at_start']}.", "", "```", m["lscpu"], "```", "",
             "| suite | figure | value | plain baseline (same run) | ratio | target | result |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in doc["rows"]:
        mark = f"**{r['result']}**" if r["result"] == "miss" else r["result"]
        lines.append(f"| {r['suite']} | {r['figure']} | {r['value']} | {r['baseline']} | {r['ratio']} "
                     f"| {r['target']} | {mark} |")
    lines += ["", "| suite | command | seconds | exit | rows |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {s['name']} | `{s['command']}` | {s['seconds']} | {s['returncode']} | {s['rows']} |"
              for s in doc["suites"]]
    problems = [p for s in doc["suites"] for p in s["problems"]]
    if problems:
        lines += ["", "Problems:", *[f"- {p}" for p in problems]]
    notes = [n for s in doc["suites"] for n in s["notes"]]
    if notes:
        lines += ["", "Retried (failed once, then passed):", *[f"- {n}" for n in notes]]
    path.write_text("\n".join(lines) + "\n")


def tiny_uplink(args: list[str]) -> int:
    """bench_uplink's main with every backlog capped at TINY_UPLINK_PACKETS packets (smoke only)."""
    sys.path.insert(0, str(BENCH))
    import bench_uplink

    nominal = bench_uplink.sizes_for

    def capped(n: int, seed: int) -> list[int]:
        return nominal(min(n, TINY_UPLINK_PACKETS), seed)

    bench_uplink.sizes_for = capped
    sys.argv = [str(BENCH / "bench_uplink.py"), *args]
    return int(bench_uplink.main())


def main(argv: list[str] | None = None) -> int:
    """Run the suites; exit 1 when a suite broke (a missed target is not a failure)."""
    raw = sys.argv[1:] if argv is None else argv
    if raw[:1] == ["--tiny-uplink"]:
        return tiny_uplink(raw[1:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not figures")
    ap.add_argument("--out", default="bench-results", help="directory for bench-results.md/.json")
    ap.add_argument("--only", default="", help="comma-separated suites: " + ", ".join(s.name for s in SUITES))
    ap.add_argument("--jobs", type=int, default=0, help="suites at once (default: all with --quick, else 1)")
    args = ap.parse_args(argv)
    chosen = [s for s in SUITES if not args.only or s.name in args.only.split(",")]
    unknown = set(filter(None, args.only.split(","))) - {s.name for s in SUITES}
    if unknown:
        ap.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    out = Path(args.out)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    jobs = args.jobs or (len(chosen) if args.quick else 1)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    info = machine()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda s: run_suite(s, args.quick, logs), chosen))
    doc: dict[str, Any] = {
        "command": shlex.join(["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick, "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 1), "machine": info,
        "suites": [asdict(r) for r, _ in results],
        "rows": [asdict(row) for _, rows in results for row in rows],
    }
    (out / "bench-results.json").write_text(json.dumps(doc, indent=2) + "\n")
    write_markdown(out / "bench-results.md", doc)
    problems = [p for r, _ in results for p in r.problems]
    print(f"{len(doc['rows'])} rows from {len(results)} suites in {doc['seconds']:.0f} s -> "
          f"{out / 'bench-results.md'}; misses: {sum(r['result'] == 'miss' for r in doc['rows'])}; "
          f"problems: {len(problems)}")
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
