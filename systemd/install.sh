#!/usr/bin/env bash
# Install Rekam as a station service on Debian / Raspberry Pi OS, in one step:
#   sudo bash systemd/install.sh
# Creates the 'rekam' system user, installs the agent in its own virtual environment under
# /opt/rekam, the systemd unit, udev rules and an example config. Never overwrites an existing
# config or keys. Re-running it upgrades the agent in place.
#
# Options:
#   --root DIR     install into DIR instead of / (packaging and tests; nothing is started)
#   --skip-venv    do not create the virtual environment (tests of the file layout)
#   --uninstall    remove the unit, rules and /opt/rekam; keep config, keys and the journal
#   --purge        with --uninstall: also remove /etc/rekam and /var/lib/rekam (keys and journal!)
set -euo pipefail

ROOT=/
SKIP_VENV=0
ACTION=install
PURGE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=$2; shift 2 ;;
        --skip-venv) SKIP_VENV=1; shift ;;
        --uninstall) ACTION=uninstall; shift ;;
        --purge) PURGE=1; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
ROOT=${ROOT%/}
SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/rekam
UNIT_DIR=/etc/systemd/system
LIVE=0
[ -z "$ROOT" ] && LIVE=1

if [ "$LIVE" -eq 1 ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo bash systemd/install.sh)" >&2
    exit 2
fi

say() { echo "[rekam-install] $*"; }

if [ "$ACTION" = uninstall ]; then
    if [ "$LIVE" -eq 1 ] && command -v systemctl >/dev/null; then
        systemctl disable --now rekam.service 2>/dev/null || true
    fi
    rm -f "$ROOT$UNIT_DIR/rekam.service" "$ROOT/etc/udev/rules.d/99-rekam.rules" \
          "$ROOT/usr/lib/sysusers.d/rekam.conf"
    rm -rf "$ROOT$PREFIX"
    if [ "$PURGE" -eq 1 ]; then
        say "purging config, keys and journal"
        rm -rf "$ROOT/etc/rekam" "$ROOT/var/lib/rekam"
        rm -f "$ROOT/etc/credstore.encrypted/rekam-order-key"
    else
        say "kept /etc/rekam and /var/lib/rekam (keys and journal); --purge removes them"
    fi
    [ "$LIVE" -eq 1 ] && command -v systemctl >/dev/null && systemctl daemon-reload || true
    say "uninstalled"
    exit 0
fi

say "installing into ${ROOT:-/}"
install -d -m 0755 "$ROOT$PREFIX" "$ROOT$UNIT_DIR" "$ROOT/etc/udev/rules.d" "$ROOT/usr/lib/sysusers.d"
install -d -m 0750 "$ROOT/etc/rekam"
install -d -m 0700 "$ROOT/var/lib/rekam"

# 1. the user (sysusers file always; created now on a live system)
install -m 0644 "$SRC/systemd/rekam.sysusers" "$ROOT/usr/lib/sysusers.d/rekam.conf"
if [ "$LIVE" -eq 1 ]; then
    if command -v systemd-sysusers >/dev/null; then
        systemd-sysusers /usr/lib/sysusers.d/rekam.conf
    elif ! id rekam >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/rekam --shell /usr/sbin/nologin rekam
        for g in dialout video input lp plugdev; do getent group "$g" >/dev/null && usermod -aG "$g" rekam; done
    fi
fi

# 2. the agent in its own virtual environment, with a copy of the source it was built from
rm -rf "$ROOT$PREFIX/src.new"
mkdir -p "$ROOT$PREFIX/src.new"
(cd "$SRC" && tar --exclude=.git --exclude=.venv --exclude=__pycache__ --exclude='*.pyc' --exclude=demo-output -cf - \
    pyproject.toml README.md agent drivers firmware_protocols docs systemd) | tar -C "$ROOT$PREFIX/src.new" -xf -
rm -rf "$ROOT$PREFIX/src" && mv "$ROOT$PREFIX/src.new" "$ROOT$PREFIX/src"
if [ "$SKIP_VENV" -eq 0 ]; then
    PY=${PYTHON:-python3}
    "$PY" -m venv "$ROOT$PREFIX/venv"
    "$ROOT$PREFIX/venv/bin/python" -m pip install -q --upgrade pip
    "$ROOT$PREFIX/venv/bin/python" -m pip install -q "$ROOT$PREFIX/src[wsq]"
fi

# 3. unit and udev rules (always replaced: they belong to this version)
install -m 0644 "$SRC/systemd/rekam.service" "$ROOT$UNIT_DIR/rekam.service"
install -m 0644 "$SRC/systemd/99-rekam.rules" "$ROOT/etc/udev/rules.d/99-rekam.rules"

# 4. config: an example beside it always; the live file only when there is none
install -m 0640 "$SRC/systemd/agent.toml.example" "$ROOT/etc/rekam/agent.toml.example"
if [ -e "$ROOT/etc/rekam/agent.toml" ]; then
    say "kept existing /etc/rekam/agent.toml"
else
    install -m 0640 "$SRC/systemd/agent.toml.example" "$ROOT/etc/rekam/agent.toml"
    say "wrote /etc/rekam/agent.toml from the example: edit station id, broker and devices"
fi

if [ "$LIVE" -eq 1 ]; then
    chown -R root:rekam /etc/rekam
    chown rekam:rekam /var/lib/rekam
    if [ ! -e /var/lib/rekam/keys/station_ed25519.key ]; then
        runuser -u rekam -- "$PREFIX/venv/bin/rekam" keys init --config /etc/rekam/agent.toml \
            || say "could not create station keys yet; run: sudo -u rekam $PREFIX/venv/bin/rekam keys init"
    else
        say "kept existing station keys"
    fi
    # The print-order key as an encrypted systemd credential, sealed to this machine (TPM2 if
    # present, else the host key in /var/lib/systemd/credential.secret). An existing key file
    # is sealed as it is, so orders already stored under it still open, and then removed: a key
    # left next to the journal would defeat the TPM.
    CRED=/etc/credstore.encrypted/rekam-order-key
    KEYFILE=/var/lib/rekam/keys/print_orders.key
    if [ -e "$CRED" ]; then
        say "kept existing print-order key credential"
    elif command -v systemd-creds >/dev/null; then
        install -d -m 0700 /etc/credstore.encrypted
        if [ -e "$KEYFILE" ]; then KEYSRC=$KEYFILE; else KEYSRC=/dev/urandom; fi
        # Through a pipe: the plaintext key never lands in a temporary file.
        if (umask 077; head -c 32 "$KEYSRC" | systemd-creds encrypt --with-key=auto \
                --name=rekam-order-key - "$CRED.new") && mv "$CRED.new" "$CRED"; then
            say "print-order key sealed as credential $CRED ($(systemd-creds has-tpm2 >/dev/null 2>&1 && echo TPM2 || echo 'host key, no TPM2'))"
            if [ "$KEYSRC" = "$KEYFILE" ]; then shred -u "$KEYFILE"; fi
        else
            rm -f "$CRED.new"
            say "could not seal the print-order key; the agent keeps it in $KEYFILE (see docs/security.md)"
        fi
    else
        say "no systemd-creds: the agent keeps the print-order key in $KEYFILE (see docs/security.md)"
    fi
    command -v udevadm >/dev/null && udevadm control --reload && udevadm trigger || true
    systemctl daemon-reload
    systemctl enable rekam.service
    say "enabled rekam.service; start it with: systemctl start rekam"
fi
say "done"
