"""Station API routes for operators, and the guard that keeps enrollment calls to a signed-in operator.

Routes (docs/station-api.md style; errors as the API's usual ``{"error": ...}``)::

    POST /v1/operators/sign-in      {"method": "fingerprint"} | {"method": "pin", "staff_id", "pin"}
    POST /v1/operators/sign-out     {}
    GET  /v1/operators/current
    GET  /v1/operators              active operators (staff id, name, role) for the local screen
    POST /v1/sessions/{sid}/approve {"item": "finger.3"}   the supervisor puts their finger on now

:func:`install_routes` adds them and wraps the session routes already on the API:

* every POST/PUT under ``/v1/sessions`` (except ``satisfaction``, which the applicant answers)
  needs a signed-in operator and counts as their activity (idle sign-out);
* ``POST /v1/sessions`` takes the operator id from the sign-in, and refuses a different one in
  the body, so nobody records under a colleague's id;
* each call on a session stamps the signed-in operator onto the session first, so after a
  hand-over the next stage is credited to whoever did it (teamwork, the audit trail);
* ``seal`` is refused while a force-accepted or excepted item waits for a supervisor;
* ``GET .../review`` (it shows the biodata back) also needs a signed-in operator, and is
  recorded in the session's trail as the ``review`` stage.

The capture routes never sign anyone in: an applicant's finger is only ever a capture.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.config import Config
from agent.operators import approvals
from agent.operators._db import JournalLike
from agent.operators.audit import AuditLog
from agent.operators.errors import BadOperatorInput, NotSignedInError
from agent.operators.pin import PinFile
from agent.operators.registry import DeviceAccess, FingerAccess, OperatorRegistry
from agent.operators.signin import SignIn
from agent.operators.vault import TemplateVault
from agent.workflow.session import WorkflowError
from drivers.errors import DeviceError, UserRetryError

if TYPE_CHECKING:
    from agent.api.server import ApiRequest, StationApi

log = logging.getLogger(__name__)

Handler = Callable[["ApiRequest"], tuple[int, Any]]


def pin_path(config: Config) -> Path:
    """The PIN file in force: [operators] pin_file, else STATE_DIR/operators.pins."""
    return config.operators.pin_file or config.state_dir / "operators.pins"


class OperatorService:
    """The operator layer of one station: audit, registry, sign-in (built once by the daemon)."""

    def __init__(self, config: Config, journal: JournalLike, *, access: FingerAccess | None,
                 vault: TemplateVault | None = None, pins: PinFile | None = None,
                 signin_kwargs: dict[str, Any] | None = None) -> None:
        self.config = config
        self.journal = journal
        self.access = access
        self.audit = AuditLog(journal, tz=config.station.timezone)
        self.registry = OperatorRegistry(journal, audit=self.audit, vault=vault)
        self.signin = SignIn(journal, self.registry, config, audit=self.audit, pins=pins, access=access,
                             **(signin_kwargs or {}))

    @classmethod
    def for_daemon(cls, config: Config, journal: JournalLike, devices: Any | None) -> OperatorService:
        """Wire to the device manager's ``[operators] scanner``, the PIN file and the template key."""
        from agent.keys import keys_dir

        access: FingerAccess | None = None
        if devices is not None and config.operators.scanner in getattr(devices, "devices", {}):
            access = DeviceAccess(devices, config.operators.scanner)
        else:
            log.warning("operators: no device %r for fingerprint sign-in; PIN sign-in only",
                        config.operators.scanner)
        return cls(config, journal, access=access, vault=TemplateVault.from_keys_dir(keys_dir(config.state_dir)),
                   pins=PinFile(pin_path(config)))

    def station_action(self, action: str, outcome: str, **fields: Any) -> int:
        """Audit a station action (stock recount, print confirm, config change, export) by whoever
        is signed in now; ``fields`` as for :meth:`AuditLog.record`. Returns the row id."""
        cur = self.signin.peek()
        fields.setdefault("operator_id", cur.staff_id if cur else None)
        return self.audit.record(action, outcome, **fields)

    def session_finished(self, session: Any) -> None:
        """``SessionManager.on_finished`` listener: keep the session's trail."""
        self.audit.record_session(session)


def _device_refusal(exc: DeviceError) -> WorkflowError:
    if isinstance(exc, UserRetryError):
        return WorkflowError("finger_retry", 422, exc.hint_id or "Letakkan jari lagi.",
                             exc.hint_en or "Place the finger again.")
    return WorkflowError("device_error", 503, exc.hint_id or "Pemindai bermasalah.",
                         exc.hint_en or "The scanner has a problem.", {"device_error": type(exc).__name__})


def install_routes(api: StationApi, service: OperatorService) -> None:
    """Add the operator routes to ``api``, guard its session routes, and keep session trails."""
    cfg = service.config.operators
    signin = service.signin

    def sign_in(q: ApiRequest) -> tuple[int, Any]:
        method = q.body.get("method")
        try:
            if method == "fingerprint":
                cur = signin.sign_in_fingerprint()
            elif method == "pin":
                staff_id, pin = q.body.get("staff_id"), q.body.get("pin")
                if not isinstance(staff_id, str) or not isinstance(pin, str):
                    raise BadOperatorInput("staff_id dan pin wajib (teks).", "staff_id and pin are required strings.")
                cur = signin.sign_in_pin(staff_id, pin)
            else:
                raise BadOperatorInput("method harus fingerprint atau pin.", "method must be fingerprint or pin.")
        except DeviceError as exc:
            raise _device_refusal(exc) from exc
        op = service.registry.get(cur.staff_id)
        return 200, {"operator": cur.view(), "name": op.name if op else None,
                     "idle_signout_seconds": cfg.idle_signout_seconds}

    def sign_out(q: ApiRequest) -> tuple[int, Any]:
        cur = signin.sign_out("manual")
        return 200, {"signed_out": cur.staff_id if cur else None}

    def current(q: ApiRequest) -> tuple[int, Any]:
        cur = signin.current()
        return 200, {"operator": cur.view() if cur else None}

    def operators(q: ApiRequest) -> tuple[int, Any]:
        signin.require()
        return 200, {"operators": [{"staff_id": o.staff_id, "name": o.name, "role": o.role}
                                   for o in service.registry.operators()]}

    def approve(q: ApiRequest) -> tuple[int, Any]:
        if cfg.require_sign_in:
            signin.require()
        session = api.sessions.get(q.params["sid"])
        key = q.body.get("item")
        if not isinstance(key, str) or key not in session.items:
            raise BadOperatorInput("item tidak dikenal.", "Unknown or missing item.")
        if service.access is None:
            raise WorkflowError("no_scanner", 503, "Pemindai sidik jari petugas tidak tersedia.",
                                "No operator fingerprint scanner is configured.")
        try:
            supervisor, _score = service.registry.identify(service.access, timeout=cfg.sign_in_timeout_seconds)
        except DeviceError as exc:
            raise _device_refusal(exc) from exc
        with session.exclusive():
            approvals.approve(session, key, supervisor, audit=service.audit)
        return 200, {"item": key, "approved_by": supervisor.staff_id,
                     "pending": approvals.pending(session, cfg)}

    _guard_session_routes(api, service)
    api.route("POST", "/v1/operators/sign-in", sign_in)
    api.route("POST", "/v1/operators/sign-out", sign_out)
    api.route("GET", "/v1/operators/current", current)
    api.route("GET", "/v1/operators", operators)
    api.route("POST", "/v1/sessions/{sid}/approve", approve)
    api.sessions.on_finished.append(service.session_finished)


def _guard_session_routes(api: StationApi, service: OperatorService) -> None:
    cfg = service.config.operators
    signin = service.signin

    def wrap(pattern: str, handler: Handler) -> Handler:
        is_start = pattern == "^/v1/sessions$"
        is_seal = pattern.endswith("/seal$")
        is_review = pattern.endswith("/review$")

        def guarded(q: ApiRequest) -> tuple[int, Any]:
            if not cfg.require_sign_in:
                if is_seal:
                    approvals.require_approvals(api.sessions.get(q.params["sid"]), cfg)
                return handler(q)
            cur = signin.require()
            if is_start:
                claimed = q.body.get("operator_id")
                if claimed is not None and claimed != cur.staff_id:
                    raise NotSignedInError(
                        f"operator_id {str(claimed)[:32]} bukan petugas yang masuk.",
                        "operator_id is not the signed-in operator.")
                q.body["operator_id"] = cur.staff_id
                return handler(q)
            session = api.sessions.get(q.params["sid"])
            # Hand-over: the next stage belongs to whoever is signed in now.
            session.operator_id = cur.staff_id
            if is_seal:
                approvals.require_approvals(session, cfg)
            answer = handler(q)
            if is_review:
                # Reading the biodata back to the applicant is a stage of its own in the trail.
                session.audit.append({"action": "review", "item": None, "operator": cur.staff_id,
                                      "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                                      "outcome": "ok"})
            return answer

        return guarded

    guarded_routes = []
    for method, regex, handler in api.routes:
        pattern = regex.pattern
        if ((method in ("POST", "PUT") and pattern.startswith("^/v1/sessions")
                and not pattern.endswith("/satisfaction$"))
                or (method == "GET" and pattern.endswith("/review$"))):
            handler = wrap(pattern, handler)
        guarded_routes.append((method, regex, handler))
    api.routes[:] = guarded_routes
