"""Head-office commands: whitelist, validation, persistence, key rotation, answers as events."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.config import parse_config
from agent.keys import generate_headoffice_keys, keys_dir, load_headoffice_public, trust_headoffice
from agent.remote import RemoteCommands, apply_settings, settings_path


class Events:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def add(self, kind: str, payload: dict[str, Any]) -> int:
        self.rows.append((kind, payload))
        return len(self.rows)


def make(tmp_path: Path) -> tuple[RemoteCommands, Events, list[int]]:
    cfg = parse_config({"station": {"state_dir": str(tmp_path / "state")}})
    (tmp_path / "state").mkdir(mode=0o700)
    events, pokes = Events(), []
    remote = RemoteCommands(cfg, add_event=events.add, diagnostics=lambda: [{"name": "disk", "status": "ok"}],
                            telemetry_now=lambda: pokes.append(1), keys_dir=keys_dir(cfg.state_dir))
    return remote, events, pokes


def body(action: str, params: Any = None) -> dict[str, Any]:
    return {"type": "command", "id": "cmd-1", "action": action, "params": params if params is not None else {}}


def test_diagnostics_and_telemetry(tmp_path: Path) -> None:
    remote, events, pokes = make(tmp_path)
    remote.handle(body("diagnostics"))
    remote.handle(body("telemetry"))
    assert events.rows[0] == ("command_result", {"command_id": "cmd-1", "action": "diagnostics",
                                                 "outcome": "done", "checks": [{"name": "disk", "status": "ok"}]})
    assert events.rows[1][1]["outcome"] == "done" and pokes == [1]


@pytest.mark.parametrize(("action", "params", "reason"), [
    ("reboot", {}, "unknown action"),
    ("set", {"uplink.host": "evil.example"}, "not settable remotely"),
    ("set", {"quality.finger_threshold": 400}, "expected an integer 0-100"),
    ("set", {"uplink.bandwidth_limit_bps": "fast"}, "expected an integer"),
    ("set", [1, 2], "params must be an object"),
    ("rotate_keys", {"bundle": "not base64!"}, "bundle refused"),
])
def test_refused_commands_change_nothing(tmp_path: Path, action: str, params: Any, reason: str) -> None:
    remote, events, _ = make(tmp_path)
    remote.handle(body(action, params))
    kind, payload = events.rows[-1]
    assert kind == "command_result" and payload["outcome"] == "refused"
    assert reason in payload["reason"]
    assert not settings_path(remote.config).exists()


def test_set_persists_and_applies_at_next_start(tmp_path: Path) -> None:
    remote, events, _ = make(tmp_path)
    remote.handle(body("set", {"uplink.bandwidth_limit_bps": 250000, "quality.finger_threshold": 45}))
    assert events.rows[-1][1]["outcome"] == "done"
    path = settings_path(remote.config)
    assert path.stat().st_mode & 0o777 == 0o600
    cfg = apply_settings(remote.config)
    assert cfg.uplink.bandwidth_limit_bps == 250000 and cfg.quality.finger_threshold == 45
    assert cfg.uplink.host == remote.config.uplink.host
    path.write_text(json.dumps({"uplink": {"host": "evil.example"}}))
    assert apply_settings(remote.config) == remote.config  # a tampered file is ignored, not obeyed


def test_key_rotation_needs_the_old_keys_endorsement(tmp_path: Path) -> None:
    remote, events, _ = make(tmp_path)
    now = datetime.now(UTC)
    old = generate_headoffice_keys(tmp_path / "ho1", now=now)
    trust_headoffice(remote.keys_dir, (tmp_path / "ho1" / "headoffice_bundle.json").read_bytes())
    rogue = generate_headoffice_keys(tmp_path / "rogue", now=now)
    remote.handle(body("rotate_keys", {"bundle": base64.b64encode(
        (tmp_path / "rogue" / "headoffice_bundle.json").read_bytes()).decode()}))
    assert events.rows[-1][1]["outcome"] == "refused"
    assert load_headoffice_public(remote.keys_dir).signing_kid == old.public.signing_kid
    new = generate_headoffice_keys(tmp_path / "ho2", now=now, previous=old)
    remote.handle(body("rotate_keys", {"bundle": base64.b64encode(
        (tmp_path / "ho2" / "headoffice_bundle.json").read_bytes()).decode()}))
    assert events.rows[-1][1]["outcome"] == "done"
    assert load_headoffice_public(remote.keys_dir).signing_kid == new.public.signing_kid
    assert rogue.public.signing_kid != new.public.signing_kid


def test_command_through_the_broker_is_answered_at_head_office(tmp_path: Path, mosquitto: Any) -> None:
    from agent.headoffice.embedded import EmbeddedHeadOffice
    from agent.headoffice.orders import command
    from agent.keys import init_station_keys
    from agent.testbed.station import SimulatedStation

    st = SimulatedStation(tmp_path / "station", broker_port=mosquitto.port, uplink_enabled=True, printer=False)
    st.workdir.mkdir(parents=True)
    st.state_dir.mkdir(mode=0o700)
    kdir = keys_dir(st.state_dir)
    pub = init_station_keys(kdir)
    ho = EmbeddedHeadOffice.start(tmp_path / "ho", broker_port=mosquitto.port, stations={st.station_id: pub})
    try:
        st.prepare(headoffice_bundle=ho.bundle)
        st.start()
        time.sleep(1.0)
        topic, payload = command(ho.signer, st.station_id, "diagnostics", now=datetime.now(UTC))
        ho.send(topic, payload)
        deadline = time.monotonic() + 30
        results: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not results:
            results = [e for e in ho.receiver.storage.events(st.station_id, 100) if e.get("kind") == "command_result"]
            time.sleep(0.2)
        assert results, st.log_tail()
        # Replaying the very same signed message is refused by the station, not executed again.
        ho.send(topic, payload)
        time.sleep(2.0)
        again = [e for e in ho.receiver.storage.events(st.station_id, 100) if e.get("kind") == "command_result"]
        assert len(again) == 1
    finally:
        st.stop()
        ho.stop()
