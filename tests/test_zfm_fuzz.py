"""The driver facing a module that answers arbitrary bytes: only DeviceError subclasses come out,
and every call returns (the worker-thread join catches a hang)."""

from __future__ import annotations

import itertools
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.emulators import protocol_emu
from drivers.emulators.zfm import ZfmEmulator
from drivers.errors import DeviceError
from drivers.fingerprint.zfm import ZfmOptions, ZfmScanner

OPTIONS = ZfmOptions(reply_timeout=0.02, retries=1, retry_delay=0.0, poll_interval=0.001)
_names = itertools.count()


class Babbler:
    """A good module until ``script`` is set; then each command gets the next scripted bytes."""

    def __init__(self) -> None:
        self.inner = ZfmEmulator("r503")
        self.script: list[bytes] | None = None

    @property
    def unplugged(self) -> bool:
        return False

    def receive(self, data: bytes) -> list[list[bytes]]:
        if self.script is None:
            return [list(r) for r in self.inner.receive(data)]
        return [[self.script.pop(0)]] if self.script else []


def _spec_ack(payload: bytes, pid: int = 0x07) -> bytes:
    n = len(payload) + 2
    total = (pid + n // 256 + n % 256 + sum(payload)) % 65536
    return b"\xef\x01\xff\xff\xff\xff" + bytes([pid, n // 256, n % 256]) + payload + bytes([total // 256, total % 256])


# Replies that look plausible (valid frames with odd contents) as well as raw noise.
REPLIES = st.one_of(
    st.binary(max_size=40),
    # Acknowledges with codes that matter (OK, no finger, no match, echo) and any data length.
    st.tuples(st.sampled_from([0x00, 0x02, 0x08, 0x09, 0x55]) | st.integers(0, 255), st.binary(max_size=40)).map(
        lambda t: _spec_ack(bytes([t[0]]) + t[1])
    ),
    st.binary(min_size=1, max_size=128).map(lambda b: _spec_ack(b, 0x02)),
    st.binary(min_size=1, max_size=128).map(lambda b: _spec_ack(b, 0x08)),
)
CALLS = st.sampled_from(["template_count", "template_slots", "upload_image", "upload_template", "search", "match", "health", "wait_finger"])


@settings(max_examples=60)
@given(calls=st.lists(CALLS, min_size=1, max_size=4), replies=st.lists(REPLIES, max_size=12))
def test_arbitrary_replies_raise_only_device_errors(calls: list[str], replies: list[bytes]) -> None:
    device = Babbler()
    name = f"fuzz{next(_names)}"
    protocol_emu.attach("zfm", name, device)
    scanner = ZfmScanner(f"emu://zfm?name={name}", OPTIONS)
    try:
        scanner.open()
        device.script = list(replies)
        for call in calls:
            outcome: dict[str, BaseException] = {}

            def run(call: str = call, outcome: dict[str, BaseException] = outcome) -> None:
                try:
                    fn = getattr(scanner, call)
                    fn(timeout=0.01) if call == "wait_finger" else fn()
                except DeviceError:
                    pass
                except BaseException as exc:  # anything else is a bug, handed to the test thread
                    outcome["error"] = exc

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            worker.join(OPTIONS.call_bound * 4 + OPTIONS.stream_bound(OPTIONS.max_image_bytes) + 5)
            assert not worker.is_alive(), f"{call} hung"
            assert "error" not in outcome, repr(outcome.get("error"))
    finally:
        scanner.close()
        protocol_emu.detach("zfm", name)
