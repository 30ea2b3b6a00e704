"""The diagnostics page over a real device manager with emulated devices: auth, CSRF, self-tests, CLI."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.api.server import api_token_path
from agent.cli import main
from agent.config import Config, ConfigError, load_config
from agent.devices import DeviceManager, managed_devices
from agent.diagnostics import LiveSources, build_report
from agent.diagweb.server import (
    COOKIE,
    CachedReport,
    DiagnosticsServer,
    SelfTests,
    csrf_value,
    live_preview,
)
from agent.testbed.mosquitto import free_port
from agent.testbed.station import write_toml

TOKEN = "t" * 20 + "0123456789abcdef"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def station_config(tmp_path: Path, port: int, camera: str) -> Config:
    """Two devices: an emulated camera and a ZFM scanner whose serial port does not exist."""
    write_toml(tmp_path / "agent.toml", {
        "station": {"id": "st-web-01", "district_code": "647201", "language": "en",
                    "state_dir": str(tmp_path / "state")},
        "printer": {"enabled": False},
        "diagnostics": {"port": port, "self_test_timeout_seconds": 20},
        "devices": {
            "camera": {"driver": "v4l2", "url": f"emu://camera?name={camera}", "role": "camera"},
            "broken": {"driver": "zfm", "url": "/dev/ttyREKAM-not-there", "role": "fingerprint"},
        },
    })
    cfg = load_config(tmp_path / "agent.toml")
    cfg.state_dir.mkdir(mode=0o700)
    api_token_path(cfg).write_text(TOKEN + "\n")
    api_token_path(cfg).chmod(0o600)
    return cfg


@dataclass
class Web:
    cfg: Config
    server: DiagnosticsServer
    manager: DeviceManager
    selftests: SelfTests

    def request(self, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None,
                auth: bool = True) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        try:
            hdrs = {"Content-Length": str(len(body)), **(headers or {})}
            if auth:
                hdrs["Authorization"] = f"Bearer {TOKEN}"
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    """A started DeviceManager and DiagnosticsServer on a free port."""
    cfg = station_config(tmp_path, free_port(), camera=f"web-{tmp_path.name}")
    manager = DeviceManager(managed_devices(cfg))
    manager.start()
    server: DiagnosticsServer | None = None
    try:
        assert manager.wait_ready("camera", 30)
        selftests = SelfTests(lambda n: manager.self_test(n, timeout=20), lambda: list(manager.devices),
                              cfg.state_dir / "selftest")
        def devices() -> list[dict[str, Any]]:
            return [dict(d) for d in manager.snapshot()["devices"]]  # type: ignore[attr-defined]

        sources = LiveSources(devices=devices)
        server = DiagnosticsServer(cfg, token=TOKEN, report=lambda: build_report(cfg, sources), selftests=selftests,
                                   preview=live_preview(manager))
        server.start()
        yield Web(cfg, server, manager, selftests)
    finally:
        if server is not None:
            server.stop()
        manager.stop()


def test_everything_needs_the_token(web: Web) -> None:
    for path in ("/", "/api/diag.json", "/selftest/camera", "/selftest/camera.png", "/preview"):
        status, _, body = web.request("GET", path, auth=False)
        assert status == 401, path
        assert TOKEN.encode() not in body
    status, _, body = web.request("GET", "/api/diag.json", headers={"Authorization": "Bearer wrong"}, auth=False)
    assert status == 401 and "token" in json.loads(body)["error"]["message"]["en"]
    status, _, _ = web.request("POST", "/api/selftest/camera", auth=False)
    assert status == 401


def test_login_sets_a_strict_cookie_and_the_page_shows_the_faulted_device(web: Web) -> None:
    status, _, _ = web.request("GET", "/login?token=nope", auth=False)
    assert status == 401
    status, headers, _ = web.request("GET", f"/login?token={TOKEN}", auth=False)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, headers, body = web.request("GET", "/", headers={"Cookie": cookie.split(";")[0]}, auth=False)
    assert status == 200
    assert "script-src" not in headers["content-security-policy"]  # default-src 'none': no scripts at all
    page = body.decode()
    assert "data-device='broken' data-state='absent'" in page
    assert "data-device='camera' data-state='ready'" in page
    assert "class='badge fail'" in page
    assert page.count("<svg") == 4


def test_json_report_is_live(web: Web) -> None:
    status, headers, body = web.request("GET", "/api/diag.json")
    assert status == 200 and headers["content-type"].startswith("application/json")
    report = json.loads(body)
    assert report["source"] == "daemon" and report["healthy"] is False
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["device broken"]["status"] == "fail" and checks["device broken"]["hint_en"]
    assert checks["device camera"]["status"] == "ok"


def test_self_test_button_needs_the_csrf_field_and_same_origin(web: Web) -> None:
    form = f"csrf={csrf_value(TOKEN)}".encode()
    ctype = {"Content-Type": "application/x-www-form-urlencoded"}
    assert web.request("POST", "/selftest/camera", body=b"csrf=guess", headers=ctype)[0] == 403
    evil = {**ctype, "Origin": "http://evil.example"}
    assert web.request("POST", "/selftest/camera", body=form, headers=evil)[0] == 403
    status, headers, _ = web.request("POST", "/selftest/camera?lang=id", body=form,
                                     headers={**ctype, "Origin": f"http://127.0.0.1:{web.server.port}"})
    assert status == 303 and headers["location"] == "/selftest/camera?lang=id"
    status, _, body = web.request("GET", "/selftest/camera?lang=id")
    assert status == 200 and "id='selftest-result' class='ok'" in body.decode()
    status, headers, png = web.request("GET", "/selftest/camera.png")
    assert status == 200 and headers["content-type"] == "image/png" and png.startswith(PNG_MAGIC)
    saved = web.cfg.state_dir / "selftest" / "camera.png"
    assert saved.read_bytes() == png and stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_self_test_api_and_faults(web: Web) -> None:
    status, _, body = web.request("POST", "/api/selftest/camera")
    entry = json.loads(body)
    assert status == 200 and entry["ok"] is True
    assert base64.b64decode(entry["image_png_base64"]).startswith(PNG_MAGIC)
    status, _, body = web.request("POST", "/api/selftest/broken")
    entry = json.loads(body)
    assert status == 200 and entry["ok"] is False and "absent" in entry["steps"][0]["step"]
    assert web.request("POST", "/api/selftest/nosuch")[0] == 404
    assert web.request("POST", "/api/selftest/..%2Fetc")[0] == 404
    assert web.request("GET", "/nothing-here")[0] == 404
    assert web.request("POST", "/api/selftest/camera", body=b"x" * 5000)[0] == 413


def test_one_self_test_at_a_time(web: Web) -> None:
    with web.selftests._lock:  # as if a self-test were running
        status, _, body = web.request("POST", "/api/selftest/camera")
    assert status == 429 and "wait" in json.loads(body)["error"]["message"]["en"]


def test_port_taken_is_a_clear_config_error(web: Web) -> None:
    other = DiagnosticsServer(web.cfg, token=TOKEN, report=dict, selftests=web.selftests, port=web.server.port)
    with pytest.raises(ConfigError, match="cannot listen"):
        other.start()


def test_cli_uses_the_running_page(web: Web, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(web.cfg.source)
    assert main(["diag", "--config", config, "--json"]) == 1
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert report["source"] == "daemon"
    assert main(["diag", "--config", config, "--web"]) == 0
    assert capsys.readouterr().out.strip() == f"http://127.0.0.1:{web.server.port}/login?token={TOKEN}"
    out = tmp_path / "images"
    assert main(["selftest", "camera", "--out", str(out), "--config", config, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["via"] == "daemon" and result["results"][0]["ok"]
    assert (out / "camera-selftest.png").read_bytes().startswith(PNG_MAGIC)
    assert main(["selftest", "--out", str(out), "--config", config]) == 1  # the broken scanner fails
    text = capsys.readouterr().out
    assert "broken: FAILED" in text and "camera: PASSED" in text


def test_cli_selftest_offline_opens_the_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:  # make sure nothing answers on the configured port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = station_config(tmp_path, port, camera=f"offline-{tmp_path.name}")
    out = tmp_path / "images"
    assert main(["selftest", "camera", "--out", str(out), "--config", str(cfg.source)]) == 0
    assert "camera: PASSED" in capsys.readouterr().out
    assert (out / "camera-selftest.png").read_bytes().startswith(PNG_MAGIC)
    assert main(["selftest", "broken", "--out", str(out), "--config", str(cfg.source)]) == 1
    assert "broken: FAILED" in capsys.readouterr().out
    assert main(["selftest", "nosuch", "--config", str(cfg.source)]) == 2
    assert "no [devices.nosuch]" in capsys.readouterr().err


def test_live_preview_streams_jpeg_frames(web: Web) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", web.server.port, timeout=60)
    try:
        conn.request("GET", "/preview.mjpeg", headers={"Authorization": f"Bearer {TOKEN}"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=rekamframe"
        head = resp.read(200)
        assert head.startswith(b"--rekamframe\r\nContent-Type: image/jpeg\r\n")
        assert b"\r\n\r\n\xff\xd8" in head  # a JPEG starts right after the part headers
        resp.close()  # the response holds the socket open; closing it is the viewer leaving
    finally:
        conn.close()
    status, _, body = web.request("GET", "/preview")
    assert status == 200 and b"/preview.mjpeg" in body
    # The viewer left: the camera's owner finishes the preview job and takes the next one.
    assert self_test_when_free(web)["ok"] is True


def test_cached_report_builds_once_per_window() -> None:
    calls: list[int] = []

    def build() -> dict[str, Any]:
        calls.append(1)
        return {"n": len(calls)}

    cached = CachedReport(build, ttl=3600)
    assert cached() == {"n": 1} and cached() == {"n": 1}
    assert cached.builds == 1
    fresh = CachedReport(build, ttl=0)
    assert fresh() == {"n": 2} and fresh() == {"n": 3}


def test_a_stalled_viewer_does_not_hold_the_camera(web: Web) -> None:
    preview = live_preview(web.manager, stall_timeout=1.0)
    assert preview is not None
    frames = preview()
    assert next(frames).startswith(b"\xff\xd8")
    # The viewer neither reads on nor closes: the owner gives the camera back on its own.
    assert self_test_when_free(web)["ok"] is True
    frames.close()


def self_test_when_free(web: Web) -> dict[str, Any]:
    """POST a camera self-test until the camera is no longer busy with the preview (bounded)."""
    deadline = time.monotonic() + 30
    while True:
        status, _, body = web.request("POST", "/api/selftest/camera")
        assert status == 200, body
        entry: dict[str, Any] = json.loads(body)
        if entry["ok"] or "busy" not in entry["steps"][0]["detail"] or time.monotonic() > deadline:
            return entry
        time.sleep(0.1)
