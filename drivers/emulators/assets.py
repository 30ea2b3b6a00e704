"""Asset mode for the image emulators: render in a child process once, replay the bytes.

Evidence: emulator only. The camera, ten-print, iris and ZFM emulators stand in for hardware
*inside* the daemon process, so by default their synthesis (Pillow drawing, FFT filter banks,
float arrays of a 1080p frame) lands in the daemon's memory, which real hardware never puts
there: a V4L2 device DMA-s finished frames into mmap'ed buffers, a USB scanner hands over a
finished image. With ``REKAM_EMULATOR_ASSETS=DIR`` in the environment the emulators instead ask
:func:`replay` for the finished bytes: the first request for a set of parameters runs
``python -m drivers.emulators.assets`` in a child process, which renders and writes
``DIR/KIND-HASH.bin`` (plus ``.json`` for metadata such as where a slap's fingers landed);
every later request, in this or any later run, just reads the file. The daemon then holds what
hardware would hand it (the image bytes) and nothing of the synthesis.

Without the variable nothing changes: the emulators synthesise in process, as tests expect.
The bytes are identical either way (same functions, same parameters), which the tests check.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV = "REKAM_EMULATOR_ASSETS"
# Bump when a renderer changes its output, so stale files are not replayed.
_VERSION = 1
_CHILD_TIMEOUT_S = 120.0


class AssetError(RuntimeError):
    """An emulator asset could not be rendered or read (the message says which and why)."""


def asset_dir() -> Path | None:
    """The asset directory when asset mode is on (``REKAM_EMULATOR_ASSETS``), else None."""
    value = os.environ.get(ENV, "").strip()
    return Path(value) if value else None


def _key(kind: str, params: Mapping[str, Any]) -> str:
    text = json.dumps([_VERSION, kind, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def replay(kind: str, params: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The bytes and metadata of asset ``kind`` with ``params``, rendered by a child on first use."""
    directory = asset_dir()
    if directory is None:
        raise AssetError(f"asset mode is off ({ENV} is not set)")
    if kind not in _RENDERERS:
        raise AssetError(f"unknown emulator asset kind {kind!r} (known: {', '.join(sorted(_RENDERERS))})")
    stem = directory / f"{kind}-{_key(kind, params)}"
    data_path, meta_path = stem.with_suffix(".bin"), stem.with_suffix(".json")
    if not (data_path.exists() and meta_path.exists()):
        _render_in_child(kind, params, directory)
    try:
        return data_path.read_bytes(), json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise AssetError(f"emulator asset {stem.name} unreadable: {exc}") from exc


def _render_in_child(kind: str, params: Mapping[str, Any], directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AssetError(f"emulator asset directory {directory} unusable: {exc}") from exc
    # Imported here: a daemon replaying files it already has never starts a child.
    import subprocess

    cmd = [sys.executable, "-m", "drivers.emulators.assets", kind, json.dumps(params), str(directory)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=_CHILD_TIMEOUT_S,
                             stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AssetError(f"rendering emulator asset {kind} failed: {exc}") from exc
    if res.returncode != 0:
        tail = res.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise AssetError(f"rendering emulator asset {kind} failed (exit {res.returncode}): {tail[0]}")


# ----------------------------------------------------------------------------- renderers (child)


def _render_portrait(p: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    from drivers.camera import v4l2
    from drivers.emulators.camera import Portrait, encode_jpeg, encode_yuyv, render_portrait

    knobs = dict(p["portrait"])
    knobs["background"] = tuple(knobs["background"])
    img = render_portrait(int(p["width"]), int(p["height"]), Portrait(**knobs))
    mjpeg = int(p["pixfmt"]) == v4l2.V4L2_PIX_FMT_MJPEG
    return (encode_jpeg(img) if mjpeg else encode_yuyv(img)), {}


def _render_finger(p: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    from drivers.emulators.fingerprint_synth import Conditions, synth_finger

    img = synth_finger(int(p["person_seed"]), int(p["position"]), width=int(p["width"]),
                       height=int(p["height"]), conditions=Conditions(**p["conditions"]),
                       capture_seed=int(p["capture_seed"]), rolled=bool(p["rolled"]))
    return img.tobytes(), {}


def _render_slap(p: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    from drivers.emulators.fingerprint_synth import Conditions, synth_slap

    conditions = Conditions(**p["conditions"])
    positions = tuple(int(x) for x in p["positions"])
    img, placed = synth_slap(int(p["person_seed"]), positions,
                             platen=(int(p["platen"][0]), int(p["platen"][1])),
                             conditions={pos: conditions for pos in positions},
                             capture_seed=int(p["capture_seed"]),
                             skip=frozenset(int(x) for x in p["skip"]))
    return img.tobytes(), {"placed": [[f.position, *f.bbox] for f in placed]}


def _render_iris(p: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    from drivers.emulators.iris import IrisScene, render_iris

    return render_iris(IrisScene(**p["scene"]), p["eye"]).tobytes(), {}


def _render_zfm_finger(p: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    from drivers.emulators.zfm import CONDITIONS, finger_image_seeded

    condition = p["condition"]
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")
    return finger_image_seeded(int(p["seed"]), condition, int(p["width"]), int(p["height"])), {}


_RENDERERS = {"portrait": _render_portrait, "finger": _render_finger, "slap": _render_slap,
              "iris": _render_iris, "zfm_finger": _render_zfm_finger}


def _child_main(argv: list[str]) -> int:
    """Render one asset into the directory (``KIND PARAMS_JSON DIR``); atomic, so racing is safe."""
    if len(argv) != 3 or argv[0] not in _RENDERERS:
        print(f"usage: python -m drivers.emulators.assets {{{','.join(_RENDERERS)}}} PARAMS_JSON DIR",
              file=sys.stderr)
        return 2
    kind, params = argv[0], json.loads(argv[1])
    data, meta = _RENDERERS[kind](params)
    stem = Path(argv[2]) / f"{kind}-{_key(kind, params)}"
    # Metadata first, data last: replay() treats the pair as present only when both exist.
    for path, payload in ((stem.with_suffix(".json"), json.dumps(meta).encode()),
                          (stem.with_suffix(".bin"), data)):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1:]))
