"""Property tests of the sender's bookkeeping against a real journal: any sequence of broker
PUBACKs and head-office acks (right, wrong, duplicated, for unknown packets) keeps the window
bounded, never delivers on a wrong hash, and delivers exactly the packets head office verified.

The transport here is a recording publish function (the MQTT side is covered by the
real-mosquitto tests); the journal is the real one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.journal import Journal
from agent.uplink.incoming import Ack
from agent.uplink.sender import Sender
from agent.uplink.topics import Topics
from tests.test_uplink_support import journal_cfg, save_packets


class Wire:
    """Records what the sender publishes; mids as a client library would hand them out."""

    def __init__(self) -> None:
        self.mid = 0
        self.sent: list[tuple[int, dict[str, str], int]] = []
        self.refuse = False

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool,
                props: list[tuple[str, str]], content_type: str | None) -> int | None:
        if self.refuse:
            return None
        self.mid += 1
        self.sent.append((self.mid, dict(props), len(payload)))
        return self.mid


def make_ack(pid: str, status: str, sha: str, missing: tuple[int, ...] = (),
             chunk_size: int = 0) -> Ack:
    return Ack(id="x", packet_id=pid, status=status, packet_sha256=sha, missing=missing,
               chunk_size=chunk_size, reason="test" if status == "rejected" else "",
               issued_at="2026-11-29T00:00:00Z")


steps = st.lists(st.tuples(
    st.sampled_from(["pump", "puback", "puback_fail", "complete", "complete_wrong", "missing",
                     "rejected", "unknown", "refuse", "accept"]),
    st.integers(min_value=0, max_value=10)), max_size=40)


def test_any_ack_sequence_keeps_the_invariants(tmp_path: Path) -> None:
    # One journal for all examples (opening one per example is fsync-bound); each example
    # writes its own packets, at a higher priority than those earlier examples left behind.
    state = tmp_path / "s"
    state.mkdir(mode=0o700)
    journal = Journal.open(state, journal_cfg(chunk_bytes=1024))
    seeds = iter(range(-999, 1001))  # also the priorities, which the journal bounds to +-1000

    @given(steps)
    def example(ops: list[tuple[str, int]]) -> None:
        _run(journal, ops, next(seeds))

    try:
        example()
    finally:
        journal.close()


def _run(journal: Journal, ops: list[tuple[str, int]], seed: int) -> None:
    # A priority above every earlier example's keeps their leftovers out of this one's way.
    packets = save_packets(journal, "st-1", [5000, 1, 2048], seed=seed, priority=seed)
    ids = list(packets)
    sha = {pid: hashlib.sha256(data).hexdigest() for pid, data in packets.items()}
    wire = Wire()
    sender = Sender(journal, Topics("st-1"), chunk_bytes=1024, window=3, ack_timeout=60,
                    max_rejects=2, max_unacked_packets=2, clock=lambda: 0.0)
    verified: set[str] = set()
    try:
        for op, n in ops:
            pid = ids[n % len(ids)]
            if op == "pump":
                sender.pump(wire.publish)
            elif op in ("puback", "puback_fail") and sender.inflight:
                mid = sorted(sender.inflight)[n % len(sender.inflight)]
                sender.on_puback(mid, op == "puback")
            elif op == "complete":
                info = journal.packet(pid)
                assert info is not None
                if info.state not in ("quarantined",):
                    verified.add(pid)
                sender.on_ack(make_ack(pid, "complete", sha[pid]), "now")
            elif op == "complete_wrong":
                sender.on_ack(make_ack(pid, "complete", "0" * 64), "now")
            elif op == "missing":
                sender.on_ack(make_ack(pid, "missing", sha[pid], (n, n + 1, 10_000), 1024),
                              "now")
            elif op == "rejected":
                sender.on_ack(make_ack(pid, "rejected", ""), "now")
            elif op == "unknown":
                sender.on_ack(make_ack("nope", "complete", sha[pid]), "now")
            elif op == "refuse":
                wire.refuse = True
            elif op == "accept":
                wire.refuse = False
            assert sender.chunks_inflight() <= sender.window
            assert len(sender.packets) <= 2
            for _mid, props, length in wire.sent:
                if "chunk" in props:
                    assert int(props["chunk"]) < int(props["chunks"])
                    assert length <= 1024
        for pid in ids:
            info = journal.packet(pid)
            assert info is not None
            delivered = info.state in ("delivered", "purged")
            # Delivered exactly when head office confirmed the right hash for a packet that
            # was not quarantined at the time.
            assert delivered == (pid in verified)
    finally:
        sender.close()


def test_chunks_carry_the_contract_properties(tmp_path: Path) -> None:
    state = tmp_path / "s"
    state.mkdir(mode=0o700)
    journal = Journal.open(state, journal_cfg(chunk_bytes=1024))
    try:
        packets = save_packets(journal, "st-1", [2500], seed=52)
        pid, data = next(iter(packets.items()))
        wire = Wire()
        sender = Sender(journal, Topics("st-1"), chunk_bytes=1024, window=8, ack_timeout=60,
                        max_rejects=2, max_unacked_packets=2)
        try:
            sender.pump(wire.publish)
        finally:
            sender.close()
        chunks = [props for _, props, _ in wire.sent]
        assert [c["chunk"] for c in chunks] == ["0", "1", "2"]
        for i, props in enumerate(chunks):
            part = data[i * 1024:(i + 1) * 1024]
            expected: dict[str, Any] = {
                "v": "1", "packet_id": pid, "chunk": str(i), "chunks": "3",
                "chunk_size": "1024", "offset": str(i * 1024),
                "chunk_sha256": hashlib.sha256(part).hexdigest()}
            if i == 2:
                expected.update(packet_size="2500",
                                packet_sha256=hashlib.sha256(data).hexdigest())
            assert props == expected
    finally:
        journal.close()
