"""Emulators keep their synthesis off the idle daemon: what a device hands over is unchanged.

The daemon's idle memory (issue 7) counts what the in-process emulators load, so they render
only when the host actually reads an image. These tests check that the bytes on the wire are
still the ones a module that rendered at once would send.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from drivers.emulators.zfm import ZfmEmulator, finger_image
from tests.test_zfm_emulator import ack, cmd, spec_packet, talk

ROOT = Path(__file__).resolve().parents[1]


def test_upimage_sends_the_finger_genimg_saw_not_the_one_on_the_glass_now() -> None:
    # GenImg only notes the finger; the pixels are made at upload. What is uploaded must still be
    # the image GenImg took, as on a real module, whatever lies on the glass by then.
    emu = ZfmEmulator("r503")
    emu.place_finger("erin", "wet")
    assert talk(emu, cmd(0x01)) == ack(0)
    emu.place_finger("frank")
    wire = talk(emu, cmd(0x0A))
    emu.lift_finger()
    assert emu.image == finger_image("erin", "wet", 192, 192)
    assert finger_image("erin", "wet", 192, 192)[:128] in wire
    assert talk(emu, cmd(0x01)) == ack(0x02)  # no finger: the buffer keeps the last image
    assert emu.image == finger_image("erin", "wet", 192, 192)


def test_downimage_replaces_an_image_genimg_has_not_rendered_yet() -> None:
    emu = ZfmEmulator("r503")
    emu.place_finger("gina")
    assert talk(emu, cmd(0x01)) == ack(0)
    mine = bytes(range(256)) * (192 * 192 // 2 // 256)
    assert talk(emu, cmd(0x0B)) == ack(0)
    pieces = [mine[i : i + 128] for i in range(0, len(mine), 128)]
    stream = b"".join(spec_packet(0x02, p) for p in pieces[:-1]) + spec_packet(0x08, pieces[-1])
    assert talk(emu, stream) == b""
    assert emu.image == mine
    assert talk(emu, cmd(0x0A)).startswith(ack(0) + spec_packet(0x02, mine[:128]))


def test_a_sign_in_on_the_emulated_module_loads_no_synthesis() -> None:
    # A fresh interpreter, as the daemon is: GenImg, Img2Tz and Search (what a sign-in sends)
    # must not load numpy.random, which the finger synthesis needs (about 2.3 MB resident).
    code = """
import sys
from drivers.emulators.zfm import ZfmEmulator
from tests.test_zfm_emulator import ack, cmd, talk
emu = ZfmEmulator("r503")
emu.place_finger("hana")
assert talk(emu, cmd(0x01)) == ack(0)
assert talk(emu, cmd(0x02, 1)) == ack(0)
talk(emu, cmd(0x04, 1, 0, 0, 0, 200))
assert "numpy.random" not in sys.modules, "GenImg rendered the image"
talk(emu, cmd(0x0A))
assert "numpy.random" in sys.modules
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr


def test_the_image_emulators_load_no_drawing_filters_or_subprocess_until_they_render() -> None:
    # In asset mode the daemon replays finished bytes: drawing, blur filters and the child-process
    # machinery are only for synthesising, so importing the emulators must not load them.
    code = """
import sys
import drivers.emulators.camera, drivers.emulators.iris, drivers.emulators.tenprint
loaded = {"subprocess", "PIL.ImageDraw", "PIL.ImageFilter"} & set(sys.modules)
assert not loaded, loaded
drivers.emulators.iris.render_iris()
assert {"PIL.ImageDraw", "PIL.ImageFilter"} <= set(sys.modules)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr
