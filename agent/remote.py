"""Signed commands from head office (``rekam/v1/{station}/command``), and their outcomes.

The uplink verifies each envelope (signature, station, expiry, replay) and hands the body
here. Only four actions exist; anything else is refused. Every command is answered on ``event``
(kind ``command_result``, through the journal, so the answer survives an outage) with its id,
action and outcome; it never carries biometric data.

- ``diagnostics``: publish a diagnostics snapshot now (the checks of ``rekam diag``).
- ``telemetry``: publish telemetry now.
- ``set``: change settings from a short whitelist. They are validated exactly as the config
  file is, kept in ``STATE_DIR/settings.json`` and applied at the next start (the daemon's
  config objects are immutable by design; the answer says so).
- ``rotate_keys``: install a new head-office key bundle; it must be endorsed by the current
  signing key (agent.keys.trust_headoffice), so a forged bundle cannot take over the station.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.config import Config, ConfigError, parse_config

log = logging.getLogger(__name__)

ACTIONS = ("diagnostics", "telemetry", "set", "rotate_keys")
# section -> keys head office may change remotely.
SETTABLE: dict[str, tuple[str, ...]] = {
    "uplink": ("telemetry_seconds", "bandwidth_limit_bps"),
    "quality": ("finger_threshold", "iris_threshold", "face_threshold", "retries"),
    "printer": ("low_stock_days",),
}
SETTINGS_FILE = "settings.json"


def settings_path(config: Config) -> Path:
    """Where remotely set values are kept."""
    return config.state_dir / SETTINGS_FILE


def check_settings(config: Config, changes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate ``{"section.key": value}`` against the whitelist and the config rules."""
    out: dict[str, dict[str, Any]] = {}
    for dotted, value in changes.items():
        section, _, name = str(dotted).partition(".")
        if name not in SETTABLE.get(section, ()):
            allowed = ", ".join(f"{s}.{k}" for s, keys in SETTABLE.items() for k in keys)
            raise ValueError(f"{dotted}: not settable remotely (allowed: {allowed})")
        out.setdefault(section, {})[name] = value
    # The same checks as the config file: ranges, types.
    parse_config(out, source=Path("<head-office command>"))
    return out


def apply_settings(config: Config) -> Config:
    """The config with the remotely set values of ``STATE_DIR/settings.json`` applied."""
    path = settings_path(config)
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return config
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, type(exc).__name__)
        return config
    try:
        sections = check_settings(config, {f"{s}.{k}": v for s, kv in stored.items() for k, v in kv.items()})
    except (ValueError, ConfigError, AttributeError) as exc:
        log.warning("ignoring invalid %s: %s", path, exc)
        return config
    replaced = {name: dataclasses.replace(getattr(config, name), **values) for name, values in sections.items()}
    return dataclasses.replace(config, **replaced)


class RemoteCommands:
    """The uplink's ``command`` handler."""

    def __init__(self, config: Config, *, add_event: Callable[[str, dict[str, Any]], int],
                 diagnostics: Callable[[], list[dict[str, Any]]],
                 telemetry_now: Callable[[], None], keys_dir: Path) -> None:
        self.config = config
        self.add_event = add_event
        self.diagnostics = diagnostics
        self.telemetry_now = telemetry_now
        self.keys_dir = keys_dir

    def handle(self, body: dict[str, Any]) -> None:
        """Carry out one verified command and journal its outcome as an event."""
        command_id = str(body.get("id", ""))[:64]
        action = body.get("action")
        params = body.get("params", {})
        try:
            if action not in ACTIONS:
                raise ValueError(f"unknown action {str(action)[:40]!r} (known: {', '.join(ACTIONS)})")
            if not isinstance(params, dict):
                raise ValueError("params must be an object")
            detail = getattr(self, f"_{action}")(params)
            outcome = "done"
        except (ValueError, ConfigError) as exc:
            outcome, detail = "refused", {"reason": str(exc)[:300]}
        except Exception as exc:  # a failing command is answered, never fatal
            log.exception("command %s (%s) failed", command_id, action)
            outcome, detail = "failed", {"reason": type(exc).__name__}
        log.info("head-office command %s %s: %s", command_id, action, outcome)
        self.add_event("command_result", {"command_id": command_id, "action": str(action)[:40],
                                          "outcome": outcome, **detail})

    def _diagnostics(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"checks": self.diagnostics()}

    def _telemetry(self, params: dict[str, Any]) -> dict[str, Any]:
        self.telemetry_now()
        return {}

    def _set(self, params: dict[str, Any]) -> dict[str, Any]:
        sections = check_settings(self.config, params)
        path = settings_path(self.config)
        try:
            current = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            current = {}
        for section, values in sections.items():
            current.setdefault(section, {}).update(values)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(current, indent=2, sort_keys=True), encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        return {"changed": sorted(params), "applies": "at the next start of the agent"}

    def _rotate_keys(self, params: dict[str, Any]) -> dict[str, Any]:
        from agent.keys import KeyStoreError, trust_headoffice

        bundle = params.get("bundle")
        if not isinstance(bundle, str) or len(bundle) > 16384:
            raise ValueError("params.bundle must be the base64 of a key bundle")
        try:
            raw = base64.b64decode(bundle, validate=True)
            installed = trust_headoffice(self.keys_dir, raw)
        except (binascii.Error, KeyStoreError) as exc:
            raise ValueError(f"bundle refused: {exc}") from exc
        return {"signing_kid": installed.signing_kid, "encryption_kid": installed.encryption_kid}
