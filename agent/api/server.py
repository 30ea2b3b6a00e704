"""The station API: HTTP + JSON on 127.0.0.1 for the enrollment front-end (docs/station-api.md).

The standard library's ThreadingHTTPServer is enough here: one operator's front-end makes a
handful of requests a minute, the server never leaves loopback, and no extra dependency has to
be kept patched on thousands of stations (see docs/architecture.md).

Every request needs ``Authorization: Bearer <token>`` (the token file is 0600 in the state
directory). Bodies are limited in size and parsed strictly (no NaN, no duplicate keys, bounded
nesting). Errors are ``{"error": {"code", "message": {"id", "en"}, "details"}}`` with a fitting
HTTP status; a refused request changes nothing.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.authtoken import bearer_matches
from agent.config import Config
from agent.envelope import EnvelopeError, strict_json_loads
from agent.workflow.manager import SessionManager
from agent.workflow.session import CaptureProvider, Sealer, Session, WorkflowError
from agent.workflow.states import State

log = logging.getLogger(__name__)

Handler = Callable[["ApiRequest"], tuple[int, Any]]


class ApiRequest:
    """What a route handler sees: path parameters and the parsed JSON body."""

    def __init__(self, params: dict[str, str], body: dict[str, Any], language: str) -> None:
        self.params = params
        self.body = body
        self.language = language


def api_token_path(config: Config) -> Path:
    """Where the station API's token lives: [api] token_file, else STATE_DIR/api.token."""
    return config.api.token_file or config.state_dir / "api.token"


def load_or_create_token(path: Path) -> str:
    """The API token from ``path``, created (0600, 256 random bits) when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = path.open("x", encoding="ascii")
        path.chmod(0o600)
        with fd:
            fd.write(secrets.token_hex(32) + "\n")
    token = path.read_text(encoding="ascii").strip()
    if len(token) < 16:
        raise ValueError(f"{path}: token too short (need at least 16 characters)")
    return token


class StationApi:
    """Routes, authentication and the HTTP server thread."""

    name = "station-api"

    def __init__(
        self,
        config: Config,
        *,
        sessions: SessionManager,
        provider: CaptureProvider,
        sealer: Sealer,
        token: str,
        devices: Callable[[], list[dict[str, Any]]] = list,
        preview: Callable[[], Iterator[bytes]] | None = None,
        kpis: Callable[[], dict[str, Any]] | None = None,
        port: int | None = None,
        today: Callable[[], date] | None = None,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.provider = provider
        self.sealer = sealer
        self.token = token
        self.devices = devices
        self.preview = preview
        self.kpis = kpis
        zone = ZoneInfo(config.station.timezone)
        self.today = today or (lambda: datetime.now(zone).date())
        self.port = config.api.port if port is None else port
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._add_routes()

    # ------------------------------------------------------------------ routes

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Add a route; ``{name}`` in the pattern captures one path segment."""
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[A-Za-z0-9_.-]{1,64})", pattern) + "$"
        self.routes.append((method, re.compile(regex), handler))

    def _add_routes(self) -> None:
        r = self.route
        r("GET", "/v1/health", lambda q: (200, {"ok": True, "station_id": self.config.station.id}))
        r("GET", "/v1/devices", lambda q: (200, {"devices": self.devices()}))
        r("GET", "/v1/kpi", lambda q: (200, self.kpis() if self.kpis else {}))
        r("POST", "/v1/sessions", self._start)
        r("GET", "/v1/sessions/{sid}", lambda q: (200, self._session(q).view()))
        r("PUT", "/v1/sessions/{sid}/biodata", self._biodata)
        r("POST", "/v1/sessions/{sid}/next", self._next)
        r("POST", "/v1/sessions/{sid}/capture/{item}", self._capture)
        r("POST", "/v1/sessions/{sid}/capture-slap/{slap}", self._capture_slap)
        r("POST", "/v1/sessions/{sid}/force-accept/{item}", self._force)
        r("POST", "/v1/sessions/{sid}/exception/{item}", self._exception)
        r("GET", "/v1/sessions/{sid}/review", self._review)
        r("POST", "/v1/sessions/{sid}/seal", self._seal)
        r("POST", "/v1/sessions/{sid}/cancel", self._cancel)
        r("POST", "/v1/sessions/{sid}/satisfaction", self._satisfaction)

    def _session(self, q: ApiRequest) -> Session:
        return self.sessions.get(q.params["sid"])

    def _start(self, q: ApiRequest) -> tuple[int, Any]:
        ticket = q.body.get("ticket_at")
        operator = q.body.get("operator_id")
        for name, value in (("ticket_at", ticket), ("operator_id", operator)):
            if value is not None and (not isinstance(value, str) or len(value) > 64):
                raise WorkflowError("bad_request", 400, f"{name} tidak sah.", f"{name} must be a short string.")
        session = self.sessions.start(operator_id=operator, ticket_at=ticket)
        return 201, session.view()

    def _biodata(self, q: ApiRequest) -> tuple[int, Any]:
        session = self._session(q)
        with session.exclusive():
            session.set_biodata(q.body, today=self.today())
        return 200, session.view()

    def _next(self, q: ApiRequest) -> tuple[int, Any]:
        session = self._session(q)
        with session.exclusive():
            session.next()
        return 200, session.view()

    def _capture(self, q: ApiRequest) -> tuple[int, Any]:
        session = self._session(q)
        with session.exclusive():
            result = session.capture(q.params["item"], self.provider)
        return 200, result

    def _capture_slap(self, q: ApiRequest) -> tuple[int, Any]:
        session = self._session(q)
        if not hasattr(self.provider, "capture_slap"):
            raise WorkflowError("no_slaps", 409, "Pemindai ini tidak bisa merekam empat jari sekaligus.",
                                "This station's scanner cannot take slaps; capture single fingers.")
        with session.exclusive():
            result = session.capture_slap(q.params["slap"], self.provider)  # type: ignore[arg-type]
        return 200, result

    def _force(self, q: ApiRequest) -> tuple[int, Any]:
        session = self._session(q)
        reason = q.body.get("reason")
        if not isinstance(reason, str):
            raise WorkflowError("reason_required", 422, "Alasan wajib diisi.", "A reason is required.")
        with session.exclusive():
            session.force_accept(q.params["item"], reason)
        return 200, session.view()

    def _exception(self, q: ApiRequest) -> tuple[int, Any]:
        session = self._session(q)
        reason, note = q.body.get("reason"), q.body.get("note", "")
        if not isinstance(reason, str) or not isinstance(note, str):
            raise WorkflowError("bad_request", 400, "reason dan note harus teks.", "reason and note must be strings.")
        with session.exclusive():
            session.record_exception(q.params["item"], reason, note, self.provider)
        return 200, session.view()

    def _review(self, q: ApiRequest) -> tuple[int, Any]:
        session = self._session(q)
        if session.state is not State.REVIEW:
            raise WorkflowError("invalid_state", 409, "Belum tahap pemeriksaan.", "Not at the review step.")
        view = session.view()
        view["biodata"] = dict(session.biodata)  # the local front-end shows it back for checking
        return 200, view

    def _seal(self, q: ApiRequest) -> tuple[int, Any]:
        session = self._session(q)
        with session.exclusive():
            packet_id = session.seal(self.sealer)
        self.sessions.finish(session)
        return 200, {"saved": True, "packet_id": packet_id, "session_id": session.id,
                     "state": session.state.value}

    def _cancel(self, q: ApiRequest) -> tuple[int, Any]:
        session = self._session(q)
        with session.exclusive():
            session.cancel()
        self.sessions.finish(session)
        return 200, session.view()

    def _satisfaction(self, q: ApiRequest) -> tuple[int, Any]:
        session = self._session(q)
        score = q.body.get("score")
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 4:
            raise WorkflowError("bad_score", 422, "Nilai kepuasan harus 1-4.", "The satisfaction score must be 1-4.")
        session.satisfaction = score
        return 200, {"ok": True}

    # ------------------------------------------------------------------ HTTP

    def start(self) -> None:
        """Listen on 127.0.0.1 and serve in a background thread."""
        api = self

        class _Handler(_RequestHandler):
            station_api = api

        try:
            self._server = _Server(("127.0.0.1", self.port), _Handler)
        except OSError as exc:
            from agent.config import ConfigError

            raise ConfigError(f"[api] port {self.port}: cannot listen on 127.0.0.1 ({exc.strerror}); "
                              "another program uses it: choose another port or stop that program") from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="station-api", daemon=True)
        self._thread.start()
        log.info("station API listening on 127.0.0.1:%d", self.port)

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def healthy(self) -> bool:
        """The server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> str:
        """No STATUS fragment of its own."""
        return ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _RequestHandler(BaseHTTPRequestHandler):
    station_api: StationApi
    server_version = "rekam-station-api"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines carry only ids; they go to DEBUG so the journal stays quiet.
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        """Handle GET."""
        if self.path.split("?")[0] == "/v1/preview.mjpeg":
            self._preview()
            return
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Handle POST."""
        self._dispatch("POST")

    def do_PUT(self) -> None:
        """Handle PUT."""
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        """Handle DELETE (no route uses it)."""
        self._dispatch("DELETE")

    def _authorised(self) -> bool:
        return bearer_matches(self.headers.get("Authorization"), self.station_api.token)

    def _language(self) -> str:
        lang = self.headers.get("Accept-Language", "")[:2]
        return lang if lang in ("id", "en") else self.station_api.config.station.language

    def _dispatch(self, method: str) -> None:
        api = self.station_api
        try:
            if not self._authorised():
                raise WorkflowError("unauthorised", 401, "Token tidak sah.", "Missing or wrong token.")
            body = self._read_body()
            path = self.path.split("?")[0]
            allowed = False
            for route_method, regex, handler in api.routes:
                match = regex.match(path)
                if not match:
                    continue
                allowed = True
                if route_method != method:
                    continue
                status, payload = handler(ApiRequest(match.groupdict(), body, self._language()))
                self._send(status, payload)
                return
            if allowed:
                raise WorkflowError("method_not_allowed", 405, "Metode tidak diizinkan.", "Method not allowed.")
            raise WorkflowError("not_found", 404, "Alamat tidak dikenal.", "Unknown path.")
        except WorkflowError as exc:
            self._send(exc.status, {"error": {"code": exc.code,
                                              "message": {"id": exc.message_id, "en": exc.message_en},
                                              "details": exc.details}})
        except Exception:
            log.exception("station API: %s %s failed", method, self.path.split("?")[0])
            self._send(500, {"error": {"code": "internal", "message": {
                "id": "Kesalahan internal; coba lagi atau hubungi teknisi.",
                "en": "Internal error; try again or call the technician."}, "details": {}}})

    def _read_body(self) -> dict[str, Any]:
        length_text = self.headers.get("Content-Length", "0")
        if self.headers.get("Transfer-Encoding"):
            raise WorkflowError("length_required", 411, "Content-Length wajib.", "Content-Length is required.")
        try:
            length = int(length_text)
        except ValueError:
            raise WorkflowError("bad_request", 400, "Content-Length tidak sah.", "Bad Content-Length.") from None
        limit = self.station_api.config.api.max_request_bytes
        if length < 0 or length > limit:
            self.close_connection = True
            raise WorkflowError("too_large", 413, "Permintaan terlalu besar.",
                                f"Request body larger than {limit} bytes.")
        if length == 0:
            return {}
        raw = self.rfile.read(length)
        try:
            return strict_json_loads(raw)
        except EnvelopeError as exc:
            raise WorkflowError("bad_json", 400, "JSON tidak sah.", f"Malformed JSON body: {exc}") from None

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode()
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _preview(self) -> None:
        api = self.station_api
        if not self._authorised():
            self._send(401, {"error": {"code": "unauthorised", "message": {
                "id": "Token tidak sah.", "en": "Missing or wrong token."}, "details": {}}})
            return
        if api.preview is None:
            self._send(404, {"error": {"code": "no_camera", "message": {
                "id": "Tidak ada kamera.", "en": "No camera configured."}, "details": {}}})
            return
        boundary = "rekamframe"
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={boundary}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for jpeg in api.preview():
                self.wfile.write(f"--{boundary}\r\nContent-Type: image/jpeg\r\n"
                                 f"Content-Length: {len(jpeg)}\r\n\r\n".encode())
                self.wfile.write(jpeg)
                self.wfile.write(b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the viewer went away
