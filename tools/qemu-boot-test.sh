#!/usr/bin/env bash
# Boot test of the installed service: a Debian bookworm guest under qemu, with its own systemd,
# installs Rekam with the documented one-step command (systemd/install.sh) and checks that
# rekam.service, with every device emulated, becomes active, recovers from kill -9 through
# systemd, keeps its watchdog fed and stops cleanly. Output and timings: docs/operations.md,
# "Boot test under qemu". Not part of the default CI (it takes too long; see there).
#
#   sudo bash tools/qemu-boot-test.sh [--cache DIR] [--accel tcg|kvm] [--keep]
#
# Needs (Debian): debootstrap qemu-system-x86 qemu-utils e2fsprogs git, python3 with pip (the
# same minor version as the guest's, 3.11, to build the wheelhouse), network to the Debian mirror
# and PyPI on the host. The guest itself has no network: pip in the guest installs from a
# wheelhouse built here. Exit status 0 only when every check in the guest passed.
#
#   --cache DIR   keep the debootstrapped base system and the wheelhouse in DIR and reuse them
#   --accel A     tcg (software emulation, the default) or kvm
#   --keep        keep the work directory (disk image, serial log) for inspection
#   --mirror URL  Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail

CACHE=""
ACCEL=tcg
KEEP=0
MIRROR=http://deb.debian.org/debian
SUITE=bookworm
BOOT_TIMEOUT=${REKAM_QEMU_TIMEOUT:-2400}   # seconds for the whole guest run (TCG is slow)
while [ $# -gt 0 ]; do
    case "$1" in
        --cache) CACHE=$2; shift 2 ;;
        --accel) ACCEL=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --mirror) MIRROR=$2; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "qemu-boot-test: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
T_START=$(date +%s)
say() { echo "[qemu-boot-test] $*"; }
die() { echo "[qemu-boot-test] FAIL $*" >&2; exit 1; }
step_time() { echo $(( $(date +%s) - $1 )); }

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and chroot need it)"
for cmd in debootstrap qemu-system-x86_64 mkfs.ext4 git chroot timeout; do
    command -v "$cmd" >/dev/null || die "missing $cmd: apt-get install debootstrap qemu-system-x86 qemu-utils e2fsprogs git"
done
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip (set PYTHON=...)"

WORK=$(mktemp -d /var/tmp/rekam-qemu.XXXXXX)
QPID=""
cleanup() {
    [ -n "$QPID" ] && kill "$QPID" 2>/dev/null
    if [ "$KEEP" -eq 1 ]; then
        say "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
ROOTFS=$WORK/rootfs
[ -n "$CACHE" ] && mkdir -p "$CACHE"

# 1. Base system: Debian with systemd, a kernel and Python (cached as a tarball when asked).
t=$(date +%s)
if [ -n "$CACHE" ] && [ -s "$CACHE/rootfs-$SUITE.tar" ]; then
    mkdir -p "$ROOTFS" && tar -C "$ROOTFS" -xpf "$CACHE/rootfs-$SUITE.tar"
    say "base system: from cache $CACHE/rootfs-$SUITE.tar ($(step_time "$t") s)"
else
    timeout 1800 debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,udev,linux-image-amd64,python3,python3-venv,python3-pip,iproute2,ca-certificates,procps \
        "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    [ -n "$CACHE" ] && tar -C "$ROOTFS" -cpf "$CACHE/rootfs-$SUITE.tar" .
    say "base system: debootstrap $SUITE ($(step_time "$t") s)"
fi
GUEST_PY=$(cd "$ROOTFS/usr/bin" && ls python3.* | grep -E '^python3\.[0-9]+$' | head -1)
HOST_PY=python$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
[ "$GUEST_PY" = "$HOST_PY" ] || die "host $HOST_PY cannot build wheels for the guest's $GUEST_PY (set PYTHON=)"

# 2. The repository as committed (HEAD), and a wheelhouse of its dependencies for the offline guest.
t=$(date +%s)
mkdir -p "$ROOTFS/root/rekam-src"
git -C "$REPO" archive --format=tar HEAD | tar -C "$ROOTFS/root/rekam-src" -xf -
WHEELS=$WORK/wheels
[ -n "$CACHE" ] && WHEELS=$CACHE/wheels
if [ -z "$(ls "$WHEELS"/pip-*.whl 2>/dev/null)" ] || [ "$REPO/pyproject.toml" -nt "$WHEELS" ]; then
    mkdir -p "$WHEELS"
    timeout 900 "$PYTHON" -m pip wheel -q -w "$WHEELS" "$ROOTFS/root/rekam-src[wsq]" >"$WORK/pip.log" 2>&1 \
        || { tail -20 "$WORK/pip.log" >&2; die "pip wheel of the project's dependencies failed"; }
    # pip (install.sh upgrades it), and the build backend for the guest's build of the project.
    timeout 600 "$PYTHON" -m pip download -q -d "$WHEELS" pip "setuptools>=68" wheel >>"$WORK/pip.log" 2>&1 \
        || { tail -20 "$WORK/pip.log" >&2; die "pip download of pip/setuptools/wheel failed"; }
    touch "$WHEELS"
fi
rm -f "$WHEELS"/rekam-*.whl   # the guest builds Rekam itself from the source install.sh copies
mkdir -p "$ROOTFS/root/wheels" && cp "$WHEELS"/*.whl "$ROOTFS/root/wheels/"
say "source + wheelhouse: $(ls "$ROOTFS/root/wheels" | wc -l) wheels ($(step_time "$t") s)"

# 3. The station config: every device emulated (agent.testbed.station.emulated_devices), no
#    uplink (the guest has no broker), state under systemd's StateDirectory.
PYTHONPATH="$ROOTFS/root/rekam-src" "$PYTHON" - "$ROOTFS/root/agent.toml" <<'PY' || die "could not write the guest's agent.toml"
import sys
from pathlib import Path

from agent.testbed.station import emulated_devices, write_toml

state = Path("/var/lib/rekam")
write_toml(Path(sys.argv[1]), {
    "station": {"id": "qemu-boot-test-01", "district_code": "647201", "language": "en"},
    "logging": {"level": "INFO"},
    "uplink": {"enabled": False},
    "quality": {"photo_background": "any"},
    "devices": emulated_devices(printer=True, printer_output=state / "cards",
                                zfm_flash=state / "zfm-flash.json"),
})
PY

# 4. Guest setup: fstab, hostname, machine id, no first-boot prompts and no login on the serial
#    console (nobody types there), and the test unit that runs at boot and powers off.
echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" >"$ROOTFS/etc/fstab"
echo rekam-qemu >"$ROOTFS/etc/hostname"
chroot "$ROOTFS" systemd-machine-id-setup >/dev/null
for unit in systemd-firstboot.service serial-getty@ttyS0.service getty@tty1.service; do
    ln -sf /dev/null "$ROOTFS/etc/systemd/system/$unit"
done
# The test harness comes from this script's own folder (so it can be changed without a commit);
# the Rekam under test is HEAD.
install -d -m 0700 "$ROOTFS/root/qemu-test"
install -m 0755 "$REPO/tools/qemu/in-vm-test.sh" "$ROOTFS/root/qemu-test/"
install -m 0644 "$REPO/tools/qemu/rekam-boot-test.service" "$ROOTFS/etc/systemd/system/"
mkdir -p "$ROOTFS/etc/systemd/system/multi-user.target.wants"
ln -sf ../rekam-boot-test.service "$ROOTFS/etc/systemd/system/multi-user.target.wants/rekam-boot-test.service"

# 5. A raw ext4 disk straight from the folder (no loop mounts needed), kernel and initrd beside it.
t=$(date +%s)
KERNEL=$(ls "$ROOTFS"/boot/vmlinuz-* | sort -V | tail -1)
INITRD=$(ls "$ROOTFS"/boot/initrd.img-* | sort -V | tail -1)
cp "$KERNEL" "$WORK/vmlinuz" && cp "$INITRD" "$WORK/initrd.img"
mkfs.ext4 -q -F -L rekam-root -d "$ROOTFS" "$WORK/disk.img" 4G >/dev/null || die "mkfs.ext4 -d failed"
rm -rf "$ROOTFS"
say "disk image: 4 GiB sparse ext4, $(du -sh "$WORK/disk.img" | cut -f1) used ($(step_time "$t") s)"

# 6. Boot. The guest's test unit prints to the serial console and powers off; -no-reboot and a
#    kernel panic=-1 make qemu exit on a crash too, and timeout bounds the whole run.
case "$ACCEL" in
    tcg) ACCEL_ARGS=(-accel tcg -cpu max) ;;
    # Where nested KVM works; on the machine this was written on it does not (docs/operations.md).
    kvm) ACCEL_ARGS=(-accel kvm -cpu host) ;;
    *) die "--accel must be tcg or kvm" ;;
esac
say "booting the guest ($ACCEL, 2 CPUs, 2 GiB; at most $BOOT_TIMEOUT s)"
t=$(date +%s)
: >"$WORK/serial.log"
qemu-system-x86_64 "${ACCEL_ARGS[@]}" -m 2048 -smp 2 \
    -display none -monitor none -serial file:"$WORK/serial.log" -no-reboot -nic none \
    -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" \
    -drive file="$WORK/disk.img",format=raw,if=virtio \
    -append "root=/dev/vda rw console=ttyS0 panic=-1 quiet systemd.show_status=true" \
    </dev/null >"$WORK/qemu.log" 2>&1 &
QPID=$!
# Show the guest's check lines live (they reach the console through journald, as
# "[ uptime] bash[pid]: [qemu-boot-test] ..."); the full console stays in serial.log.
tail -n +1 -F --pid="$QPID" "$WORK/serial.log" 2>/dev/null | sed -u 's/\r$//' \
    | grep --line-buffered -E '\[qemu-boot-test\]|bash\[[0-9]+\]:     ' \
    | sed -u -E 's/^\[ *[0-9.]+\] bash\[[0-9]+\]: //' &
TPID=$!
# Bounded: the whole run, and the power-off after the result (a hung shutdown is a finding too).
result_at=0
hung=""
while kill -0 "$QPID" 2>/dev/null; do
    now=$(date +%s)
    if [ "$result_at" -eq 0 ] && grep -q '\[qemu-boot-test\] RESULT' "$WORK/serial.log"; then
        result_at=$now
    fi
    if [ $((now - t)) -ge "$BOOT_TIMEOUT" ]; then
        hung="the guest did not finish within $BOOT_TIMEOUT s"
    elif [ "$result_at" -ne 0 ] && [ $((now - result_at)) -ge 180 ]; then
        hung="the guest did not power off within 180 s of its result"
    fi
    if [ -n "$hung" ]; then
        kill "$QPID" 2>/dev/null || true
        break
    fi
    sleep 2
done
qemu_rc=0
wait "$QPID" || qemu_rc=$?
QPID=""
wait "$TPID" 2>/dev/null || true
say "guest run: $(step_time "$t") s (qemu exit $qemu_rc); whole script $(step_time "$T_START") s"
if [ -n "$hung" ]; then
    sed 's/\r$//' "$WORK/serial.log" | tail -25 >&2
    die "$hung"
fi
# The guest's lines reach the console through journald, as "[ uptime] bash[pid]: [qemu-boot-test] ...".
if grep -q '\[qemu-boot-test\] RESULT PASS' "$WORK/serial.log"; then
    say "PASS boot test of the installed service ($ACCEL)"
    exit 0
fi
grep -q '\[qemu-boot-test\] RESULT' "$WORK/serial.log" || { tail -40 "$WORK/serial.log" >&2; }
die "boot test of the installed service ($ACCEL)"
