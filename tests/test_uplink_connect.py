"""Connecting: broker down at start, refused CONNACK, user name and password from a file."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.journal import Journal
from agent.testbed.mosquitto import free_port
from agent.uplink.client import Uplink, UplinkConfigError
from tests.test_uplink_support import AS_ROOT, ho_public_keys, journal_cfg, uplink_cfg, wait_for


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    (tmp_path / "station").mkdir(mode=0o700)
    j = Journal.open(tmp_path / "station", journal_cfg())
    yield j
    j.close()


def make(journal: Journal, port: int, **over: Any) -> Uplink:
    return Uplink(uplink_cfg(port, **over), station_id="st-1", journal=journal,
                  chunk_bytes=65536, public_keys=ho_public_keys, version="test")


def test_broker_down_at_start_then_up(mosquitto_factory: Any, journal: Journal,
                                      caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    up = make(journal, port)
    up.start()
    try:
        wait_for(lambda: up.link_state == "down" and up.last_error is not None, 10,
                 "a refused connect to be noticed")
        assert "connect" in (up.last_error or "")
        wait_for(lambda: up.snapshot()["connect_attempts"] >= 2, 10, "retries with backoff")
        assert up.healthy()
        broker = mosquitto_factory("late", port=port, extra=AS_ROOT)
        broker.start()
        wait_for(lambda: up.link_state == "connected", 15, "the connection once the broker is up")
    finally:
        up.stop()
    warnings = [r for r in caplog.records if r.name == "agent.uplink.client"
                and r.levelname == "WARNING"]
    assert len(warnings) == 1  # one line for the outage, not one per attempt


def test_refused_connack_is_not_carried_on_from(mosquitto_factory: Any,
                                                journal: Journal) -> None:
    broker = mosquitto_factory("closed", allow_anonymous=False, extra=AS_ROOT)
    broker.start()
    up = make(journal, broker.port)
    up.start()
    try:
        wait_for(lambda: up.snapshot()["connect_attempts"] >= 2, 10, "refusals and retries")
        assert up.link_state != "connected" and up.connects == 0
        assert "refused" in (up.last_error or "") or "CONNACK" in (up.last_error or "")
    finally:
        up.stop()


def test_user_name_and_password_file(mosquitto_factory: Any, journal: Journal,
                                     tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "st-1", "s3cret-pw"],
                   check=True, capture_output=True)
    broker = mosquitto_factory("auth", allow_anonymous=False,
                               extra=f"password_file {passwd}\n{AS_ROOT}")
    broker.start()
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret-pw\n")
    up = make(journal, broker.port, username="st-1", password_file=secret)
    up.start()
    try:
        wait_for(lambda: up.link_state == "connected", 10, "login with the password file")
    finally:
        up.stop()
    wrong = tmp_path / "wrong-password"
    wrong.write_text("guess\n")
    bad = make(journal, broker.port, username="st-1", password_file=wrong)
    bad.start()
    try:
        wait_for(lambda: bad.snapshot()["connect_attempts"] >= 2, 10, "refusals")
        assert bad.connects == 0
    finally:
        bad.stop()
    with pytest.raises(UplinkConfigError, match="password_file"):
        make(journal, broker.port, username="st-1", password_file=tmp_path / "missing")
