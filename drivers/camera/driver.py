"""The station camera: any UVC webcam through V4L2 mmap streaming.

Evidence: public protocol (Linux V4L2 UAPI); tested against the in-process fake hardware of
``drivers.emulators.camera`` and, behind the ``hardware`` marker, a real ``/dev/videoN``.

One thread owns a camera (the device manager's device thread): it opens it, streams, and
closes it. ``set_control`` may be called from another thread; a lock serialises ioctls.
Every wait for a frame is bounded by ``timeout_s``; a stalled camera raises
:class:`DeviceTimeoutError`, an unplugged one :class:`DeviceMissingError`.
"""

from __future__ import annotations

import errno
import io
import logging
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass

from drivers.base import DeviceIdentity, FrameLog, SelfTestResult
from drivers.camera import v4l2
from drivers.camera.picker import BestFramePicker, Frame, reduced_grey
from drivers.errors import (
    DeviceError,
    DeviceFaultError,
    DeviceMissingError,
    DeviceProtocolError,
    DeviceTimeoutError,
    UserRetryError,
)

log = logging.getLogger(__name__)

HINT_LOOK_ID = "Lihat ke kamera dan jangan bergerak, lalu ambil foto lagi."
HINT_LOOK_EN = "Look at the camera and hold still, then take the photo again."


@dataclass(frozen=True)
class FormatInfo:
    """One pixel format the camera offers, with its discrete frame sizes."""

    pixfmt: int
    description: str
    compressed: bool
    sizes: tuple[tuple[int, int], ...]

    @property
    def fourcc(self) -> str:
        """Four-character code."""
        return v4l2.fourcc_str(self.pixfmt)


@dataclass(frozen=True)
class ControlInfo:
    """A camera control's range as VIDIOC_QUERYCTRL reports it."""

    name: str
    cid: int
    type: int
    minimum: int
    maximum: int
    step: int
    default: int


@dataclass(frozen=True)
class Capture:
    """The chosen frame of a capture and how it was chosen."""

    frame: Frame
    sharpness: float
    considered: int
    rejected: int


class V4l2Camera:
    """A UVC camera through V4L2; implements ``drivers.base.Device``."""

    def __init__(
        self,
        path: str = "/dev/video0",
        *,
        width: int = 1920,
        height: int = 1080,
        formats: Sequence[str] = ("MJPG", "YUYV"),
        buffers: int = 4,
        fps: float | None = None,
        timeout_s: float = 2.0,
        controls: Mapping[str, int] | None = None,
        min_sharpness: float = 0.0,
        min_brightness: float = 8.0,
        syscalls: v4l2.Syscalls | None = None,
        emulated: bool = False,
    ) -> None:
        if not 2 <= buffers <= 4:
            raise ValueError("buffers must be 2-4 (enough to stream, little memory)")
        if fps is not None:
            v4l2.interval_for_fps(fps)  # ValueError now, not at open
        self.path = path
        self.want_size = (width, height)
        self.want_formats = tuple(v4l2.fourcc(f) for f in formats)
        self.n_buffers = buffers
        self.want_fps = fps  # None: leave the camera's own frame interval alone
        self.timeout_s = timeout_s
        self.initial_controls = dict(controls or {})
        self.min_sharpness = min_sharpness
        self.min_brightness = min_brightness
        self.sys: v4l2.Syscalls = syscalls or v4l2.RealSyscalls()
        self.emulated = emulated
        self.frame_log = FrameLog()
        self.fd: int | None = None
        self.cap: v4l2.v4l2_capability | None = None
        self.pixfmt = 0
        self.width = 0
        self.height = 0
        self.fps: float | None = None  # what the camera reports after open (None: unknown)
        self.available_formats: tuple[FormatInfo, ...] = ()
        self._maps: list[v4l2.MappedBuffer] = []
        self._streaming = False
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ helpers

    def _ioctl(self, request: int, arg: v4l2._S) -> v4l2._S:
        """One ioctl on the open device, logged by name (never with frame data)."""
        if self.fd is None:
            raise DeviceMissingError("camera is not open", device=self.path)
        name = v4l2.IOCTL_NAMES.get(request, hex(request))
        fd = self.fd
        with self._lock:
            try:
                out = v4l2.retry_eintr(lambda: v4l2.call(self.sys, fd, request, arg))
            except OSError as exc:
                self.frame_log.record("tx", f"{name} -> errno {exc.errno}")
                raise self._os_error(exc, name) from exc
        self.frame_log.record("tx", f"{name} ok")
        return out

    def _os_error(self, exc: OSError, what: str) -> DeviceError:
        if exc.errno in v4l2.DEVICE_GONE_ERRNOS:
            return DeviceMissingError(f"camera gone during {what}: {exc.strerror}", device=self.path)
        if exc.errno in (errno.EACCES, errno.EPERM):
            return DeviceMissingError(
                f"no permission for {self.path} ({what})",
                hint_id="Kamera tidak bisa dibuka (izin). Hubungi teknisi.",
                hint_en="The camera cannot be opened (permission). Call the technician.",
                device=self.path,
            )
        if exc.errno == errno.EBUSY:
            return DeviceFaultError(
                f"camera busy during {what}",
                code="EBUSY",
                hint_id="Kamera sedang dipakai aplikasi lain. Tutup aplikasi itu.",
                hint_en="Another program is using the camera. Close it.",
                device=self.path,
            )
        return DeviceProtocolError(f"{what} failed: errno {exc.errno} {exc.strerror}", device=self.path)

    # ------------------------------------------------------------------ Device

    def open(self) -> None:
        """Open, check it is a streaming capture device, set format and map 2-4 buffers."""
        if self.fd is not None:
            return
        try:
            self.fd = self.sys.open(self.path)
        except OSError as exc:
            raise self._os_error(exc, "open") from exc
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        log.info("camera %s open: %s %dx%d at %s fps", self.path, v4l2.fourcc_str(self.pixfmt),
                 self.width, self.height, "?" if self.fps is None else f"{self.fps:.4g}")

    def _setup(self) -> None:
        cap = self._ioctl(v4l2.VIDIOC_QUERYCAP, v4l2.v4l2_capability())
        self.cap = cap
        caps = cap.device_caps if cap.capabilities & v4l2.V4L2_CAP_DEVICE_CAPS else cap.capabilities
        if not caps & v4l2.V4L2_CAP_VIDEO_CAPTURE or not caps & v4l2.V4L2_CAP_STREAMING:
            raise DeviceFaultError(
                f"{self.path} is not a streaming capture device (caps {caps:#x})",
                code="NOT_CAPTURE",
                hint_id="Perangkat ini bukan kamera. Periksa pengaturan kamera.",
                hint_en="This device is not a camera. Check the camera setting.",
                device=self.path,
            )
        self.available_formats = tuple(self._enum_formats())
        offered = {f.pixfmt: f for f in self.available_formats}
        choice = next((p for p in self.want_formats if p in offered), None)
        if choice is None:
            raise DeviceFaultError(
                f"camera offers none of {[v4l2.fourcc_str(p) for p in self.want_formats]}",
                code="NO_FORMAT",
                device=self.path,
            )
        fmt = v4l2.v4l2_format()
        fmt.type = v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE
        w, h = self._nearest_size(offered[choice].sizes)
        fmt.fmt.pix.width, fmt.fmt.pix.height = w, h
        fmt.fmt.pix.pixelformat = choice
        fmt.fmt.pix.field = v4l2.V4L2_FIELD_ANY
        got = self._ioctl(v4l2.VIDIOC_S_FMT, fmt).fmt.pix
        if got.pixelformat != choice:
            raise DeviceProtocolError(
                f"asked {v4l2.fourcc_str(choice)}, camera set {v4l2.fourcc_str(got.pixelformat)}",
                device=self.path,
            )
        self.pixfmt, self.width, self.height = choice, int(got.width), int(got.height)
        # After S_FMT: the intervals a camera offers depend on the format and size just set.
        self._set_frame_rate()
        for name, value in self.initial_controls.items():
            self.set_control(name, value)
        req = v4l2.v4l2_requestbuffers()
        req.count = self.n_buffers
        req.type = v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE
        req.memory = v4l2.V4L2_MEMORY_MMAP
        req = self._ioctl(v4l2.VIDIOC_REQBUFS, req)
        if req.count < 2:
            raise DeviceFaultError(
                f"camera granted {req.count} buffers, need 2", code="NO_BUFFERS", device=self.path
            )
        for i in range(req.count):
            buf = self._new_buffer(i)
            buf = self._ioctl(v4l2.VIDIOC_QUERYBUF, buf)
            try:
                self._maps.append(self.sys.mmap(self.fd or -1, buf.length, buf.m.offset))
            except OSError as exc:
                raise self._os_error(exc, "mmap") from exc

    def _set_frame_rate(self) -> None:
        """Request ``want_fps`` (VIDIOC_S_PARM) and keep what the camera granted in ``fps``.

        A camera that cannot report or set its interval still streams at its own rate: that
        is logged, not a fault. Losing the camera or another program holding it still raises.
        """
        parm = v4l2.v4l2_streamparm()
        parm.type = v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE
        try:
            current = self._ioctl(v4l2.VIDIOC_G_PARM, parm).parm.capture
        except DeviceProtocolError as exc:
            self.fps = None
            if self.want_fps is not None:
                log.warning("camera %s: cannot read its frame rate (%s); streams at its own rate",
                            self.path, exc)
            return
        self.fps = v4l2.fps_of_interval(current.timeperframe.numerator,
                                        current.timeperframe.denominator)
        if self.want_fps is None:
            return
        if not current.capability & v4l2.V4L2_CAP_TIMEPERFRAME:
            log.warning("camera %s cannot set its frame rate; streams at %s fps", self.path,
                        "?" if self.fps is None else f"{self.fps:.4g}")
            return
        parm.parm.capture.timeperframe.numerator, parm.parm.capture.timeperframe.denominator = (
            v4l2.interval_for_fps(self.want_fps))
        try:
            granted = self._ioctl(v4l2.VIDIOC_S_PARM, parm).parm.capture.timeperframe
        except DeviceProtocolError as exc:
            log.warning("camera %s refused %.4g fps (%s); streams at %s fps", self.path,
                        self.want_fps, exc, "?" if self.fps is None else f"{self.fps:.4g}")
            return
        # The camera snaps the request to an interval it supports and writes that back.
        self.fps = v4l2.fps_of_interval(granted.numerator, granted.denominator)
        if self.fps is None or abs(self.fps - self.want_fps) > 0.01 * self.want_fps:
            log.info("camera %s: asked %.4g fps, granted %s", self.path, self.want_fps,
                     "?" if self.fps is None else f"{self.fps:.4g}")

    def _enum_formats(self) -> Iterator[FormatInfo]:
        for index in range(64):  # bound: a sane camera lists a handful
            desc = v4l2.v4l2_fmtdesc()
            desc.index = index
            desc.type = v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE
            try:
                desc = self._ioctl(v4l2.VIDIOC_ENUM_FMT, desc)
            except DeviceProtocolError:
                return  # EINVAL ends the enumeration
            sizes: list[tuple[int, int]] = []
            for sindex in range(64):
                fs = v4l2.v4l2_frmsizeenum()
                fs.index = sindex
                fs.pixel_format = desc.pixelformat
                try:
                    fs = self._ioctl(v4l2.VIDIOC_ENUM_FRAMESIZES, fs)
                except DeviceProtocolError:
                    break
                if fs.type == v4l2.V4L2_FRMSIZE_TYPE_DISCRETE:
                    sizes.append((int(fs.discrete.width), int(fs.discrete.height)))
                else:
                    # Stepwise/continuous: offer the wanted size clamped into the range.
                    sw = fs.stepwise
                    sizes.append((
                        min(max(self.want_size[0], sw.min_width), sw.max_width),
                        min(max(self.want_size[1], sw.min_height), sw.max_height),
                    ))
                    break
            yield FormatInfo(
                int(desc.pixelformat),
                desc.description.decode("utf-8", "replace"),
                bool(desc.flags & 1),
                tuple(sizes),
            )

    def _nearest_size(self, sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
        if not sizes:
            return self.want_size
        want = self.want_size[0] * self.want_size[1]
        return min(sizes, key=lambda s: (abs(s[0] * s[1] - want), -s[0]))

    def _new_buffer(self, index: int = 0) -> v4l2.v4l2_buffer:
        buf = v4l2.v4l2_buffer()
        buf.index = index
        buf.type = v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE
        buf.memory = v4l2.V4L2_MEMORY_MMAP
        return buf

    def health(self) -> None:
        """Cheap liveness probe for the device manager's idle checks (VIDIOC_QUERYCAP).

        Skipped while streaming: a capture notices an unplug itself. Raises
        DeviceMissingError when the camera is gone or not open.
        """
        if self._streaming:
            return
        self._ioctl(v4l2.VIDIOC_QUERYCAP, v4l2.v4l2_capability())

    def identify(self) -> DeviceIdentity:
        """Driver, card name and bus position as the kernel reports them (UVC has no serial here)."""
        if self.cap is None:
            raise DeviceMissingError("camera is not open", device=self.path)
        v = self.cap.version
        return DeviceIdentity(
            kind="camera",
            make=self.cap.driver.decode("utf-8", "replace"),
            model=self.cap.card.decode("utf-8", "replace"),
            serial=self.cap.bus_info.decode("utf-8", "replace"),
            firmware=f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}",
            evidence="public protocol",
            emulated=self.emulated,
        )

    def self_test(self) -> SelfTestResult:
        """Query the device, grab one frame within the timeout, decode it; PNG thumbnail."""
        steps: list[tuple[str, bool, str]] = []
        try:
            self.open()
            steps.append(("open", True, f"{v4l2.fourcc_str(self.pixfmt)} {self.width}x{self.height}"))
            frame = next(self.frames(max_frames=1))
            img = frame.to_image()
            steps.append(("frame", True, f"{len(frame.data)} bytes"))
            thumb = img.copy()
            thumb.thumbnail((320, 240))
            out = io.BytesIO()
            thumb.save(out, "PNG")
            return SelfTestResult(True, tuple(steps), out.getvalue())
        except (DeviceError, OSError, ValueError) as exc:
            steps.append(("capture", False, str(exc)))
            return SelfTestResult(False, tuple(steps))

    def close(self) -> None:
        """Stop streaming, unmap, release buffers, close; safe to call twice."""
        with self._lock:
            if self.fd is None:
                return
            fd = self.fd
            if self._streaming:
                try:
                    v4l2.call_int(self.sys, fd, v4l2.VIDIOC_STREAMOFF, v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE)
                except OSError as exc:
                    log.debug("STREAMOFF at close failed: errno %s", exc.errno)
                self._streaming = False
            for m in self._maps:
                m.close()
            self._maps = []
            try:
                req = v4l2.v4l2_requestbuffers()
                req.type = v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE
                req.memory = v4l2.V4L2_MEMORY_MMAP
                v4l2.call(self.sys, fd, v4l2.VIDIOC_REQBUFS, req)  # count 0 frees the buffers
            except OSError as exc:
                log.debug("REQBUFS(0) at close failed: errno %s", exc.errno)
            try:
                self.sys.close(fd)
            except OSError as exc:
                log.debug("close failed: errno %s", exc.errno)
            self.fd = None

    # ------------------------------------------------------------------ controls

    def query_control(self, name: str) -> ControlInfo | None:
        """Range of a named control, or None when the camera does not have it."""
        cid = v4l2.CONTROL_IDS.get(name)
        if cid is None:
            raise ValueError(f"unknown control {name!r} (known: {', '.join(v4l2.CONTROL_IDS)})")
        q = v4l2.v4l2_queryctrl()
        q.id = cid
        try:
            q = self._ioctl(v4l2.VIDIOC_QUERYCTRL, q)
        except DeviceProtocolError:
            return None
        if q.flags & v4l2.V4L2_CTRL_FLAG_DISABLED:
            return None
        return ControlInfo(name, cid, int(q.type), int(q.minimum), int(q.maximum), int(q.step),
                           int(q.default_value))

    def controls(self) -> dict[str, ControlInfo]:
        """Every known control the camera has."""
        out: dict[str, ControlInfo] = {}
        for name in v4l2.CONTROL_IDS:
            info = self.query_control(name)
            if info is not None:
                out[name] = info
        return out

    def get_control(self, name: str) -> int:
        """Current value of a named control."""
        ctl = v4l2.v4l2_control()
        ctl.id = v4l2.CONTROL_IDS[name]
        return int(self._ioctl(v4l2.VIDIOC_G_CTRL, ctl).value)

    def set_control(self, name: str, value: int) -> None:
        """Set a named control after checking its range (exposure, brightness, white balance...).

        Raises:
            DeviceFaultError: the camera has no such control or the value is out of range.
        """
        info = self.query_control(name)
        if info is None:
            raise DeviceFaultError(f"camera has no control {name}", code="NO_CONTROL", device=self.path)
        if not info.minimum <= value <= info.maximum:
            raise DeviceFaultError(
                f"{name}={value} outside {info.minimum}..{info.maximum}", code="RANGE", device=self.path
            )
        ctl = v4l2.v4l2_control()
        ctl.id = info.cid
        ctl.value = value
        self._ioctl(v4l2.VIDIOC_S_CTRL, ctl)

    # ------------------------------------------------------------------ streaming

    def frames(
        self, stop: threading.Event | None = None, max_frames: int | None = None
    ) -> Generator[Frame, None, None]:
        """Stream frames (bytes copied out of the mmap buffer, which is re-queued at once).

        Streaming stops when the generator is closed, ``stop`` is set or ``max_frames`` were
        yielded. Raises DeviceTimeoutError when no frame arrives within ``timeout_s``.
        """
        self.open()
        if self._streaming:
            raise DeviceFaultError("camera is already streaming", code="BUSY", device=self.path)
        for i in range(len(self._maps)):
            self._ioctl(v4l2.VIDIOC_QBUF, self._new_buffer(i))
        self._stream(v4l2.VIDIOC_STREAMON)
        self._streaming = True
        count = 0
        try:
            while (stop is None or not stop.is_set()) and (max_frames is None or count < max_frames):
                frame = self._next_frame()
                if frame is None:
                    continue
                count += 1
                yield frame
        finally:
            if self.fd is not None and self._streaming:
                self._streaming = False
                try:
                    self._stream(v4l2.VIDIOC_STREAMOFF)
                except DeviceError as exc:
                    log.debug("STREAMOFF failed: %s", exc)

    def _stream(self, request: int) -> None:
        if self.fd is None:
            raise DeviceMissingError("camera is not open", device=self.path)
        name = v4l2.IOCTL_NAMES[request]
        try:
            v4l2.call_int(self.sys, self.fd, request, v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE)
        except OSError as exc:
            raise self._os_error(exc, name) from exc
        self.frame_log.record("tx", f"{name} ok")

    def _next_frame(self) -> Frame | None:
        fd = self.fd
        if fd is None:
            raise DeviceMissingError("camera is not open", device=self.path)
        try:
            ready = self.sys.wait_readable(fd, self.timeout_s)
        except OSError as exc:
            raise self._os_error(exc, "select") from exc
        if not ready:
            self.frame_log.record("rx", f"no frame in {self.timeout_s}s")
            raise DeviceTimeoutError(f"no frame within {self.timeout_s} s", device=self.path)
        try:
            buf = self._ioctl(v4l2.VIDIOC_DQBUF, self._new_buffer())
        except DeviceProtocolError as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and cause.errno == errno.EAGAIN:
                return None  # spurious wake-up
            raise
        index = int(buf.index)
        if index >= len(self._maps) or buf.bytesused > buf.length:
            raise DeviceProtocolError(
                f"DQBUF returned index {index}, {buf.bytesused}/{buf.length} bytes",
                response=(index, int(buf.bytesused)),
                device=self.path,
            )
        data = self._maps[index][: buf.bytesused]
        # Re-queue at once: the copy above is ours, the buffer goes back to the camera.
        self._ioctl(v4l2.VIDIOC_QBUF, self._new_buffer(index))
        self.frame_log.record("rx", f"frame seq={buf.sequence} {buf.bytesused} bytes")
        if buf.flags & v4l2.V4L2_BUF_FLAG_ERROR:
            return None  # the driver marks a corrupted frame; skip it, the next one comes
        stamp = buf.timestamp.tv_sec + buf.timestamp.tv_usec / 1e6
        return Frame(data, self.pixfmt, self.width, self.height, int(buf.sequence), stamp)

    def preview(self, stop: threading.Event | None = None, max_frames: int | None = None,
                size: tuple[int, int] = (640, 360)) -> Iterator[bytes]:
        """Live preview as JPEG frames: MJPEG passes through untouched, YUYV is encoded small."""
        for frame in self.frames(stop, max_frames):
            if frame.pixfmt == v4l2.V4L2_PIX_FMT_MJPEG:
                yield frame.data
            else:
                img = frame.to_image()
                img.thumbnail(size)
                out = io.BytesIO()
                img.save(out, "JPEG", quality=70)
                yield out.getvalue()

    def capture_best(self, frames: int = 15, keep: int = 8, stop: threading.Event | None = None) -> Capture:
        """Watch ``frames`` frames, keep at most ``keep``, return the sharpest.

        Raises:
            UserRetryError: every frame was too dark (lens covered) or too blurred.
            DeviceProtocolError: no frame could be decoded.
        """
        picker = BestFramePicker(keep=keep)
        for frame in self.frames(stop, max_frames=frames):
            picker.offer(frame)
        chosen = picker.best()
        if chosen is None and picker.offered == 0 and stop is not None and stop.is_set():
            raise UserRetryError(
                "capture cancelled before the first frame",
                hint_id="Pengambilan foto dibatalkan. Ulangi bila perlu.",
                hint_en="Photo capture cancelled. Repeat if needed.",
                device=self.path,
            )
        if chosen is None:
            raise DeviceProtocolError(
                f"none of {picker.offered} frames could be decoded", device=self.path
            )
        frame, score = chosen
        mean = float(reduced_grey(frame).mean())
        if mean < self.min_brightness:
            raise UserRetryError(
                f"frame too dark (mean {mean:.0f})",
                hint_id="Gambar gelap. Periksa tutup lensa dan lampu, lalu ulangi.",
                hint_en="The picture is dark. Check the lens cap and the light, then retry.",
                device=self.path,
            )
        if score < self.min_sharpness:
            raise UserRetryError(
                f"frames blurred (best sharpness {score:.1f} < {self.min_sharpness})",
                hint_id=HINT_LOOK_ID,
                hint_en=HINT_LOOK_EN,
                device=self.path,
            )
        return Capture(frame, score, picker.offered, picker.rejected)

