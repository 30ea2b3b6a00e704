"""Sending journal rows with their stored digest: what it reads, and what happens on damage.

The uplink sends a chunk that is a whole journal row with the SHA-256 stored when the packet was
written, without hashing it again; head office checks that digest. These tests make sure
damage is still caught (end to end, then locally on the resend), that the new read method
refuses bad requests clearly, that the pre-encoded MQTT properties are byte for byte what paho
would write, and that a journal error while recording a rejected message does not take the link
down.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.journal import Journal
from agent.journal.errors import (
    CorruptPacketError,
    InvalidTransitionError,
    JournalError,
    JournalFullError,
)
from agent.testbed.mosquitto import Mosquitto
from agent.uplink.client import Uplink, encode_publish_properties
from agent.uplink.topics import Topics
from tests.test_uplink_support import (
    HeadOffice,
    ho_public_keys,
    journal_cfg,
    save_packets,
    uplink_cfg,
    wait_for,
)

STATION = "st-1"
CHUNK = 64 * 1024  # journal_cfg()'s chunk_bytes: uplink chunks are whole rows


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    (tmp_path / "station").mkdir(mode=0o700)
    j = Journal.open(tmp_path / "station", journal_cfg())
    yield j
    j.close()


def _damage_row(journal: Journal, packet_id: str, idx: int, how: str) -> None:
    """Flip bytes of one stored chunk row (bit rot) or cut it short; its digest stays."""
    conn = sqlite3.connect(journal.path, isolation_level=None)
    try:
        (data,) = conn.execute("SELECT data FROM chunks WHERE packet_id = ? AND idx = ?",
                               (packet_id, idx)).fetchone()
        if how == "flip":
            bad = bytes(b ^ 0xFF for b in data[:16]) + bytes(data[16:])
        else:
            bad = bytes(data[:100])
        conn.execute("UPDATE chunks SET data = ? WHERE packet_id = ? AND idx = ?",
                     (bad, packet_id, idx))
    finally:
        conn.close()


def test_read_chunk_rows_gives_stored_digest_and_bytes(journal: Journal) -> None:
    packets = save_packets(journal, STATION, [3 * CHUNK + 10])
    (pid, data), = packets.items()
    rows = journal.read_chunk_rows(pid, 0, 4)
    assert [r[0] for r in rows] == [0, 1, 2, 3]
    assert b"".join(r[2] for r in rows) == data
    for idx, digest, chunk in rows:
        assert digest == hashlib.sha256(chunk).digest()
        assert chunk == journal.read_range(pid, idx * CHUNK, CHUNK)
    assert journal.read_chunk_rows(pid, 3, 1)[0][2] == data[3 * CHUNK:]


def test_read_chunk_rows_refuses_bad_requests_and_loses_nothing(journal: Journal) -> None:
    (pid, data), = save_packets(journal, STATION, [2 * CHUNK]).items()
    with pytest.raises(JournalError, match="past the last chunk"):
        journal.read_chunk_rows(pid, 1, 2)
    with pytest.raises(JournalError, match="must be >= 0"):
        journal.read_chunk_rows(pid, -1, 1)
    with pytest.raises(JournalError, match="count 0"):
        journal.read_chunk_rows(pid, 0, 0)
    with pytest.raises(JournalError, match="no packet"):
        journal.read_chunk_rows("no-such-packet", 0, 1)
    info = journal.packet(pid)
    assert info is not None and info.state == "queued"
    assert journal.read_range(pid, 0, 2 * CHUNK) == data


def test_read_chunk_rows_missing_row_quarantines(journal: Journal) -> None:
    (pid, _), = save_packets(journal, STATION, [3 * CHUNK]).items()
    conn = sqlite3.connect(journal.path, isolation_level=None)
    try:
        conn.execute("DELETE FROM chunks WHERE packet_id = ? AND idx = 1", (pid,))
    finally:
        conn.close()
    with pytest.raises(CorruptPacketError, match="quarantined"):
        journal.read_chunk_rows(pid, 0, 3)
    info = journal.packet(pid)
    assert info is not None and info.state == "quarantined"
    with pytest.raises(InvalidTransitionError):
        journal.mark_sending(pid)


@pytest.mark.parametrize(("how", "refused_by_head_office"), [("flip", 1), ("truncate", 0)])
def test_damaged_row_is_caught_and_the_packet_quarantined(
        mosquitto: Mosquitto, journal: Journal, how: str, refused_by_head_office: int) -> None:
    """Bit rot: head office refuses the chunk, the resend is re-read with the local check and
    quarantines. A row of the wrong length never leaves: it is re-read with the check at once."""
    packets = save_packets(journal, STATION, [3 * CHUNK, 2 * CHUNK + 5, CHUNK], seed=5)
    damaged = sorted(packets)[1]
    _damage_row(journal, damaged, 1, how)
    ho = HeadOffice(mosquitto.port).start()
    up = Uplink(uplink_cfg(mosquitto.port, ack_timeout_seconds=1), station_id=STATION,
                journal=journal, chunk_bytes=CHUNK, public_keys=ho_public_keys, version="test")
    up.start()
    try:
        def settled() -> bool:
            states = {p: getattr(journal.packet(p), "state", None) for p in packets}
            return states[damaged] == "quarantined" and all(
                s in ("delivered", "purged") for p, s in states.items() if p != damaged)
        wait_for(settled, 30, "intact packets delivered and the damaged one quarantined")
    finally:
        up.stop()
        ho.stop()
    assert ho.bad_chunks == refused_by_head_office
    assert damaged not in ho.stored
    assert {p: ho.stored[p] for p in packets if p != damaged} == {
        p: d for p, d in packets.items() if p != damaged}
    info = journal.packet(damaged)
    assert info is not None and "SHA-256" in (info.last_error or "")
    kinds = [kind for (kind,) in journal.query("SELECT kind FROM events")]
    assert "packet_quarantined" in kinds


class _EventsFail(Journal):
    """The real journal, except that events cannot be written (as on a full disk)."""

    def add_event(self, kind: str, payload: dict[str, Any]) -> int:
        raise JournalFullError("disk full (test)")


def test_rejected_message_on_a_full_journal_keeps_the_link(
        mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "station").mkdir(mode=0o700)
    journal = _EventsFail.open(tmp_path / "station", journal_cfg())
    up = Uplink(uplink_cfg(mosquitto.port), station_id=STATION, journal=journal,
                chunk_bytes=CHUNK, public_keys=ho_public_keys, version="test")
    caplog.set_level(logging.WARNING, logger="agent.uplink.client")
    up.start()
    forger = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="forger", protocol=mqtt.MQTTv5)
    try:
        wait_for(lambda: up.link_state == "connected", 10, "uplink connected")
        time.sleep(0.3)  # the uplink's SUBACK (test set-up only; nothing is timed)
        forger.connect("127.0.0.1", mosquitto.port)
        forger.loop_start()
        for n in range(3):
            forger.publish(Topics(STATION).command, b"not an envelope %d" % n, qos=1).wait_for_publish(5)
        wait_for(lambda: up.rejected_messages == 3, 10, "three forged commands refused")
        assert up.link_state == "connected" and up.connects == 1 and up.healthy()
    finally:
        forger.loop_stop()
        forger.disconnect()
        up.stop()
        journal.close()
    failures = [r for r in caplog.records if "cannot journal rejected-message events" in r.getMessage()]
    assert len(failures) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)


@given(st.lists(st.tuples(text, text), max_size=10), st.one_of(st.none(), text))
def test_properties_encoded_as_paho_would(user: list[tuple[str, str]],
                                          content_type: str | None) -> None:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if user:
        props.UserProperty = user
    if content_type:
        props.ContentType = content_type
    assert encode_publish_properties(user, content_type) == props.pack()  # type: ignore[no-untyped-call]


class _MarksFail(Journal):
    """The real journal, except that marking packets sending finds the disk full."""

    def mark_sending_many(self, packet_ids: Sequence[str]) -> dict[str, JournalError]:
        raise JournalFullError("disk full (test)")


def test_full_journal_at_mark_sending_still_delivers(
        mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The 'sending' mark is advisory: a full disk must not stop delivery (which frees space)."""
    (tmp_path / "station").mkdir(mode=0o700)
    journal = _MarksFail.open(tmp_path / "station", journal_cfg())
    packets = save_packets(journal, STATION, [CHUNK + 1, 5, 3 * CHUNK], seed=9)
    ho = HeadOffice(mosquitto.port).start()
    up = Uplink(uplink_cfg(mosquitto.port), station_id=STATION, journal=journal,
                chunk_bytes=CHUNK, public_keys=ho_public_keys, version="test")
    caplog.set_level(logging.INFO, logger="agent.uplink.sender")
    up.start()
    try:
        wait_for(lambda: all(getattr(journal.packet(p), "state", None) in ("delivered", "purged")
                             for p in packets), 30, "packets delivered")
    finally:
        up.stop()
        ho.stop()
        journal.close()
    assert ho.stored == packets and set(ho.store_count.values()) == {1}
    full = [r for r in caplog.records if "journal full" in r.getMessage()]
    assert len(full) == 1
