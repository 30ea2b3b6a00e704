"""Kernel-level link faults: a backlog drained while nftables cuts the station's link.

Runs INSIDE a private network namespace (``ip netns exec NS python -m
tests.reliability.netns_link WORKDIR PACKETS``; tests/test_reliability_netns.py creates the
namespace and deletes it afterwards), so its firewall rules and its loopback interface touch
nothing else on the machine. Everything talks over the namespace's own 127.0.0.1.

Unlike the user-space LinkProxy (tests/reliability/backlog.py), these faults happen in the
kernel's TCP stack, as on a real office link: dropped segments are retransmitted by TCP, a
reset comes from the "network" and not from the peer, and taking the interface down stalls
every connection at once. The broker gets a second listener used only by the station, so the
rules cut the station off while head office's own connection to the broker stays up (as in
the field: the office link fails, not head office).

Faults, in order, each while packets are still flowing: a short drop (2 s, shorter than the
keepalive: the TCP connection should survive it), TCP resets for 1.5 s (every packet and every
reconnect attempt answered with RST), the loopback interface down for 2 s (everything,
head office's connection included), and a long black hole (12 s > 1.5 x the station's 5 s
keepalive: a half-open connection the station must detect by itself). Afterwards every saved
packet must be stored at head office exactly once, verified, and the journal must pass its check.

Prints one JSON line (the result) on stdout as its last line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent.testbed.mosquitto import free_port
from agent.testbed.station import write_toml
from tests.reliability.harness import Office, StationProcess, station_config

TABLE = "rekamfault"
KEEPALIVE_SECONDS = 5
BLACKHOLE_SECONDS = 12.0  # > 1.5 x keepalive


def nft(*args: str) -> None:
    """Run one nft command; a failure is an error of the harness, not of the station."""
    subprocess.run(["nft", *args], check=True, capture_output=True, timeout=10)


class Firewall:
    """An nftables table in this namespace that can cut one TCP port (the station's listener)."""

    def __init__(self, port: int) -> None:
        self.port = port
        nft("add", "table", "inet", TABLE)
        # Both hooks: segments towards the broker (output) and replies (input) are both cut.
        for chain, hook in (("out", "output"), ("in", "input")):
            nft("add", "chain", "inet", TABLE, chain, f"{{ type filter hook {hook} priority 0; }}")

    def drop(self) -> None:
        """Black hole: every segment of the station's connection vanishes, no FIN, no RST."""
        for chain in ("out", "in"):
            nft("add", "rule", "inet", TABLE, chain, "tcp", "dport", str(self.port), "drop")
            nft("add", "rule", "inet", TABLE, chain, "tcp", "sport", str(self.port), "drop")

    def reset(self) -> None:
        """The network answers the station's segments (and SYNs) with TCP RST."""
        nft("add", "rule", "inet", TABLE, "out", "tcp", "dport", str(self.port), "reject", "with", "tcp", "reset")

    def clear(self) -> None:
        """Remove every rule: the link is back."""
        for chain in ("out", "in"):
            nft("flush", "chain", "inet", TABLE, chain)

    def close(self) -> None:
        """Delete the table."""
        subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, timeout=10, check=False)


def loopback(up: bool) -> None:
    """Take this namespace's loopback interface down or up."""
    subprocess.run(["ip", "link", "set", "lo", "up" if up else "down"], check=True, capture_output=True, timeout=10)


def run(workdir: Path, packets: int, drain_timeout: float = 120.0) -> dict[str, Any]:
    """Build ``packets`` packets with the link cut, drain them through kernel-level faults."""
    res: dict[str, Any] = {"packets": packets, "faults": [], "violations": []}
    violations: list[str] = res["violations"]
    station_port = free_port()
    office = Office(workdir)
    firewall: Firewall | None = None
    station: StationProcess | None = None
    try:
        office.start(station_port=station_port, persistence=False,
                     extra=f"listener {station_port} 127.0.0.1")
        cfg = station_config(office.state_dir, broker_port=station_port, chunk_bytes=4096)
        cfg["uplink"]["keepalive_seconds"] = KEEPALIVE_SECONDS
        write_toml(office.config_path, cfg)
        firewall = Firewall(station_port)
        firewall.reset()  # the backlog is built while the link refuses
        t0 = time.monotonic()
        station = StationProcess({"config": str(office.config_path), "log": str(workdir / "station.log"),
                                  "seed": 23, "marker": "QZXNETNS", "count": packets, "max_photo": 6_000,
                                  "interval": 0, "linger": drain_timeout + 90, "drain": True},
                                 stderr=workdir / "station.err")
        if station.wait_for(lambda f: f[0] == "DONE", timeout=max(60.0, packets * 0.2)) is None:
            violations.append("the backlog was not built")
            return res
        res["saved"] = len(station.saved())
        res["build_s"] = round(time.monotonic() - t0, 1)
        firewall.clear()
        t1 = time.monotonic()

        def drained(timeout: float) -> bool:
            assert station is not None
            if any(f[0] == "DRAINED" for f in station.seen):
                return True
            return station.wait_for(lambda f: f[0] == "DRAINED", timeout=timeout) is not None

        def fault(name: str, start: Any, seconds: float, end: Any) -> None:
            # Let traffic flow first; a fault after the drain would prove nothing.
            if drained(0.4):
                return
            res["faults"].append(name)
            start()
            time.sleep(seconds)
            end()

        assert firewall is not None
        fault("drop 2 s (shorter than keepalive)", firewall.drop, 2.0, firewall.clear)
        fault("tcp reset 1.5 s", firewall.reset, 1.5, firewall.clear)
        fault("loopback down 2 s", lambda: loopback(False), 2.0, lambda: loopback(True))
        fault(f"black hole {BLACKHOLE_SECONDS:.0f} s (half-open)", firewall.drop, BLACKHOLE_SECONDS,
              firewall.clear)
        if not drained(drain_timeout):
            violations.append(f"the backlog did not drain within {drain_timeout:.0f} s of the last fault")
        res["drain_s"] = round(time.monotonic() - t1, 1)
        station.kill()
        violations += [f"journal check: {p}" for p in office.recover_and_check()]
        violations += office.delivery_violations(station.saved())
        files = office.stored_files()
        res["ho_stored"] = len(files)
        res["duplicates_at_ho"] = sum(c - 1 for c in files.values() if c > 1)
        assert office.ho is not None
        res["duplicate_chunks_received"] = office.ho.receiver.stats.duplicate_chunks
        log = (workdir / "station.log").read_text(errors="replace") if (workdir / "station.log").exists() else ""
        res["link_lost_lines"] = log.count("uplink link to")
        res["link_back_lines"] = log.count("uplink link back")
        return res
    finally:
        if station is not None:
            station.kill()
        if firewall is not None:
            firewall.close()
        loopback(True)
        office.stop()


if __name__ == "__main__":
    result = run(Path(sys.argv[1]), int(sys.argv[2]))
    print(json.dumps(result), flush=True)
