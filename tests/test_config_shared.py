"""The agent's and head office's configuration files are read by the same public helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, load_config
from agent.headoffice.config import load_headoffice_config, parse_headoffice_config


@pytest.mark.parametrize("loader", [load_config, load_headoffice_config])
def test_directory_is_one_clear_error_for_both(loader: object, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory, expected a TOML file"):
        loader(tmp_path)  # type: ignore[operator]


@pytest.mark.parametrize("loader", [load_config, load_headoffice_config])
def test_bad_utf8_and_bad_toml_name_the_file(loader: object, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"[x]\nname = \"\xff\"\n")
    with pytest.raises(ConfigError, match=rf"{bad}: not UTF-8 text \(byte"):
        loader(bad)  # type: ignore[operator]
    bad.write_text("[broker\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{bad}: invalid TOML"):
        loader(bad)  # type: ignore[operator]


def test_headoffice_unknown_section_and_non_table_use_the_shared_wording() -> None:
    with pytest.raises(ConfigError, match=r"\[nonsense\]: unknown section \(known: broker"):
        parse_headoffice_config({"nonsense": {}})
    with pytest.raises(ConfigError, match=r"broker: expected a table \[broker\], got 3"):
        parse_headoffice_config({"broker": 3})
    with pytest.raises(ConfigError, match=r"\[stations.s1\]: expected a table, got \"x\""):
        parse_headoffice_config({"stations": {"s1": "x"}})
