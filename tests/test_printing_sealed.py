"""Pending print orders are sealed at rest: round trip, tampering, wrong key, old plaintext rows.

Real journal, real key files, the emulated printer on the real pyusb path. The byte scans read
every file in the state directory (database, ``-wal``, ``-shm``, keys, reserve).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import JournalConfig
from agent.journal import Journal
from agent.keys import ORDER_KEY, OrderKey, keys_dir
from agent.printing.orders import (
    SEALED_PREFIX,
    PrintOrder,
    SealedOrderError,
    open_order,
    seal_order,
)
from agent.printing.queue import SCHEMA, PrintQueue
from agent.printing.stock import StockLedger
from tests.reliability.crashloop import scan_for_markers
from tests.test_printing_queue import NOW, Clock, events, make_order, printer, results

MARKER_NAME = "QZXSEALEDNAMEAB"
MARKER_ADDR = "QZXSEALEDADDRCD"
JCFG = JournalConfig(free_disk_floor_bytes=0, reserve_bytes=0)


def marked(order_id: str) -> PrintOrder:
    return make_order(order_id, name=f"BUDI {MARKER_NAME}", address=f"JL MAWAR {MARKER_ADDR}")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path, JCFG)
    yield j
    j.close()


def queue(journal: Journal, *, stock: int = 10, key: OrderKey | None = None,
          recover: bool = True) -> PrintQueue:
    ledger = StockLedger(journal, clock=Clock())
    if stock:
        ledger.add_delivery(stock, "B1")
    return PrintQueue(journal, ledger, station_id="st-1", clock=Clock(), recover=recover,
                      order_key=(lambda: key) if key is not None else None)


def stored(journal: Journal, order_id: str) -> str:
    with journal.transaction() as db:
        return str(db.execute("SELECT order_json FROM print_jobs WHERE order_id = ?",
                              [order_id]).fetchone()[0])


def set_stored(journal: Journal, order_id: str, text: str) -> None:
    with journal.transaction() as db:
        db.execute("UPDATE print_jobs SET order_json = ? WHERE order_id = ?", [text, order_id])


def test_pending_order_is_sealed_at_rest_and_prints(tmp_path: Path, journal: Journal) -> None:
    q = queue(journal)
    q.receive(marked("ord-1"))
    q.receive(marked("ord-2"))
    text = stored(journal, "ord-1")
    assert text.startswith(SEALED_PREFIX)
    assert MARKER_NAME not in text and "6472010101900001" not in text
    # Decrypted only in memory: the same order comes back.
    assert open_order(text, q.order_key(), station_id="st-1", order_id="ord-1").card["name"].endswith(MARKER_NAME)
    # The key file was made on first use, 0600, in the keys directory.
    assert (tmp_path / "keys" / ORDER_KEY).stat().st_mode & 0o777 == 0o600
    drv, emu = printer()
    view = q.print_next(drv)
    assert view is not None and view.state == "printed" and len(emu.model.printed) == 1
    # One order printed, one still pending: nothing of either in any file of the state directory.
    assert scan_for_markers([tmp_path], [MARKER_NAME, MARKER_ADDR]) == []
    journal.close()
    assert scan_for_markers([tmp_path], [MARKER_NAME, MARKER_ADDR]) == []
    # The scan does find a marker where it is in the clear.
    (tmp_path / "note.txt").write_text(MARKER_NAME)
    assert scan_for_markers([tmp_path], [MARKER_NAME]) != []


def test_each_row_has_its_own_nonce(journal: Journal) -> None:
    key = OrderKey(os.urandom(32), "file")
    order = make_order("ord-1")
    a = seal_order(order, key, station_id="st-1")
    b = seal_order(order, key, station_id="st-1")
    assert a != b
    assert open_order(a, key, station_id="st-1", order_id="ord-1") == order


@pytest.mark.parametrize("how", ["flip", "swap", "other_station", "truncate", "plaintext"])
def test_tampered_row_fails_its_job_and_the_queue_goes_on(journal: Journal, how: str) -> None:
    q = queue(journal)
    q.receive(make_order("ord-a"))
    q.receive(make_order("ord-b"))
    text = stored(journal, "ord-a")
    if how == "flip":
        i = len(text) - 10
        bad = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]
    elif how == "swap":
        bad = stored(journal, "ord-b")  # a valid row of another order
    elif how == "other_station":
        bad = seal_order(make_order("ord-a"), q.order_key(), station_id="st-2")
    elif how == "truncate":
        bad = text[:40]
    else:
        bad = json.dumps(make_order("ord-a").to_json())  # a row someone wrote in the clear
    set_stored(journal, "ord-a", bad)
    drv, emu = printer()
    view = q.print_next(drv)
    assert view is not None and view.order_id == "ord-a" and view.state == "failed"
    assert view.reason is not None and view.reason.startswith("stored order unreadable")
    assert emu.model.printed == []
    [event] = events(journal, "print_order_unreadable")
    assert event["order_id"] == "ord-a"
    failed = [r for r in results(q) if r["order_id"] == "ord-a"]
    assert [r["state"] for r in failed] == ["failed"] and "unreadable" in str(failed[0]["reason"])
    assert stored(journal, "ord-a") == "{}"
    # The next order prints.
    view = q.print_next(drv)
    assert view is not None and view.order_id == "ord-b" and view.state == "printed"


def test_wrong_key_is_named_as_such(journal: Journal) -> None:
    q = queue(journal, key=OrderKey(os.urandom(32), "file"))
    q.receive(make_order("ord-1"))
    other = OrderKey(os.urandom(32), "credential")
    q2 = queue(journal, stock=0, key=other)
    with pytest.raises(SealedOrderError, match="wrong key"):
        open_order(stored(journal, "ord-1"), other, station_id="st-1", order_id="ord-1")
    drv, emu = printer()
    view = q2.print_next(drv)
    assert view is not None and view.state == "failed" and "wrong key" in str(view.reason)
    assert emu.model.printed == []


def test_unusable_key_file_keeps_the_job_waiting(tmp_path: Path, journal: Journal) -> None:
    q = queue(journal)
    q.receive(make_order("ord-1"))
    kfile = tmp_path / "keys" / ORDER_KEY
    kfile.chmod(0o644)
    q2 = queue(journal, stock=0)  # a restarted daemon: loads the key again
    drv, emu = printer()
    view = q2.print_next(drv)
    assert view is not None and view.state == "received" and emu.model.printed == []
    assert stored(journal, "ord-1").startswith(SEALED_PREFIX)
    kfile.chmod(0o600)
    q3 = queue(journal, stock=0)
    view = q3.print_next(drv)
    assert view is not None and view.state == "printed"


def test_receive_with_unusable_key_stores_nothing(tmp_path: Path, journal: Journal) -> None:
    kdir = keys_dir(tmp_path)
    (kdir / ORDER_KEY).write_bytes(b"short")
    os.chmod(kdir / ORDER_KEY, 0o600)
    q = queue(journal)
    with pytest.raises(Exception, match="32 bytes"):
        q.receive(marked("ord-1"))
    assert q.jobs() == []


def _legacy_rows(tmp_path: Path) -> None:
    """What the version before sealing left: plaintext rows, one in the database, one in the WAL."""
    j = Journal.open(tmp_path, JCFG)
    j.register_schema("printing_queue", SCHEMA)
    for n, order_id in enumerate(["old-1", "old-2"]):
        with j.transaction() as db:
            db.execute("INSERT INTO print_jobs (order_id, message_id, state, reason, attempts, spoiled, "
                       "received_at, print_before, updated_at, order_json, packet_id) "
                       "VALUES (?, ?, 'received', NULL, 0, 0, ?, NULL, ?, ?, NULL)",
                       [order_id, f"m-{order_id}", NOW.isoformat(), NOW.isoformat(),
                        json.dumps(marked(order_id).to_json())])
        if n == 0:
            j.close()  # checkpointed into journal.sqlite3
            j = Journal.open(tmp_path, JCFG)
    # The second row is only in the WAL: keep the files as a crash would leave them (the
    # closing checkpoint must not run), then put them back after closing.
    wal = tmp_path / "journal.sqlite3-wal"
    images = {p: p.read_bytes() for p in (tmp_path / "journal.sqlite3", wal)}
    assert MARKER_NAME.encode() in images[wal]
    j.close()
    for p, data in images.items():
        p.write_bytes(data)


def test_plaintext_rows_of_an_older_version_are_sealed_and_wiped(tmp_path: Path) -> None:
    _legacy_rows(tmp_path)
    assert scan_for_markers([tmp_path], [MARKER_NAME]) != []  # the old version's leak is real
    j = Journal.open(tmp_path, JCFG)
    try:
        q = queue(j)
        for order_id in ("old-1", "old-2"):
            assert stored(j, order_id).startswith(SEALED_PREFIX)
        assert events(j, "print_orders_sealed") == [{"count": 2}]
        leaks = scan_for_markers([tmp_path], [MARKER_NAME, MARKER_ADDR])
        assert leaks == [], leaks
        drv, emu = printer()
        view = q.print_next(drv)
        assert view is not None and view.order_id == "old-1" and view.state == "printed"
        # A second start has nothing left to seal.
        assert queue(j, stock=0).seal_plaintext_rows() == 0
    finally:
        j.close()
    assert scan_for_markers([tmp_path], [MARKER_NAME, MARKER_ADDR]) == []


def test_command_line_queue_needs_no_key(tmp_path: Path, journal: Journal) -> None:
    # `rekam print list/confirm` (recover=False) must not create a key file as another user.
    q = queue(journal, recover=False)
    assert q.jobs() == []
    assert not (tmp_path / "keys" / ORDER_KEY).exists()


def test_key_source_is_used_once(journal: Journal) -> None:
    calls: list[int] = []
    key = OrderKey(os.urandom(32), "file")

    def source() -> OrderKey:
        calls.append(1)
        return key

    ledger = StockLedger(journal, clock=Clock())
    ledger.add_delivery(3, "B1")
    q = PrintQueue(journal, ledger, station_id="st-1", clock=Clock(), order_key=source)
    q.receive(make_order("a"))
    q.receive(make_order("b"))
    assert len(calls) == 1
