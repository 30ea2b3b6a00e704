"""Imports point down: agent -> drivers -> firmware_protocols, never up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "firmware_protocols": ("agent", "drivers"),
    "drivers": ("agent",),
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_imports(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imports_of(path) & set(FORBIDDEN[package])
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, offenders


def test_codecs_do_no_io() -> None:
    io_modules = {"socket", "serial", "usb", "threading", "time", "logging", "subprocess", "os", "fcntl", "select"}
    offenders = []
    for path in sorted((ROOT / "firmware_protocols").rglob("*.py")):
        bad = imports_of(path) & io_modules
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, offenders


def test_run_command_imports_stay_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, agent.cli; agent.cli.build_parser(); "
        "heavy = [m for m in ('paho', 'PIL', 'numpy', 'cryptography', 'usb', 'serial', 'sqlite_utils') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"CLI start-up imports heavy modules: {out.stdout.strip()}"
