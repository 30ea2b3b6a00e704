"""A light station for the crash loop: the daemon's journal, sealer and uplink, no devices.

Runs the real code paths that hold the durability promises (``JournalSealer.seal`` streaming a
signed+encrypted packet into the journal, ``Uplink`` publishing chunks and taking head office's
acks, purge on delivery) without the device emulators, so one crash cycle costs a fraction of a
second instead of a full daemon start.

Started once as a *zygote* (``python -m tests.reliability.lightstation``): it imports everything,
then for each JSON line on stdin forks one station child (fork of a single-threaded process is
safe; the child starts its threads after the fork). Lines on stdout, each one ``write(2)`` so a
kill never leaves half a line:

    CHILD <pid>                    the zygote forked a station
    OPEN <pid>                     journal opened (recovery done), uplink started
    SAVED <pid> <packet_id>        seal() returned: what the operator would see as "saved"
    REFUSED <pid> <code>           seal() raised a WorkflowError (visible refusal)
    DRAINED <pid>                  (drain mode) outbox empty, exiting cleanly
    DONE <pid>                     all attempts made (then it lingers, or drains)
    EXIT <pid> <status>            the zygote reaped the child (status as from waitpid)
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import sqlite_utils  # noqa: F401  (imported lazily by the journal; preloaded so a fork is cheap)

import agent.operators.audit  # noqa: F401  (imported lazily by the sealer)
from agent import faults
from agent.config import load_config
from agent.journal import Journal
from agent.keys import keys_dir
from agent.packet.enrollment import JournalSealer
from agent.uplink import make_component
from agent.workflow.session import WorkflowError
from agent.workflow.synthetic import applicant


def report(*fields: object) -> None:
    """One line on stdout in a single write(2) (atomic on a pipe below PIPE_BUF)."""
    os.write(1, (" ".join(str(f) for f in fields) + "\n").encode())


@dataclass
class Photo:
    """An exception photo: raw bytes go into the packet unchanged (where the canary bytes ride)."""

    data: bytes
    format: str = "jpeg"
    quality: int = 80
    width: int = 64
    height: int = 64
    device: dict[str, Any] = field(default_factory=dict)
    ppi: int | None = None


@dataclass
class ExceptedItem:
    """A finger recorded as an exception (amputated) with a photo: the smallest item with pixels."""

    exception_photo: Photo
    key: str = "finger.1"
    status: str = "excepted"
    attempts: int = 0
    best: None = None
    captured_at: str | None = None
    force_reason: str | None = None
    exception_reason: str | None = "amputated"
    exception_note: str | None = None
    operator_id: str | None = "OP-001"
    approved_by: str | None = "OP-001"


@dataclass
class MiniSession:
    """The SessionLike the sealer needs: biodata (with the canary) and one excepted item."""

    id: str
    biodata: dict[str, str]
    items: dict[str, ExceptedItem]
    operator_id: str | None = "OP-001"
    stages: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)


def make_session(seed: int, marker: str, photo_bytes: int) -> MiniSession:
    """A session whose name/address carry ``marker`` and whose photo bytes carry it too."""
    rng = random.Random(seed)
    body = bytearray(rng.randbytes(photo_bytes))
    planted = marker.encode()
    for at in range(0, max(1, photo_bytes - len(planted)), 4096):
        body[at:at + len(planted)] = planted  # the marker every 4 KiB of the "image"
    bio = {k: str(v) for k, v in applicant(seed, marker=marker).items()}
    return MiniSession(id=f"s{seed}", biodata=bio,
                       items={"finger.1": ExceptedItem(Photo(bytes(body[:photo_bytes])))})


def run_station(job: dict[str, Any]) -> None:
    """The body of one station child (never returns)."""
    faults.arm(job.get("crash") or None)
    cfg = load_config(job["config"])
    logging.basicConfig(filename=job["log"], level=logging.INFO,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    journal = Journal.open(cfg.state_dir, cfg.journal)
    uplink = make_component(cfg, SimpleNamespace(journal=journal, components=[]))
    if uplink is not None:
        uplink.start()
    sealer = JournalSealer.from_keys_dir(journal, cfg.station.id, keys_dir(cfg.state_dir),
                                         ) if job.get("count", 0) else None
    me = os.getpid()
    report("OPEN", me)
    if job.get("wait_start"):
        # The test arms its fault injection now, then lets the attempts begin.
        go = time.monotonic() + 60
        while not os.path.exists(job["wait_start"]) and time.monotonic() < go:
            time.sleep(0.02)
    rng = random.Random(job["seed"])
    for i in range(int(job.get("count", 0))):
        seed = job["seed"] * 1000 + i
        session = make_session(seed, job["marker"], rng.randint(1_000, int(job.get("max_photo", 60_000))))
        if sealer is None:
            raise RuntimeError("no sealer")
        try:
            packet_id = sealer.seal(session)
        except WorkflowError as exc:
            report("REFUSED", me, exc.code)
            time.sleep(float(job.get("interval", 0)))
            continue
        report("SAVED", me, packet_id)
        time.sleep(float(job.get("interval", 0)))
    report("DONE", me)
    deadline = time.monotonic() + float(job.get("linger", 3600))
    while time.monotonic() < deadline:
        if job.get("drain") and not journal.outbox(1):
            report("DRAINED", me)
            break
        time.sleep(0.05)
    if uplink is not None:
        uplink.stop()
    journal.close()
    os._exit(0)


def zygote() -> None:
    """Fork one station per job line on stdin; report its pid and its exit status."""
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                run_station(job)
            except BaseException as exc:  # the child must never return into the zygote loop
                report("ERROR", os.getpid(), type(exc).__name__, str(exc).replace("\n", " ")[:300])
            finally:
                os._exit(70)
        report("CHILD", pid)
        _, status = os.waitpid(pid, 0)
        report("EXIT", pid, status)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--job":
        # One station in this process (fault injection by LD_PRELOAD needs an exec, not a fork).
        try:
            run_station(json.loads(sys.argv[2]))
        except BaseException as exc:
            report("ERROR", os.getpid(), type(exc).__name__, str(exc).replace("\n", " ")[:300])
            os._exit(70)
    else:
        zygote()
