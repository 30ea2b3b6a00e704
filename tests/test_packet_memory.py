"""Writing and reading a large packet streams: peak RSS grows by at most 8 MB (no timing here).

Each case runs in a fresh interpreter that resets its peak RSS (/proc/self/clear_refs 5) after a
warm-up, then reads VmHWM. A control case that keeps the packet in memory shows the method does
see growth, so the bound below cannot pass vacuously.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIZE_MB = 48

SCRIPT = r'''
import io, sys
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from agent.packet import PacketWriter, new_packet_id, verify_packet

mode, path, mb = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
PATTERN = bytes(range(256)) * 4096

class Source:
    """A seekable item produced on the fly."""
    def __init__(self, size): self.size, self.pos = size, 0
    def tell(self): return self.pos
    def seek(self, pos, whence=0): self.pos = pos; return pos
    def read(self, n=-1):
        n = min(self.size - self.pos, 256 * 1024 if n < 0 else n, 256 * 1024)
        out = PATTERN[self.pos % 4096:self.pos % 4096 + n]
        self.pos += len(out)
        return out

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])

station = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
ho = X25519PrivateKey.from_private_bytes(b"\x02" * 32)

def write(sink, size):
    w = PacketWriter(sink, station_id="st-1", packet_id=new_packet_id(),
                     station_signing_key=station, headoffice_encryption_key=ho.public_key())
    for i in range(4):
        w.add_item(f"item-{i}", Source(size // 4), kind="photo", format="raw")
    return w.finish(biodata={"nik": "6472010101900001"})

def read(fh):
    return verify_packet(fh, headoffice_private_key=ho,
                         station_public_keys={"st-1": station.public_key()})

if mode == "read":
    with open(path, "wb") as fh:
        write(fh, mb * 1024 * 1024)
    with open(path, "rb") as fh:  # warm-up read of the first part
        fh.read(1)
write(io.BytesIO(), 1024 * 1024)  # warm-up
Path("/proc/self/clear_refs").write_text("5")
before = status("VmRSS")
if mode == "write":
    write(open("/dev/null", "wb"), mb * 1024 * 1024)
elif mode == "control":
    keep = io.BytesIO()
    write(keep, mb * 1024 * 1024)
else:
    with open(path, "rb") as fh:
        header, manifest = read(fh)
    assert len(manifest["items"]) == 4
print(status("VmHWM") - before)
'''


def growth_kib(mode: str, tmp_path: Path) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(tmp_path / "p.rkm"),
                          str(SIZE_MB)], capture_output=True, text=True, cwd=ROOT, timeout=100)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


@pytest.fixture(scope="module")
def clear_refs_works() -> None:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("no /proc/self/clear_refs on this kernel")


@pytest.mark.usefixtures("clear_refs_works")
@pytest.mark.parametrize("mode", ["write", "read"])
def test_streaming_stays_under_8_mb(mode: str, tmp_path: Path) -> None:
    assert growth_kib(mode, tmp_path) <= 8 * 1024


@pytest.mark.usefixtures("clear_refs_works")
def test_control_keeping_the_packet_does_grow(tmp_path: Path) -> None:
    assert growth_kib("control", tmp_path) >= (SIZE_MB - 8) * 1024
