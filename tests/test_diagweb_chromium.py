"""The diagnostics page end to end: a real daemon with emulated devices, driven in headless Chromium.

Needs Debian's ``chromium`` and ``chromium-driver`` packages and the ``selenium`` package. The
daemon runs the lead's FACTORIES plus the diagnostics part, with one fingerprint scanner whose
serial port does not exist (so the page has a faulted device to show). Screenshots are kept in
``tests/artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.testbed.mosquitto import free_port
from agent.testbed.station import SimulatedStation

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).parent / "artifacts"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# The daemon exactly as `rekam run` starts it (agent/station.py's FACTORIES include the page).
DAEMON = ("import sys; from agent.cli import main; sys.exit(main(['run', '--config', sys.argv[1]]))")


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        if IN_CI:
            pytest.fail(f"missing for the browser test: {missing}")
        pytest.skip(f"missing: {missing} (apt-get install -y chromium chromium-driver; pip install selenium)")


@pytest.fixture
def station(tmp_path: Path) -> Iterator[tuple[SimulatedStation, int]]:
    """A running daemon (subprocess) with the diagnostics page on a free port."""
    _need_browser()
    port = free_port()
    st = SimulatedStation(tmp_path / "station", station_id="st-chromium-01", printer=False,
                          extra={"diagnostics": {"enabled": True, "port": port}})
    st.prepare()
    with st.config_path.open("a") as f:
        f.write('\n[devices.broken]\ndriver = "zfm"\nurl = "/dev/ttyREKAM-unplugged"\nrole = "fingerprint"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY", "NOTIFY_SOCKET")}
    with st.log_path.open("ab") as log:
        st.proc = subprocess.Popen([sys.executable, "-c", DAEMON, str(st.config_path)], env=env,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if st.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {st.log_tail()}")
            if (st.state_dir / "api.token").exists() and "diagnostics page on" in st.log_tail(100_000):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"daemon not ready: {st.log_tail()}")
            time.sleep(0.1)
        yield st, port
    finally:
        code = st.stop()
        log_text = st.log_tail(100_000)
        assert code == 0, log_text


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Headless Chromium through chromedriver, with a fresh profile and no network chatter."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,2000",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")),
                              options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait(pred: object, timeout: float = 60) -> None:
    """Poll ``pred`` (bounded)."""
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in the browser")
        time.sleep(0.2)


def test_page_in_chromium_shows_fault_and_runs_a_self_test(station: tuple[SimulatedStation, int],
                                                             browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    st, port = station
    assert isinstance(browser, WebDriver)
    ARTIFACTS.mkdir(exist_ok=True)
    base = f"http://127.0.0.1:{port}"

    browser.get(f"{base}/")
    assert "Token" in browser.find_element(By.TAG_NAME, "body").text  # no cookie yet: refused

    browser.get(f"{base}/login?token={st.token()}")

    def camera_ready() -> bool:
        browser.get(f"{base}/?lang=en")
        return bool(browser.find_elements(By.CSS_SELECTOR, "tr[data-device='camera'][data-state='ready']"))

    wait(camera_ready)
    assert browser.title.startswith("Station diagnostics st-chromium-01")
    broken = browser.find_element(By.CSS_SELECTOR, "tr[data-device='broken']")
    assert broken.get_attribute("data-state") in ("absent", "faulted")
    assert "Check the USB cable" in broken.text or "not ready" in broken.text
    check = browser.find_element(By.CSS_SELECTOR, "tr[data-check='device broken']")
    assert "FAIL" in check.text
    assert browser.find_element(By.ID, "overall").text == "FAIL"
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) == 4 and all(c.size["width"] > 100 for c in charts)  # laid out, not just present
    browser.save_screenshot(str(ARTIFACTS / "diagnostics-page.png"))

    browser.find_element(By.ID, "selftest-camera").click()
    wait(lambda: browser.find_elements(By.ID, "selftest-result"))
    assert browser.current_url.startswith(f"{base}/selftest/camera")
    assert "OK" in browser.find_element(By.ID, "selftest-result").text
    image = browser.find_element(By.ID, "selftest-image")
    wait(lambda: (browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) or 0) > 0)
    browser.save_screenshot(str(ARTIFACTS / "diagnostics-selftest.png"))

    browser.get(f"{base}/?lang=id")
    assert "Diagnostik stasiun" in browser.title
    assert browser.find_element(By.ID, "overall").text == "GAGAL"
    page = browser.page_source
    # No personal data on the page: the emulator's applicants never appear, nor does the token.
    assert st.token() not in page
    assert (st.state_dir / "selftest" / "camera.png").exists()
