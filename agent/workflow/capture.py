"""Captures for the workflow from the station's devices, judged by the quality modules.

Maps a session item ("face", "finger.3", "iris.left", "signature", "exception.finger.3") to the
device with the matching role in the device manager, runs the capture on that device's owner
thread (one capture per device at a time: a second caller gets "busy"), scores it, and returns
an encoded :class:`~agent.workflow.session.Capture`. Images stay in memory.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from PIL import Image

from agent.config import Config
from agent.devices import DeviceBusyError, DeviceManager
from agent.faults import crash_point
from agent.heap import trim_heap
from agent.workflow.session import Capture, WorkflowError
from drivers.errors import DeviceMissingError

# The roles that can serve each modality, in order of preference.
_ROLES = {
    "face": ("camera",),
    "finger": ("tenprint", "fingerprint"),
    "iris": ("iris",),
    "signature": ("signature",),
    "exception": ("camera",),
}


class DeviceCaptureProvider:
    """The workflow's CaptureProvider backed by the device manager."""

    def __init__(self, config: Config, devices: DeviceManager, *, capture_timeout: float = 30.0) -> None:
        self.config = config
        self.devices = devices
        self.timeout = capture_timeout

    def _device_for(self, modality: str) -> str:
        for role in _ROLES[modality]:
            names = self.devices.by_role(role)
            if names:
                return names[0]
        raise WorkflowError(
            "no_device", 503,
            f"Tidak ada perangkat untuk {modality} di konfigurasi stasiun.",
            f"No device for {modality} is configured on this station.",
        )

    def _identity(self, name: str) -> Mapping[str, Any]:
        snap = self.devices.device(name).snapshot()
        identity = snap.get("identity")
        base = {"name": name, "driver": snap.get("driver")}
        return {**base, **identity} if isinstance(identity, dict) else base

    def capture(self, item: str, *, language: str, context: Mapping[str, Any] | None = None) -> Capture:
        """Capture ``item`` on its device and score it."""
        context = context or {}
        crash_point("mid-capture")
        modality = item.split(".")[0]
        name = self._device_for(modality)
        try:
            if modality in ("face", "exception"):
                return self._face(name, scored=modality == "face", birth_year=context.get("birth_year"))
            if modality == "finger":
                return self._finger(name, int(item.split(".")[1]))
            if modality == "iris":
                return self._iris(name, item.split(".")[1])
            return self._signature(name)
        except DeviceBusyError as exc:
            raise WorkflowError("device_busy", 423, "Perangkat sedang dipakai oleh layar lain. Tunggu sebentar.",
                                "The device is busy with another capture. Wait a moment.") from exc
        except KeyError as exc:  # a device removed from the manager under us
            raise DeviceMissingError(str(exc), device=name) from exc
        finally:
            # The decoded frame and the check's buffers are freed by now, but glibc would keep
            # them until the session ends, and the next captures would stack on top (measured:
            # the face step left 4.4 MB held through the fingers, irises and signature).
            trim_heap()

    def capture_slap(self, slap: str, *, skip: tuple[int, ...], language: str) -> dict[int, Capture]:
        """A 4-4-2 slap from the ten-print scanner, one capture per finger found."""
        from drivers.fingerprint.base import FingerPosition, Slap

        names = self.devices.by_role("tenprint")
        if not names:
            raise WorkflowError("no_slaps", 409, "Pemindai ini tidak bisa merekam empat jari sekaligus.",
                                "This station's scanner cannot take slaps; capture single fingers.")
        name = names[0]
        try:
            cap = self.devices.capture_slap(name, Slap[slap.upper()], timeout=self.timeout,
                                            skip=tuple(FingerPosition(p) for p in skip))
        except DeviceBusyError as exc:
            raise WorkflowError("device_busy", 423, "Perangkat sedang dipakai oleh layar lain. Tunggu sebentar.",
                                "The device is busy with another capture. Wait a moment.") from exc
        out: dict[int, Capture] = {}
        for finger in cap.fingers:
            buf = io.BytesIO()
            finger.image.save(buf, "PNG")
            out[int(finger.position)] = Capture(
                buf.getvalue(), "png", finger.quality, finger.image.width, finger.image.height,
                self._identity(name), details={"quality_method": finger.quality_method, "slap": slap},
                ppi=finger.ppi)
        return out

    def _face(self, name: str, *, scored: bool, birth_year: int | None) -> Capture:
        from agent.quality.face import check_face_jpeg

        shot = self.devices.call(name, lambda d, cancel: d.capture_best(stop=cancel),  # type: ignore[attr-defined]
                                 timeout=self.timeout, label="capture_best")
        frame = shot.frame
        if frame.fourcc == "MJPG":
            jpeg = bytes(frame.data)
        else:
            out = io.BytesIO()
            frame.to_image().convert("RGB").save(out, "JPEG", quality=90)
            jpeg = out.getvalue()
        if not scored:
            # An exception photo documents a missing finger or eye; it has no quality gate.
            return Capture(jpeg, "jpeg", 100, frame.width, frame.height, self._identity(name))
        q = self.config.quality
        result = check_face_jpeg(jpeg, rule=q.photo_background, birth_year=birth_year,
                                 threshold=q.face_threshold)
        return Capture(jpeg, "jpeg", result.score, frame.width, frame.height, self._identity(name),
                       details=result.as_dict())

    def _finger(self, name: str, position: int) -> Capture:
        from drivers.fingerprint.base import FingerPosition

        cap = self.devices.capture_finger(name, FingerPosition(position), timeout=self.timeout)
        out = io.BytesIO()
        cap.image.save(out, "PNG")
        return Capture(out.getvalue(), "png", cap.quality, cap.image.width, cap.image.height,
                       self._identity(name), details={"quality_method": cap.quality_method}, ppi=cap.ppi)

    def _iris(self, name: str, eye: str) -> Capture:
        from agent.quality.iris import check_iris

        selection = "left" if eye == "left" else "right"
        images = self.devices.call(
            name, lambda d, cancel: d.capture(selection, timeout_s=self.timeout),  # type: ignore[attr-defined]
            timeout=self.timeout + 5, label=f"capture_iris {eye}")
        img = images[0].to_image()
        result = check_iris(img, threshold=self.config.quality.iris_threshold)
        out = io.BytesIO()
        img.save(out, "PNG")
        return Capture(out.getvalue(), "png", result.score, img.width, img.height, self._identity(name),
                       details=result.as_dict())

    def _signature(self, name: str) -> Capture:
        sig = self.devices.call(
            name, lambda d, cancel: d.capture(timeout_s=self.timeout, stop=cancel),  # type: ignore[attr-defined]
            timeout=self.timeout + 5, label="capture_signature")
        width, height = Image.open(io.BytesIO(sig.png)).size
        # Score 50 is exactly the configured minimum ink share: the signature gate is 50.
        score = min(100, int(50 * sig.ink_share / max(self.config.quality.signature_min_ink, 1e-9)))
        return Capture(sig.png, "png", score, width, height, self._identity(name),
                       details={"ink_share": round(sig.ink_share, 4)})
