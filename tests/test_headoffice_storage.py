"""Head-office storage backends: the same contract on the SQLite folder and on real PostgreSQL."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from agent.headoffice.pgserver import PgServer, PgServerError
from agent.headoffice.receiver import BadChunk, parse_chunk
from agent.headoffice.storage import (
    REJECTED,
    STORED,
    ChunkMeta,
    ChunkRefused,
    PacketInvalid,
    PacketRecord,
    Storage,
    StorageError,
    assemble,
)
from agent.headoffice.storage_pg import PostgresStorage
from agent.headoffice.storage_sqlite import SqliteStorage

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CS = 1024


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    """A real PostgreSQL server for this module."""
    try:
        server = PgServer().start()
    except PgServerError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL must run in CI: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def make_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Storage]]:
    """A factory of Storage objects that all share one store (like receivers of a group)."""
    made: list[Storage] = []
    dsn = None
    if request.param == "postgresql":
        import psycopg

        server: PgServer = request.getfixturevalue("pg")
        name = "s_" + uuid.uuid4().hex[:12]
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        dsn = f"host=127.0.0.1 port={server.port} user=postgres dbname={name}"

    def make() -> Storage:
        s: Storage = PostgresStorage(dsn, tmp_path / "bodies") if dsn else SqliteStorage(
            tmp_path / "store")
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def metas(data: bytes, station: str = "st-a", pid: str = "p-1", cs: int = CS
          ) -> list[tuple[ChunkMeta, bytes]]:
    """Chunk metadata as a station would send it, built here without the receiver's parser."""
    n = max(1, -(-len(data) // cs))
    out = []
    for i in range(n):
        chunk = data[i * cs:(i + 1) * cs]
        last = i == n - 1
        out.append((ChunkMeta(station, pid, i, n, cs, i * cs, hashlib.sha256(chunk).hexdigest(),
                              len(data) if last else None,
                              hashlib.sha256(data).hexdigest() if last else None), chunk))
    return out


def accept(path: Path, record: PacketRecord) -> None:
    """A verifier that accepts anything (the packet format has its own tests)."""


def test_chunks_assemble_into_the_exact_bytes(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    data = os.urandom(5 * CS + 17)
    parts = metas(data)
    rec = None
    for meta, chunk in reversed(parts):  # order must not matter
        rec = s.put_chunk(meta, chunk)
    assert rec is not None and rec.complete and rec.received_count == 6
    full = s.packet("p-1")
    assert full is not None and full.missing == []
    final = assemble(s, rec, "me", accept, 30)
    assert final is not None and final.state == STORED
    assert s.packet_path(final).read_bytes() == data
    # Chunk bytes are gone once the packet is stored.
    assert list(s.iter_chunks("p-1")) == []


def test_duplicate_chunks_are_idempotent_and_stored_packet_not_rewritten(
        make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    data = os.urandom(3 * CS)
    parts = metas(data)
    for meta, chunk in parts + parts[:2]:
        rec = s.put_chunk(meta, chunk)
    assert rec.received_count == 3 and rec.received is None
    with pytest.raises(ValueError, match="without chunk indices"):
        _ = rec.missing  # put_chunk's answer carries the count only
    full = s.packet("p-1")
    assert full is not None and full.received == frozenset({0, 1, 2}) and full.missing == []
    final = assemble(s, full, "me", accept, 30)
    assert final is not None and final.state == STORED
    mtime = s.packet_path(final).stat().st_mtime_ns
    for meta, chunk in parts:
        again = s.put_chunk(meta, chunk)
        assert again.state == STORED
    assert s.packet_path(final).stat().st_mtime_ns == mtime
    assert assemble(s, again, "me", accept, 30) is None


def test_contradicting_chunks_are_refused(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    data = os.urandom(3 * CS)
    parts = metas(data)
    s.put_chunk(*parts[0])
    other_station = metas(data, station="st-b")[1]
    with pytest.raises(ChunkRefused, match="another station"):
        s.put_chunk(*other_station)
    last_meta, last = parts[-1]
    s.put_chunk(last_meta, last)
    with pytest.raises(ChunkRefused, match="differs"):
        s.put_chunk(ChunkMeta(last_meta.station_id, last_meta.packet_id, last_meta.index,
                              last_meta.chunks, CS, last_meta.offset, last_meta.chunk_sha256,
                              last_meta.packet_size, "0" * 64), last)
    rec = s.packet("p-1")
    assert rec is not None and rec.received == frozenset({0, 2})


def test_rechunked_packet_starts_over_in_the_new_chunk_size(
        make_storage: Callable[[], Storage]) -> None:
    """The station's broker limit changed: it resends everything in smaller chunks."""
    s = make_storage()
    data = os.urandom(4 * CS + 100)
    for meta, chunk in metas(data)[:3]:
        s.put_chunk(meta, chunk)
    small = metas(data, cs=CS // 2)
    for meta, chunk in small:
        rec = s.put_chunk(meta, chunk)
    assert rec.chunks == len(small) and rec.complete
    final = assemble(s, rec, "me", accept, 30)
    assert final is not None and final.state == STORED
    assert s.packet_path(final).read_bytes() == data
    # Re-chunked content with another packet hash than the one already announced is refused.
    other = os.urandom(len(data))
    s.put_chunk(*metas(data, pid="p-2")[-1])
    with pytest.raises(ChunkRefused, match="earlier chunks said"):
        s.put_chunk(*metas(other, pid="p-2", cs=CS // 2)[-1])


def test_assembling_packet_ignores_chunks_of_another_size(
        make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    data = os.urandom(2 * CS)
    for meta, chunk in metas(data):
        s.put_chunk(meta, chunk)
    assert s.claim("p-1", "rx-a", 30)
    m = metas(data)[0][0]
    odd = ChunkMeta(m.station_id, m.packet_id, 0, 4, CS // 2, 0,
                    hashlib.sha256(data[:CS // 2]).hexdigest())
    after = s.put_chunk(odd, data[:CS // 2])
    assert after.state == "assembling" and after.chunks == 2 and after.received_count == 2


def test_claim_is_exclusive_until_the_lease_runs_out(make_storage: Callable[[], Storage]) -> None:
    a, b = make_storage(), make_storage()
    for meta, chunk in metas(os.urandom(2 * CS)):
        a.put_chunk(meta, chunk)
    assert a.claim("p-1", "rx-a", 0.5)
    assert not b.claim("p-1", "rx-b", 0.5)
    assert a.claim("p-1", "rx-a", 0.5)  # renewing one's own lease is fine
    time.sleep(0.6)
    assert b.claim("p-1", "rx-b", 30)
    assert not a.claim("p-1", "rx-a", 30)


def test_bad_packet_is_rejected_then_a_new_attempt_can_succeed(
        make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    data = os.urandom(2 * CS)

    def refuse(path: Path, record: PacketRecord) -> None:
        raise PacketInvalid("BadSignatureError: nope")

    for meta, chunk in metas(data):
        rec = s.put_chunk(meta, chunk)
    final = assemble(s, rec, "me", refuse, 30)
    assert final is not None and final.state == REJECTED and final.reason == "BadSignatureError: nope"
    # The station's next attempt under the same packet id starts afresh and can succeed.
    for meta, chunk in metas(data):
        rec = s.put_chunk(meta, chunk)
    assert rec.state == "receiving"
    final = assemble(s, rec, "me", accept, 30)
    assert final is not None and final.state == STORED


def test_concurrent_receivers_store_once(make_storage: Callable[[], Storage]) -> None:
    """Four 'receivers' (own connections, own threads) get the chunks of 6 packets interleaved."""
    stores = [make_storage() for _ in range(4)]
    packets = {f"p-{i}": os.urandom(4 * CS + i) for i in range(6)}
    work = [(pid, m, c) for pid, data in packets.items() for m, c in metas(data, pid=pid)]
    work += work[::3]  # some duplicates, as QoS 1 redelivery would cause
    results: list[PacketRecord] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        try:
            for j, (_pid, meta, chunk) in enumerate(work):
                if j % 4 != k:
                    continue
                rec = stores[k].put_chunk(meta, chunk)
                if rec.complete:
                    final = assemble(stores[k], rec, f"rx-{k}", accept, 30)
                    if final is not None:
                        with lock:
                            results.append(final)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    # Chunk transactions are serialised per packet, so whoever stored the last one saw the
    # packet complete: nothing is left for a recovery pass.
    assert stores[0].incomplete(100) == []
    stored = [r for r in results if r.state == STORED]
    assert sorted(r.packet_id for r in stored) == sorted(packets)
    for pid, data in packets.items():
        got = stores[1].packet(pid)
        assert got is not None and got.state == STORED
        assert stores[2].packet_path(got).read_bytes() == data


def _open_sqlite_store(root: str, barrier: Any, results: Any) -> None:
    barrier.wait(10)
    try:
        SqliteStorage(Path(root)).close()
        results.put("ok")
    except Exception as exc:  # reported to the parent test
        results.put(repr(exc))


def test_receivers_starting_together_all_open_a_new_sqlite_store(tmp_path: Path) -> None:
    """Four receiver processes open one fresh folder at the same instant, forty times over.

    Before the set-up lock, switching a new index to WAL failed with "database is locked" in 9
    of 30 such rounds; a receiver group started by one command would lose members.
    """
    ctx = multiprocessing.get_context("fork")
    failures = []
    for n in range(40):
        root = tmp_path / f"store-{n}"
        root.mkdir()
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open_sqlite_store, args=(str(root), barrier, results))
                 for _ in range(4)]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(30)
        failures += [o for o in outcomes if o != "ok"]
    assert failures == []


def test_import_is_deduplicated(make_storage: Callable[[], Storage], tmp_path: Path) -> None:
    s = make_storage()
    src = tmp_path / "x.rkp"
    src.write_bytes(b"packet-bytes")
    sha = hashlib.sha256(b"packet-bytes").hexdigest()
    assert s.import_packet("st-a", "p-9", src, sha, 12)
    assert not s.import_packet("st-a", "p-9", src, sha, 12)
    rec = s.packet("p-9")
    assert rec is not None and rec.state == STORED
    assert s.packet_path(rec).read_bytes() == b"packet-bytes"
    # A chunk for an imported packet is a duplicate, not a new packet.
    meta, chunk = metas(b"packet-bytes", pid="p-9")[0]
    assert s.put_chunk(meta, chunk).state == STORED


def test_station_registry(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    s.record_status("st-a", True, "1.2", "2026-01-01T00:00:00Z")
    s.record_status("st-a", False, None, None)  # the Last Will carries no version
    s.record_telemetry("st-a", {"backlog": 2})
    s.record_telemetry("st-a", {"backlog": 5})
    assert s.record_event("st-a", "e1", "low_stock", "2026-01-01T00:00:00Z", {"left": 3})
    assert not s.record_event("st-a", "e1", "low_stock", "2026-01-01T00:00:00Z", {"left": 3})
    s.record_event("st-b", "e1", "x", "", {})
    rows = {r.station_id: r for r in s.stations()}
    assert rows["st-a"].online is False and rows["st-a"].version == "1.2"
    assert rows["st-a"].telemetry == {"backlog": 5} and rows["st-a"].events == 1
    assert rows["st-b"].events == 1 and rows["st-b"].online is None
    assert s.events("st-a", 10)[0]["payload"] == {"left": 3}


# --------------------------------------------------------------------------- chunk parsing


@given(st.dictionaries(st.sampled_from(["packet_id", "chunk", "chunks", "chunk_size", "offset",
                                        "chunk_sha256", "packet_size", "packet_sha256", "x"]),
                       st.text(max_size=30)),
       st.binary(max_size=64))
@example({"chunk_size": "\u00b2"}, b"")  # "²": str.isdigit() says yes, int() says no
@example({"chunk_size": "\u0664", "chunks": "1", "chunk": "0", "offset": "0"}, b"x")  # Arabic 4
def test_parse_chunk_raises_only_badchunk(props: dict[str, str], payload: bytes) -> None:
    try:
        meta = parse_chunk("st-a", props, payload, max_chunk_bytes=4096,
                           max_packet_bytes=1 << 20)
    except BadChunk:
        return
    assert meta.offset == meta.index * meta.chunk_size
    assert hashlib.sha256(payload).hexdigest() == meta.chunk_sha256


def test_parse_chunk_accepts_a_valid_last_chunk() -> None:
    payload = b"xyz"
    props = {"packet_id": "p", "chunk": "1", "chunks": "2", "chunk_size": "4", "offset": "4",
             "chunk_sha256": hashlib.sha256(payload).hexdigest(), "packet_size": "7",
             "packet_sha256": "ab" * 32}
    meta = parse_chunk("st-a", props, payload, max_chunk_bytes=4096, max_packet_bytes=1 << 20)
    assert (meta.index, meta.packet_size) == (1, 7)
    with pytest.raises(BadChunk, match="packet_size"):
        parse_chunk("st-a", {**props, "packet_size": "8"}, payload, max_chunk_bytes=4096,
                    max_packet_bytes=1 << 20)
    with pytest.raises(BadChunk, match="out of range"):
        parse_chunk("st-a", {**props, "chunk_size": "8192"}, payload, max_chunk_bytes=4096,
                    max_packet_bytes=1 << 20)


# --------------------------------------------------------------------------- state machine


class TwoReceiversOneStore(RuleBasedStateMachine):
    """Two receivers (own connections) share one SQLite store; chunks arrive in any order,
    duplicated, while assemblers claim, die holding a lease, or finish. Whatever happens, a
    stored packet is exactly its bytes, stored once, and every packet can still be finished."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="ho-sm-"))
        self.stores = [SqliteStorage(self.tmp), SqliteStorage(self.tmp)]
        self.packets: dict[str, bytes] = {}

    @initialize(sizes=st.lists(st.integers(1, 3 * CS + 7), min_size=1, max_size=3))
    def make_packets(self, sizes: list[int]) -> None:
        for i, size in enumerate(sizes):
            self.packets[f"p-{i}"] = os.urandom(size)

    @rule(data=st.data(), k=st.integers(0, 1))
    def chunk_arrives(self, data: st.DataObject, k: int) -> None:
        pid = data.draw(st.sampled_from(sorted(self.packets)))
        parts = metas(self.packets[pid], pid=pid)
        meta, chunk = data.draw(st.sampled_from(parts))
        rec = self.stores[k].put_chunk(meta, chunk)
        if rec.complete and data.draw(st.booleans()):
            assemble(self.stores[k], rec, f"rx-{k}", accept, 30)

    @rule(data=st.data())
    def assembler_dies_holding_a_lease(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.packets)))
        rec = self.stores[0].packet(pid)
        if rec is not None and rec.complete:
            self.stores[0].claim(pid, "dead", 0.0)  # a lease that has already run out

    @rule(k=st.integers(0, 1))
    def recovery_pass(self, k: int) -> None:
        for rec in self.stores[k].incomplete(100):
            assemble(self.stores[k], rec, f"rx-{k}", accept, 30)

    @invariant()
    def stored_means_exact_bytes_once(self) -> None:
        files = list((self.tmp / "packets").rglob("*.rkp"))
        stored = 0
        for pid, data in self.packets.items():
            rec = self.stores[1].packet(pid)
            if rec is not None and rec.state == STORED:
                stored += 1
                assert self.stores[0].packet_path(rec).read_bytes() == data
        assert len(files) == stored

    def teardown(self) -> None:
        try:
            # Every packet can still be finished: send all chunks once more, then recover.
            for pid, data in self.packets.items():
                for meta, chunk in metas(data, pid=pid):
                    self.stores[0].put_chunk(meta, chunk)
            for rec in self.stores[1].incomplete(100):
                assemble(self.stores[1], rec, "rx-final", accept, 30)
            for pid in self.packets:
                got = self.stores[0].packet(pid)
                assert got is not None and got.state == STORED, (pid, got)
            self.stored_means_exact_bytes_once()
        finally:
            for s in self.stores:
                s.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


TwoReceiversOneStore.TestCase.settings = settings(max_examples=25, stateful_step_count=15)
test_two_receivers_one_store = TwoReceiversOneStore.TestCase


def test_postgres_storage_reconnects_after_a_server_restart(pg: PgServer) -> None:
    """A restarted (or failed-over) server costs at most one failed operation, then it works."""
    import psycopg

    name = "r_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    tmp = Path(tempfile.mkdtemp(prefix="ho-pg-"))
    s = PostgresStorage(f"host=127.0.0.1 port={pg.port} user=postgres dbname={name}", tmp)
    try:
        data = os.urandom(2 * CS)
        parts = metas(data)
        s.put_chunk(*parts[0])
        pg.restart()
        failures = 0
        for _ in range(2):
            try:
                rec = s.put_chunk(*parts[1])
                break
            except StorageError:
                failures += 1
        assert failures <= 1
        assert rec.complete
        final = assemble(s, rec, "me", accept, 30)
        assert final is not None and s.packet_path(final).read_bytes() == data
    finally:
        s.close()
        shutil.rmtree(tmp, ignore_errors=True)
