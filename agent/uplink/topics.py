"""The MQTT topic tree of one station (docs/protocol.md): ``rekam/v1/{station_id}/...``.

Kept in one place so the station, head office and the tests spell every topic the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROTOCOL_VERSION = 1
ROOT = f"rekam/v{PROTOCOL_VERSION}"

# Same rule as [station] id in agent/config.py; it must also be a single topic level, so no
# "/", "+", "#" or NUL can reach a topic through a station id.
STATION_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

# Leaves the station publishes and the ones head office publishes to it.
STATION_TO_HO = ("status", "packet", "telemetry", "event", "print/result")
HO_TO_STATION = ("ack", "print/order", "command")

CONTENT_TYPE_CHUNK = "application/vnd.rekam.packet-chunk"
CONTENT_TYPE_JSON = "application/json"


class TopicError(ValueError):
    """A station id or topic that does not fit the topic tree."""


def check_station_id(station_id: str) -> str:
    """Return ``station_id`` when it is a valid single topic level, else raise TopicError."""
    if not STATION_ID_RE.fullmatch(station_id):
        raise TopicError(f"station id {station_id!r} is not a valid topic level")
    return station_id


@dataclass(frozen=True)
class Topics:
    """Every topic of one station."""

    station_id: str

    def __post_init__(self) -> None:
        check_station_id(self.station_id)

    @property
    def base(self) -> str:
        """``rekam/v1/{station_id}``."""
        return f"{ROOT}/{self.station_id}"

    def leaf(self, name: str) -> str:
        """Full topic of one leaf (for example ``ack`` or ``print/order``)."""
        if name not in STATION_TO_HO and name not in HO_TO_STATION:
            raise TopicError(f"unknown topic leaf {name!r}")
        return f"{self.base}/{name}"

    @property
    def status(self) -> str:
        """Retained online/offline status (the Last Will says offline)."""
        return self.leaf("status")

    @property
    def packet(self) -> str:
        """Packet chunks and ack queries."""
        return self.leaf("packet")

    @property
    def telemetry(self) -> str:
        """Periodic telemetry (QoS 0)."""
        return self.leaf("telemetry")

    @property
    def event(self) -> str:
        """Journal events (QoS 1)."""
        return self.leaf("event")

    @property
    def print_result(self) -> str:
        """Outcome of print orders."""
        return self.leaf("print/result")

    @property
    def ack(self) -> str:
        """Head office's signed packet acks."""
        return self.leaf("ack")

    @property
    def print_order(self) -> str:
        """Head office's signed print orders."""
        return self.leaf("print/order")

    @property
    def command(self) -> str:
        """Head office's signed commands."""
        return self.leaf("command")

    def subscriptions(self) -> list[str]:
        """Topics the station subscribes to."""
        return [self.leaf(name) for name in HO_TO_STATION]

    def incoming_leaf(self, topic: str) -> str | None:
        """The head-office leaf name of ``topic`` when it is one of ours, else None."""
        prefix = self.base + "/"
        if not topic.startswith(prefix):
            return None
        name = topic[len(prefix):]
        return name if name in HO_TO_STATION else None


def parse_station_topic(topic: str) -> tuple[str, str]:
    """Split ``rekam/v1/{station}/{leaf}`` into (station_id, leaf); raise TopicError otherwise."""
    parts = topic.split("/", 3)
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != ROOT:
        raise TopicError(f"topic {topic!r} is not under {ROOT}/")
    station_id, name = parts[2], parts[3]
    check_station_id(station_id)
    if name not in STATION_TO_HO and name not in HO_TO_STATION:
        raise TopicError(f"topic {topic!r} has an unknown leaf")
    return station_id, name
