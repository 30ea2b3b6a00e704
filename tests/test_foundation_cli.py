"""The rekam command line: help, version, config check, and one-line errors with exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "systemd" / "agent.toml.example"


def rekam(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("REKAM_CONFIG", "STATE_DIRECTORY")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=60,
    )


def test_help_lists_every_subcommand() -> None:
    out = rekam("--help")
    assert out.returncode == 0
    for name, _ in COMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
def test_each_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "usage: rekam" in capsys.readouterr().out


def test_version() -> None:
    out = rekam("version")
    assert out.returncode == 0
    assert out.stdout.startswith("rekam 0.")


def test_example_config_passes_check() -> None:
    out = rekam("config", "check", "--config", str(EXAMPLE))
    assert out.returncode == 0, out.stderr
    assert "OK" in out.stdout
    assert "samarinda-ilir-01" in out.stdout


def test_rekam_config_env_overrides_default(tmp_path: Path) -> None:
    out = rekam("config", "check", env={"REKAM_CONFIG": str(EXAMPLE)})
    assert out.returncode == 0, out.stderr


def one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


def test_unknown_subcommand() -> None:
    line = one_line_error(rekam("frobnicate"))
    assert "frobnicate" in line


def test_missing_config_file(tmp_path: Path) -> None:
    line = one_line_error(rekam("config", "check", "--config", str(tmp_path / "nope.toml")))
    assert "nope.toml" in line and "not found" in line


def test_config_is_a_directory(tmp_path: Path) -> None:
    line = one_line_error(rekam("config", "check", "--config", str(tmp_path)))
    assert "directory" in line


def test_unreadable_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[station]\nid = "x"\n')
    cfg.chmod(0o000)
    tmp_path.chmod(0o755)
    # Root reads anything, so drop the effective uid (reversibly) to meet the real EACCES.
    dropped = os.geteuid() == 0
    if dropped:
        os.seteuid(65534)
    try:
        code = main(["config", "check", "--config", str(cfg)])
    finally:
        if dropped:
            os.seteuid(0)
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "permission denied" in err[0] and str(cfg) in err[0]


def test_bad_toml_reports_line_and_column(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[station]\nid = "x"\nlanguage = \n')
    line = one_line_error(rekam("config", "check", "--config", str(cfg)))
    assert "line 3" in line and "column" in line and str(cfg) in line


def test_wrong_type_names_file_key_and_expectation(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[uplink]\nport = "abc"\n')
    line = one_line_error(rekam("config", "check", "--config", str(cfg)))
    assert line == f'rekam: error: {cfg}: [uplink] port: expected an integer 1-65535, got "abc"'


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[uplink]\nprot = 1883\n')
    line = one_line_error(rekam("config", "check", "--config", str(cfg)))
    assert "[uplink] prot: unknown key" in line


def test_unusable_state_dir_refuses_to_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o777)
    state.chmod(0o777)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[station]\nstate_dir = "{state}"\n[uplink]\nenabled = false\n')
    line = one_line_error(rekam("run", "--config", str(cfg)))
    assert "writable by group or others" in line and "chmod 700" in line


def test_state_dir_that_is_a_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("not a dir")
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[station]\nstate_dir = "{state}"\n')
    line = one_line_error(rekam("run", "--config", str(cfg)))
    assert "not a directory" in line
