"""The agent's configuration: one TOML file validated into typed, frozen objects.

Every section is a frozen dataclass below; every field carries its documentation and its
check in ``field(metadata=...)`` (built with :func:`key`), so ``docs/configuration.md`` is
generated from this module (``rekam config docs``) and a test keeps the two equal.

Rules: unknown keys are errors (a typo must never be silently ignored); every error names the
file, the key and what was expected; secrets are given as *paths* to files, never inline.

To add a key: add a field with ``key(...)`` to its section, then run
``rekam config docs > docs/configuration.md``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_PATH = Path("/etc/rekam/agent.toml")
DEFAULT_STATE_DIR = Path("/var/lib/rekam")


class ConfigError(Exception):
    """A configuration that cannot be used; the message names file, key and expectation."""


def key(
    doc: str,
    default: Any = dataclasses.MISSING,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
    pattern: str | None = None,
    secret_path: bool = False,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """Declare one configuration key: its doc line, default and check."""
    meta = {
        "doc": doc,
        "minimum": minimum,
        "maximum": maximum,
        "choices": choices,
        "pattern": pattern,
        "secret_path": secret_path,
    }
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class StationConfig:
    """[station] who this station is."""

    id: str = key(
        "Station id, unique across the country; used in MQTT topics and packets.",
        "station-demo",
        pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
    )
    district_code: str = key(
        "Kecamatan code (6 digits: province, regency, district) that NIKs recorded here must carry.",
        "647201",
        pattern=r"[0-9]{6}",
    )
    language: str = key(
        "Language of operator and technician messages.", "id", choices=("id", "en")
    )
    timezone: str = key("Office time zone (IANA name).", "Asia/Makassar")
    state_dir: Path = key(
        "State directory (journal, keys, locks). systemd's STATE_DIRECTORY wins when set.",
        DEFAULT_STATE_DIR,
    )


@dataclass(frozen=True)
class LoggingConfig:
    """[logging] how much the agent says."""

    level: str = key(
        "Log level; TRACE adds raw wire bytes (never biometric payloads).",
        "INFO",
        choices=("TRACE", "DEBUG", "INFO", "WARNING", "ERROR"),
    )


@dataclass(frozen=True)
class JournalConfig:
    """[journal] the durable local store of packets, events and print jobs."""

    max_bytes: int = key(
        "Quota: the journal may hold at most this many bytes of packets.",
        2 * 1024**3,
        minimum=1024**2,
    )
    free_disk_floor_bytes: int = key(
        "Refuse new enrollments when free disk would fall below this.",
        512 * 1024**2,
        minimum=0,
    )
    high_watermark: float = key(
        "Share of the quota at which a storage warning event is raised.", 0.8,
        minimum=0.0, maximum=1.0,
    )
    low_watermark: float = key(
        "Share of the quota under which the storage warning clears.", 0.6,
        minimum=0.0, maximum=1.0,
    )
    max_packet_bytes: int = key(
        "Largest packet an enrollment may produce; used to decide whether one more fits.",
        64 * 1024**2,
        minimum=1024,
    )
    chunk_bytes: int = key(
        "Size of the journal's chunk rows (also the uplink's largest chunk).",
        256 * 1024,
        minimum=1024,
        maximum=16 * 1024**2,
    )
    retention_seconds: int = key(
        "Keep acknowledged packets this long before purging (0: purge at once).", 0, minimum=0
    )
    write_wait_seconds: float = key(
        "Longest wait for the journal's single writer (e.g. while a packet streams in) before an error.",
        30.0,
        minimum=0.1,
        maximum=600.0,
    )
    integrity_full_max_bytes: int = key(
        "At start-up run PRAGMA integrity_check up to this database size, the faster quick_check above.",
        256 * 1024**2,
        minimum=0,
    )
    verify_on_open_max_bytes: int = key(
        "At start-up re-hash every chunk of the backlog when it is at most this big (else on read).",
        128 * 1024**2,
        minimum=0,
    )
    reserve_bytes: int = key(
        "Disk space held in a reserve file and released when the disk fills, so acks and purges still work (0: none).",
        8 * 1024**2,
        minimum=0,
    )
    events_keep_seconds: int = key(
        "Keep events already sent this long (for diagnostics), then delete them.",
        7 * 24 * 3600,
        minimum=0,
    )


@dataclass(frozen=True)
class UplinkConfig:
    """[uplink] the MQTT v5 link to head office."""

    enabled: bool = key("Connect to head office at all.", True)
    host: str = key("Broker host name.", "localhost")
    port: int = key("Broker port.", 8883, minimum=1, maximum=65535)
    transport: str = key(
        "tls (production) or tcp (tests and the demo only; must be chosen explicitly).",
        "tls",
        choices=("tls", "tcp"),
    )
    ca_file: Path | None = key("CA certificate file that signed the broker's certificate.", None, secret_path=True)
    cert_file: Path | None = key("This station's client certificate file.", None, secret_path=True)
    key_file: Path | None = key("This station's client key file.", None, secret_path=True)
    username: str | None = key("MQTT user name (optional).", None)
    password_file: Path | None = key("File holding the MQTT password (optional).", None, secret_path=True)
    keepalive_seconds: int = key(
        "MQTT keepalive; a half-open link is detected within about twice this.",
        30, minimum=2, maximum=3600)
    session_expiry_seconds: int = key(
        "MQTT v5 session expiry: how long the broker keeps this station's session.",
        7 * 24 * 3600,
        minimum=0,
    )
    inflight_window: int = key(
        "Chunks published but not yet acknowledged by the broker (size it as bandwidth x RTT).",
        16,
        minimum=1,
        maximum=1024,
    )
    bandwidth_limit_bps: int = key(
        "Cap on upload bytes per second so a backlog does not starve the office (0: off).",
        0,
        minimum=0,
    )
    telemetry_seconds: int = key("Telemetry period.", 60, minimum=1)
    ack_timeout_seconds: int = key(
        "Ask head office again when a sent packet is not acknowledged within this.",
        120,
        minimum=1,
    )
    max_rejects: int = key(
        "Quarantine a packet that head office rejected this many times.", 5, minimum=1
    )
    reconnect_min_seconds: float = key("First reconnect delay.", 1.0, minimum=0.01)
    reconnect_max_seconds: float = key("Longest reconnect delay.", 120.0, minimum=0.1)
    today_first: bool = key(
        "Send today's enrollments before an older backlog.", True
    )
    max_unacked_packets: int = key(
        "Packets sent but not yet acknowledged by head office before sending pauses.",
        32,
        minimum=1,
        maximum=10000,
    )
    puback_timeout_seconds: int = key(
        "Drop and re-establish the connection when the broker does not PUBACK within this.",
        120,
        minimum=1,
    )


@dataclass(frozen=True)
class DeviceConfig:
    """[devices.NAME] one device: its driver, where it is, its options."""

    driver: str = key(
        "Driver name, for example zfm, tenprint-emulator, v4l2, iris-emulator, evdev, evolis."
    )
    url: str = key(
        "Where the device is: a serial path or URL (/dev/ttyUSB0, emu://zfm), a /dev path, or usb:VID:PID.",
        "",
    )
    role: str = key(
        "What the station uses it for.",
        "fingerprint",
        choices=("fingerprint", "tenprint", "camera", "iris", "signature", "printer"),
    )
    options: Mapping[str, str | int | float | bool] = key(
        "Driver-specific options (a table of scalars).", default_factory=dict
    )
    retry_min_seconds: float = key(
        "First delay before re-opening an absent or faulted device (doubles each try).",
        0.5,
        minimum=0.01,
    )
    retry_max_seconds: float = key(
        "Longest delay between re-open attempts.", 30.0, minimum=0.05, maximum=3600.0
    )
    probe_seconds: float = key(
        "How often an idle device is checked for presence (drivers with a health check).",
        2.0,
        minimum=0.05,
    )
    capture_timeout_seconds: float = key(
        "How long a capture waits for the finger, face or pen before asking to retry.",
        20.0,
        minimum=0.1,
        maximum=600.0,
    )


@dataclass(frozen=True)
class QualityConfig:
    """[quality] capture quality gates (scores on 0-100)."""

    finger_threshold: int = key("Minimum finger quality (MOSIP default 40).", 40, minimum=0, maximum=100)
    iris_threshold: int = key("Minimum iris quality (MOSIP default 60).", 60, minimum=0, maximum=100)
    face_threshold: int = key("Minimum face quality.", 50, minimum=0, maximum=100)
    signature_min_ink: float = key(
        "Minimum share of signature box pixels that must carry ink.", 0.005, minimum=0.0, maximum=1.0
    )
    retries: int = key("Captures allowed before force-accept is offered.", 3, minimum=1, maximum=20)
    photo_background: str = key(
        "e-KTP photo background rule: birth-year (red odd, blue even), red, blue or any.",
        "birth-year",
        choices=("birth-year", "red", "blue", "any"),
    )


@dataclass(frozen=True)
class SessionConfig:
    """[session] enrollment sessions."""

    idle_timeout_seconds: int = key(
        "An enrollment session idle this long expires; nothing half-written remains.", 1800, minimum=10
    )
    service_standard_seconds: int = key(
        "The office's service standard (SOP): recording to printed card.", 900, minimum=60
    )


@dataclass(frozen=True)
class ApiConfig:
    """[api] the station API for the enrollment front-end (HTTP + JSON on loopback)."""

    enabled: bool = key("Serve the station API.", True)
    port: int = key("TCP port on 127.0.0.1.", 8470, minimum=1, maximum=65535)
    token_file: Path | None = key(
        "File holding the bearer token front-ends must send (default: STATE_DIR/api.token).",
        None,
        secret_path=True,
    )
    max_request_bytes: int = key("Largest request body accepted.", 32 * 1024**2, minimum=1024)


@dataclass(frozen=True)
class DiagnosticsConfig:
    """[diagnostics] the technician's local web page."""

    enabled: bool = key("Serve the diagnostics page.", True)
    port: int = key("TCP port on 127.0.0.1.", 8471, minimum=1, maximum=65535)
    self_test_timeout_seconds: float = key(
        "Longest a device self-test started from the page or `rekam selftest` may take.",
        30.0, minimum=1.0, maximum=600.0,
    )
    chart_days: int = key("Days shown in the backlog and per-kelurahan charts.", 7, minimum=1, maximum=90)
    forecast_window_days: int = key(
        "Days of past growth used to forecast when the journal quota is reached.", 7, minimum=1, maximum=90,
    )
    clock_jump_seconds: float = key(
        "A wall-clock step larger than this (against the monotonic clock) is reported as a jump.",
        120.0, minimum=1.0,
    )


@dataclass(frozen=True)
class PrinterConfig:
    """[printer] card printing and blank-card stock."""

    enabled: bool = key("Print cards when head office orders them.", True)
    low_stock_days: float = key(
        "Warn head office when blanks or ribbon are forecast to run out within this many days.",
        5.0,
        minimum=0.0,
    )
    ribbon_low_cards: int = key(
        "Report the ribbon as low when the printer says fewer cards than this are left (Rco;l).",
        20,
        minimum=0,
    )
    forecast_window_days: int = key(
        "Days of recent printing the stock forecast takes its rate from.", 14, minimum=1, maximum=365
    )
    order_max_bytes: int = key(
        "Largest signed print order accepted (card data, photo and signature included).",
        512 * 1024,
        minimum=4096,
        maximum=16 * 1024**2,
    )
    max_attempts: int = key(
        "Give an order up as failed after this many spoiled attempts (jams, ribbon breaks).",
        3,
        minimum=1,
        maximum=20,
    )
    command_timeout_seconds: float = key(
        "Bound on the printer's answer to a query or setting.", 5.0, minimum=0.1, maximum=120.0
    )
    print_timeout_seconds: float = key(
        "Bound on the printer's answer to a panel download or card eject.", 60.0, minimum=1.0,
        maximum=600.0,
    )


@dataclass(frozen=True)
class OfficeConfig:
    """[office] opening hours, for attendance and service-time reports."""

    opens: str = key("Opening time (HH:MM).", "07:30", pattern=r"([01][0-9]|2[0-3]):[0-5][0-9]")
    closes: str = key("Closing time (HH:MM).", "15:00", pattern=r"([01][0-9]|2[0-3]):[0-5][0-9]")
    break_start: str = key("Break start (HH:MM).", "12:00", pattern=r"([01][0-9]|2[0-3]):[0-5][0-9]")
    break_end: str = key("Break end (HH:MM).", "13:00", pattern=r"([01][0-9]|2[0-3]):[0-5][0-9]")


@dataclass(frozen=True)
class OperatorsConfig:
    """[operators] operator sign-in, supervisor approval and attendance (docs/operators.md)."""

    scanner: str = key(
        "Name of the [devices.NAME] ZFM module that holds operator templates and signs operators in.",
        "fingerprint",
        pattern=r"[A-Za-z0-9_.-]{1,64}",
    )
    require_sign_in: bool = key(
        "Refuse enrollment calls on the station API unless an operator is signed in.", True
    )
    idle_signout_seconds: int = key(
        "Sign the operator out after this long without a station API call (MOSIP: 900).",
        900, minimum=30, maximum=86400,
    )
    sign_in_timeout_seconds: float = key(
        "How long a fingerprint sign-in or approval waits for the finger.", 10.0, minimum=1.0,
        maximum=120.0,
    )
    require_supervisor_for_force_accept: bool = key(
        "A force-accepted capture needs a supervisor's fingerprint before the session seals.", True
    )
    require_supervisor_for_exceptions: bool = key(
        "A biometric exception needs a supervisor's fingerprint before the session seals.", True
    )
    pin_file: Path | None = key(
        "File of salted PIN hashes (fallback sign-in); default STATE_DIR/operators.pins.",
        None, secret_path=True,
    )
    pin_roles: str = key(
        "Comma-separated roles allowed to sign in by PIN when the scanner is broken.",
        "technician", pattern=r"(operator|supervisor|technician)(,(operator|supervisor|technician))*",
    )
    pin_max_failures: int = key(
        "Wrong PINs in a row before PIN sign-in is locked for pin_lock_seconds.", 5, minimum=1,
        maximum=100,
    )
    pin_lock_seconds: int = key("How long PIN sign-in stays locked.", 120, minimum=1, maximum=86400)
    late_grace_minutes: int = key(
        "Arrival this many minutes after [office] opens still counts as on time.", 0, minimum=0,
        maximum=240,
    )
    workdays: str = key(
        "Days the office opens (comma-separated Mon..Sun); absences count only on these.",
        "Mon,Tue,Wed,Thu,Fri",
        pattern=r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun)(,(Mon|Tue|Wed|Thu|Fri|Sat|Sun))*",
    )
    audit_keep_days: int = key(
        "Days of audit records kept in the journal (the trail also travels in each packet).",
        400, minimum=31, maximum=3660,
    )


@dataclass(frozen=True)
class PowerConfig:
    """[power] the UPS, read from Network UPS Tools (upsd on this machine)."""

    enabled: bool = key("Watch a UPS through upsd.", False)
    host: str = key("upsd host (only this machine is supported).", "127.0.0.1",
                    choices=("127.0.0.1", "::1", "localhost"))
    port: int = key("upsd TCP port.", 3493, minimum=1, maximum=65535)
    ups: str = key("UPS name as upsd knows it (ups.conf section).", "ups", pattern=r"[A-Za-z0-9_.-]{1,64}")
    poll_seconds: float = key("How often the UPS is asked for its state.", 5.0, minimum=0.1, maximum=300.0)
    timeout_seconds: float = key("Longest wait for one upsd answer.", 3.0, minimum=0.1, maximum=60.0)
    low_battery_percent: int = key(
        "On battery at or below this charge, new sessions are refused (the one in progress finishes).",
        50, minimum=0, maximum=100,
    )


@dataclass(frozen=True)
class Config:
    """The whole agent configuration."""

    station: StationConfig = field(default_factory=StationConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    uplink: UplinkConfig = field(default_factory=UplinkConfig)
    devices: Mapping[str, DeviceConfig] = field(default_factory=dict)
    quality: QualityConfig = field(default_factory=QualityConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    printer: PrinterConfig = field(default_factory=PrinterConfig)
    office: OfficeConfig = field(default_factory=OfficeConfig)
    operators: OperatorsConfig = field(default_factory=OperatorsConfig)
    power: PowerConfig = field(default_factory=PowerConfig)
    source: Path | None = None

    @property
    def state_dir(self) -> Path:
        """The state directory in force: systemd's STATE_DIRECTORY, else the configured one."""
        env = os.environ.get("STATE_DIRECTORY")
        if env:
            # systemd may pass several, colon-separated; the first is ours.
            return Path(env.split(":")[0])
        return self.station.state_dir


# Sections whose value is a table of named sub-tables of one type.
_NAMED_TABLES: dict[str, type] = {"devices": DeviceConfig}


# --------------------------------------------------------------------------- loading


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """The config file to read: ``--config``, else ``REKAM_CONFIG``, else the default."""
    return choose_config_path(explicit, "REKAM_CONFIG", DEFAULT_CONFIG_PATH)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate one TOML file; raise :class:`ConfigError` naming file and key."""
    p = Path(path)
    return parse_config(read_toml_file(p), source=p)


# Shared with the head-office receiver's configuration (agent/headoffice/config.py), so both
# files are found, read and checked by one set of rules.


def choose_config_path(explicit: str | os.PathLike[str] | None, env_var: str,
                       default: Path) -> Path:
    """``explicit`` when given, else the path in environment variable ``env_var``, else default."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(env_var)
    return Path(env) if env else default


def read_toml_file(p: Path) -> dict[str, Any]:
    """Read one UTF-8 TOML file; every failure is a one-line :class:`ConfigError` naming it."""
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, expected a TOML file") from None
    except PermissionError:
        raise ConfigError(f"{p}: cannot read config file: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib puts "(at line L, column C)" in its message; keep it.
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None


def parse_config(data: Mapping[str, Any], *, source: Path | None = None) -> Config:
    """Validate an already-parsed TOML document into a :class:`Config`."""
    where = str(source) if source else "<config>"
    kwargs: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(Config) if f.name != "source"}
    for name, value in checked_sections(data, fields, where):
        if name in _NAMED_TABLES:
            kwargs[name] = types.MappingProxyType(
                {
                    sub: build_section(_NAMED_TABLES[name], require_table(where, f"{name}.{sub}", body), where, f"{name}.{sub}")
                    for sub, body in value.items()
                }
            )
        else:
            section_type = typing.get_type_hints(Config)[name]
            kwargs[name] = build_section(section_type, value, where, name)
    return Config(**kwargs, source=source)


def checked_sections(data: Mapping[str, Any], known: Iterable[str],
                     where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each (section name, table) of a document; ConfigError on an unknown name or a non-table."""
    names = set(known)
    for name, value in data.items():
        if name not in names:
            raise ConfigError(
                f"{where}: [{name}]: unknown section (known: {', '.join(sorted(names))})"
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {name}: expected a table [{name}], got {show_value(value)}")
        yield name, value


def require_table(where: str, section: str, value: Any) -> dict[str, Any]:
    """``value`` if it is a TOML table, else ConfigError naming ``[section]`` in ``where``."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{section}]: expected a table, got {show_value(value)}")
    return value


def build_section(cls: type, table: Mapping[str, Any], where: str, section: str) -> Any:
    """Check one TOML table against a dataclass declared with :func:`key` and build it.

    Unknown keys, missing required keys and values of the wrong type or range raise
    :class:`ConfigError` with ``where``, ``[section]`` and the key in the message.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for name, value in table.items():
        if name not in fields:
            raise ConfigError(
                f"{where}: [{section}] {name}: unknown key (known: {', '.join(sorted(fields))})"
            )
        values[name] = _check(hints[name], fields[name].metadata, value, f"{where}: [{section}] {name}")
    for name, f in fields.items():
        if (
            name not in values
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ):
            raise ConfigError(f"{where}: [{section}] {name}: required key is missing")
    return cls(**values)


def _check(hint: Any, meta: Mapping[str, Any], value: Any, label: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union) and type(None) in args:
        # TOML has no null; an optional key is simply absent, so check the inner type.
        inner = next(a for a in args if a is not type(None))
        return _check(inner, meta, value, label)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{label}: expected true or false, got {show_value(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{label}: expected {_int_range(meta)}, got {show_value(value)}")
        _range(meta, value, label, _int_range(meta))
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{label}: expected {_float_range(meta)}, got {show_value(value)}")
        _range(meta, float(value), label, _float_range(meta))
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{label}: expected a string, got {show_value(value)}")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{label}: expected one of {', '.join(choices)}, got {show_value(value)}")
        pattern = meta.get("pattern")
        if pattern and not re.fullmatch(pattern, value):
            raise ConfigError(f"{label}: expected a value matching {pattern}, got {show_value(value)}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value or "\x00" in value:
            raise ConfigError(f"{label}: expected a file path string, got {show_value(value)}")
        return Path(value)
    if origin is Mapping:
        if not isinstance(value, dict):
            raise ConfigError(f"{label}: expected a table, got {show_value(value)}")
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                raise ConfigError(f"{label}.{k}: expected a string, number or boolean, got {show_value(v)}")
        return types.MappingProxyType(dict(value))
    raise ConfigError(f"{label}: unsupported type {hint!r}")  # a bug in this module, not in the file


def _range(meta: Mapping[str, Any], value: float, label: str, expected: str) -> None:
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{label}: expected {expected}, got {value!r}")


def _int_range(meta: Mapping[str, Any]) -> str:
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None and hi is not None:
        return f"an integer {int(lo)}-{int(hi)}"
    if lo is not None:
        return f"an integer >= {int(lo)}"
    return "an integer"


def _float_range(meta: Mapping[str, Any]) -> str:
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None and hi is not None:
        return f"a number {lo}-{hi}"
    if lo is not None:
        return f"a number >= {lo}"
    return "a number"


def show_value(value: Any) -> str:
    """A short, safe rendering of a TOML value for an error message (long strings cut)."""
    if isinstance(value, str):
        return '"' + value[:60] + ('..."' if len(value) > 60 else '"')
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


# --------------------------------------------------------------------------- docs


def _toml_literal(value: Any) -> str:
    if value is None or value is dataclasses.MISSING:
        return "(none)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, (str, Path)):
        return f'`"{value}"`'
    if isinstance(value, Mapping):
        return "`{}`"
    return f"`{value}`"


def render_docs() -> str:
    """The Markdown reference of every key (the body of docs/configuration.md)."""
    out = [
        "# Configuration reference",
        "",
        "Rekam reads one TOML file: `--config FILE`, else `$REKAM_CONFIG`, else `/etc/rekam/agent.toml`.",
        "Unknown sections and keys are errors; every error names the file, the key and what was expected.",
        "Secrets (keys, certificates, tokens, passwords) are given as paths to files, never inline.",
        "Check a file with `rekam config check --config FILE`. An annotated example is",
        "`systemd/agent.toml.example`.",
        "",
        "This page is generated from `agent/config.py` by `rekam config docs`; a test keeps them equal.",
        "",
    ]
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        if f.name == "source":
            continue
        cls = _NAMED_TABLES.get(f.name) or hints[f.name]
        heading = f"[{f.name}.NAME]" if f.name in _NAMED_TABLES else f"[{f.name}]"
        doc = (cls.__doc__ or "").strip().split("] ", 1)[-1]
        out += [f"## `{heading}`", "", doc[:1].upper() + doc[1:] + ".", ""]
        out += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        sub_hints = typing.get_type_hints(cls)
        for sf in dataclasses.fields(cls):
            meta = sf.metadata
            default: Any = sf.default
            if sf.default_factory is not dataclasses.MISSING:
                default = sf.default_factory()
            if default is dataclasses.MISSING:
                shown = "required"
            else:
                shown = _toml_literal(default)
            kind = _type_name(sub_hints[sf.name], meta)
            out.append(f"| `{sf.name}` | {kind} | {shown} | {meta['doc']} |")
        out.append("")
    return "\n".join(out)


def _type_name(hint: Any, meta: Mapping[str, Any]) -> str:
    args = typing.get_args(hint)
    if type(None) in args:
        hint = next(a for a in args if a is not type(None))
    if meta.get("choices"):
        return " \\| ".join(f"`{c}`" for c in meta["choices"])
    if hint is int:
        return _int_range(meta)
    if hint is float:
        return _float_range(meta)
    if hint is Path:
        return "path (secret)" if meta.get("secret_path") else "path"
    if hint is bool:
        return "boolean"
    if hint is str:
        return "string"
    return "table"
