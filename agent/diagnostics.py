"""Station health for technicians: each check answers "is this fine, and if not, what to do?".

Checks are plain functions registered in ``CHECKS``; the subsystems add theirs (devices, journal,
printing, operators; :func:`load_subsystem_checks` imports them). ``rekam diag`` prints them and
exits non-zero when any fails.

:func:`build_report` puts the checks together with the figures behind them (device list, journal
backlog and its growth forecast, link, stock, today's service times, clock, power) as one JSON-able
dict. The daemon's diagnostics page serves it at ``/api/diag.json`` with the live state of its
parts (:class:`LiveSources`); without a daemon it is built offline from the config, the state
directory and a read-only look at the journal.

Nothing here shows biometric data, NIK, names or keys: ids, counts, sizes, states and times only
(research note §2.8, STYLE.md §14).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import Config

log = logging.getLogger(__name__)

OK, WARN, FAIL = "ok", "warn", "fail"
REPORT_VERSION = 1


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
    if fn not in CHECKS:
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
    try:
        days = backlog_growth(cfg).get("days_to_quota")
    except sqlite3.Error:
        days = None  # an unreadable journal is the journal check's line, not the disk's
    if days is not None and days < 3:
        return [Check("disk", WARN, f"{detail}; journal quota reached in about {days:.1f} days at the "
                                    "current rate",
                      "Antrean data terus bertambah: periksa koneksi ke kantor pusat atau ekspor data.",
                      "The backlog keeps growing: check the link to head office or export (rekam export).")]
    if days is not None:
        detail += f"; quota reached in about {days:.0f} days at the current rate"
    return [Check("disk", OK, detail)]


@check
def _clock(cfg: Config) -> list[Check]:
    return clock_checks(cfg)


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


@check
def _keys(cfg: Config) -> list[Check]:
    from agent.keys import key_status, keys_dir

    status = key_status(keys_dir(cfg.state_dir))
    if not status.ok:
        return [Check("keys", FAIL, "; ".join(status.problems),
                      "Kunci stasiun belum lengkap; hubungi teknisi (rekam keys init, rekam keys trust-headoffice).",
                      "Station keys are incomplete: run `rekam keys init` and `rekam keys trust-headoffice`.")]
    return [Check("keys", OK, f"station {status.station_kid}, head office {status.headoffice_encryption_kid}"
                              f"/{status.headoffice_signing_kid}")]


def _journal_checks(cfg: Config) -> list[Check]:
    from agent.journal.diag import journal_checks

    return journal_checks(cfg)


def _device_checks(cfg: Config) -> list[Check]:
    from agent.devices import device_checks

    return device_checks(cfg)


def _kpi_checks(cfg: Config) -> list[Check]:
    kpis = offline_kpis(cfg)
    return kpi_checks(cfg, kpis) if kpis is not None else []


def _power_offline(cfg: Config) -> list[Check]:
    if not cfg.power.enabled:
        return []
    from agent.power import PowerMonitor

    return power_checks(PowerMonitor(cfg.power).poll().as_dict())


_loaded = threading.Lock()


def load_subsystem_checks() -> None:
    """Register the subsystems' checks (idempotent); they live next to the code they check."""
    with _loaded:
        # Importing these registers their checks (operators, printing and stock).
        import agent.operators.diag
        import agent.printing.diag  # noqa: F401

        for fn in (_journal_checks, _device_checks, _kpi_checks, _power_offline):
            check(fn)


# Checks the daemon replaces with live ones (it holds the devices and knows the power state).
LIVE_REPLACES: tuple[CheckFn, ...] = (_device_checks, _power_offline)


def run_checks(cfg: Config, *, exclude: Collection[CheckFn] = ()) -> list[Check]:
    """Run every registered check; a crashing check is reported, not raised."""
    load_subsystem_checks()
    results: list[Check] = []
    for fn in CHECKS:
        if fn in exclude:
            continue
        try:
            results.extend(fn(cfg))
        except Exception as exc:  # one broken check must not hide the others
            log.debug("check %s crashed", fn.__name__, exc_info=True)
            results.append(Check(fn.__name__.strip("_"), FAIL, f"check crashed: {type(exc).__name__}: {exc}"))
    return results


# --------------------------------------------------------------------------- journal, read-only


@contextmanager
def journal_ro(cfg: Config) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to the journal database, or None when there is none yet."""
    from agent.journal.store import db_path

    path = db_path(cfg.state_dir)
    if not path.is_file():
        yield None
        return
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=2.0)
    try:
        yield conn
    finally:
        conn.close()


def _table_exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def _utc(dt: datetime) -> str:
    from agent.journal.model import iso

    # The journal's own fixed-width form, so string comparison in SQL is time comparison.
    return iso(dt)


def backlog_growth(cfg: Config, *, now: datetime | None = None) -> dict[str, Any]:
    """Net growth of the waiting backlog over the forecast window and days until the quota is full.

    The rate is the bytes of packets created within the window that are still waiting, per day: a
    link that keeps up makes it zero, a dead link makes it the recording rate. The ceiling is the
    smaller of the journal quota and what the disk can still give above its floor.
    """
    now = now or datetime.now(UTC)
    window = cfg.diagnostics.forecast_window_days
    with journal_ro(cfg) as conn:
        if conn is None:
            return {"window_days": window, "bytes_per_day": 0.0, "days_to_quota": None}
        used = int(conn.execute(
            "SELECT coalesce(sum(size),0) FROM packets WHERE state IN ('queued','sending','quarantined',"
            "'delivered')").fetchone()[0])
        grown = int(conn.execute(
            "SELECT coalesce(sum(size),0) FROM packets WHERE state IN ('queued','sending','quarantined') "
            "AND created_at >= ?", (_utc(now - timedelta(days=window)),)).fetchone()[0])
    free = shutil.disk_usage(cfg.state_dir).free
    ceiling = min(cfg.journal.max_bytes, used + max(0, free - cfg.journal.free_disk_floor_bytes))
    rate = grown / window
    days = None if rate <= 0 else max(0.0, (ceiling - used) / rate)
    return {"window_days": window, "bytes_per_day": round(rate, 1), "ceiling_bytes": ceiling,
            "days_to_quota": None if days is None else round(days, 1)}


def backlog_history(cfg: Config, *, days: int | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    """Waiting packets at the end of each of the last ``days`` office-local days (and now)."""
    days = days or cfg.diagnostics.chart_days
    zone = ZoneInfo(cfg.station.timezone)
    now = now or datetime.now(UTC)
    today = now.astimezone(zone).date()
    out: list[dict[str, Any]] = []
    with journal_ro(cfg) as conn:
        if conn is None:
            return []
        for i in range(days - 1, -1, -1):
            day = today - timedelta(days=i)
            end = min(now, datetime.combine(day + timedelta(days=1), datetime.min.time(), zone))
            cut = _utc(end)
            # Waiting at ``end``: created by then, not yet delivered/quarantined by then.
            n, size = conn.execute(
                "SELECT count(*), coalesce(sum(size),0) FROM packets WHERE state != 'writing' "
                "AND created_at < ? AND (delivered_at IS NULL OR delivered_at >= ?) "
                "AND (quarantined_at IS NULL OR quarantined_at >= ?)", (cut, cut, cut)).fetchone()
            out.append({"day": day.isoformat(), "packets": int(n), "bytes": int(size)})
    return out


def recordings_by_kelurahan(cfg: Config, *, days: int | None = None,
                            now: datetime | None = None) -> list[dict[str, Any]]:
    """Sealed recordings per office-local day and kelurahan (codes/place names; no people)."""
    days = days or cfg.diagnostics.chart_days
    today = (now or datetime.now(UTC)).astimezone(ZoneInfo(cfg.station.timezone)).date()
    first = (today - timedelta(days=days - 1)).isoformat()
    counts: dict[str, dict[str, int]] = {}
    with journal_ro(cfg) as conn:
        if conn is not None and _table_exists(conn, "service_times"):
            for day, kel, n in conn.execute(
                    "SELECT day, kelurahan, count(*) FROM service_times WHERE day >= ? AND sealed_at "
                    "IS NOT NULL GROUP BY day, kelurahan", (first,)):
                counts.setdefault(day, {})[kel] = int(n)
    return [{"day": (d := (today - timedelta(days=i)).isoformat()), "by_kelurahan": counts.get(d, {})}
            for i in range(days - 1, -1, -1)]


def service_times_today(cfg: Config, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Today's sessions in start order: recording and (when printed) service seconds."""
    day = (now or datetime.now(UTC)).astimezone(ZoneInfo(cfg.station.timezone)).date().isoformat()
    out: list[dict[str, Any]] = []
    with journal_ro(cfg) as conn:
        if conn is None or not _table_exists(conn, "service_times"):
            return []
        for started, record_s, printed in conn.execute(
                "SELECT started_at, record_seconds, printed_at FROM service_times WHERE day = ? "
                "AND sealed_at IS NOT NULL ORDER BY started_at LIMIT 500", (day,)):
            service = None
            if printed:
                service = (datetime.fromisoformat(printed) - datetime.fromisoformat(started)).total_seconds()
            out.append({"started_at": started, "record_seconds": record_s, "service_seconds": service})
    return out


class _RoStore:
    """agent.kpi's Store over a read-only connection (only ``query`` is used by kpi.daily)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def register_schema(self, name: str, ddl_sql: str) -> None:
        """Read-only: tables are created by the daemon, never here."""
        raise sqlite3.OperationalError("read-only store")

    def transaction(self) -> Any:
        """Read-only: no writes."""
        raise sqlite3.OperationalError("read-only store")

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement."""
        return [tuple(r) for r in self.conn.execute(sql, tuple(params))]


def offline_kpis(cfg: Config, *, day: date | None = None) -> dict[str, Any] | None:
    """Today's KPIs from the journal, read-only; None when there is no service-time table yet."""
    from agent import kpi

    tz = cfg.station.timezone
    day = day or datetime.now(ZoneInfo(tz)).date()
    with journal_ro(cfg) as conn:
        if conn is None or not _table_exists(conn, "service_times") or not _table_exists(conn, "link_outages"):
            return None
        return kpi.daily(_RoStore(conn), day.isoformat(), tz=tz,
                         standard_seconds=cfg.session.service_standard_seconds)


class _RoJournal(_RoStore):
    """Just enough of the journal for agent.printing's forecast, over a read-only connection.

    Opening the real journal runs an integrity check (about 100 ms for 40 MB, measured in
    bench_diag.py); the forecast only reads, so its "transactions" are plain reads here.
    """

    def register_schema(self, name: str, ddl_sql: str) -> None:
        """Tables come from the daemon; the caller checks they exist."""

    def add_event(self, kind: str, payload: dict[str, Any]) -> int:
        """Read-only: a forecast never journals an event."""
        raise sqlite3.OperationalError("read-only journal view")

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """The read-only connection itself (its ``execute`` is all the readers use; a write fails)."""
        yield self.conn


def offline_stock(cfg: Config) -> dict[str, Any] | None:
    """The blank-card and ribbon forecast from the journal, read-only; None before any printing."""
    if not cfg.printer.enabled:
        return None
    from agent.printing.queue import PrintQueue
    from agent.printing.stock import StockLedger

    with journal_ro(cfg) as conn:
        if conn is None or not all(_table_exists(conn, t) for t in ("stock_ledger", "stock_ribbon", "print_jobs")):
            return None
        ro = _RoJournal(conn)
        ledger = StockLedger(ro, window_days=cfg.printer.forecast_window_days, low_days=cfg.printer.low_stock_days)
        queue = PrintQueue(ro, ledger, station_id=cfg.station.id, recover=False)
        return ledger.forecast(queue.queued_count()).as_dict()


def last_delivery(cfg: Config) -> str | None:
    """When head office last acknowledged a packet (from the journal)."""
    with journal_ro(cfg) as conn:
        if conn is None:
            return None
        row = conn.execute("SELECT max(delivered_at) FROM packets").fetchone()
        return row[0] if row else None


# --------------------------------------------------------------------------- figures -> checks


def kpi_checks(cfg: Config, kpis: dict[str, Any]) -> list[Check]:
    """Today's service against the standard (a warning when under 80 % within it)."""
    total = kpis.get("total") or {}
    minutes = cfg.session.service_standard_seconds // 60
    share = total.get("within_standard_share")
    median = total.get("recording_median_s")
    detail = (f"{total.get('recorded', 0)} recorded, {total.get('printed', 0)} printed; recording median "
              f"{'-' if median is None else f'{median / 60:.1f} min'}; within {minutes} min: "
              f"{'-' if share is None else f'{share:.0%}'}")
    if share is not None and share < 0.8:
        return [Check("service today", WARN, detail,
                      f"Kurang dari 80% pemohon selesai dalam {minutes} menit; periksa perangkat dan antrean.",
                      f"Fewer than 80% of applicants finished within {minutes} minutes; check devices and queue.")]
    return [Check("service today", OK, detail)]


def device_state_checks(devices: list[dict[str, Any]]) -> list[Check]:
    """One line per device from the device manager's snapshot, with the hint of its last error."""
    out: list[Check] = []
    for d in devices:
        ident = d.get("identity") or {}
        who = " ".join(str(ident[k]) for k in ("model", "serial", "firmware") if ident.get(k))
        err = d.get("last_error") or {}
        state = str(d.get("state"))
        detail = f"{state}; {d.get('driver')} ({d.get('role')})" + (f"; {who}" if who else "")
        if state in ("ready", "busy"):
            out.append(Check(f"device {d.get('name')}", OK, detail))
            continue
        if err.get("message"):
            detail += f"; last error: {err.get('message')}"
        status = WARN if state == "initialising" else FAIL
        out.append(Check(f"device {d.get('name')}", status, detail,
                         err.get("hint_id") or "Perangkat tidak siap. Periksa kabel dan daya, lalu tunggu.",
                         err.get("hint_en") or "The device is not ready. Check its cable and power, then wait."))
    return out


def link_checks(cfg: Config, link: dict[str, Any]) -> list[Check]:
    """The uplink's state, last ack, drain rate and reconnects."""
    state = str(link.get("link_state"))
    detail = (f"{state}; last ack {link.get('last_ack_at') or '-'}; drain "
              f"{(link.get('drain_rate_bps') or 0) / 1024:,.0f} KiB/s; {link.get('connects', 0)} connects of "
              f"{link.get('connect_attempts', 0)} attempts")
    if state in ("connected", "disabled"):
        return [Check("link", OK, detail)]
    return [Check("link", WARN, detail + (f"; {link['last_error']}" if link.get("last_error") else ""),
                  "Tidak tersambung ke kantor pusat; data aman tersimpan dan dikirim nanti. Periksa internet.",
                  "Not connected to head office; records are kept and sent later. Check the network.")]


def stock_checks(cfg: Config, stock: dict[str, Any]) -> list[Check]:
    """Blank cards and ribbon against the low-stock threshold (live form of agent.printing.diag)."""
    out: list[Check] = []
    low = cfg.printer.low_stock_days
    for name, key, what_id, what_en in (("blank stock", "blank_days", "blangko", "blank cards"),
                                        ("ribbon", "ribbon_days", "pita", "ribbon")):
        days = stock.get(key)
        if days is not None and days <= 0:
            out.append(Check(name, FAIL, f"{what_en} used up", f"Stok {what_id} habis. Minta kiriman ke Disdukcapil.",
                             f"No {what_en} left. Ask the population office for a delivery."))
        elif days is not None and days < low:
            out.append(Check(name, WARN, f"about {days:.1f} days left at {stock.get('rate_per_day')} a day",
                             f"Stok {what_id} hampir habis. Minta kiriman sekarang.",
                             f"{what_en.capitalize()} running low. Ask for a delivery now."))
        else:
            left = stock.get("blanks") if key == "blank_days" else stock.get("ribbon_cards_left")
            out.append(Check(name, OK, f"{left} ({'no use recorded yet' if days is None else f'about {days:.1f} days'})"))
    return out


def power_checks(power: dict[str, Any]) -> list[Check]:
    """The UPS line."""
    state = power.get("state")
    detail = f"{state}; status {power.get('status') or '-'}; charge {power.get('charge')}"
    if state == "mains":
        return [Check("power", OK, detail)]
    if state == "low":
        from agent.power import MESSAGE_EN, MESSAGE_ID

        return [Check("power", FAIL, detail, MESSAGE_ID, MESSAGE_EN)]
    if state == "battery":
        return [Check("power", WARN, detail, "Listrik padam; stasiun memakai baterai UPS.",
                      "Mains power is off; the station runs on the UPS battery.")]
    return [Check("power", WARN, f"{detail}; {power.get('error', '')}",
                  "Status UPS tidak terbaca; periksa layanan NUT (upsd).",
                  "The UPS state cannot be read; check the NUT service (upsd).")]


# --------------------------------------------------------------------------- clock


class ClockWatch:
    """Notices wall-clock steps: the offset between wall and monotonic clocks should not move.

    A Pi has no real-time clock; NTP may step the time hours forward after boot, or someone may
    set it by hand. Each :meth:`sample` compares the offset with the previous one.
    """

    def __init__(self, threshold_seconds: float, *, keep: int = 20) -> None:
        self.threshold = threshold_seconds
        self.keep = keep
        self.jumps: list[dict[str, Any]] = []
        self._offset = time.time() - time.monotonic()
        self._lock = threading.Lock()

    def sample(self) -> list[dict[str, Any]]:
        """Compare now with the previous sample; return the jumps seen so far (newest last)."""
        offset = time.time() - time.monotonic()
        with self._lock:
            step = offset - self._offset
            self._offset = offset
            if abs(step) > self.threshold:
                self.jumps.append({"at": datetime.now(UTC).isoformat(timespec="seconds"),
                                   "seconds": round(step, 1)})
                del self.jumps[: -self.keep]
            return list(self.jumps)


def clock_checks(cfg: Config, *, jumps: list[dict[str, Any]] | None = None,
                 synced_flag: Path = Path("/run/systemd/timesync/synchronized")) -> list[Check]:
    """Wrong year, journal rows from the future (the clock went back), unsynchronised, jumps."""
    now = datetime.now(UTC)
    if now.year < 2024:
        return [Check("clock", FAIL, f"system clock says {now.year}",
                      "Jam komputer salah; sambungkan internet atau atur jam.",
                      "The clock is wrong; connect to the network (NTP) or set the time.")]
    with journal_ro(cfg) as conn:
        newest = conn.execute("SELECT max(created_at) FROM packets").fetchone()[0] if conn else None
    if newest and datetime.fromisoformat(newest) > now + timedelta(seconds=cfg.diagnostics.clock_jump_seconds):
        return [Check("clock", FAIL, f"the journal has a packet from {newest}, later than now",
                      "Jam komputer mundur; atur jam dengan benar sebelum merekam.",
                      "The clock went backwards; set the correct time before recording.")]
    if jumps:
        last = jumps[-1]
        return [Check("clock", WARN, f"{len(jumps)} clock jump(s); last {last['seconds']:+.0f} s at {last['at']}",
                      "Jam komputer melompat; periksa sinkronisasi waktu (NTP).",
                      "The clock jumped; check time synchronisation (NTP).")]
    if synced_flag.exists():
        return [Check("clock", OK, "synchronised (systemd-timesyncd)")]
    return [Check("clock", WARN, "synchronisation unknown (no timesyncd flag)",
                  "Pastikan jam tersinkron (NTP).", "Make sure the clock is synchronised (NTP).")]


# --------------------------------------------------------------------------- the report


@dataclass
class LiveSources:
    """What the running daemon adds to the offline report; each is optional."""

    devices: Callable[[], list[dict[str, Any]]] | None = None
    link: Callable[[], dict[str, Any]] | None = None
    stock: Callable[[], dict[str, Any]] | None = None
    kpis: Callable[[], dict[str, Any]] | None = None
    power: Callable[[], dict[str, Any]] | None = None
    clock: ClockWatch | None = None
    started_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _safe(fn: Callable[[], Any] | None, what: str, errors: list[Check]) -> Any:
    if fn is None:
        return None
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a broken part is reported, the rest still shows
        errors.append(Check(what, FAIL, f"could not read: {type(exc).__name__}: {exc}"))
        return None


def build_report(cfg: Config, live: LiveSources | None = None) -> dict[str, Any]:
    """Checks plus the figures behind them, JSON-able (the body of /api/diag.json and `rekam diag --json`)."""
    errors: list[Check] = []
    exclude: tuple[CheckFn, ...] = ()
    if live is not None:
        exclude = (*LIVE_REPLACES, _clock, _kpi_checks)
    checks = run_checks(cfg, exclude=exclude)
    devices = None
    link = None
    stock = None
    kpis = None
    power = None
    jumps: list[dict[str, Any]] = []
    if live is not None:
        devices = _safe(live.devices, "devices", errors)
        link = _safe(live.link, "link", errors)
        stock = _safe(live.stock, "stock", errors)
        kpis = _safe(live.kpis, "service today", errors)
        power = _safe(live.power, "power", errors)
        jumps = live.clock.sample() if live.clock else []
        checks.extend(_safe(lambda: clock_checks(cfg, jumps=jumps), "clock", errors) or [])
        if devices is not None:
            checks.extend(device_state_checks(devices))
        # The config-level device lines that the live state does not cover: device nodes present
        # but not configured (agent.devices discovery) and a station without a fingerprint scanner.
        checks.extend(c for c in _safe(lambda: _device_checks(cfg), "device discovery", errors) or []
                      if c.name.startswith("found ") or c.name == "fingerprint scanner")
        if link is not None:
            checks.extend(link_checks(cfg, link))
        elif live.link is not None:
            pass  # the part is there but could not answer: _safe reported it
        elif cfg.uplink.enabled:
            checks.append(Check("link", WARN, "the uplink is not running in this daemon",
                                "Pengiriman ke kantor pusat tidak berjalan; hubungi teknisi.",
                                "The uplink to head office is not running; see the daemon log."))
        else:
            checks.append(Check("link", OK, "disabled ([uplink] enabled = false)"))
        if power is not None:
            checks.extend(power_checks(power))
        if kpis is not None:
            checks.extend(kpi_checks(cfg, kpis))
        # agent.printing.diag already judged stock from the journal; the live figures only feed the chart.
    else:
        kpis = _safe(lambda: offline_kpis(cfg), "service today", errors)
        stock = _safe(lambda: offline_stock(cfg), "stock", errors)
        link = {"link_state": "unknown (daemon not running)",
                "last_ack_at": _safe(lambda: last_delivery(cfg), "link", errors)}
    checks.extend(errors)
    journal: dict[str, Any] | None = None
    try:
        from agent.journal.inspect import journal_status

        st = journal_status(cfg.state_dir, cfg.journal)
        journal = {"waiting_packets": st["waiting_packets"], "oldest_waiting": st["oldest_waiting"],
                   "used_bytes": st["used_bytes"], "quota_bytes": st["quota_bytes"],
                   "free_disk_bytes": st["free_disk_bytes"], "pending_events": st["pending_events"],
                   "quarantined": st["states"]["quarantined"]["packets"]}
    except Exception as exc:  # noqa: BLE001 - journal_checks already reports why
        log.debug("journal status unavailable: %s", exc)
    # Figures the journal cannot give are left empty; the journal check already says why.
    figure_errors: list[Check] = []
    worst = FAIL if any(c.status == FAIL for c in checks) else WARN if any(c.status == WARN for c in checks) else OK
    return {
        "v": REPORT_VERSION,
        "station_id": cfg.station.id,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": "daemon" if live is not None else "offline",
        "started_at": live.started_at if live is not None else None,
        "healthy": worst != FAIL,
        "overall": worst,
        "checks": [c.as_dict() for c in checks],
        "devices": devices,
        "journal": journal,
        "growth": _safe(lambda: backlog_growth(cfg), "journal figures", figure_errors),
        "link": link,
        "stock": stock,
        "kpis": kpis,
        "power": power,
        "clock": {"now": datetime.now(UTC).isoformat(timespec="seconds"), "jumps": jumps},
        "charts": {
            "standard_seconds": cfg.session.service_standard_seconds,
            "service_times": _safe(lambda: service_times_today(cfg), "journal figures", figure_errors) or [],
            "recordings": _safe(lambda: recordings_by_kelurahan(cfg), "journal figures", figure_errors) or [],
            "backlog": _safe(lambda: backlog_history(cfg), "journal figures", figure_errors) or [],
        },
    }
