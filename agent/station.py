"""The station daemon's parts, wired together in start-up order.

    journal -> devices -> enrollment (sessions, sealer, station API, KPIs) -> printing -> uplink

Each part is a daemon component (agent.daemon.Component) that owns its resource and threads.
Later parts find earlier ones in ``daemon.parts``. Importing this module registers the
factories; ``rekam run`` imports it through agent.daemon.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from agent.config import Config

if TYPE_CHECKING:
    from agent.daemon import Daemon

log = logging.getLogger(__name__)

# Budget for the journal's start-up check (see JournalPart.start): a fixed slack plus the
# journal's size read at this rate, below a slow SD card's cold sequential read.
START_CHECK_SLACK_S = 60.0
START_CHECK_MIN_BYTES_PER_S = 5_000_000


class JournalPart:
    """Owns the journal: opened (with recovery) at start, purged periodically, closed at stop.

    Its maintenance thread also keeps the KPI rows current: later stage stamps, and link
    outages (from the uplink's state) for "time lost to link outages".
    """

    name = "journal"

    def __init__(self, config: Config, daemon: Daemon | None = None) -> None:
        self.config = config
        self.daemon = daemon
        self._link_up: bool | None = None
        self.journal: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the journal (integrity check and recovery run here)."""
        from agent import kpi
        from agent.journal import Journal, files_bytes
        from agent.sdnotify import extending_start

        # The start-up check reads the whole journal. A full one (2 GiB by default) on a Pi's
        # SD card, cold after a power cut, outlasts the unit's TimeoutStartSec=60: systemd
        # would kill the agent at every start until its start limit, and the backlog would
        # never leave. So the start timeout is extended while the journal opens, for as long
        # as the slowest plausible card needs (after that a hang is still killed).
        size = files_bytes(self.config.state_dir)
        with extending_start(START_CHECK_SLACK_S + size / START_CHECK_MIN_BYTES_PER_S,
                             f"checking the journal ({size // 1_000_000} MB)"):
            self.journal = Journal.open(self.config.state_dir, self.config.journal)
        kpi.install(self.journal)
        self._thread = threading.Thread(target=self._maintain, name="journal-maintenance", daemon=True)
        self._thread.start()

    def _maintain(self) -> None:
        from agent import kpi

        turns = 0
        while not self._stop.wait(2.0):
            turns += 1
            try:
                # Service-time stamps (sent, acknowledged, printed) follow within seconds.
                kpi.sync_stages(KpiStore(self.journal))
                self._track_link(kpi)
                if turns % 30 == 0:
                    # Retention > 0 keeps acknowledged packets for a while; purge them when due.
                    self.journal.purge_due()
            except Exception:
                log.exception("journal maintenance failed")

    def _track_link(self, kpi: Any) -> None:
        uplink = self.daemon.parts.get("uplink") if self.daemon is not None else None
        if uplink is None:
            return
        up = uplink.link_state == "connected"
        if up == self._link_up:
            return
        from agent.workflow.session import utc_now

        if self._link_up is not None or not up:
            (kpi.link_up if up else kpi.link_down)(KpiStore(self.journal), utc_now())
        self._link_up = up

    def stop(self) -> None:
        """Close the journal (flushes; nothing is lost)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.journal is not None:
            self.journal.close()

    def healthy(self) -> bool:
        """The maintenance thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> str:
        """Backlog for STATUS=."""
        try:
            room = self.journal.headroom()
        except Exception:  # noqa: BLE001 - a status line must never raise
            return "journal error"
        return f"backlog {room.backlog_packets}"


class EnrollmentPart:
    """Sessions, the sealer, KPIs and the station API."""

    name = "enrollment"

    def __init__(self, config: Config, daemon: Daemon) -> None:
        self.config = config
        self.daemon = daemon
        self.api: Any = None
        self.sessions: Any = None
        self.operators: Any = None
        self.watcher: Any = None

    def start(self) -> None:
        """Build the workflow objects and start serving the API on 127.0.0.1."""
        from agent import kpi
        from agent.api.server import StationApi, api_token_path, load_or_create_token
        from agent.workflow.manager import SessionManager

        journal = self.daemon.parts["journal"].journal
        devices = self.daemon.parts.get("devices")
        sealer = LazySealer(self.config, journal)
        self.sessions = SessionManager(self.config, headroom=journal.headroom)
        power = self.daemon.parts.get("power")
        if power is not None:
            # On battery below the threshold new sessions are refused (the one in progress finishes).
            self.sessions.gates.append(power.check_new_session)
        tz = self.config.station.timezone

        def keep_service_times(session: Any) -> None:
            if session.packet_id is not None:
                kpi.record_session(KpiStore(journal), session.service_record(), tz=tz)
                uplink = self.daemon.parts.get("uplink")
                if uplink is not None:
                    uplink.wake()

        self.sessions.on_finished.append(keep_service_times)
        provider: Any = _NoDevices()
        if devices is not None:
            # Capture (Pillow, the device manager) is only loaded by a station that has devices.
            from agent.workflow.capture import DeviceCaptureProvider

            provider = DeviceCaptureProvider(self.config, devices)
        if not self.config.api.enabled:
            return
        token = load_or_create_token(api_token_path(self.config))
        self.api = StationApi(
            self.config, sessions=self.sessions, provider=provider, sealer=sealer, token=token,
            devices=(lambda: list(devices.snapshot()["devices"])) if devices is not None else list,
            kpis=lambda: today_kpis(self.config, journal),
            preview=_preview(devices),
        )
        from agent.operators.routes import OperatorService, install_routes
        from agent.operators.signin import SignInWatcher

        # Operators sign in by fingerprint (or a technician's PIN); enrollment calls need one.
        self.operators = OperatorService.for_daemon(self.config, journal, devices)
        install_routes(self.api, self.operators)
        self.watcher = SignInWatcher(self.operators.signin)
        self.watcher.start()
        self.api.start()

    def stop(self) -> None:
        """Stop the API (a capture in flight is abandoned by the device manager's stop)."""
        if self.api is not None:
            self.api.stop()
        if self.watcher is not None:
            self.watcher.stop()

    def healthy(self) -> bool:
        """The API thread is alive (or the API is off)."""
        return self.api is None or bool(self.api.healthy())

    def status(self) -> str:
        """Open sessions."""
        return f"{len(self.sessions.snapshot())} sessions open" if self.sessions else ""


class PrintingPart:
    """Print orders from head office: the print service over the journal, and the printer's
    owner thread (agent.printing.worker.PrinterWorker; the device manager leaves the printer to it).
    """

    name = "printing"

    def __init__(self, config: Config, daemon: Daemon) -> None:
        self.config = config
        self.daemon = daemon
        self.service: Any = None
        self.worker: Any = None

    def start(self) -> None:
        """Create the print service and, when a printer is configured, its worker."""
        from agent.keys import KeyStoreError, keys_dir, load_headoffice_public
        from agent.printing.service import PrintService
        from agent.printing.worker import PrinterWorker

        journal = self.daemon.parts["journal"].journal
        kdir = keys_dir(self.config.state_dir)

        def ho_keys() -> dict[str, Any]:
            # Read at each order so a key rotation takes effect without a restart.
            try:
                return load_headoffice_public(kdir).verify_keys()
            except KeyStoreError:
                return {}  # no trusted head-office key yet: every order is refused

        p = self.config.printer
        self.service = PrintService(journal, station_id=self.config.station.id, headoffice_keys=ho_keys,
                                    order_max_bytes=p.order_max_bytes, max_attempts=p.max_attempts,
                                    low_stock_days=p.low_stock_days,
                                    forecast_window_days=p.forecast_window_days)
        if any(d.role == "printer" for d in self.config.devices.values()):
            self.worker = PrinterWorker(self.service, lambda: _open_printer(self.config))
            # Opened after READY=1 like the other devices (after_ready); until then say so.
            self.worker.state = "starting"

    def after_ready(self) -> None:
        """Start the printer's owner thread (it opens the printer)."""
        if self.worker is not None:
            self.worker.start()

    def stop(self) -> None:
        """Stop the printer thread (a card in progress finishes or is marked uncertain)."""
        if self.worker is not None:
            self.worker.stop()

    def healthy(self) -> bool:
        """The printer thread is alive (or there is no printer)."""
        return self.worker is None or bool(self.worker.healthy())

    def status(self) -> str:
        """Printer state for STATUS=."""
        return f"printer {self.worker.state}" if self.worker is not None else ""


class LazySealer:
    """Loads the keys at the first seal, so a station without keys still starts and says why."""

    def __init__(self, config: Config, journal: Any) -> None:
        self.config = config
        self.journal = journal
        self._sealer: Any = None

    def seal(self, session: Any) -> str:
        """Seal through agent.packet.enrollment.JournalSealer."""
        from agent.keys import KeyStoreError, keys_dir
        from agent.packet.enrollment import JournalSealer
        from agent.workflow.session import WorkflowError

        if self._sealer is None:
            try:
                self._sealer = JournalSealer.from_keys_dir(
                    self.journal, self.config.station.id, keys_dir(self.config.state_dir))
            except KeyStoreError as exc:
                raise WorkflowError(
                    "keys_missing", 503,
                    "Kunci stasiun belum dipasang; hubungi teknisi (rekam keys init, rekam keys trust-headoffice).",
                    f"Station keys are not installed: {exc}",
                ) from exc
        return str(self._sealer.seal(session))


class KpiStore:
    """The journal seen as an agent.kpi.Store (register_schema, transaction, query)."""

    def __init__(self, journal: Any) -> None:
        self.journal = journal

    def register_schema(self, name: str, ddl_sql: str) -> None:
        """Pass through."""
        self.journal.register_schema(name, ddl_sql)

    def transaction(self) -> Any:
        """Pass through."""
        return self.journal.transaction()

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """Read rows through the journal's read connection."""
        return list(self.journal.query(sql, params))


def today_kpis(config: Config, journal: Any) -> dict[str, Any]:
    """Today's service-time figures (office-local day)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from agent import kpi

    day = datetime.now(ZoneInfo(config.station.timezone)).date().isoformat()
    return kpi.daily(KpiStore(journal), day, tz=config.station.timezone,
                     standard_seconds=config.session.service_standard_seconds)


class _NoDevices:
    """Capture provider for a station with no devices configured: every capture says so."""

    def capture(self, item: str, *, language: str, context: Any = None) -> Any:
        from agent.workflow.session import WorkflowError

        raise WorkflowError("no_device", 503, "Tidak ada perangkat di konfigurasi stasiun.",
                            "No devices are configured on this station.")


def _open_printer(config: Config) -> Any:
    # The printer driver (and numpy under it) loads in the printer's thread when it first opens.
    from agent.printing.device import open_printer

    return open_printer(config)


def _preview(devices: Any) -> Any:
    # One streaming preview for the station API and the diagnostics page: frames as they come,
    # and a viewer that goes away gives the camera back at once.
    if devices is None:
        return None
    from agent.diagweb.server import live_preview

    return live_preview(devices)


def _journal(config: Config, daemon: Daemon) -> JournalPart:
    part = JournalPart(config, daemon)
    daemon.parts["journal"] = part
    return part


def _devices(config: Config, daemon: Daemon) -> Any:
    if not config.devices:
        return None  # and the drivers (numpy, Pillow) are never loaded
    from agent.devices import device_component

    manager = device_component(config, daemon)
    if manager is not None:
        daemon.parts["devices"] = manager
    return manager


def _enrollment(config: Config, daemon: Daemon) -> EnrollmentPart:
    part = EnrollmentPart(config, daemon)
    daemon.parts["enrollment"] = part
    return part


def _printing(config: Config, daemon: Daemon) -> PrintingPart | None:
    if not config.printer.enabled:
        return None
    part = PrintingPart(config, daemon)
    daemon.parts["printing"] = part
    return part


def _uplink(config: Config, daemon: Daemon) -> Any:
    from agent.uplink import make_component

    uplink = make_component(config, daemon)
    if uplink is None:
        return None
    printing = daemon.parts.get("printing")
    if printing is not None and printing.service is not None:
        service = printing.service
        uplink.register_handler("print/order", service.on_order_body)
        uplink.add_outbox("print/result", service.pending_results, service.mark_result_sent)
        uplink.add_telemetry_provider(service.telemetry)
    devices = daemon.parts.get("devices")
    if devices is not None:
        uplink.add_telemetry_provider(lambda: {"devices": [
            {"name": d["name"], "state": d["state"]} for d in devices.snapshot()["devices"]]})
    journal = daemon.parts["journal"].journal
    uplink.add_telemetry_provider(lambda: {"kpi": today_kpis(config, journal)["total"]})
    from agent.operators.indicators import Indicators

    # The office's indicators (quality, quantity, timeliness, attendance, teamwork), today.
    indicators = Indicators(journal, config)
    uplink.add_telemetry_provider(lambda: {"indicators": indicators.today()})
    from agent.diagnostics import run_checks
    from agent.keys import keys_dir
    from agent.remote import RemoteCommands

    remote = RemoteCommands(config, add_event=journal.add_event,
                            diagnostics=lambda: [c.as_dict() for c in run_checks(config)],
                            telemetry_now=uplink.telemetry_now, keys_dir=keys_dir(config.state_dir))
    uplink.register_handler("command", remote.handle)
    daemon.parts["uplink"] = uplink
    return uplink


def _power(config: Config, daemon: Daemon) -> Any:
    from agent.power import power_component

    part = power_component(config, daemon)
    if part is not None:
        daemon.parts["power"] = part
    return part


def _diagnostics(config: Config, daemon: Daemon) -> Any:
    from agent.diagweb.server import diagnostics_component

    return diagnostics_component(config, daemon)


FACTORIES = [_journal, _power, _devices, _enrollment, _printing, _uplink, _diagnostics]
