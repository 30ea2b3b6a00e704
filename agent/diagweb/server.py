"""The technician's diagnostics page, served by the daemon on 127.0.0.1 ([diagnostics] port).

Pages (all need the station API token: ``Authorization: Bearer`` for scripts, or a cookie set by
``/login?token=...`` for a browser; ``rekam diag --web`` prints that address)::

    GET  /                     the same information as `rekam diag`, with charts (inline SVG)
    GET  /api/diag.json        agent.diagnostics.build_report with the daemon's live parts
    POST /selftest/NAME        run a device self-test (form button; CSRF field), then show it
    GET  /selftest/NAME        the last self-test of NAME: steps and its test image
    GET  /selftest/NAME.png    that image
    POST /api/selftest/NAME    JSON for `rekam selftest` (image as base64)
    GET  /preview              live camera preview page;  GET /preview.mjpeg  the stream

Read-only except the self-test buttons; one self-test at a time. No biometric data, NIK or
names anywhere but the self-test image (research note §2.8). Pages carry a strict
Content-Security-Policy: no scripts at all, images and styles from this server only.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from hashlib import sha256
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from agent.authtoken import bearer_matches, token_matches
from agent.config import Config, ConfigError
from agent.diagnostics import FAIL, OK, WARN, ClockWatch, LiveSources, build_report
from agent.diagweb import charts
from agent.diagweb.charts import esc

if TYPE_CHECKING:
    from agent.daemon import Daemon

log = logging.getLogger(__name__)

COOKIE = "rekam_diag"
MAX_FORM_BYTES = 4096
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
CSP = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")

T: dict[str, dict[str, str]] = {
    "title": {"id": "Diagnostik stasiun", "en": "Station diagnostics"},
    "overall": {"id": "Keadaan", "en": "Overall"},
    "checks": {"id": "Pemeriksaan", "en": "Checks"},
    "devices": {"id": "Perangkat", "en": "Devices"},
    "charts": {"id": "Grafik", "en": "Charts"},
    "selftest": {"id": "Uji perangkat", "en": "Self-test"},
    "preview": {"id": "Pratinjau kamera", "en": "Camera preview"},
    "what": {"id": "Yang harus dilakukan", "en": "What to do"},
    "state": {"id": "Status", "en": "State"},
    "identity": {"id": "Identitas", "en": "Identity"},
    "last_error": {"id": "Galat terakhir", "en": "Last error"},
    "back": {"id": "Kembali", "en": "Back"},
    "journal": {"id": "Antrean data", "en": "Journal backlog"},
    "link": {"id": "Koneksi", "en": "Link"},
    "no_daemon_devices": {"id": "Tidak ada perangkat yang dikelola.", "en": "No managed devices."},
}
STATUS_WORD = {OK: {"id": "BAIK", "en": "OK"}, WARN: {"id": "PERHATIAN", "en": "WARNING"},
               FAIL: {"id": "GAGAL", "en": "FAIL"}}
STYLE = """
body{font-family:sans-serif;margin:1em 2em;color:#222;max-width:1100px}
table{border-collapse:collapse;width:100%;margin-bottom:1em}
td,th{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top;font-size:14px}
.ok{color:#1a7f37;font-weight:bold}.warn{color:#9a6700;font-weight:bold}.fail{color:#cf222e;font-weight:bold}
.badge{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff}
.badge.ok{background:#1a7f37}.badge.warn{background:#9a6700}.badge.fail{background:#cf222e}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:12px}.chart{width:100%;height:auto;border:1px solid #eee}
button{padding:4px 10px}.hint{color:#555;font-size:13px}
"""


def csrf_value(token: str) -> str:
    """The form field a POST must carry: derived from the token, so a foreign page cannot know it."""
    return hmac.new(token.encode(), b"rekam-diag-csrf-v1", sha256).hexdigest()


class SelfTests:
    """Runs device self-tests one at a time and keeps the last result (and image) per device."""

    def __init__(self, run: Callable[[str], Any], names: Callable[[], list[str]], store: Path | None) -> None:
        self._run = run
        self.names = names
        self.store = store
        self.results: dict[str, dict[str, Any]] = {}
        self.images: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def run(self, name: str) -> dict[str, Any] | None:
        """Self-test ``name``; None when another self-test is running (the caller says "busy")."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            started = time.monotonic()
            result = self._run(name)
            entry = {
                "device": name, "ok": bool(result.ok),
                "steps": [{"step": s, "passed": bool(p), "detail": d} for s, p, d in result.steps],
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": round(time.monotonic() - started, 2),
                "has_image": result.image_png is not None,
            }
            self.results[name] = entry
            if result.image_png is not None:
                self.images[name] = result.image_png
                self._save(name, result.image_png)
            else:
                self.images.pop(name, None)
            log.info("self-test %s: %s", name, "passed" if entry["ok"] else "failed")
            return entry
        finally:
            self._lock.release()

    def _save(self, name: str, png: bytes) -> None:
        if self.store is None:
            return
        try:
            self.store.mkdir(mode=0o700, exist_ok=True)
            path = self.store / f"{name}.png"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(png)
            tmp.chmod(0o600)
            tmp.replace(path)
        except OSError as exc:
            log.warning("self-test image of %s not saved: %s", name, exc.strerror)


class DiagnosticsServer:
    """The HTTP server thread; everything it shows comes from ``report()`` and ``selftests``."""

    def __init__(self, config: Config, *, token: str, report: Callable[[], dict[str, Any]],
                 selftests: SelfTests, preview: Callable[[], Iterator[bytes]] | None = None,
                 port: int | None = None) -> None:
        self.config = config
        self.token = token
        self.report = report
        self.selftests = selftests
        self.preview = preview
        self.port = config.diagnostics.port if port is None else port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind 127.0.0.1:port (a clear ConfigError when taken) and serve in a thread."""
        handler = type("_BoundHandler", (_Handler,), {"app": self})
        try:
            self._server = _Server(("127.0.0.1", self.port), handler)
        except OSError as exc:
            raise ConfigError(f"[diagnostics] port {self.port}: cannot listen on 127.0.0.1 ({exc.strerror}); "
                              "another program uses it: choose another port or stop that program") from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="diagnostics-http", daemon=True)
        self._thread.start()
        log.info("diagnostics page on http://127.0.0.1:%d/", self.port)

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def healthy(self) -> bool:
        """The server thread is alive."""
        return self._thread is not None and self._thread.is_alive()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    app: DiagnosticsServer
    server_version = "rekam-diagnostics"
    protocol_version = "HTTP/1.1"
    # Socket timeout for every read and write: a client that stalls frees its thread (and the camera).
    timeout = 30.0

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines may carry the login token in the query: never log them above DEBUG, and cut it.
        log.debug("%s", (format % args).split("?")[0])

    # ----------------------------------------------------------------- plumbing

    def _lang(self, query: dict[str, list[str]]) -> str:
        lang = (query.get("lang") or [""])[0]
        return lang if lang in ("id", "en") else self.app.config.station.language

    def _authorised(self) -> bool:
        if bearer_matches(self.headers.get("Authorization"), self.app.token):
            return True
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and token_matches(value, self.app.token):
                return True
        return False

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        # same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with the
        # self-test form, which the Origin check below would (rightly) refuse.
        self.send_header("Referrer-Policy", "same-origin")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False, allow_nan=False).encode(),
                   "application/json; charset=utf-8")

    def _html(self, status: int, html: str) -> None:
        self._send(status, html.encode(), "text/html; charset=utf-8")

    def _redirect(self, where: str, headers: dict[str, str] | None = None) -> None:
        self._send(303, b"", "text/plain", {"Location": where, **(headers or {})})

    def _error(self, status: int, en: str, id_: str, *, api: bool) -> None:
        if api:
            self._json(status, {"error": {"message": {"id": id_, "en": en}}})
        else:
            self._html(status, _page("Rekam", f"<p class='fail'>{esc(id_)}</p><p>{esc(en)}</p>"))

    # ----------------------------------------------------------------- methods

    def do_GET(self) -> None:
        """Pages, JSON and the preview stream."""
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path
        try:
            if path == "/login":
                self._login(query)
                return
            if not self._authorised():
                self._error(401, "Missing or wrong token: open the address `rekam diag --web` prints.",
                            "Token tidak sah: buka alamat yang ditampilkan `rekam diag --web`.",
                            api=path.startswith("/api/"))
                return
            lang = self._lang(query)
            if path == "/":
                self._html(200, render_index(self.app.report(), self.app, lang))
            elif path == "/api/diag.json":
                self._json(200, self.app.report())
            elif path == "/preview":
                self._html(200, _page(T["preview"][lang], f"<p><a href='/?lang={lang}'>{T['back'][lang]}</a></p>"
                                      "<img src='/preview.mjpeg' alt='camera preview' style='max-width:100%'>"))
            elif path == "/preview.mjpeg":
                self._stream_preview()
            elif (m := re.fullmatch(r"/selftest/([A-Za-z0-9_-]{1,64})\.png", path)) is not None:
                png = self.app.selftests.images.get(m.group(1))
                if png is None:
                    self._error(404, "No self-test image yet.", "Belum ada gambar uji.", api=False)
                else:
                    self._send(200, png, "image/png")
            elif (m := re.fullmatch(r"/selftest/([A-Za-z0-9_-]{1,64})", path)) is not None:
                self._html(200, render_selftest(self.app, m.group(1), lang))
            else:
                self._error(404, "Unknown page.", "Halaman tidak dikenal.", api=path.startswith("/api/"))
        except OSError:
            pass  # the browser went away or stalled past the socket timeout
        except Exception:
            log.exception("diagnostics page %s failed", path)
            self._error(500, "Internal error.", "Kesalahan internal.", api=path.startswith("/api/"))

    def do_HEAD(self) -> None:
        """Like GET without a body."""
        self.do_GET()

    def do_POST(self) -> None:
        """Self-test buttons (form) and the self-test API."""
        url = urlsplit(self.path)
        path = url.path
        api = path.startswith("/api/")
        try:
            if not self._authorised():
                self._error(401, "Missing or wrong token.", "Token tidak sah.", api=api)
                return
            form = self._form()
            if form is None:
                self._error(413, "Request too large.", "Permintaan terlalu besar.", api=api)
                return
            m = re.fullmatch(r"(/api)?/selftest/([A-Za-z0-9_-]{1,64})", path)
            if m is None:
                self._error(404, "Unknown page.", "Halaman tidak dikenal.", api=api)
                return
            if not api and not self._same_origin(form):
                self._error(403, "This form did not come from the diagnostics page.",
                            "Formulir ini bukan dari halaman diagnostik.", api=False)
                return
            name = m.group(2)
            if name not in self.app.selftests.names():
                self._error(404, f"No managed device called {name}.", f"Tidak ada perangkat bernama {name}.", api=api)
                return
            entry = self.app.selftests.run(name)
            if entry is None:
                self._error(429, "Another self-test is running; wait for it.",
                            "Uji perangkat lain sedang berjalan; tunggu.", api=api)
                return
            if api:
                png = self.app.selftests.images.get(name)
                self._json(200, {**entry, "image_png_base64": base64.b64encode(png).decode() if png else None})
            else:
                lang = self._lang(parse_qs(url.query))
                self._redirect(f"/selftest/{name}?lang={lang}")
        except OSError:
            pass  # the browser went away or stalled past the socket timeout
        except Exception:
            log.exception("diagnostics POST %s failed", path)
            self._error(500, "Internal error.", "Kesalahan internal.", api=api)

    def _form(self) -> dict[str, str] | None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_FORM_BYTES:
            self.close_connection = True
            return None
        raw = self.rfile.read(length) if length else b""
        parsed = parse_qs(raw.decode("utf-8", errors="replace"))
        return {k: v[0] for k, v in parsed.items() if v}

    def _same_origin(self, form: dict[str, str]) -> bool:
        # Two locks: the CSRF field (derived from the token) and, when the browser sends it, Origin.
        origin = self.headers.get("Origin")
        if origin and origin not in (f"http://127.0.0.1:{self.app.port}", f"http://localhost:{self.app.port}"):
            return False
        return token_matches(form.get("csrf", ""), csrf_value(self.app.token))

    def _login(self, query: dict[str, list[str]]) -> None:
        given = (query.get("token") or [""])[0]
        if not token_matches(given, self.app.token):
            time.sleep(0.5)  # slows guessing; the token has 256 bits anyway
            self._error(401, "Wrong token.", "Token salah.", api=False)
            return
        self._redirect("/", {"Set-Cookie": f"{COOKIE}={self.app.token}; HttpOnly; SameSite=Strict; Path=/"})

    def _stream_preview(self) -> None:
        if self.app.preview is None:
            self._error(404, "No camera configured.", "Tidak ada kamera.", api=False)
            return
        boundary = "rekamframe"
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={boundary}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        # closing(): a viewer that goes away ends the generator now, which releases the camera.
        frames = self.app.preview()
        try:
            for jpeg in frames:
                self.wfile.write(f"--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode())
                self.wfile.write(jpeg)
                self.wfile.write(b"\r\n")
        finally:
            close = getattr(frames, "close", None)
            if callable(close):
                close()


# --------------------------------------------------------------------------- rendering


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<meta name='viewport' content='width=device-width'><style>{STYLE}</style></head>"
            f"<body>{body}</body></html>")


def _status_cell(status: str, lang: str) -> str:
    word = STATUS_WORD.get(status, STATUS_WORD[FAIL])[lang]
    return f"<td class='{esc(status)}'>{esc(word)}</td>"


def render_index(report: dict[str, Any], app: DiagnosticsServer, lang: str) -> str:
    """The main page: overall state, checks with hints, devices with self-test buttons, charts."""
    overall = str(report.get("overall", FAIL))
    other = "en" if lang == "id" else "id"
    out = [f"<h1>{T['title'][lang]}: {esc(report.get('station_id'))}</h1>",
           f"<p>{T['overall'][lang]}: <span class='badge {esc(overall)}' id='overall'>"
           f"{esc(STATUS_WORD.get(overall, STATUS_WORD[FAIL])[lang])}</span> "
           f"&nbsp; {esc(report.get('generated_at'))} &nbsp; <a href='/?lang={other}'>{other.upper()}</a>"
           f" &nbsp; <a href='/preview?lang={lang}'>{T['preview'][lang]}</a>"
           f" &nbsp; <a href='/api/diag.json'>JSON</a></p>"]
    out.append(f"<h2>{T['checks'][lang]}</h2><table id='checks'><tr><th></th><th></th><th></th>"
               f"<th>{T['what'][lang]}</th></tr>")
    for c in sorted(report.get("checks", []), key=lambda c: {FAIL: 0, WARN: 1}.get(c.get("status"), 2)):
        hint = c.get("hint_id") if lang == "id" else c.get("hint_en")
        out.append(f"<tr data-check='{esc(c.get('name'))}'>{_status_cell(str(c.get('status')), lang)}"
                   f"<td>{esc(c.get('name'))}</td><td>{esc(c.get('detail'))}</td>"
                   f"<td class='hint'>{esc(hint or '') if c.get('status') != OK else ''}</td></tr>")
    out.append("</table>")
    out.append(f"<h2>{T['devices'][lang]}</h2>")
    devices = report.get("devices") or []
    if not devices:
        out.append(f"<p>{T['no_daemon_devices'][lang]}</p>")
    else:
        out.append(f"<table id='devices'><tr><th>{T['devices'][lang]}</th><th>{T['state'][lang]}</th>"
                   f"<th>{T['identity'][lang]}</th><th>{T['last_error'][lang]}</th><th></th></tr>")
        csrf = csrf_value(app.token)
        for d in devices:
            ident = d.get("identity") or {}
            who = " ".join(str(ident[k]) for k in ("make", "model", "serial", "firmware") if ident.get(k))
            err = d.get("last_error") or {}
            hint = err.get("hint_id") if lang == "id" else err.get("hint_en")
            state = str(d.get("state"))
            cls = OK if state in ("ready", "busy") else WARN if state == "initialising" else FAIL
            name = str(d.get("name"))
            button = ""
            if _NAME_RE.fullmatch(name):
                button = (f"<form method='post' action='/selftest/{esc(name)}?lang={lang}'>"
                          f"<input type='hidden' name='csrf' value='{csrf}'>"
                          f"<button type='submit' id='selftest-{esc(name)}'>{T['selftest'][lang]}</button></form>")
            out.append(f"<tr data-device='{esc(name)}' data-state='{esc(state)}'><td>{esc(name)}<br>"
                       f"<span class='hint'>{esc(d.get('driver'))} / {esc(d.get('role'))}</span></td>"
                       f"<td class='{cls}'>{esc(state)}</td><td>{esc(who)}</td>"
                       f"<td>{esc(err.get('message', ''))}<br><span class='hint'>{esc(hint or '')}</span></td>"
                       f"<td>{button}</td></tr>")
        out.append("</table>")
    j = report.get("journal") or {}
    g = report.get("growth") or {}
    link = report.get("link") or {}
    days = g.get("days_to_quota")
    out.append(f"<h2>{T['journal'][lang]} / {T['link'][lang]}</h2><table id='figures'>"
               f"<tr><td>backlog</td><td>{esc(j.get('waiting_packets', '-'))} packets, "
               f"{(j.get('used_bytes') or 0) / 1024**2:,.1f} MB of {(j.get('quota_bytes') or 0) / 1024**2:,.0f} MB; "
               f"oldest {esc(j.get('oldest_waiting') or '-')}</td></tr>"
               f"<tr><td>forecast</td><td>{'quota not in reach at the current rate' if days is None else f'quota reached in about {days:.1f} days'}"
               f" ({(g.get('bytes_per_day') or 0) / 1024**2:,.1f} MB/day over {esc(g.get('window_days'))} days)</td></tr>"
               f"<tr><td>link</td><td>{esc(link.get('link_state') or '-')}; last ack {esc(link.get('last_ack_at') or '-')}; "
               f"drain {(link.get('drain_rate_bps') or 0) / 1024:,.0f} KiB/s; connects {esc(link.get('connects', '-'))}</td></tr>"
               "</table>")
    ch = report.get("charts") or {}
    std = int(ch.get("standard_seconds") or 900)
    out.append(f"<h2>{T['charts'][lang]}</h2><div class='charts'>")
    out.append(charts.service_times(ch.get("service_times") or [], std))
    out.append(charts.recordings_per_kelurahan(ch.get("recordings") or []))
    out.append(charts.backlog(ch.get("backlog") or []))
    out.append(charts.stock_forecast(report.get("stock"), app.config.printer.low_stock_days))
    out.append("</div>")
    return _page(f"{T['title'][lang]} {report.get('station_id')}", "\n".join(out))


def render_selftest(app: DiagnosticsServer, name: str, lang: str) -> str:
    """The last self-test of one device: steps and the test image."""
    entry = app.selftests.results.get(name)
    back = f"<p><a href='/?lang={lang}'>{T['back'][lang]}</a></p>"
    if entry is None:
        return _page(T["selftest"][lang], back + f"<p>{esc(name)}: -</p>")
    status = OK if entry["ok"] else FAIL
    rows = "".join(f"<tr>{_status_cell(OK if s['passed'] else FAIL, lang)}<td>{esc(s['step'])}</td>"
                   f"<td>{esc(s['detail'])}</td></tr>" for s in entry["steps"])
    img = (f"<p><img id='selftest-image' src='/selftest/{esc(name)}.png' alt='self-test image' "
           "style='max-width:100%;border:1px solid #ccc'></p>") if entry["has_image"] else ""
    return _page(f"{T['selftest'][lang]} {name}",
                 back + f"<h1>{T['selftest'][lang]}: {esc(name)}</h1>"
                 f"<p id='selftest-result' class='{status}'>{esc(STATUS_WORD[status][lang])} "
                 f"({esc(entry['at'])}, {entry['seconds']} s)</p><table id='steps'>{rows}</table>{img}")


# --------------------------------------------------------------------------- daemon component


def live_preview(devices: Any, *, max_frames: int = 300, frame_timeout: float = 10.0,
                 stall_timeout: float = 5.0) -> Callable[[], Generator[bytes, None, None]] | None:
    """Camera preview frames as they come, through the camera's owner thread.

    The owner runs the driver's preview as one job and hands each JPEG over a queue of two; the
    viewer going away, or not reading for ``stall_timeout`` (or ``max_frames``, about 10 s), ends
    the job, so a capture never waits long. The viewer waits at most ``frame_timeout`` for a frame.
    Every wait is bounded; no frame is kept.
    """
    names = devices.by_role("camera")
    if not names:
        return None
    name = names[0]

    def frames() -> Generator[bytes, None, None]:
        handoff: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
        gone = threading.Event()

        def job(driver: Any, cancel: threading.Event) -> None:
            for jpeg in driver.preview(stop=gone, max_frames=max_frames):
                # A viewer that stops reading (stalled, not closed) must not hold the camera.
                stalled_at = time.monotonic() + stall_timeout
                while not (gone.is_set() or cancel.is_set()):
                    try:
                        handoff.put(jpeg, timeout=0.5)
                        break
                    except queue.Full:
                        if time.monotonic() > stalled_at:
                            gone.set()
                if gone.is_set() or cancel.is_set():
                    return

        def run() -> None:
            try:
                devices.call(name, job, timeout=max_frames / 5 + 30, label="preview")
            except Exception as exc:  # noqa: BLE001 - busy or absent camera: the stream just ends
                log.info("camera preview ended: %s", type(exc).__name__)
            finally:
                with contextlib.suppress(queue.Full):
                    handoff.put(None, timeout=1.0)

        worker = threading.Thread(target=run, name="diagnostics-preview", daemon=True)
        worker.start()
        try:
            while True:
                try:
                    item = handoff.get(timeout=frame_timeout)
                except queue.Empty:
                    return
                if item is None:
                    return
                yield item
        finally:
            gone.set()

    return frames


# Building a report opens the journal read-only (other modules' checks run an integrity check on
# open), so a page left refreshing, or several technicians at once, share one report per window.
REPORT_TTL_SECONDS = 5.0


class CachedReport:
    """``build()`` at most once per ``ttl`` seconds; concurrent callers wait for the same build."""

    def __init__(self, build: Callable[[], dict[str, Any]], *, ttl: float) -> None:
        self.build = build
        self.ttl = ttl
        self._lock = threading.Lock()
        self._at = -float("inf")
        self._value: dict[str, Any] = {}
        self.builds = 0

    def __call__(self) -> dict[str, Any]:
        """The cached report, rebuilt when older than ``ttl``."""
        with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                self._value = self.build()
                self._at = time.monotonic()
                self.builds += 1
            return self._value


class DiagnosticsPart:
    """Daemon component: the diagnostics page over the daemon's parts (registered as ``diagnostics``)."""

    name = "diagnostics"

    def __init__(self, config: Config, daemon: Daemon) -> None:
        self.config = config
        self.daemon = daemon
        self.clock = ClockWatch(config.diagnostics.clock_jump_seconds)
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.server: DiagnosticsServer | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def live_sources(self) -> LiveSources:
        """Callables reading the daemon's parts at request time (parts may come and go)."""
        parts = self.daemon.parts
        devices = parts.get("devices")
        uplink = parts.get("uplink")
        printing = parts.get("printing")
        power = parts.get("power")
        journal_part = parts.get("journal")
        kpis = None
        if journal_part is not None:
            from agent.station import today_kpis

            def kpis() -> dict[str, Any]:
                return today_kpis(self.config, journal_part.journal)

        return LiveSources(
            devices=(lambda: list(devices.snapshot()["devices"])) if devices is not None else None,
            link=uplink.snapshot if uplink is not None else None,
            stock=(lambda: printing.service.telemetry()["stock"]) if printing is not None else None,
            kpis=kpis,
            power=(lambda: power.state().as_dict()) if power is not None else None,
            clock=self.clock,
            started_at=self.started_at,
        )

    def start(self) -> None:
        """Serve the page on 127.0.0.1 with the station API's token."""
        from agent.api.server import api_token_path, load_or_create_token

        token = load_or_create_token(api_token_path(self.config))
        devices = self.daemon.parts.get("devices")
        timeout = self.config.diagnostics.self_test_timeout_seconds

        def run_selftest(name: str) -> Any:
            if devices is None:  # names() is empty then, so the page never gets here
                raise LookupError(name)
            return devices.self_test(name, timeout=timeout)

        names: Callable[[], list[str]] = (lambda: list(devices.devices)) if devices is not None else list
        selftests = SelfTests(run_selftest, names, self.config.state_dir / "selftest")
        preview = live_preview(devices) if devices is not None else None
        sources = self.live_sources()
        report = CachedReport(lambda: build_report(self.config, sources), ttl=REPORT_TTL_SECONDS)
        self.server = DiagnosticsServer(self.config, token=token, report=report,
                                        selftests=selftests, preview=preview)
        self.server.start()
        self._thread = threading.Thread(target=self._watch_clock, name="diagnostics-clock", daemon=True)
        self._thread.start()

    def _watch_clock(self) -> None:
        # Jumps are noticed even when nobody looks at the page.
        while not self._stop.wait(10.0):
            self.clock.sample()

    def stop(self) -> None:
        """Stop serving."""
        self._stop.set()
        if self.server is not None:
            self.server.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def healthy(self) -> bool:
        """The server and clock threads are alive."""
        return (self.server is not None and self.server.healthy()
                and self._thread is not None and self._thread.is_alive())

    def status(self) -> str:
        """No STATUS fragment."""
        return ""


def diagnostics_component(config: Config, daemon: Daemon) -> DiagnosticsPart | None:
    """Daemon component factory (after the uplink in FACTORIES): None when [diagnostics] enabled = false."""
    if not config.diagnostics.enabled:
        return None
    part = DiagnosticsPart(config, daemon)
    daemon.parts["diagnostics"] = part
    return part
