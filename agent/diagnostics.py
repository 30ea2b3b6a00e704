"""Station health checks for technicians: each check answers "is this fine, and if not, what to do?".

Checks are plain functions registered in ``CHECKS``; the subsystems add theirs. ``rekam diag``
prints them and exits non-zero when any is not ok. Nothing here shows biometric data, NIK or
names.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.config import Config

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    """One line of the diagnostics screen."""

    name: str
    status: str  # ok | warn | fail
    detail: str
    hint_id: str = ""
    hint_en: str = ""

    def as_dict(self) -> dict[str, str]:
        """JSON form."""
        return asdict(self)


CheckFn = Callable[[Config], list[Check]]
CHECKS: list[CheckFn] = []


def check(fn: CheckFn) -> CheckFn:
    """Register a check function."""
    CHECKS.append(fn)
    return fn


@check
def _state_dir(cfg: Config) -> list[Check]:
    from agent.statedir import StateDirError, prepare_state_dir

    path = cfg.state_dir
    try:
        prepare_state_dir(path)
    except StateDirError as exc:
        return [Check("state directory", FAIL, str(exc),
                      "Direktori data tidak dapat dipakai; hubungi teknisi.",
                      "The state directory cannot be used; fix its owner and mode (0700).")]
    return [Check("state directory", OK, f"{path} (mode 0700)")]


@check
def _disk(cfg: Config) -> list[Check]:
    path = cfg.state_dir if cfg.state_dir.exists() else Path("/")
    usage = shutil.disk_usage(path)
    free_mb = usage.free / 1024**2
    floor_mb = cfg.journal.free_disk_floor_bytes / 1024**2
    detail = f"{free_mb:,.0f} MB free of {usage.total / 1024**2:,.0f} MB (floor {floor_mb:,.0f} MB)"
    if usage.free < cfg.journal.free_disk_floor_bytes:
        return [Check("disk", FAIL, detail,
                      "Disk hampir penuh: ekspor data ke media lepas (rekam export).",
                      "Disk nearly full: export the backlog to removable media (rekam export).")]
    return [Check("disk", OK, detail)]


@check
def _clock(cfg: Config) -> list[Check]:
    # A Raspberry Pi has no real-time clock: until NTP syncs, time may be far in the past.
    synced_flag = Path("/run/systemd/timesync/synchronized")
    year = time.gmtime().tm_year
    if year < 2024:
        return [Check("clock", FAIL, f"system clock says {year}",
                      "Jam komputer salah; sambungkan internet atau atur jam.",
                      "The clock is wrong; connect to the network (NTP) or set the time.")]
    if synced_flag.exists():
        return [Check("clock", OK, "synchronised (systemd-timesyncd)")]
    return [Check("clock", WARN, "synchronisation unknown (no timesyncd flag)",
                  "Pastikan jam tersinkron (NTP).", "Make sure the clock is synchronised (NTP).")]


@check
def _config(cfg: Config) -> list[Check]:
    missing = [
        str(p) for p in (cfg.uplink.ca_file, cfg.uplink.cert_file, cfg.uplink.key_file)
        if p is not None and not os.path.exists(p)
    ]
    if missing:
        return [Check("config", FAIL, f"missing files: {', '.join(missing)}",
                      "Berkas sertifikat tidak ada; pasang ulang sertifikat stasiun.",
                      "Certificate files are missing; reinstall the station certificates.")]
    return [Check("config", OK, f"{cfg.source or 'defaults'}; station {cfg.station.id}")]


def run_checks(cfg: Config) -> list[Check]:
    """Run every registered check; a crashing check is reported, not raised."""
    results: list[Check] = []
    for fn in CHECKS:
        try:
            results.extend(fn(cfg))
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            results.append(Check(fn.__name__.strip("_"), FAIL, f"check crashed: {exc!r}"))
    return results
