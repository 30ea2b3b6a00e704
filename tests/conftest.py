"""Shared test fixtures: hypothesis profiles and a real mosquitto on a free loopback port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from agent.testbed.mosquitto import Mosquitto, find_mosquitto

# "ci" keeps the suite inside its time budget; "dev" explores more; "fuzz" is for long runs.
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile("fuzz", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_mosquitto() -> None:
    """Skip locally when mosquitto is missing; in CI a missing broker is a failure."""
    if find_mosquitto() is None:
        if IN_CI:
            pytest.fail("mosquitto is not installed, and CI must run the MQTT tests")
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real mosquitto on a free 127.0.0.1 port, persistence and log under tmp_path."""
    require_mosquitto()
    broker = Mosquitto(tmp_path / "broker").start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[object]:
    """Build brokers with custom options (TLS, ACL, size limits); all stopped afterwards."""
    require_mosquitto()
    started: list[Mosquitto] = []

    def make(name: str = "broker", **kwargs: object) -> Mosquitto:
        broker = Mosquitto(tmp_path / name, **kwargs)  # type: ignore[arg-type]
        started.append(broker)
        return broker

    try:
        yield make
    finally:
        for broker in started:
            broker.stop()
