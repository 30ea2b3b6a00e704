"""Asset mode of the ZFM emulator: the finger image a child renders is the one synthesised in process.

(The ten-print, camera and iris emulators' asset mode is tested in test_emulator_assets.py.)
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.emulators import assets, protocol_emu
from drivers.emulators.zfm import CONDITIONS, ZfmEmulator, finger_image
from drivers.errors import DeviceFaultError
from drivers.fingerprint.base import FingerPosition
from drivers.fingerprint.zfm import ZfmOptions, ZfmScanner
from tests.test_zfm_emulator import ack, cmd, talk

ROOT = Path(__file__).resolve().parents[1]
FAST = ZfmOptions(reply_timeout=1.0, poll_interval=0.01, finger_timeout=0.2, lift_timeout=0.2, retry_delay=0.01)
_names = itertools.count()


@pytest.fixture
def rig() -> Iterator[tuple[ZfmEmulator, ZfmScanner]]:
    """An emulator and an open driver over the pyserial URL handler."""
    emu = ZfmEmulator("r503", seed=3)
    name = f"assets{next(_names)}"
    protocol_emu.attach("zfm", name, emu)
    scanner = ZfmScanner(f"emu://zfm?name={name}", FAST)
    scanner.open()
    try:
        yield emu, scanner
    finally:
        scanner.close()
        protocol_emu.detach("zfm", name)


def _upload(profile: str, identity: str, condition: str) -> bytes:
    emu = ZfmEmulator(profile)
    emu.place_finger(identity, condition)  # type: ignore[arg-type]
    assert talk(emu, cmd(0x01)) == ack(0)
    return talk(emu, cmd(0x0A))


def test_replayed_image_equals_in_process_synthesis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every condition and both sensor sizes: the same wire bytes with and without asset mode."""
    cases = [("r503", "ana", c) for c in CONDITIONS if c != "smudge"] + [("r307", "budi", "good")]
    monkeypatch.delenv(assets.ENV, raising=False)
    direct = [_upload(*case) for case in cases]
    monkeypatch.setenv(assets.ENV, str(tmp_path))
    assert [_upload(*case) for case in cases] == direct
    files = sorted(p.name.split("-")[0] for p in tmp_path.glob("*.bin"))
    assert files == ["zfm_finger"] * len(cases)
    # The identity is not in the file: only its seed went to the child.
    assert all(b"ana" not in p.read_bytes() for p in tmp_path.glob("*.json"))
    # A later upload reads the file: no child runs (it would rewrite the file).
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert _upload(*cases[0]) == direct[0]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_replayed_image_through_the_driver(rig: tuple[ZfmEmulator, ZfmScanner], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver's capture gets the in-process image's pixels from a replayed asset."""
    emu, scanner = rig
    monkeypatch.setenv(assets.ENV, str(tmp_path))
    emu.place_finger("citra-right-index")
    cap = scanner.capture_finger(FingerPosition.RIGHT_INDEX, timeout=1.0)
    packed = finger_image("citra-right-index", "good", 192, 192)
    assert cap.image.tobytes() == bytes(v * 17 for b in packed for v in (b >> 4, b & 15))


def test_unusable_asset_directory_is_the_modules_upload_fault(
        rig: tuple[ZfmEmulator, ZfmScanner], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory that cannot be made: UpImage answers UPLOAD_IMAGE_FAIL, the driver a device fault;
    the image GenImg took is not lost, so the upload works once the directory is usable."""
    emu, scanner = rig
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(assets.ENV, str(blocker / "assets"))
    emu.place_finger("dewi")
    assert scanner.wait_finger(timeout=1.0) is None
    with pytest.raises(DeviceFaultError, match=r"UpImage: .*\(0x0F\)") as info:
        scanner.upload_image()
    assert info.value.code == 0x0F
    monkeypatch.setenv(assets.ENV, str(tmp_path / "ok"))
    img = scanner.upload_image()
    packed = finger_image("dewi", "good", 192, 192)
    assert img.tobytes() == bytes(v * 17 for b in packed for v in (b >> 4, b & 15))


def test_unusable_asset_directory_on_the_wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At the protocol level the failed upload is a single ack with code 0x0F, no data packets."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(assets.ENV, str(blocker / "assets"))
    emu = ZfmEmulator("r503")
    emu.place_finger("eko")
    assert talk(emu, cmd(0x01)) == ack(0)
    assert talk(emu, cmd(0x0A)) == ack(0x0F)
    with pytest.raises(assets.AssetError, match="asset directory"):
        _ = emu.image


def test_child_refuses_an_unknown_condition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad parameters: the child's error names the cause and nothing is written."""
    monkeypatch.setenv(assets.ENV, str(tmp_path))
    with pytest.raises(assets.AssetError, match=r"exit 1\): ValueError: condition must be one of"):
        assets.replay("zfm_finger", {"seed": 1, "condition": "oily", "width": 192, "height": 192})
    assert list(tmp_path.iterdir()) == []


def test_replaying_zfm_emulator_never_imports_numpy(tmp_path: Path) -> None:
    """A daemon-like process: GenImg and UpImage in asset mode load no numpy (the child does)."""
    code = """
import os, sys
from drivers.emulators.zfm import ZfmEmulator, finger_image_seeded, finger_seed
from tests.test_zfm_emulator import ack, cmd, talk
emu = ZfmEmulator("r503")
emu.place_finger("fajar", "dry")
assert talk(emu, cmd(0x01)) == ack(0)
wire = talk(emu, cmd(0x0A))
assert wire.startswith(ack(0)) and len(wire) > 192 * 192 // 2, len(wire)
assert "numpy" not in sys.modules, "the daemon side imported numpy"
assert finger_image_seeded(finger_seed("fajar"), "dry", 192, 192)[:128] in wire
"""
    env = {**_clean_env(), assets.ENV: str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != assets.ENV}
