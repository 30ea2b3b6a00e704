"""Asset mode of the image emulators: a child renders once, the emulator replays the same bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.camera import v4l2
from drivers.emulators import assets
from drivers.emulators.camera import Portrait, PortraitSource
from drivers.emulators.iris import EmulatedIrisSdk
from drivers.emulators.tenprint import EmulatedTenPrintBackend, TenPrintHardware
from drivers.errors import DeviceFaultError
from drivers.iris.sdk import SdkStatus


def _tenprint_results(codes: list[tuple[int, bool]]) -> list[tuple[bytes, tuple[object, ...]]]:
    backend = EmulatedTenPrintBackend(TenPrintHardware("assets-test", person_seed=3))
    backend.open()
    out = []
    for code, rolled in codes:
        backend.start(code, rolled=rolled)
        raw = backend.result()
        out.append((raw.pixels, raw.segments))
    return out


def test_replayed_bytes_equal_in_process_synthesis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same parameters, same bytes: asset mode changes where images are made, not what they are."""
    import threading

    codes = [(13, False), (2, True)]
    source = PortraitSource(Portrait(), blur_sequence=(1.0,))
    frame_args = (640, 480, v4l2.V4L2_PIX_FMT_MJPEG, 0, {})
    sdk = EmulatedIrisSdk()
    sdk.open_device()

    direct = (_tenprint_results(codes), source(*frame_args),
              sdk.capture("left", 5, threading.Event()).images[0].pixels)
    monkeypatch.setenv(assets.ENV, str(tmp_path))
    replayed = (_tenprint_results(codes), PortraitSource(Portrait(), blur_sequence=(1.0,))(*frame_args),
                sdk.capture("left", 5, threading.Event()).images[0].pixels)
    assert replayed == direct
    kinds = sorted(p.name.split("-")[0] for p in tmp_path.glob("*.bin"))
    assert kinds == ["finger", "iris", "portrait", "slap"]
    # A second request reads the file: no child runs (its output would be rewritten otherwise).
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert _tenprint_results(codes) == direct[0]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_unusable_asset_directory_is_a_clear_device_error(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory that cannot be made gives each emulator's normal fault, naming the cause."""
    import threading

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(assets.ENV, str(blocker / "assets"))
    with pytest.raises(DeviceFaultError, match="asset directory"):
        _tenprint_results([(13, False)])
    with pytest.raises(OSError, match="asset directory"):
        PortraitSource()(640, 480, v4l2.V4L2_PIX_FMT_MJPEG, 0, {})
    sdk = EmulatedIrisSdk()
    sdk.open_device()
    result = sdk.capture("left", 5, threading.Event())
    assert result.status is SdkStatus.DEVICE_ERROR and "asset directory" in str(result.code)


def test_corrupt_asset_pair_is_reported_not_replayed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Damaged metadata is an error naming the file, never a half-read image."""
    monkeypatch.setenv(assets.ENV, str(tmp_path))
    params = {"scene": {"blur": 0.0, "pupil_ratio": 0.4, "iris_radius": 110.0, "occlusion": 0.0,
                        "offset_x": 0.0, "offset_y": 0.0, "eye_open": True, "present": True,
                        "seed": 7}, "eye": "left"}
    data, meta = assets.replay("iris", params)
    assert len(data) == 640 * 480 and meta == {}
    next(tmp_path.glob("iris-*.json")).write_text("{not json")
    with pytest.raises(assets.AssetError, match="unreadable"):
        assets.replay("iris", params)
    with pytest.raises(assets.AssetError, match="unknown emulator asset kind"):
        assets.replay("hologram", {})


def test_asset_mode_off_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """replay() without the variable says so instead of rendering in process."""
    monkeypatch.delenv(assets.ENV, raising=False)
    with pytest.raises(assets.AssetError, match="is not set"):
        assets.replay("iris", {})


def test_child_failure_names_the_cause_and_leaves_no_file(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Parameters the renderer refuses: the child's last error line, and nothing half-written."""
    monkeypatch.setenv(assets.ENV, str(tmp_path))
    with pytest.raises(assets.AssetError, match=r"failed \(exit 1\): TypeError: .*bogus"):
        assets.replay("iris", {"scene": {"bogus": 1}, "eye": "left"})
    assert list(tmp_path.iterdir()) == []


def test_child_usage_error() -> None:
    """The child entry point refuses a wrong command line with its usage, exit 2."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "drivers.emulators.assets", "hologram", "{}", "."],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2 and "usage:" in res.stderr
