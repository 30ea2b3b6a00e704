"""A small client of the station API, used by `rekam enroll`, the demo and the tests."""

from __future__ import annotations

import http.client
import json
from typing import Any


class ApiError(Exception):
    """An error answer from the station API."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        err = body.get("error", {})
        message = err.get("message", {}).get("en", str(body))
        super().__init__(f"HTTP {status} {err.get('code', '?')}: {message}")
        self.status = status
        self.code = err.get("code")
        self.body = body


class StationClient:
    """Calls the station API on 127.0.0.1 with the bearer token."""

    def __init__(self, port: int, token: str, *, host: str = "127.0.0.1", timeout: float = 60.0) -> None:
        self.host, self.port, self.token, self.timeout = host, port, token, timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request; raise :class:`ApiError` on an error status."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            data = json.dumps(body).encode() if body is not None else b""
            conn.request(method, path, body=data, headers={
                "Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                "Content-Length": str(len(data))})
            resp = conn.getresponse()
            payload = json.loads(resp.read() or b"{}")
        finally:
            conn.close()
        if resp.status >= 400:
            raise ApiError(resp.status, payload)
        return dict(payload)

    def enroll(self, biodata: dict[str, Any], *, operator_id: str | None = None,
               ticket_at: str | None = None, max_attempts: int = 6) -> dict[str, Any]:
        """Drive one whole enrollment: biodata, every capture (retrying, then force-accepting), seal."""
        s = self.call("POST", "/v1/sessions", {"operator_id": operator_id, "ticket_at": ticket_at}
                      if operator_id or ticket_at else {})
        sid = s["session_id"]
        self.call("PUT", f"/v1/sessions/{sid}/biodata", biodata)
        self.call("POST", f"/v1/sessions/{sid}/next")
        retries = 0
        for step in ("face", "fingers", "irises", "signature"):
            view = self.call("GET", f"/v1/sessions/{sid}")
            for item in view["items"]:
                if not _in_step(item["item"], step) or item["status"] in ("accepted", "excepted"):
                    continue
                for _ in range(max_attempts):
                    result = self.call("POST", f"/v1/sessions/{sid}/capture/{item['item']}")
                    if result["accepted"]:
                        break
                    retries += 1
                    if result.get("force_accept_offered"):
                        self.call("POST", f"/v1/sessions/{sid}/force-accept/{item['item']}",
                                  {"reason": "quality limit reached after retries"})
                        break
            self.call("POST", f"/v1/sessions/{sid}/next")
        sealed = self.call("POST", f"/v1/sessions/{sid}/seal")
        sealed["retries"] = retries
        return sealed


def _in_step(item: str, step: str) -> bool:
    return {"face": item == "face", "fingers": item.startswith("finger."),
            "irises": item.startswith("iris."), "signature": item == "signature"}[step]
