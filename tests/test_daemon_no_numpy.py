"""The station daemon records a whole enrollment without loading numpy (issue 7's memory target).

numpy costs a process 11-15 MB of RSS; the quality checks, the frame picker, the signature
renderer and the card renderer work on Pillow's C operations instead. The emulators replay
finished images in asset mode (``drivers.emulators.assets``: a child process synthesises them
with numpy), as hardware hands over finished frames. What the daemon mapped is read from
``/proc/PID/maps``: a numpy import anywhere, however indirect, maps its extension modules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.keys import generate_headoffice_keys
from agent.testbed.station import SimulatedStation
from agent.workflow.synthetic import applicant
from drivers.emulators import assets


def numpy_mappings(pid: int) -> list[str]:
    """Files of numpy (or its bundled libraries) mapped into process ``pid``."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return sorted({line.split()[-1] for line in lines if "/numpy" in line})


def test_enrollment_through_the_daemon_never_maps_numpy(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(assets.ENV, str(tmp_path / "assets"))
    generate_headoffice_keys(tmp_path / "ho-keys", now=datetime.now(UTC))
    st = SimulatedStation(tmp_path / "station", printer=False)
    st.prepare(headoffice_bundle=tmp_path / "ho-keys" / "headoffice_bundle.json")
    st.enroll_operator()
    st.start()
    try:
        st.wait_devices_ready()
        st.sign_in()
        assert st.proc is not None
        result = st.client().enroll(applicant(3))
        assert result.get("packet_id"), result
        assert numpy_mappings(st.proc.pid) == []
    finally:
        st.stop()


def test_the_probe_sees_numpy_when_it_is_loaded() -> None:
    """The check above can fail: this process (pytest, with numpy imported) shows it."""
    import os

    import numpy  # noqa: F401

    assert any("_multiarray_umath" in path for path in numpy_mappings(os.getpid()))
