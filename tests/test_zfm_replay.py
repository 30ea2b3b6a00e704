"""Replay the recorded ZFM exchange (tests/fixtures/zfm/) through the real driver.

The replayed device answers only when the driver writes exactly the recorded bytes, so this
checks the driver's requests byte for byte and its handling of the recorded replies.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from drivers.emulators import protocol_emu
from drivers.errors import DeviceProtocolError
from drivers.fingerprint.zfm import ZfmOptions, ZfmScanner

FIXTURES = Path(__file__).parent / "fixtures" / "zfm"


def _recorder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("zfm_record", FIXTURES / "record.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ReplayDevice:
    """Answers with the recorded rx bytes once the host has written the recorded tx bytes."""

    def __init__(self, exchange: list[tuple[str, bytes]]) -> None:
        self.exchange = list(exchange)
        self.pending = b""
        self.mismatch: str | None = None

    @property
    def unplugged(self) -> bool:
        return False

    def receive(self, data: bytes) -> list[list[bytes]]:
        self.pending += data
        out: list[list[bytes]] = []
        while self.exchange and self.exchange[0][0] == "tx":
            want = self.exchange[0][1]
            if not want.startswith(self.pending[: len(want)]):
                self.mismatch = f"driver wrote {self.pending.hex()}, recording has {want.hex()}"
                return out
            if len(self.pending) < len(want):
                return out
            self.pending = self.pending[len(want) :]
            self.exchange.pop(0)
            while self.exchange and self.exchange[0][0] == "rx":
                out.append([self.exchange.pop(0)[1]])
        return out


def load_exchange() -> list[tuple[str, bytes]]:
    lines = (FIXTURES / "exchange.jsonl").read_text().splitlines()
    return [(e["dir"], bytes.fromhex(e["hex"])) for e in map(json.loads, lines)]


def run_replay(exchange: list[tuple[str, bytes]], name: str) -> tuple[dict[str, object], ReplayDevice]:
    device = ReplayDevice(exchange)
    protocol_emu.register_kind("zfm-replay", lambda options: device)
    protocol_emu.attach("zfm-replay", name, device)
    meta = json.loads((FIXTURES / "device.json").read_text())
    scanner = ZfmScanner(
        f"emu://zfm-replay?name={name}", ZfmOptions(reply_timeout=0.2, retries=0, password=meta["password"])
    )
    try:
        scanner.open()
        result = _recorder().session(scanner, lambda text: None)
    finally:
        scanner.close()
        protocol_emu.detach("zfm-replay", name)
    return result, device


def test_replay_reproduces_the_recorded_session() -> None:
    result, device = run_replay(load_exchange(), "replay-ok")
    assert device.mismatch is None
    assert device.exchange == [] and device.pending == b""
    assert result == json.loads((FIXTURES / "expected.json").read_text())


def test_fixture_starts_with_the_spec_handshake() -> None:
    # VfyPwd(0) exactly as the research note's worked example gives it.
    assert load_exchange()[0] == ("tx", bytes.fromhex("EF01FFFFFFFF0100071300000000001B"))


def test_corrupted_recording_is_a_protocol_error() -> None:
    exchange = load_exchange()
    # Flip one bit in the last byte (the checksum) of the TempleteNum reply after the handshake.
    direction, data = exchange[5]
    assert direction == "rx"
    exchange[5] = (direction, data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(DeviceProtocolError):
        run_replay(exchange, "replay-bad")
