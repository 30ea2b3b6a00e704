"""Store-and-forward uplink to head office over MQTT v5 (docs/protocol.md).

``make_component(config, daemon)`` builds the daemon component (agent/station.py calls it after
the journal's factory). It finds the journal as ``daemon.journal``, as
``daemon.parts["journal"].journal``, or as the ``journal`` attribute of a started component
named "journal".
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.config import Config
from agent.uplink.client import Uplink, UplinkConfigError, public_keys_from

__all__ = ["Uplink", "UplinkConfigError", "find_journal", "make_component"]


def find_journal(daemon: Any) -> Any:
    """The daemon's journal, or None when no journal component has started."""
    journal = getattr(daemon, "journal", None)
    if journal is not None:
        return journal
    part = getattr(daemon, "parts", {}).get("journal")
    if part is not None and getattr(part, "journal", None) is not None:
        return part.journal
    for component in getattr(daemon, "components", []):
        if getattr(component, "name", None) == "journal":
            return getattr(component, "journal", None)
    return None


def make_component(config: Config, daemon: Any) -> Uplink | None:
    """The uplink component for agent.daemon, or None when [uplink] enabled = false."""
    if not config.uplink.enabled:
        return None
    journal = find_journal(daemon)
    if journal is None:
        raise UplinkConfigError("the uplink needs the journal component to start first")
    from agent import __version__

    try:
        office_tz = ZoneInfo(config.station.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        office_tz = None
    return Uplink(
        config.uplink,
        station_id=config.station.id,
        journal=journal,
        chunk_bytes=config.journal.chunk_bytes,
        public_keys=public_keys_from(config.state_dir),
        version=__version__,
        office_tz=office_tz,
    )
