"""The simulated station: a real mosquitto, a head-office listener and the station, on loopback.

It grows as capabilities land; each step says what it did, and the summary counts only what
was observed (nothing is assumed delivered).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import __version__
from agent.testbed.mosquitto import INSTALL_HINT, BrokerError, Mosquitto, find_mosquitto


class DemoError(Exception):
    """The demo cannot run here (the message says how to fix it)."""


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, flush=True)


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo with the parsed CLI arguments; return the exit code."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    if find_mosquitto() is None:
        raise DemoError(f"the demo needs mosquitto; {INSTALL_HINT}")
    workdir = Path(args.workdir or "demo-output").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    station_id = "demo-station-01"
    summary: dict[str, Any] = {"version": __version__, "workdir": str(workdir), "station_id": station_id}

    broker = Mosquitto(workdir / "broker")
    try:
        broker.start()
    except BrokerError as exc:
        raise DemoError(str(exc)) from exc
    _say(args, f"[demo] mosquitto listening on 127.0.0.1:{broker.port} (log {broker.log_path})")
    try:
        seen: list[tuple[str, dict[str, Any]]] = []
        got = threading.Condition()

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            with got:
                seen.append((msg.topic, json.loads(msg.payload)))
                got.notify_all()

        head = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-headoffice",
                           protocol=mqtt.MQTTv5)
        head.on_message = on_message
        head.connect("127.0.0.1", broker.port)
        head.subscribe("rekam/v1/+/status", qos=1)
        head.loop_start()

        status_topic = f"rekam/v1/{station_id}/status"
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        station = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=station_id, protocol=mqtt.MQTTv5)
        station.will_set(status_topic, json.dumps({"v": 1, "state": "offline"}), qos=1, retain=True)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        station.connect("127.0.0.1", broker.port, keepalive=5, clean_start=False, properties=props)
        station.loop_start()
        station.publish(status_topic, json.dumps(
            {"v": 1, "state": "online", "version": __version__, "started_at": started_at}
        ), qos=1, retain=True).wait_for_publish(5)

        def wait_for(state: str) -> bool:
            deadline = time.monotonic() + 10
            with got:
                while time.monotonic() < deadline:
                    if any(t == status_topic and p.get("state") == state for t, p in seen):
                        return True
                    got.wait(0.2)
            return False

        online = wait_for("online")
        _say(args, f"[demo] station {station_id} published status online -> head office saw it: {online}")
        # Drop the station's TCP connection without DISCONNECT: the broker must publish the Last Will.
        station.loop_stop()
        sock = station.socket()
        if sock is not None:
            sock.close()
        offline = wait_for("offline")
        _say(args, f"[demo] station link cut without goodbye -> head office saw Last Will 'offline': {offline}")
        head.loop_stop()
        head.disconnect()
        summary.update({
            "broker_port": broker.port,
            "status_online_seen": online,
            "last_will_seen": offline,
            "applicants_requested": args.applicants,
            "recorded": 0,
            "note": "enrollment, uplink and printing join this demo as their issues land",
        })
    finally:
        broker.stop()
    ok = bool(summary["status_online_seen"] and summary["last_will_seen"])
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print("[demo] summary:")
        for k, v in summary.items():
            print(f"  {k}: {v}")
    return 0 if ok else 1
