"""End-to-end transfer against a real mosquitto and a minimal head-office responder."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.journal import Journal
from agent.testbed.mosquitto import Mosquitto
from agent.uplink.client import Uplink
from tests.test_uplink_support import (
    AS_ROOT,
    HeadOffice,
    ho_public_keys,
    journal_cfg,
    save_packets,
    uplink_cfg,
    wait_for,
)

STATION = "st-1"


def make_uplink(journal: Journal, port: int, **over: Any) -> Uplink:
    return Uplink(uplink_cfg(port, **over), station_id=STATION, journal=journal,
                  chunk_bytes=journal.cfg.chunk_bytes, public_keys=ho_public_keys,
                  version="test")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    (tmp_path / "station").mkdir(mode=0o700)
    j = Journal.open(tmp_path / "station", journal_cfg())
    yield j
    j.close()


def delivered(journal: Journal, ids: list[str]) -> bool:
    return all((info := journal.packet(p)) is not None and info.state in ("delivered", "purged")
               for p in ids)


def test_backlog_delivered_exactly_once_and_purged(mosquitto: Mosquitto, journal: Journal) -> None:
    packets = save_packets(journal, STATION, [1, 65_536, 65_537, 300_000, 5_000])
    journal.add_event("test_event", {"n": 1})
    ho = HeadOffice(mosquitto.port).start()
    up = make_uplink(journal, mosquitto.port)
    up.start()
    try:
        wait_for(lambda: delivered(journal, list(packets)), 30, "all packets acknowledged")
        wait_for(lambda: not journal.pending_events(10), 10, "event marked sent")
    finally:
        up.stop()
        ho.stop()
    assert ho.stored == packets
    assert set(ho.store_count.values()) == {1}
    assert ho.bad_chunks == 0
    assert [e["kind"] for e in ho.events] == ["test_event"]
    assert ho.events[0]["v"] == 1 and ho.events[0]["data"] == {"n": 1}
    # Delivered packets leave only a tombstone.
    assert all(journal.packet(p).state == "purged" for p in packets)  # type: ignore[union-attr]
    # Status: online on connect, offline (retained) on an orderly stop.
    states = [json.loads(s)["state"] for s in ho.statuses]
    assert states[-1] == "offline" and "online" in states
    snap = up.snapshot()
    assert snap["packets_delivered"] == len(packets) and snap["last_ack_at"]


def test_puback_alone_removes_nothing_and_queries_until_head_office_answers(
        mosquitto: Mosquitto, journal: Journal) -> None:
    packets = save_packets(journal, STATION, [100_000, 20_000], seed=2)
    ho = HeadOffice(mosquitto.port, answer=False).start()
    up = make_uplink(journal, mosquitto.port, ack_timeout_seconds=1)
    up.start()
    try:
        wait_for(lambda: ho.queries >= 2, 20, "ack queries after the timeout")
        assert not delivered(journal, list(packets))
        assert all(journal.packet(p).state == "sending" for p in packets)  # type: ignore[union-attr]
        ho.answer = True  # head office comes back: the next query is answered
        wait_for(lambda: delivered(journal, list(packets)), 30, "acks after queries")
    finally:
        up.stop()
        ho.stop()
    assert ho.stored == packets and set(ho.store_count.values()) == {1}


def test_rejected_packet_is_quarantined_with_an_event(mosquitto: Mosquitto,
                                                       journal: Journal) -> None:
    packets = save_packets(journal, STATION, [3_000], seed=3)
    pid = next(iter(packets))
    ho = HeadOffice(mosquitto.port).start()
    ho.reject_reason = "station signature does not verify"
    up = make_uplink(journal, mosquitto.port, max_rejects=2)
    up.start()
    try:
        wait_for(lambda: journal.packet(pid).state == "quarantined",  # type: ignore[union-attr]
                 30, "quarantine after two rejections")
        wait_for(lambda: any(e["kind"] == "packet_quarantined" for e in ho.events), 10,
                 "the quarantine event at head office")
    finally:
        up.stop()
        ho.stop()
    assert pid not in ho.stored
    assert journal.packet(pid).rejects == 2  # type: ignore[union-attr]


def test_packet_larger_than_broker_message_limit_goes_through_in_chunks(
        mosquitto_factory: Any, journal: Journal) -> None:
    # message_size_limit refuses big payloads; max_packet_size is announced in CONNACK and
    # must shrink our chunks below the journal's 64 KiB.
    broker = mosquitto_factory(
        "small", extra=f"message_size_limit 60000\nmax_packet_size 50000\n{AS_ROOT}")
    broker.start()
    packets = save_packets(journal, STATION, [400_000], seed=5)
    ho = HeadOffice(broker.port).start()
    up = make_uplink(journal, broker.port)
    up.start()
    try:
        wait_for(lambda: delivered(journal, list(packets)), 30, "the large packet")
        assert up.snapshot()["broker_max_packet"] == 50000
        assert up.sender.chunk_bytes <= 50000 - 1024
    finally:
        up.stop()
        ho.stop()
    assert ho.stored == packets and ho.bad_chunks == 0


@pytest.mark.parametrize("persistence", [True, False])
def test_broker_restart_mid_transfer_every_packet_exactly_once(
        mosquitto_factory: Any, journal: Journal, persistence: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    broker = mosquitto_factory("restart", persistence=persistence, extra=AS_ROOT)
    broker.start()
    packets = save_packets(journal, STATION, [150_000] * 30, seed=6)
    ho = HeadOffice(broker.port).start()
    # A bandwidth cap keeps the transfer going long enough to be cut in the middle.
    up = make_uplink(journal, broker.port, bandwidth_limit_bps=1_500_000)
    caplog.set_level(logging.INFO, logger="agent.uplink.client")
    up.start()
    try:
        wait_for(lambda: len(ho.stored) >= 3, 30, "some packets before the restart")
        assert len(ho.stored) < len(packets)
        broker.stop()
        broker.start()
        wait_for(lambda: delivered(journal, list(packets)), 60, "every packet after restart")
    finally:
        up.stop()
        ho.stop()
    assert ho.stored == packets
    assert set(ho.store_count.values()) == {1}
    lost = [r for r in caplog.records if "lost" in r.getMessage()]
    back = [r for r in caplog.records if "back to" in r.getMessage()]
    assert len(lost) == 1 and len(back) == 1  # one line down, one line up


def test_print_results_outbox_marked_sent_on_puback(mosquitto: Mosquitto,
                                                    journal: Journal) -> None:
    results = {1: b'{"v":1,"order_id":"o1","state":"printed"}',
               2: b'{"v":1,"order_id":"o2","state":"failed"}'}
    sent: list[int] = []
    ho = HeadOffice(mosquitto.port).start()
    up = make_uplink(journal, mosquitto.port)
    up.add_outbox("print/result",
                  lambda limit: [(k, v) for k, v in results.items() if k not in sent][:limit],
                  sent.append)
    with pytest.raises(ValueError):
        up.add_outbox("packet", lambda limit: [], sent.append)
    up.start()
    try:
        wait_for(lambda: sorted(sent) == [1, 2], 10, "results marked sent")
        wait_for(lambda: len(ho.print_results) == 2, 10, "results at head office")
    finally:
        up.stop()
        ho.stop()
    assert sorted(ho.print_results) == sorted(results.values())


def test_order_priority_then_today_then_oldest(mosquitto: Mosquitto, journal: Journal) -> None:
    today = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    old = save_packets(journal, STATION, [1000, 1000], seed=31,
                       created="2026-01-01T08:00:00.000000Z")
    older = save_packets(journal, STATION, [1000], seed=32, created="2025-12-01T08:00:00.000000Z")
    fresh = save_packets(journal, STATION, [1000], seed=33, created=today)
    urgent = save_packets(journal, STATION, [1000], seed=34,
                          created="2026-02-01T08:00:00.000000Z", priority=5)
    ho = HeadOffice(mosquitto.port).start()
    # One packet at a time, so the order of first chunks is the station's sending order.
    up = make_uplink(journal, mosquitto.port, inflight_window=1, max_unacked_packets=1)
    up.start()
    try:
        wait_for(lambda: len(ho.stored) == 5, 30, "all five packets")
    finally:
        up.stop()
        ho.stop()
    assert ho.first_seen == [*urgent, *fresh, *older, *old]


def test_component_factory_needs_the_journal(tmp_path: Path, journal: Journal) -> None:
    from agent.config import parse_config
    from agent.uplink import UplinkConfigError, make_component

    cfg = parse_config({"station": {"id": STATION, "state_dir": str(tmp_path)},
                        "uplink": {"transport": "tcp", "port": 1883}})
    daemon = SimpleNamespace(components=[])
    with pytest.raises(UplinkConfigError, match="journal"):
        make_component(cfg, daemon)
    daemon.components.append(SimpleNamespace(name="journal", journal=journal))
    up = make_component(cfg, daemon)
    assert up is not None and up.name == "uplink" and up.topics.station_id == STATION
    assert up.validator.public_keys() == {}  # no head-office key installed: all refused
    by_parts = SimpleNamespace(parts={"journal": SimpleNamespace(journal=journal)},
                               components=[])
    assert make_component(cfg, by_parts) is not None  # agent/station.py's daemon.parts
    off = parse_config({"uplink": {"enabled": False}})
    assert make_component(off, daemon) is None


def test_more_packets_in_transfer_than_one_outbox_scan(mosquitto: Mosquitto, journal: Journal,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: with more unacknowledged packets than one outbox read returns, the sender
    # must look past the packets it already has in transfer instead of stalling. (A small scan
    # size stands in for the real 256 to keep the test short.)
    import agent.uplink.sender as sender_module

    monkeypatch.setattr(sender_module, "OUTBOX_SCAN", 8)
    packets = save_packets(journal, STATION, [100] * 30, seed=41)
    ho = HeadOffice(mosquitto.port, answer=False).start()
    up = make_uplink(journal, mosquitto.port, max_unacked_packets=1000, ack_timeout_seconds=600)
    up.start()
    try:
        wait_for(lambda: len(ho.first_seen) == len(packets), 60, "every packet sent once")
    finally:
        up.stop()
        ho.stop()
    assert sorted(ho.first_seen) == sorted(packets)


def test_telemetry_carries_the_snapshot_and_providers(mosquitto: Mosquitto,
                                                      journal: Journal) -> None:
    ho = HeadOffice(mosquitto.port).start()
    up = make_uplink(journal, mosquitto.port, telemetry_seconds=1)
    up.add_telemetry_provider(lambda: {"stock": {"blank_cards": 42}})

    def broken() -> dict[str, Any]:
        raise RuntimeError("provider bug")

    up.add_telemetry_provider(broken)  # logged, never stops telemetry
    up.start()
    try:
        wait_for(lambda: len(ho.telemetry) >= 2, 10, "two telemetry messages")
    finally:
        up.stop()
        ho.stop()
    last = ho.telemetry[-1]
    assert last["v"] == 1 and last["stock"] == {"blank_cards": 42}
    assert last["uplink"]["link_state"] == "connected"
    assert {"last_error", "last_ack_at", "drain_rate_bps", "backlog_packets"} <= set(last["uplink"])


def test_stop_then_start_again_keeps_working(mosquitto: Mosquitto, journal: Journal) -> None:
    first = save_packets(journal, STATION, [70_000], seed=61)
    ho = HeadOffice(mosquitto.port).start()
    up = make_uplink(journal, mosquitto.port)
    try:
        up.start()
        wait_for(lambda: delivered(journal, list(first)), 20, "the first packet")
        up.stop()
        assert up.link_state == "stopped" and up.healthy() is False
        second = save_packets(journal, STATION, [70_000], seed=62)
        up.start()
        wait_for(lambda: delivered(journal, list(second)), 20, "the second packet")
    finally:
        up.stop()
        ho.stop()
