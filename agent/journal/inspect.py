"""Read-only looks at the journal for ``rekam journal check|status``.

They open the database with ``mode=ro``, so they run safely beside a live daemon: no
recovery, no state resets, no writes.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.config import JournalConfig
from agent.journal.errors import JournalError
from agent.journal.model import STATES
from agent.journal.store import RESERVE_NAME, compute_headroom, db_path, scan_packet


def _open_ro(state_dir: Path) -> sqlite3.Connection:
    path = db_path(state_dir)
    if not path.is_file():
        raise JournalError(f"{path}: no journal here (has the daemon ever run with this state directory?)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        conn.execute("SELECT count(*) FROM packets").fetchone()
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path}: not a readable journal database: {exc}") from exc
    return conn


@dataclass
class CheckReport:
    """What ``rekam journal check`` found."""

    ok: bool
    integrity: list[str]
    problems: list[str] = field(default_factory=list)
    packets_checked: int = 0
    bytes_checked: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def check_journal(state_dir: Path) -> CheckReport:
    """Full PRAGMA integrity_check plus every stored chunk's and packet's SHA-256."""
    conn = _open_ro(state_dir)
    try:
        try:
            integrity = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(50)")]
        except sqlite3.DatabaseError as exc:
            return CheckReport(ok=False, integrity=[f"integrity_check failed: {exc}"])
        report = CheckReport(ok=integrity == ["ok"], integrity=integrity)
        try:
            rows = conn.execute(
                "SELECT packet_id, size FROM packets WHERE state NOT IN ('purged','writing') "
                "ORDER BY created_at").fetchall()
            for pid, size in rows:
                report.problems.extend(scan_packet(conn, pid))
                report.packets_checked += 1
                report.bytes_checked += size
            orphans = conn.execute(
                "SELECT count(*) FROM chunks WHERE packet_id NOT IN "
                "(SELECT packet_id FROM packets WHERE state NOT IN ('purged','writing'))"
            ).fetchone()[0]
            if orphans:
                report.problems.append(f"{orphans} chunk rows belong to no stored packet")
        except sqlite3.DatabaseError as exc:
            report.problems.append(f"reading chunks failed: {exc}")
        report.ok = report.ok and not report.problems
        return report
    finally:
        conn.close()


def journal_status(state_dir: Path, cfg: JournalConfig) -> dict[str, Any]:
    """Counts and bytes by state, the oldest waiting packet, events, files, headroom."""
    conn = _open_ro(state_dir)
    try:
        by_state = {s: {"packets": 0, "bytes": 0} for s in STATES if s != "writing"}
        for state, n, size in conn.execute(
                "SELECT state, count(*), coalesce(sum(size), 0) FROM packets GROUP BY state"):
            by_state[state] = {"packets": n, "bytes": size if state != "purged" else 0}
        waiting, oldest = conn.execute(
            "SELECT count(*), min(created_at) FROM packets "
            "WHERE state IN ('queued','sending','quarantined')").fetchone()
        exported = conn.execute(
            "SELECT count(*) FROM packets WHERE exported_at IS NOT NULL "
            "AND state IN ('queued','sending','quarantined')").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM events WHERE sent_at IS NULL").fetchone()[0]
        warning_row = conn.execute(
            "SELECT value FROM meta WHERE key = 'storage_warning'").fetchone()
    finally:
        conn.close()
    used = sum(v["bytes"] for v in by_state.values())
    path = db_path(state_dir)
    wal = path.with_name(path.name + "-wal")
    free = shutil.disk_usage(state_dir).free
    wal_bytes = wal.stat().st_size if wal.exists() else 0
    # The WAL's size as it is now, as the daemon counts it; without it the bound assumes the
    # WAL's whole growth is still to come and reports less room than the daemon sees.
    room = compute_headroom(cfg, used=used, waiting=int(waiting), oldest=oldest, free=free,
                            reserve_present=(Path(state_dir) / RESERVE_NAME).exists() or cfg.reserve_bytes == 0,
                            warning=bool(warning_row and warning_row[0] == "1"), wal_bytes=wal_bytes)
    return {
        "states": by_state,
        "waiting_packets": int(waiting),
        "oldest_waiting": oldest,
        "exported_waiting": int(exported),
        "pending_events": int(events),
        "used_bytes": used,
        "quota_bytes": cfg.max_bytes,
        "database_bytes": path.stat().st_size + wal_bytes,
        "free_disk_bytes": free,
        "headroom": asdict(room),
    }
