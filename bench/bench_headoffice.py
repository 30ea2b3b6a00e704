"""Head-office receiver throughput: 1, 2 and 4 receivers in a shared group, 100 stations at once.

Run: /work/venv/bin/python bench/bench_headoffice.py [--backend sqlite|postgresql]
         [--stations 100] [--packets 2] [--packet-kib 300] [--chunk-kib 256] [--repeat 3]

Each receiver is its own process (so the GIL does not hide scale-out); the 100 simulated stations
are threads spread over two publisher processes, each following the wire contract
(agent.headoffice.simstation): publish every chunk of its packets at QoS 1, then wait for the
signed "complete" ack of each (asking again when none comes). A run ends when every packet is
stored and acknowledged. Packets are real (agent.packet writer: signed and encrypted), so each
receiver verifies signatures and decrypts.

Baseline, same run, same broker, same chunks: N plain paho-mqtt subscribers in a shared group that
only receive and count the chunk messages (no storage, no verification, no acks). The ratio is
receiver throughput / plain-subscriber throughput for the same N. A second baseline does the
least a durable receiver must (each chunk written to its own file and fsynced). Each figure is
the median of --repeat runs (the machine may be shared). Prints Markdown rows.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.testbed.mosquitto import Mosquitto

PUBLISHER_PROCS = 2
ACK_WAIT_S = 30.0


# --------------------------------------------------------------------------- child processes


def _receiver_proc(cfg_data: dict[str, Any], ready: Any, stop: Any, out: Any) -> None:
    from agent.headoffice.config import parse_headoffice_config
    from agent.headoffice.receiver import (
        AckSigner,
        Receiver,
        load_station_keys,
        open_storage,
        packet_verifier,
    )
    from agent.keys import key_id, load_headoffice_keys

    cfg = parse_headoffice_config(cfg_data)
    keys = load_headoffice_keys(cfg.keys.directory)
    storage = open_storage(cfg)
    rx = Receiver(cfg, storage, verify=packet_verifier(keys.encryption, load_station_keys(cfg)),
                  signer=AckSigner(keys.signing, key_id(keys.signing.public_key())))
    rx.start()
    ready.set()
    stop.wait(600)
    out.put({"stored": rx.stats.stored, "chunks": rx.stats.chunks, "queries": rx.stats.queries,
             "duplicates": rx.stats.duplicate_chunks, "errors": rx.stats.storage_errors
             + rx.stats.internal_errors})
    rx.stop()
    storage.close()


def _plain_proc(port: int, counter: Any, ready: Any, stop: Any, durable_dir: str | None) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    sub_ok = threading.Event()
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    seq = [0]

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        if durable_dir is not None:
            # The least a durable receiver must do: each chunk in its own file, fsynced.
            seq[0] += 1
            with open(os.path.join(durable_dir, f"{os.getpid()}-{seq[0]}"), "wb") as f:
                f.write(msg.payload)
                f.flush()
                os.fsync(f.fileno())
        with counter.get_lock():
            counter.value += 1

    c.on_message = on_message
    c.on_subscribe = lambda *a: sub_ok.set()
    c.on_connect = lambda cl, *a: cl.subscribe("$share/plain/rekam/v1/+/packet", qos=1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    sub_ok.wait(10)
    ready.set()
    stop.wait(600)
    c.disconnect()
    c.loop_stop()


def _publisher_proc(port: int, jobs: list[tuple[str, list[tuple[str, str]]]], ho_pub_pem: bytes,
                    chunk: int, wait_acks: bool, go: Any, done: Any) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from agent.headoffice.simstation import SimStation
    from agent.keys import key_id

    ho_pub: Any = load_pem_public_key(ho_pub_pem)
    sims = [SimStation("127.0.0.1", port, sid, headoffice_keys={key_id(ho_pub): ho_pub},
                       chunk_size=chunk, window=32).connect() for sid, _ in jobs]
    packets = {sid: [(pid, Path(path).read_bytes()) for pid, path in items] for sid, items in jobs}
    go.wait(60)

    def station(sim: SimStation) -> None:
        items = packets[sim.station_id]
        infos = []
        for pid, data in items:
            infos += sim.publish_chunks(pid, data)
        if not wait_acks:
            for info in infos:
                info.wait_for_publish(60)
            return
        for pid, data in items:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                # Like a station's ack timeout (120 s by default), shortened: ask only when
                # head office has clearly not answered, so queries do not add load of their own.
                if sim.final_ack(pid, ACK_WAIT_S) is not None:
                    break
                # No verdict yet: ask, and resend whatever head office says it lacks.
                seen = len(sim.acks.get(pid, []))
                sim.query(pid, data)
                ack = sim.wait_ack(pid, seen, ACK_WAIT_S)
                if ack is not None and ack.get("missing"):
                    sim.publish_chunks(pid, data, [int(i) for i in ack["missing"]])

    threads = [threading.Thread(target=station, args=(s,)) for s in sims]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    done.set()
    for s in sims:
        s.close()


# --------------------------------------------------------------------------- runs


def make_packets(workdir: Path, stations: int, per_station: int, size: int
                 ) -> tuple[Any, dict[str, Any], list[tuple[str, list[tuple[str, str]]]], int]:
    """Head-office keys, station keys and real packet files; returns the jobs and total bytes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.keys import generate_headoffice_keys
    from agent.packet import PacketWriter, new_packet_id

    ho = generate_headoffice_keys(workdir / "hokeys", now=datetime.now(UTC))
    registered: dict[str, Any] = {}
    jobs = []
    total = 0
    payload = os.urandom(size)
    for i in range(stations):
        sid = f"st-{i:03d}"
        key = Ed25519PrivateKey.generate()
        pub = workdir / f"{sid}.pub"
        pub.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        registered[sid] = {"public_key": str(pub)}
        items = []
        for _ in range(per_station):
            pid = new_packet_id()
            buf = io.BytesIO()
            w = PacketWriter(buf, station_id=sid, packet_id=pid, station_signing_key=key,
                             headoffice_encryption_key=ho.encryption.public_key())
            w.add_item("face.jpg", payload, kind="face", format="jpeg")
            w.finish()
            path = workdir / "packets" / f"{pid}.rkp"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(buf.getvalue())
            total += len(buf.getvalue())
            items.append((pid, str(path)))
        jobs.append((sid, items))
    return ho, registered, jobs, total


def run_once(broker: Mosquitto, n: int, *, plain: bool, cfg_data: dict[str, Any],
             durable_dir: str | None,
             jobs: list[tuple[str, list[tuple[str, str]]]], ho_pub_pem: bytes, chunk: int,
             total_chunks: int) -> tuple[float, list[dict[str, Any]]]:
    """Start n consumers and the publishers; return seconds until everything arrived."""
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    out: Any = ctx.Queue()
    counter: Any = ctx.Value("q", 0)
    readies = []
    procs = []
    for k in range(n):
        ready = ctx.Event()
        readies.append(ready)
        if plain:
            p = ctx.Process(target=_plain_proc,
                            args=(broker.port, counter, ready, stop, durable_dir))
        else:
            data = {**cfg_data, "broker": {**cfg_data["broker"], "client_id": f"rx-{k}"}}
            p = ctx.Process(target=_receiver_proc, args=(data, ready, stop, out))
        p.start()
        procs.append(p)
    pubs: list[Any] = []
    try:
        return _drive(ctx, broker, n, plain, jobs, ho_pub_pem, chunk, total_chunks, readies,
                      stop, out, counter, pubs)
    finally:
        stop.set()
        for p in procs + pubs:
            p.join(30)
            if p.is_alive():
                p.terminate()
                p.join(10)


def _drive(ctx: Any, broker: Mosquitto, n: int, plain: bool,
           jobs: list[tuple[str, list[tuple[str, str]]]], ho_pub_pem: bytes, chunk: int,
           total_chunks: int, readies: list[Any], stop: Any, out: Any, counter: Any,
           pubs: list[Any]) -> tuple[float, list[dict[str, Any]]]:
    for r in readies:
        if not r.wait(60):
            raise RuntimeError("consumer did not start")
    go = ctx.Event()
    dones = []
    for k in range(PUBLISHER_PROCS):
        done = ctx.Event()
        dones.append(done)
        p = ctx.Process(target=_publisher_proc,
                        args=(broker.port, jobs[k::PUBLISHER_PROCS], ho_pub_pem, chunk,
                              not plain, go, done))
        p.start()
        pubs.append(p)
    time.sleep(3.0)  # let 100 station clients connect and subscribe before the clock starts
    t0 = time.perf_counter()
    go.set()
    deadline = time.monotonic() + 600
    if plain:
        while counter.value < total_chunks and time.monotonic() < deadline:
            time.sleep(0.005)
    else:
        for d in dones:
            d.wait(max(1.0, deadline - time.monotonic()))
    elapsed = time.perf_counter() - t0
    stop.set()
    results = [out.get(timeout=60) for _ in range(n)] if not plain else []
    return elapsed, results


def _receiver_config(backend: str, workdir: Path, tag: str, pg: Any, port: int,
                     registered: dict[str, Any]) -> dict[str, Any]:
    """A head-office config with its own fresh storage (folder, and database for PostgreSQL)."""
    storage: dict[str, Any] = {"backend": backend, "folder": str(workdir / f"store-{tag}")}
    if pg is not None:
        import psycopg

        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE bench_{tag}")
        dsn_file = workdir / f"dsn-{tag}"
        dsn_file.write_text(f"host=127.0.0.1 port={pg.port} user=postgres dbname=bench_{tag}")
        storage["dsn_file"] = str(dsn_file)
    return {
        "broker": {"host": "127.0.0.1", "port": port, "transport": "tcp"},
        "receiver": {"group": "bench"},
        "storage": storage,
        "keys": {"directory": str(workdir / "hokeys")},
        "stations": registered,
    }


def main() -> int:
    """Run the benchmark and print Markdown rows."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--stations", type=int, default=100)
    ap.add_argument("--packets", type=int, default=2, help="packets per station")
    ap.add_argument("--packet-kib", type=int, default=300)
    ap.add_argument("--chunk-kib", type=int, default=256, help="the journal's default chunk")
    ap.add_argument("--receivers", default="1,2,4")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (median reported)")
    args = ap.parse_args()
    # SIGTERM runs the finally blocks below (broker, PostgreSQL and children are stopped).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    workdir = Path(tempfile.mkdtemp(prefix="bench-ho-"))
    pg = None
    try:
        ho, registered, jobs, total = make_packets(workdir, args.stations, args.packets,
                                                   args.packet_kib * 1024)
        from cryptography.hazmat.primitives import serialization

        ho_pub_pem = ho.signing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        chunk = args.chunk_kib * 1024
        n_packets = args.stations * args.packets
        total_chunks = sum(-(-Path(p).stat().st_size // chunk) for _, it in jobs for _, p in it)
        if args.backend == "postgresql":
            from agent.headoffice.pgserver import PgServer

            pg = PgServer().start()
        broker = Mosquitto(workdir / "broker", persistence=False,
                           extra="max_inflight_messages 64").start()
        print(f"{n_packets} packets of {args.packet_kib} KiB from {args.stations} stations, "
              f"{total / 1e6:.1f} MB, chunks of {args.chunk_kib} KiB, backend {args.backend}, "
              f"{os.cpu_count()} CPUs\n")
        print(f"median of {args.repeat} runs; load average before: "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
        print("| receivers | receiver packets/s | receiver MB/s | MB/s range | plain subscribers"
              " MB/s (baseline) | ratio | plain + fsync per chunk MB/s | ratio | target |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        try:
            for n in [int(x) for x in args.receivers.split(",")]:
                base, dur, rx = [], [], []
                note = ""
                for rep in range(args.repeat):
                    common: dict[str, Any] = dict(jobs=jobs, ho_pub_pem=ho_pub_pem, chunk=chunk,
                                                  total_chunks=total_chunks)
                    base.append(run_once(broker, n, plain=True, cfg_data={}, durable_dir=None,
                                         **common)[0])
                    durable = workdir / f"plain-{n}-{rep}"
                    durable.mkdir()
                    dur.append(run_once(broker, n, plain=True, cfg_data={},
                                        durable_dir=str(durable), **common)[0])
                    shutil.rmtree(durable, ignore_errors=True)
                    # Fresh storage each time: the same packet ids would otherwise be duplicates.
                    cfg_data = _receiver_config(args.backend, workdir, f"{n}_{rep}", pg,
                                                broker.port, registered)
                    rx_s, results = run_once(broker, n, plain=False, cfg_data=cfg_data,
                                             durable_dir=None, **common)
                    rx.append(rx_s)
                    stored = sum(r["stored"] for r in results)
                    if stored != n_packets:
                        note = f" (stored {stored}/{n_packets}!)"
                    print(f"receivers={n} run {rep}: {rx_s:.2f} s, per receiver {results}",
                          file=sys.stderr)
                b_s, d_s, r_s = (statistics.median(x) for x in (base, dur, rx))
                spread = (f"{total / max(rx) / 1e6:.1f}-{total / min(rx) / 1e6:.1f}"
                          if len(rx) > 1 else "")
                print(f"| {n} | {n_packets / r_s:.1f} | {total / r_s / 1e6:.1f} | {spread} | "
                      f"{total / b_s / 1e6:.1f} | {b_s / r_s:.2f} | "
                      f"{total / d_s / 1e6:.1f} | {d_s / r_s:.2f} | none set; find where adding"
                      f" receivers stops helping{note} |", flush=True)
        finally:
            broker.stop()
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
