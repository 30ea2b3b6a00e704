"""The KPI rows in the real journal: upsert on session id, stage stamps synced from the packets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import kpi
from agent.config import JournalConfig
from agent.journal import Journal
from agent.station import KpiStore

TZ = "Asia/Makassar"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KpiStore]:
    j = Journal.open(tmp_path, JournalConfig(free_disk_floor_bytes=0, reserve_bytes=0))
    s = KpiStore(j)
    kpi.install(s)
    yield s
    j.close()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def record(session_id: str, packet_id: str | None, **extra: object) -> dict[str, object]:
    return {"session_id": session_id, "packet_id": packet_id, "kelurahan": "sempaja", "operator_id": "op-1",
            "started_at": now(), "sealed_at": now(), "record_seconds": 300.0, "retry_seconds": 4.5,
            "fault_seconds": 0.0, "captures": 12, "first_time_pass": 10, "force_accepts": 0,
            "exceptions": 0, "satisfaction": None, "ticket_at": None, **extra}


def add_packet(journal: Journal, packet_id: str) -> None:
    with journal.begin_packet(packet_id, station_id="st-kpi-01", created_at=now()) as sink:
        sink.write(b"x" * 100)
        sink.commit()


def test_record_session_is_an_upsert_on_session_id(store: KpiStore) -> None:
    kpi.record_session(store, record("s1", "p1"), tz=TZ)
    kpi.record_session(store, record("s1", "p1", satisfaction=4, operators=["op-1", "op-2"]), tz=TZ)
    rows = store.query("SELECT session_id, kelurahan, satisfaction, operators, captures FROM service_times")
    # One row, updated; the kelurahan upper-cased; a list kept as JSON text (as sqlite_utils did).
    assert rows == [("s1", "SEMPAJA", 4, json.dumps(["op-1", "op-2"]), 12)]


def test_record_session_without_a_start_is_refused_and_keeps_nothing(store: KpiStore) -> None:
    with pytest.raises(ValueError, match="started_at"):
        kpi.record_session(store, {"session_id": "s2"}, tz=TZ)
    bad = record("s3", "p3")
    bad["started_at"] = None
    with pytest.raises(ValueError, match="started_at"):
        kpi.record_session(store, bad, tz=TZ)
    assert store.query("SELECT count(*) FROM service_times") == [(0,)]


def test_sync_stages_copies_the_first_send_and_then_has_nothing_to_do(store: KpiStore) -> None:
    journal: Journal = store.journal
    kpi.record_session(store, record("s1", "p1"), tz=TZ)
    kpi.record_session(store, record("s2", None), tz=TZ)  # never sealed into a packet
    kpi.sync_stages(store)  # nothing sent yet: nothing to stamp
    assert store.query("SELECT sent_at FROM service_times WHERE session_id = 's1'") == [(None,)]
    add_packet(journal, "p1")
    journal.mark_sending("p1")
    kpi.sync_stages(store)
    (sent,), = store.query("SELECT sent_at FROM service_times WHERE session_id = 's1'")
    assert sent is not None
    assert store.query("SELECT sending_at FROM packets WHERE packet_id = 'p1'") == [(sent,)]
    kpi.sync_stages(store)  # idempotent: the first send counts
    assert store.query("SELECT sent_at FROM service_times WHERE session_id = 's1'") == [(sent,)]
    assert store.query("SELECT sent_at FROM service_times WHERE session_id = 's2'") == [(None,)]
