"""Configuration: typed frozen objects, strict checks, docs generated from the code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import Config, ConfigError, load_config, parse_config, render_docs

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_valid_and_frozen() -> None:
    cfg = parse_config({})
    assert cfg.uplink.port == 8883
    assert cfg.station.language == "id"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.uplink.port = 1  # type: ignore[misc]


def test_docs_page_matches_the_code() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page == render_docs(), "run: rekam config docs > docs/configuration.md"


def test_every_key_is_documented() -> None:
    page = render_docs()
    for f in dataclasses.fields(Config):
        if f.name == "source":
            continue
        assert f"[{f.name}" in page


def test_devices_table_of_tables() -> None:
    cfg = parse_config({"devices": {"fp": {"driver": "zfm", "url": "emu://zfm", "options": {"baudrate": 57600}}}})
    assert cfg.devices["fp"].driver == "zfm"
    assert cfg.devices["fp"].options["baudrate"] == 57600


def test_device_missing_driver_is_named() -> None:
    with pytest.raises(ConfigError, match=r"\[devices.fp\] driver: required key is missing"):
        parse_config({"devices": {"fp": {"url": "x"}}})


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"station": {"language": "fr"}}, "[station] language: expected one of id, en"),
        ({"station": {"district_code": "12"}}, "[station] district_code: expected a value matching"),
        ({"uplink": {"port": 0}}, "[uplink] port: expected an integer 1-65535, got 0"),
        ({"uplink": {"port": True}}, "[uplink] port: expected an integer 1-65535, got true"),
        ({"uplink": {"enabled": "yes"}}, "[uplink] enabled: expected true or false"),
        ({"journal": {"high_watermark": 1.5}}, "[journal] high_watermark: expected a number 0.0-1.0"),
        ({"uplink": 3}, "uplink: expected a table"),
        ({"nosuch": {}}, "[nosuch]: unknown section"),
        ({"uplink": {"ca_file": ""}}, "[uplink] ca_file: expected a file path string"),
        ({"devices": {"fp": {"driver": "zfm", "options": {"a": {"b": 1}}}}}, "options.a: expected a string"),
    ],
)
def test_errors_name_key_and_expectation(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(doc, source=Path("/etc/rekam/agent.toml"))
    assert str(exc.value).startswith("/etc/rekam/agent.toml: ")
    assert message in str(exc.value)


def test_non_utf8_file(tmp_path: Path) -> None:
    p = tmp_path / "a.toml"
    p.write_bytes(b"\xff\xfe[station]\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(p)


def test_state_directory_env_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/rekam-x:/other")
    assert parse_config({}).state_dir == Path("/var/lib/rekam-x")


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
))
def test_arbitrary_documents_raise_only_config_error(doc: object) -> None:
    data = doc if isinstance(doc, dict) else {"station": doc}
    try:
        parse_config({"uplink": data})
    except ConfigError:
        pass
