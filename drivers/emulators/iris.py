"""An emulated iris scanner SDK with synthetic near-infrared iris images.

Evidence: emulator only. This is NOT a model of any real device's protocol (none is public);
it implements the :class:`drivers.iris.sdk.IrisSdk` seam so the real driver
(:class:`drivers.iris.sdk.SdkIrisScanner`) runs against it. The images are drawn, not taken
from people: a skin-grey background, an almond eye opening with brighter sclera, an iris
disc with radial texture, a dark pupil with an LED glint, eyelids and lashes.

Knobs (:class:`IrisScene`): focus blur, pupil/iris ratio, iris size, eyelid occlusion, eye
position, eye present or closed; SDK outcomes and faults: a status to return, disconnect,
vendor error, a hang (the call never returns until cancelled).
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field

from PIL import Image

from drivers.emulators import assets
from drivers.iris.base import IRIS_HEIGHT, IRIS_WIDTH, Eye, EyeSelection, IrisImage, eyes_of
from drivers.iris.sdk import SdkCapture, SdkDeviceInfo, SdkStatus


@dataclass(frozen=True)
class IrisScene:
    """Knobs of one synthetic eye image."""

    blur: float = 0.0  # Gaussian radius in pixels (defocus)
    pupil_ratio: float = 0.4  # pupil radius / iris radius
    iris_radius: float = 110.0  # pixels
    occlusion: float = 0.0  # share of the iris height covered by the upper eyelid (0..1)
    offset_x: float = 0.0  # eye position shift in pixels (head not centred on the scanner)
    offset_y: float = 0.0
    eye_open: bool = True
    present: bool = True
    seed: int = 7


def render_iris(scene: IrisScene = IrisScene(), eye: Eye = "left") -> Image.Image:
    """Draw a 640x480 8-bit near-infrared iris-like image."""
    # Only the in-process synthesis draws; in asset mode (the daemon in bench enroll) it never runs,
    # so a daemon replaying assets loads neither these nor numpy.
    import numpy as np
    from PIL import ImageDraw, ImageFilter

    w, h = IRIS_WIDTH, IRIS_HEIGHT
    rng = np.random.default_rng(scene.seed + (0 if eye == "left" else 1))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Skin: a soft vertical gradient, as the NIR illuminator lights the face unevenly.
    img = 140 + 20 * (yy / h) + rng.normal(0, 3, (h, w))
    if not scene.present:
        return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L")
    cx, cy = w / 2 + scene.offset_x, h / 2 + scene.offset_y
    r_i = scene.iris_radius
    r_p = max(4.0, scene.pupil_ratio * r_i)
    # Eye opening: an almond (two arcs) wider than the iris; sclera is bright in NIR.
    half_w = r_i * 2.3
    half_h = r_i * 1.15
    u = (xx - cx) / half_w
    opening = (np.abs(u) < 1) & (np.abs(yy - cy) < half_h * (1 - u**2))
    img = np.where(opening, 185 + rng.normal(0, 4, (h, w)), img)
    # Iris: radial fibres (angle-dependent stripes) and concentric furrows.
    dx, dy = xx - cx, yy - cy
    rr = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx)
    fibres = np.sin(theta * 60 + rng.uniform(0, 6)) * 10 + np.sin(theta * 23) * 6
    rings = np.sin(rr / 7.0) * 6
    iris = 95 + fibres + rings + rng.normal(0, 5, (h, w)) - 15 * (rr / r_i)
    in_iris = (rr <= r_i) & opening
    img = np.where(in_iris, iris, img)
    img = np.where((rr <= r_p) & opening, 18 + rng.normal(0, 2, (h, w)), img)
    # LED glint inside the pupil.
    img = np.where(np.hypot(dx - r_p * 0.3, dy - r_p * 0.3) < 5, 250, img)
    # Upper eyelid: skin from the top of the opening down to the occlusion line.
    lid_line = cy - r_i + 2 * r_i * scene.occlusion
    if not scene.eye_open:
        lid_line = cy + half_h
    lid = (yy < lid_line + 8 * u**2 * r_i / 110) & opening
    img = np.where(lid, 150 + rng.normal(0, 3, (h, w)), img)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L")
    d = ImageDraw.Draw(out)
    # Lashes along the lid edge.
    for k in range(40):
        x0 = cx - half_w * 0.8 + k * (1.6 * half_w / 40)
        uu = (x0 - cx) / half_w
        y0 = max(cy - half_h * (1 - uu**2), min(lid_line, cy + half_h))
        d.line([(x0, y0), (x0 - 6 + 12 * rng.random(), y0 - 25 - 10 * rng.random())], fill=30, width=2)
    if scene.blur > 0:
        out = out.filter(ImageFilter.GaussianBlur(scene.blur))
    return out


@dataclass
class EmulatedIrisSdk:
    """Implements ``IrisSdk`` with synthetic images; set ``scene``/``status``/faults per test."""

    scene: IrisScene = field(default_factory=IrisScene)
    status: SdkStatus = SdkStatus.OK  # what capture returns (OK: images from ``scene``)
    sdk_quality: int | None = 80
    error_code: int = -7
    hang: bool = False  # capture blocks until cancelled or released (a wedged vendor SDK)
    disconnected: bool = False
    open_count: int = 0
    is_open: bool = False
    captures: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    def open_device(self) -> SdkDeviceInfo:
        """Open: fails like a missing USB device when ``disconnected``."""
        if self.disconnected:
            raise OSError(19, "No such device")
        self.is_open = True
        self.open_count += 1
        return SdkDeviceInfo("Rekam", "Emulated iris scanner", "EMU-IRIS-0001", "emu-1.0")

    def close_device(self) -> None:
        """Close."""
        self.is_open = False

    def capture(self, eyes: EyeSelection, timeout_s: float, cancel: threading.Event) -> SdkCapture:
        """Return images of ``scene`` for each eye, or the configured status."""
        self.captures += 1
        if self.hang:
            # A wedged SDK ignores cancel; only the test's release frees it (bounded by the test).
            self.release.wait(60)
        if not self.is_open:
            return SdkCapture(SdkStatus.DEVICE_ERROR, code="not open")
        if self.disconnected:
            return SdkCapture(SdkStatus.DISCONNECTED)
        if cancel.is_set():
            return SdkCapture(SdkStatus.CANCELLED)
        if self.status is SdkStatus.DEVICE_ERROR:
            return SdkCapture(self.status, code=self.error_code)
        if self.status is not SdkStatus.OK:
            return SdkCapture(self.status)
        # The emulated SDK does its own gating like real ones: no eye or closed eyes.
        if not self.scene.present:
            return SdkCapture(SdkStatus.NO_EYE)
        if not self.scene.eye_open:
            return SdkCapture(SdkStatus.EYES_CLOSED)
        try:
            images = tuple(
                IrisImage(eye, IRIS_WIDTH, IRIS_HEIGHT, self._pixels(eye), self.sdk_quality)
                for eye in eyes_of(eyes)
            )
        except assets.AssetError as exc:
            return SdkCapture(SdkStatus.DEVICE_ERROR, code=f"asset: {exc}")
        return SdkCapture(SdkStatus.OK, images)

    def _pixels(self, eye: Eye) -> bytes:
        if assets.asset_dir() is not None:
            return assets.replay("iris", {"scene": asdict(self.scene), "eye": eye})[0]
        return render_iris(self.scene, eye).tobytes()

    def present(self) -> bool:
        """Attached unless disconnected."""
        return not self.disconnected

    def self_test(self) -> tuple[bool, str]:
        """Passes unless disconnected."""
        return (not self.disconnected, "emulated" if not self.disconnected else "disconnected")


def pupil_to_iris(scene: IrisScene) -> float:
    """The ground-truth pupil/iris ratio of a scene (for tests of the quality estimate)."""
    return max(4.0, scene.pupil_ratio * scene.iris_radius) / scene.iris_radius


def visible_iris_share(scene: IrisScene) -> float:
    """Approximate ground-truth share of the iris disc not under the eyelid."""
    # The lid covers a circular segment from the top down to c (in radii from the centre).
    c = min(1.0, max(0.0, scene.occlusion)) * 2 - 1
    covered = (math.acos(-c) + c * math.sqrt(max(0.0, 1 - c * c))) / math.pi
    return 1 - covered


_HARDWARE: dict[str, EmulatedIrisSdk] = {}
_HARDWARE_LOCK = threading.Lock()


def hardware(name: str) -> EmulatedIrisSdk:
    """The emulated iris SDK called ``name``, created on first use."""
    with _HARDWARE_LOCK:
        if name not in _HARDWARE:
            _HARDWARE[name] = EmulatedIrisSdk()
        return _HARDWARE[name]


def forget(name: str) -> None:
    """Remove an emulated iris SDK (tests call this to start fresh)."""
    with _HARDWARE_LOCK:
        _HARDWARE.pop(name, None)
