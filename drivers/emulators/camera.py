"""An emulated UVC camera: synthetic portraits behind a fake V4L2 "hardware".

Evidence: emulator only. :class:`FakeUvcCamera` implements the V4L2 layer's ``Syscalls`` seam
in process: it answers the same ioctls a ``uvcvideo`` device answers (QUERYCAP, ENUM_FMT,
ENUM_FRAMESIZES, S_FMT, REQBUFS, QUERYBUF, QBUF, DQBUF, STREAMON/OFF, QUERYCTRL, G/S_CTRL),
hands out mmap'able buffers and paces frames at the configured rate, so the real camera
driver (``drivers.camera.driver.V4l2Camera``) runs unchanged against it.

Frames are drawn with Pillow: a face-like portrait (head, hair, eyes, mouth, shoulders) on a
plain background, with knobs for blur, exposure, background colour and an off-centre or
wrongly sized subject; faults: the device vanishes (ENODEV, as on unplug) or stalls (no
frames, so the driver's bounded wait expires). No real person's image is used.
"""

from __future__ import annotations

import errno
import io
import mmap
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

from PIL import Image

from drivers.camera import v4l2
from drivers.emulators import assets

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 35),
    "blue": (30, 80, 190),
    "white": (235, 235, 235),
}


@dataclass(frozen=True)
class Portrait:
    """Knobs of one synthetic portrait."""

    background: tuple[int, int, int] = BACKGROUNDS["blue"]
    blur: float = 0.0  # Gaussian radius in pixels at 1080p height (scaled with the image)
    exposure: float = 1.0  # multiplies every pixel (0.3 = very dark, 2.0 = blown out)
    offset_x: float = 0.0  # subject centre shift as a share of the width (-0.5..0.5)
    scale: float = 1.0  # subject size relative to a well-framed portrait
    noise: float = 6.0  # sensor noise (grey levels std), gives texture to measure focus on
    background_noise: float = 2.0
    seed: int = 1


def render_portrait(width: int, height: int, p: Portrait = Portrait()) -> Image.Image:
    """Draw one synthetic portrait as an RGB image."""
    # Only the in-process synthesis draws; in asset mode (the daemon in bench enroll) it never runs,
    # so a daemon replaying assets loads neither these nor numpy.
    import numpy as np
    from PIL import ImageDraw, ImageFilter

    img = Image.new("RGB", (width, height), p.background)
    d = ImageDraw.Draw(img)
    u = height / 1080 * p.scale  # drawing unit: a 1080-line portrait at scale 1
    cx = width / 2 + p.offset_x * width
    cy = height * 0.46 + (1 - p.scale) * height * 0.1
    # shoulders and shirt
    d.polygon(
        [(cx - 420 * u, height + 10), (cx - 300 * u, cy + 330 * u), (cx + 300 * u, cy + 330 * u),
         (cx + 420 * u, height + 10)],
        fill=(40, 40, 48),
    )
    d.rectangle([cx - 70 * u, cy + 200 * u, cx + 70 * u, cy + 340 * u], fill=(196, 150, 118))
    # hair behind the head, then the face
    d.ellipse([cx - 215 * u, cy - 330 * u, cx + 215 * u, cy + 150 * u], fill=(25, 20, 18))
    d.ellipse([cx - 180 * u, cy - 250 * u, cx + 180 * u, cy + 260 * u], fill=(204, 160, 126))
    for sx in (-1, 1):
        ex = cx + sx * 70 * u
        d.ellipse([ex - 38 * u, cy - 40 * u, ex + 38 * u, cy - 10 * u], fill=(222, 220, 212))
        d.ellipse([ex - 15 * u, cy - 40 * u, ex + 15 * u, cy - 10 * u], fill=(50, 35, 30))
        d.line([ex - 45 * u, cy - 75 * u, ex + 45 * u, cy - 80 * u], fill=(30, 22, 20),
               width=max(1, int(12 * u)))
    d.polygon([(cx, cy - 10 * u), (cx - 25 * u, cy + 70 * u), (cx + 25 * u, cy + 70 * u)],
              fill=(185, 138, 108))
    d.chord([cx - 70 * u, cy + 90 * u, cx + 70 * u, cy + 160 * u], 0, 180, fill=(150, 70, 70))
    arr = np.asarray(img, dtype=np.float32)
    rng = np.random.default_rng(p.seed)
    if p.noise > 0 or p.background_noise > 0:
        # Noise only on the subject at full strength: a real background wall is smoother.
        bg = np.array(p.background, dtype=np.float32)
        subject = np.abs(arr - bg).sum(axis=2, keepdims=True) > 30
        sigma = np.where(subject, p.noise, p.background_noise).astype(np.float32)
        arr = arr + rng.standard_normal(arr.shape[:2] + (1,), dtype=np.float32) * sigma
    arr = arr * p.exposure
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if p.blur > 0:
        out = out.filter(ImageFilter.GaussianBlur(p.blur * height / 1080))
    return out


def encode_jpeg(img: Image.Image, quality: int = 85) -> bytes:
    """Encode as a baseline JPEG (what a UVC camera's MJPEG stream carries per frame)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def encode_yuyv(img: Image.Image) -> bytes:
    """Pack an RGB image as YUYV 4:2:2 (Y0 U Y1 V per pixel pair)."""
    import numpy as np  # synthesis only (see render_portrait)

    ycc = np.asarray(img.convert("YCbCr"), dtype=np.uint8)
    h, w, _ = ycc.shape
    out = np.empty((h, w * 2), dtype=np.uint8)
    out[:, 0::2] = ycc[:, :, 0]
    out[:, 1::4] = ycc[:, 0::2, 1]
    out[:, 3::4] = ycc[:, 0::2, 2]
    return out.tobytes()


# A frame source turns (width, height, fourcc, frame number, controls) into frame bytes.
FrameSource = Callable[[int, int, int, int, dict[int, int]], bytes]


class PortraitSource:
    """Frames of a synthetic portrait; a blur sequence makes some frames sharper than others.

    Each distinct (size, format, knobs) frame is rendered once and cached, so a 30 frames/s
    emulated stream costs a dictionary look-up per frame, not a Pillow render.
    """

    def __init__(self, portrait: Portrait = Portrait(), blur_sequence: Sequence[float] = (0.0,)):
        self.portrait = portrait
        self.blur_sequence = tuple(blur_sequence)
        self._cache: dict[tuple[int, int, int, float, float, Portrait], bytes] = {}
        self._lock = threading.Lock()

    def __call__(self, width: int, height: int, pixfmt: int, n: int, controls: dict[int, int]) -> bytes:
        """The bytes of frame ``n``."""
        blur = self.blur_sequence[n % len(self.blur_sequence)]
        # Brightness control 0..255 with 128 neutral maps to exposure, as a webcam's would.
        gain = controls.get(v4l2.V4L2_CID_BRIGHTNESS, 128) / 128
        p = replace(self.portrait, blur=self.portrait.blur + blur, exposure=self.portrait.exposure * gain)
        if assets.asset_dir() is not None:
            # Asset mode: the frame is read from the file each time, as a device DMA-s a new frame
            # into the buffer; no copy is kept here (a YUYV 1080p frame is 4 MB).
            params = {"width": width, "height": height, "pixfmt": pixfmt, "portrait": asdict(p)}
            try:
                return assets.replay("portrait", params)[0]
            except assets.AssetError as exc:
                raise OSError(errno.EIO, f"emulated camera: {exc}") from exc
        key = (width, height, pixfmt, blur, gain, self.portrait)
        with self._lock:
            data = self._cache.get(key)
        if data is None:
            img = render_portrait(width, height, p)
            data = encode_jpeg(img) if pixfmt == v4l2.V4L2_PIX_FMT_MJPEG else encode_yuyv(img)
            with self._lock:
                if len(self._cache) > 64:  # bound: knobs changed many times
                    self._cache.clear()
                self._cache[key] = data
        return data


@dataclass
class _Control:
    name: str
    type: int
    minimum: int
    maximum: int
    step: int
    default: int
    value: int


class _Mapping:
    """What mmap returns: a read view on one fake driver buffer."""

    def __init__(self, buf: mmap.mmap, length: int) -> None:
        self._buf = buf
        self._length = length
        self.closed = False

    def __getitem__(self, index: slice) -> bytes:
        if self.closed:
            raise ValueError("mmap closed")
        return bytes(memoryview(self._buf)[: self._length][index])

    def close(self) -> None:
        """munmap: later reads fail, as on a real unmapped buffer."""
        self.closed = True


class FakeUvcCamera:
    """In-process V4L2 hardware with the behaviour of a uvcvideo webcam (implements Syscalls)."""

    SIZES: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720), (1920, 1080))

    def __init__(
        self,
        source: FrameSource | None = None,
        *,
        fps: float = 30.0,
        formats: Sequence[int] = (v4l2.V4L2_PIX_FMT_MJPEG, v4l2.V4L2_PIX_FMT_YUYV),
        sizes: Sequence[tuple[int, int]] = SIZES,
        card: str = "Rekam Emulated UVC Camera",
        bus_info: str = "emulator:camera-0",
        max_buffers: int = 4,
    ) -> None:
        self.source: FrameSource = source or PortraitSource()
        self.fps = fps
        self.max_fps = fps  # VIDIOC_S_PARM grants any rate up to this one
        self.formats = tuple(formats)
        self.sizes = tuple(sizes)
        self.card = card
        self.bus_info = bus_info
        self.max_buffers = max_buffers
        self.paths = {"/dev/video0"}
        self.controls: dict[int, _Control] = {
            v4l2.V4L2_CID_BRIGHTNESS: _Control("Brightness", 1, 0, 255, 1, 128, 128),
            v4l2.V4L2_CID_CONTRAST: _Control("Contrast", 1, 0, 255, 1, 128, 128),
            v4l2.V4L2_CID_AUTO_WHITE_BALANCE: _Control("White Balance, Automatic", 2, 0, 1, 1, 1, 1),
            v4l2.V4L2_CID_WHITE_BALANCE_TEMPERATURE: _Control(
                "White Balance Temperature", 1, 2800, 6500, 10, 4600, 4600),
            v4l2.V4L2_CID_EXPOSURE_AUTO: _Control("Auto Exposure", 3, 0, 3, 1, 3, 3),
            v4l2.V4L2_CID_EXPOSURE_ABSOLUTE: _Control("Exposure Time, Absolute", 1, 3, 2047, 1, 250, 250),
        }
        self.width, self.height = self.sizes[-1]
        self.pixfmt = self.formats[0]
        self.vanished = False
        self.stalled = False
        self.busy = False  # another process holds the device (EBUSY at S_FMT/REQBUFS)
        self.open_fds: set[int] = set()
        self.ioctl_log: deque[str] = deque(maxlen=256)
        self._next_fd = 100
        self._buffers: list[mmap.mmap] = []
        self._buf_len = 0
        self._queued: deque[int] = deque()
        self._done: deque[tuple[int, int, float, int]] = deque()
        self._mappings: list[_Mapping] = []
        self._streaming = False
        self._sequence = 0
        self._next_due = 0.0
        self._cond = threading.Condition()
        self.frames_produced = 0

    # ------------------------------------------------------------------ faults

    def vanish(self) -> None:
        """Unplug: every later call fails with ENODEV, a waiting select wakes up."""
        with self._cond:
            self.vanished = True
            self._cond.notify_all()

    def replug(self) -> None:
        """Plug back in after :meth:`vanish`: the node opens again (a fresh device)."""
        with self._cond:
            self.vanished = False
            self.stalled = False
            self._cond.notify_all()

    def stall(self, stalled: bool = True) -> None:
        """Stop (or resume) delivering frames while streaming."""
        with self._cond:
            self.stalled = stalled
            self._cond.notify_all()

    @property
    def mapped(self) -> int:
        """Buffers still mmap'ed (a clean stop leaves 0)."""
        return sum(not m.closed for m in self._mappings)

    # ------------------------------------------------------------------ Syscalls

    def open(self, path: str) -> int:
        """open(2)."""
        if self.vanished or path not in self.paths:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        with self._cond:
            fd = self._next_fd
            self._next_fd += 1
            self.open_fds.add(fd)
        return fd

    def close(self, fd: int) -> None:
        """close(2): like the kernel, closing the streaming fd stops streaming and frees buffers."""
        with self._cond:
            if fd not in self.open_fds:
                raise OSError(errno.EBADF, "Bad file descriptor")
            self.open_fds.discard(fd)
            self._streaming = False
            self._buffers = []
            self._queued.clear()
            self._done.clear()

    def mmap(self, fd: int, length: int, offset: int) -> _Mapping:
        """mmap(2) of one buffer at the offset QUERYBUF reported."""
        self._check_fd(fd)
        index, rem = divmod(offset, 1 << 20)
        if rem or index >= len(self._buffers) or length > self._buf_len:
            raise OSError(errno.EINVAL, "Invalid argument")
        m = _Mapping(self._buffers[index], length)
        self._mappings.append(m)
        return m

    def wait_readable(self, fd: int, timeout_s: float) -> bool:
        """select(2): a frame is ready (or an error is pending) within the timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self.vanished or fd not in self.open_fds:
                    return True  # the kernel reports POLLERR; the next ioctl fails
                if self._done or not self._streaming:
                    return True
                now = time.monotonic()
                if not self.stalled and self._queued and now >= self._next_due:
                    self._produce(now)
                    return True
                wake = deadline if self.stalled or not self._queued else min(deadline, self._next_due)
                if now >= deadline:
                    return False
                self._cond.wait(max(0.0, wake - now))

    def ioctl(self, fd: int, request: int, arg: bytearray) -> None:
        """ioctl(2) for the V4L2 requests a UVC webcam answers."""
        name = v4l2.IOCTL_NAMES.get(request, hex(request))
        self.ioctl_log.append(name)
        self._check_fd(fd)
        handler = getattr(self, "_" + name.lower(), None)
        if handler is None:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        with self._cond:
            handler(arg)

    # ------------------------------------------------------------------ ioctl handlers

    def _check_fd(self, fd: int) -> None:
        if fd not in self.open_fds:
            raise OSError(errno.EBADF, "Bad file descriptor")
        if self.vanished:
            raise OSError(errno.ENODEV, "No such device")

    def _vidioc_querycap(self, arg: bytearray) -> None:
        cap = v4l2.v4l2_capability()
        cap.driver = b"uvcvideo"
        cap.card = self.card.encode()[:31]
        cap.bus_info = self.bus_info.encode()[:31]
        cap.version = (6 << 16) | (1 << 8) | 0
        caps = v4l2.V4L2_CAP_VIDEO_CAPTURE | v4l2.V4L2_CAP_STREAMING
        cap.capabilities = caps | v4l2.V4L2_CAP_DEVICE_CAPS
        cap.device_caps = caps
        arg[:] = bytes(cap)

    def _vidioc_enum_fmt(self, arg: bytearray) -> None:
        desc = v4l2.v4l2_fmtdesc.from_buffer(arg)
        if desc.type != v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE or desc.index >= len(self.formats):
            raise OSError(errno.EINVAL, "Invalid argument")
        pf = self.formats[desc.index]
        desc.pixelformat = pf
        desc.flags = 1 if pf == v4l2.V4L2_PIX_FMT_MJPEG else 0
        desc.description = b"Motion-JPEG" if pf == v4l2.V4L2_PIX_FMT_MJPEG else b"YUYV 4:2:2"

    def _vidioc_enum_framesizes(self, arg: bytearray) -> None:
        fs = v4l2.v4l2_frmsizeenum.from_buffer(arg)
        if fs.pixel_format not in self.formats or fs.index >= len(self.sizes):
            raise OSError(errno.EINVAL, "Invalid argument")
        fs.type = v4l2.V4L2_FRMSIZE_TYPE_DISCRETE
        fs.discrete.width, fs.discrete.height = self.sizes[fs.index]

    def _fill_pix(self, pix: v4l2.v4l2_pix_format) -> None:
        pix.width, pix.height, pix.pixelformat = self.width, self.height, self.pixfmt
        pix.field = v4l2.V4L2_FIELD_NONE
        if self.pixfmt == v4l2.V4L2_PIX_FMT_YUYV:
            pix.bytesperline = self.width * 2
            pix.sizeimage = self.width * self.height * 2
        else:
            pix.bytesperline = 0
            pix.sizeimage = self.width * self.height  # uvcvideo's worst-case compressed size
        pix.colorspace = 8  # V4L2_COLORSPACE_SRGB

    def _vidioc_g_fmt(self, arg: bytearray) -> None:
        fmt = v4l2.v4l2_format.from_buffer(arg)
        if fmt.type != v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE:
            raise OSError(errno.EINVAL, "Invalid argument")
        self._fill_pix(fmt.fmt.pix)

    def _vidioc_s_fmt(self, arg: bytearray) -> None:
        fmt = v4l2.v4l2_format.from_buffer(arg)
        if fmt.type != v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE:
            raise OSError(errno.EINVAL, "Invalid argument")
        if self._buffers or self.busy:
            raise OSError(errno.EBUSY, "Device or resource busy")
        pix = fmt.fmt.pix
        # Like uvcvideo: an unknown format falls back to the default, the size snaps to the
        # nearest supported one; the caller must read back what it got.
        self.pixfmt = pix.pixelformat if pix.pixelformat in self.formats else self.formats[0]
        want = pix.width * pix.height
        self.width, self.height = min(self.sizes, key=lambda s: abs(s[0] * s[1] - want))
        self._fill_pix(pix)

    def _vidioc_reqbufs(self, arg: bytearray) -> None:
        req = v4l2.v4l2_requestbuffers.from_buffer(arg)
        if req.type != v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE or req.memory != v4l2.V4L2_MEMORY_MMAP:
            raise OSError(errno.EINVAL, "Invalid argument")
        if self._streaming or self.busy or (req.count and self.mapped):
            raise OSError(errno.EBUSY, "Device or resource busy")
        count = min(req.count, self.max_buffers)
        pix = v4l2.v4l2_pix_format()
        self._fill_pix(pix)
        self._buf_len = pix.sizeimage
        # Anonymous mmaps, not bytearrays: a bytearray is zero-filled, so all of its pages are
        # resident at once (4 x 2 MB at 1080p MJPEG), while the kernel's buffers of a real device
        # only count in the daemon's RSS for the pages a frame actually fills.
        self._buffers = [mmap.mmap(-1, self._buf_len) for _ in range(count)]
        self._queued.clear()
        self._done.clear()
        req.count = count

    def _buffer_index(self, buf: v4l2.v4l2_buffer) -> int:
        if buf.type != v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE or buf.memory != v4l2.V4L2_MEMORY_MMAP:
            raise OSError(errno.EINVAL, "Invalid argument")
        if buf.index >= len(self._buffers):
            raise OSError(errno.EINVAL, "Invalid argument")
        return int(buf.index)

    def _vidioc_querybuf(self, arg: bytearray) -> None:
        buf = v4l2.v4l2_buffer.from_buffer(arg)
        i = self._buffer_index(buf)
        buf.length = self._buf_len
        buf.m.offset = i << 20
        buf.flags = 0

    def _vidioc_qbuf(self, arg: bytearray) -> None:
        buf = v4l2.v4l2_buffer.from_buffer(arg)
        i = self._buffer_index(buf)
        if i in self._queued or any(d[0] == i for d in self._done):
            raise OSError(errno.EINVAL, "Invalid argument")
        self._queued.append(i)
        self._cond.notify_all()

    def _vidioc_dqbuf(self, arg: bytearray) -> None:
        buf = v4l2.v4l2_buffer.from_buffer(arg)
        if buf.type != v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE or buf.memory != v4l2.V4L2_MEMORY_MMAP:
            raise OSError(errno.EINVAL, "Invalid argument")
        if not self._streaming:
            raise OSError(errno.EINVAL, "Invalid argument")
        if not self._done:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        i, used, stamp, seq = self._done.popleft()
        buf.index = i
        buf.bytesused = used
        buf.length = self._buf_len
        buf.m.offset = i << 20
        buf.flags = 0
        buf.field = v4l2.V4L2_FIELD_NONE
        buf.sequence = seq
        buf.timestamp.tv_sec = int(stamp)
        buf.timestamp.tv_usec = int((stamp % 1) * 1_000_000)

    def _vidioc_streamon(self, arg: bytearray) -> None:
        if int.from_bytes(arg[:4], "little") != v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE or not self._buffers:
            raise OSError(errno.EINVAL, "Invalid argument")
        self._streaming = True
        self._next_due = time.monotonic()

    def _vidioc_streamoff(self, arg: bytearray) -> None:
        if int.from_bytes(arg[:4], "little") != v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE:
            raise OSError(errno.EINVAL, "Invalid argument")
        # STREAMOFF dequeues everything, as the kernel does.
        self._streaming = False
        self._queued.clear()
        self._done.clear()

    def _vidioc_g_parm(self, arg: bytearray) -> None:
        parm = v4l2.v4l2_streamparm.from_buffer(arg)
        if parm.type != v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE:
            raise OSError(errno.EINVAL, "Invalid argument")
        cap = parm.parm.capture
        cap.capability = v4l2.V4L2_CAP_TIMEPERFRAME
        cap.capturemode = cap.extendedmode = cap.readbuffers = 0
        cap.timeperframe.numerator, cap.timeperframe.denominator = v4l2.interval_for_fps(self.fps)

    def _vidioc_s_parm(self, arg: bytearray) -> None:
        parm = v4l2.v4l2_streamparm.from_buffer(arg)
        if parm.type != v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE:
            raise OSError(errno.EINVAL, "Invalid argument")
        if self._streaming or self.busy:
            raise OSError(errno.EBUSY, "Device or resource busy")  # as uvcvideo while streaming
        tpf = parm.parm.capture.timeperframe
        # Like uvcvideo: a zero interval asks for the nominal (fastest) rate, one the camera
        # cannot do is clamped into 1 fps..nominal; the granted interval is written back.
        wanted = tpf.denominator / tpf.numerator if tpf.numerator and tpf.denominator else self.max_fps
        self.fps = min(max(wanted, 1.0), self.max_fps)
        self._vidioc_g_parm(arg)

    def _vidioc_queryctrl(self, arg: bytearray) -> None:
        q = v4l2.v4l2_queryctrl.from_buffer(arg)
        c = self.controls.get(q.id)
        if c is None:
            raise OSError(errno.EINVAL, "Invalid argument")
        q.type, q.name, q.minimum, q.maximum = c.type, c.name.encode(), c.minimum, c.maximum
        q.step, q.default_value, q.flags = c.step, c.default, 0

    def _vidioc_g_ctrl(self, arg: bytearray) -> None:
        ctl = v4l2.v4l2_control.from_buffer(arg)
        c = self.controls.get(ctl.id)
        if c is None:
            raise OSError(errno.EINVAL, "Invalid argument")
        ctl.value = c.value

    def _vidioc_s_ctrl(self, arg: bytearray) -> None:
        ctl = v4l2.v4l2_control.from_buffer(arg)
        c = self.controls.get(ctl.id)
        if c is None:
            raise OSError(errno.EINVAL, "Invalid argument")
        if not c.minimum <= ctl.value <= c.maximum:
            raise OSError(errno.ERANGE, "Numerical result out of range")
        c.value = ctl.value

    # ------------------------------------------------------------------ frame production

    def _produce(self, now: float) -> None:
        i = self._queued.popleft()
        values = {cid: c.value for cid, c in self.controls.items()}
        data = self.source(self.width, self.height, self.pixfmt, self._sequence, values)
        used = min(len(data), self._buf_len)
        self._buffers[i][:used] = data[:used]
        self._done.append((i, used, now, self._sequence))
        self._sequence += 1
        self.frames_produced += 1
        # Keep the nominal rate without drifting; after a long pause, do not burst.
        self._next_due = max(self._next_due + 1 / self.fps, now - 1 / self.fps)


_HARDWARE: dict[str, FakeUvcCamera] = {}
_HARDWARE_LOCK = threading.Lock()


def hardware(name: str, **kwargs: object) -> FakeUvcCamera:
    """The emulated camera called ``name``, created on first use (kwargs apply then only)."""
    with _HARDWARE_LOCK:
        if name not in _HARDWARE:
            _HARDWARE[name] = FakeUvcCamera(**kwargs)  # type: ignore[arg-type]
        return _HARDWARE[name]


def forget(name: str) -> None:
    """Remove an emulated camera (tests call this to start fresh)."""
    with _HARDWARE_LOCK:
        _HARDWARE.pop(name, None)
