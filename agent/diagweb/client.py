"""Talking to the running daemon's diagnostics page from the command line (`rekam diag`, `rekam selftest`)."""

from __future__ import annotations

import http.client
import json
from typing import Any

from agent.config import Config


class DaemonUnavailableError(Exception):
    """No daemon answers on the diagnostics port (or its token cannot be read): work offline."""


class DiagClient:
    """Requests to 127.0.0.1:[diagnostics] port with the station API token."""

    def __init__(self, config: Config, *, timeout: float = 5.0, port: int | None = None) -> None:
        self.config = config
        self.timeout = timeout
        self.port = config.diagnostics.port if port is None else port

    def _token(self) -> str:
        from agent.api.server import api_token_path

        path = api_token_path(self.config)
        try:
            return path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise DaemonUnavailableError(f"cannot read the token {path}: {exc}") from exc

    def call(self, method: str, path: str, *, timeout: float | None = None) -> Any:
        """One JSON request; DaemonUnavailableError when nothing (or something else) answers."""
        if not self.config.diagnostics.enabled:
            raise DaemonUnavailableError("[diagnostics] enabled = false")
        token = self._token()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout or self.timeout)
        try:
            conn.request(method, path, headers={"Authorization": f"Bearer {token}", "Content-Length": "0"})
            resp = conn.getresponse()
            body = resp.read(64 * 1024 * 1024)
        except OSError as exc:
            raise DaemonUnavailableError(f"no daemon on 127.0.0.1:{self.port}: {exc}") from exc
        finally:
            conn.close()
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise DaemonUnavailableError(f"127.0.0.1:{self.port} did not answer JSON (HTTP {resp.status})") from exc
        if resp.status == 401:
            raise DaemonUnavailableError("the daemon refused the token (was it rotated?)")
        if resp.status >= 400:
            message = ((data.get("error") or {}).get("message") or {}) if isinstance(data, dict) else {}
            raise RemoteError(resp.status, message.get("id", ""), message.get("en", f"HTTP {resp.status}"))
        return data

    def login_url(self) -> str:
        """The address that opens the page in a browser (sets the cookie)."""
        return f"http://127.0.0.1:{self.port}/login?token={self._token()}"


class RemoteError(Exception):
    """The daemon answered with an error (busy, unknown device, ...)."""

    def __init__(self, status: int, message_id: str, message_en: str) -> None:
        super().__init__(message_en)
        self.status = status
        self.message_id = message_id
        self.message_en = message_en
