"""Benchmark of the ZFM fingerprint codec: decode speed against the line rate, UpImage memory.

Run: /work/venv/bin/python bench/bench_zfm.py

Prints Markdown table rows: figure, plain baseline measured in the same run, ratio, target.
Nothing here asserts a timing; the numbers go into docs/performance.md.
"""

from __future__ import annotations

import functools
import gc
import time
import tracemalloc
from collections.abc import Callable

from drivers.emulators import install, protocol_emu
from drivers.emulators.zfm import ZfmEmulator, finger_image
from drivers.fingerprint.zfm import ZfmOptions, ZfmScanner
from firmware_protocols.zfm import (
    HEADER_LEN,
    DataPacket,
    DataStreamReceiver,
    ImageAssembler,
    PacketDecoder,
    encode_data_stream,
    encode_reply,
)

LINE_RATE = 115200 // 10  # bytes a second at 115200 baud, 8N1 = 10 bits a byte
WIDTH, HEIGHT, PACKET = 256, 288, 128
IMAGE = finger_image("bench-finger", "good", WIDTH, HEIGHT)
UPLOAD = encode_reply("UpImage", 0) + b"".join(encode_data_stream(IMAGE, PACKET))


def best_of(fn: Callable[[], int], repeat: int = 5,
            clock: Callable[[], float] = time.perf_counter) -> tuple[float, int]:
    """Fastest time of ``fn`` over ``repeat`` runs on ``clock``, and the bytes it processed."""
    best = float("inf")
    nbytes = 0
    for _ in range(repeat):
        gc.collect()
        start = clock()
        nbytes = fn()
        best = min(best, clock() - start)
    return best, nbytes


def null_feed_path(stream: bytes, slice_size: int) -> int:
    """The floor of any decoder fed this way: the same loop, slices and calls, decoding nothing."""

    class Nothing:
        def feed(self, data: bytes) -> list[object]:
            return []

    decoder = Nothing()
    for i in range(0, len(stream), slice_size):
        for _event in decoder.feed(stream[i : i + slice_size]):
            pass
    return len(stream)


def host_path(stream: bytes, slice_size: int) -> int:
    """What the driver does with an upload: decode, check the stream, expand the pixels."""
    decoder = PacketDecoder()
    receiver: DataStreamReceiver | None = None
    image: ImageAssembler | None = None
    images = 0
    for i in range(0, len(stream), slice_size):
        for event in decoder.feed(stream[i : i + slice_size]):
            if not isinstance(event, DataPacket):
                continue
            if receiver is None or image is None:
                receiver = DataStreamReceiver(PACKET, WIDTH * HEIGHT // 2)
                image = ImageAssembler(expected_pixels=WIDTH * HEIGHT)
            image.add(receiver.add(event).data)
            if receiver.done:
                if len(image.finish()) != WIDTH * HEIGHT:
                    raise RuntimeError("short image")
                images += 1
                receiver = image = None  # the caller would now own the image
    if images != len(stream) // len(UPLOAD):
        raise RuntimeError(f"decoded {images} images")
    return len(stream)


def plain_split(stream: bytes, slice_size: int) -> int:
    """Plain baseline: cut frames by their length field, no validation, no checksum, no types."""
    buf = bytearray()
    out: list[bytes] = []
    for i in range(0, len(stream), slice_size):
        buf += stream[i : i + slice_size]
        while len(buf) >= HEADER_LEN:
            total = HEADER_LEN + ((buf[7] << 8) | buf[8])
            if len(buf) < total:
                break
            out.append(bytes(buf[HEADER_LEN : total - 2]))
            del buf[:total]
    return len(stream)


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes allocated by ``fn`` (tracemalloc), beyond what existed before."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def driver_upload() -> None:
    """A full UpImage through the driver and the emu:// port (the emulator streams lazily)."""
    install()
    emu = ZfmEmulator("r307")
    emu.place_finger("bench-finger")
    protocol_emu.attach("zfm", "bench", emu)
    scanner = ZfmScanner("emu://zfm?name=bench", ZfmOptions())
    scanner.open()
    scanner.wait_finger(timeout=1.0)
    try:
        measured = peak_memory(scanner.upload_image)
    finally:
        scanner.close()
        protocol_emu.detach("zfm", "bench")
    DRIVER_PEAK.append(measured)


DRIVER_PEAK: list[int] = []


def main() -> None:
    """Measure and print the rows."""
    stream = UPLOAD * 20  # twenty uploads back to back, about 0.8 MB
    rows: list[tuple[str, str, str, str, str]] = []
    for slice_size in (4096, 64):
        t, n = best_of(functools.partial(host_path, stream, slice_size))
        tb, _ = best_of(functools.partial(plain_split, stream, slice_size))
        rate, base_rate = n / t, n / tb
        rows.append(
            (
                f"decode + check + expand UpImage, {slice_size}-byte reads",
                f"{rate / 1e6:.2f} MB/s",
                f"line rate 115200 baud = {LINE_RATE} B/s",
                f"{rate / LINE_RATE:,.0f}x",
                ">= 100x",
            )
        )
        rows.append(
            (
                f"same, against a plain length-split loop (no checks), {slice_size}-byte reads",
                f"{rate / 1e6:.2f} MB/s",
                f"{base_rate / 1e6:.2f} MB/s",
                f"{rate / base_rate:.2f}x",
                "(context)",
            )
        )
    t, n = best_of(lambda: host_path(UPLOAD, 1), repeat=3)
    rows.append(
        (
            "same, one byte per feed (worst case)",
            f"{n / t / 1e3:.0f} kB/s",
            f"line rate {LINE_RATE} B/s",
            f"{n / t / LINE_RATE:,.0f}x",
            ">= 100x",
        )
    )
    # On a loaded machine wall time includes waiting for a core; CPU time is the codec's cost.
    tc, n = best_of(lambda: host_path(UPLOAD, 1), repeat=3, clock=time.process_time)
    rows.append(
        (
            "same, one byte per feed, CPU time",
            f"{n / tc / 1e3:.0f} kB/s",
            f"line rate {LINE_RATE} B/s",
            f"{n / tc / LINE_RATE:,.0f}x",
            "(context)",
        )
    )
    tf, _ = best_of(lambda: null_feed_path(UPLOAD, 1), repeat=3, clock=time.process_time)
    rows.append(
        (
            "one byte per feed: share of the CPU time that is the loop itself (slice + call)",
            f"{tf / len(UPLOAD) * 1e9:.0f} ns of {tc / len(UPLOAD) * 1e9:.0f} ns a byte",
            "the same loop calling a feed() that does nothing",
            f"{tf / tc:.0%}",
            "(context)",
        )
    )
    image_bytes = WIDTH * HEIGHT  # the 8-bit image the caller gets
    packet_bytes = len(UPLOAD) // (len(IMAGE) // PACKET)  # one framed data packet on the wire
    budget = image_bytes + packet_bytes
    for slice_size, note in ((packet_bytes, "one packet per read"), (4096, "4096-byte reads")):
        codec_peak = peak_memory(functools.partial(host_path, UPLOAD, slice_size))
        rows.append(
            (
                f"UpImage peak memory, codec path ({note})",
                f"{codec_peak:,} B",
                f"one image {image_bytes:,} B + one packet {packet_bytes} B = {budget:,} B",
                f"{codec_peak / budget:.2f}x",
                "<= 1x (+ the read slice)",
            )
        )
    driver_upload()
    rows.append(
        (
            "UpImage peak memory, driver over emu:// (emulator included)",
            f"{DRIVER_PEAK[0]:,} B",
            f"{budget:,} B",
            f"{DRIVER_PEAK[0] / budget:.2f}x",
            "<= 1x (+ interpreter objects)",
        )
    )
    print("| figure | measured | baseline (same run) | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
