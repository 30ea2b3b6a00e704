#!/usr/bin/env bash
# Runs INSIDE the qemu guest, started at boot by rekam-boot-test.service (see tools/qemu-boot-test.sh).
# Installs Rekam with the documented one-step command, then checks the service under the guest's
# own systemd: becomes active (READY=1), recovers from kill -9, keeps its watchdog fed, stops
# cleanly. Every wait is bounded. Prints one PASS/FAIL line per check and a final RESULT line
# that the host script looks for on the serial console; the unit powers the guest off afterwards.
set -uo pipefail

SRC=/root/rekam-src
FAILS=0
T0=$(date +%s)

log() { echo "[qemu-boot-test] $*"; }
pass() { log "PASS $*"; }
fail() { log "FAIL $*"; FAILS=$((FAILS + 1)); }
prop() { systemctl show -p "$1" --value rekam.service; }
elapsed() { echo $(( $(date +%s) - $1 )); }

# wait_for SECONDS CMD...: poll CMD once a second until it succeeds or SECONDS pass.
wait_for() {
    local limit=$1 start
    shift
    start=$(date +%s)
    until "$@"; do
        [ "$(elapsed "$start")" -ge "$limit" ] && return 1
        sleep 1
    done
}

finish() {
    log "journal of rekam.service (last 25 lines):"
    journalctl -u rekam.service --no-pager -o short-monotonic -n 25 | sed 's/^/    /'
    if [ "$FAILS" -eq 0 ]; then
        log "RESULT PASS (in-guest time $(elapsed "$T0") s)"
        exit 0
    fi
    log "RESULT FAIL ($FAILS failed checks, in-guest time $(elapsed "$T0") s)"
    exit 1
}

log "guest: $(uname -r), $(systemctl --version | head -1), $(python3 --version), $(nproc) CPU"
# systemd-analyze time cannot answer yet: this unit is itself part of the boot.
log "uptime at test start: $(cut -d" " -f1 /proc/uptime) s"

# 1. The operator's config goes in first: install.sh must keep it (it never overwrites one).
install -d -m 0750 /etc/rekam
install -m 0640 /root/agent.toml /etc/rekam/agent.toml

# 2. The documented one-step install. The guest has no network: pip reads a wheelhouse built on
#    the host, through pip's own environment variables, so install.sh runs unmodified.
t=$(date +%s)
if PIP_NO_INDEX=1 PIP_FIND_LINKS=/root/wheels timeout 1200 bash "$SRC/systemd/install.sh" >/root/install.log 2>&1; then
    pass "install: bash systemd/install.sh exited 0 in $(elapsed "$t") s"
else
    fail "install: bash systemd/install.sh failed after $(elapsed "$t") s"
fi
sed 's/^/    /' /root/install.log | tail -n 15
grep -q "kept existing /etc/rekam/agent.toml" /root/install.log \
    && pass "install: kept the existing /etc/rekam/agent.toml" \
    || fail "install: did not report keeping the existing config"
id rekam >/dev/null 2>&1 && pass "install: user $(id rekam)" || fail "install: no rekam user"
[ -s /var/lib/rekam/keys/station_ed25519.key ] \
    && pass "install: station key created ($(stat -c '%U %a' /var/lib/rekam/keys/station_ed25519.key))" \
    || fail "install: no station key in /var/lib/rekam/keys"
[ "$(systemctl is-enabled rekam.service 2>&1)" = enabled ] \
    && pass "install: rekam.service enabled" || fail "install: rekam.service not enabled"
if out=$(runuser -u rekam -- /opt/rekam/venv/bin/rekam config check --config /etc/rekam/agent.toml 2>&1); then
    pass "config: rekam config check accepts the emulated-devices config"
else
    fail "config: rekam config check: $out"
fi

# 3. Start. Type=notify: systemctl start returns once the agent sent READY=1 (or failed).
t=$(date +%s)
if timeout 150 systemctl start rekam.service; then
    pass "start: systemctl start returned after $(elapsed "$t") s (READY=1 received)"
else
    fail "start: systemctl start failed after $(elapsed "$t") s"
fi
state="$(prop ActiveState)/$(prop SubState)"
[ "$state" = active/running ] && pass "start: state $state" || fail "start: state $state"
has_status() { [ -n "$(prop StatusText)" ]; }
wait_for 30 has_status && pass "start: STATUS=\"$(prop StatusText)\"" || fail "start: no STATUS= text within 30 s"
pid1=$(prop MainPID)
log "main PID $pid1, user $(ps -o user= -p "$pid1" 2>/dev/null)"

# 4. kill -9 the main process: Restart=on-failure must bring it back (RestartSec=5) as a new PID.
restarts0=$(prop NRestarts)
kill -9 "$pid1"
t=$(date +%s)
back() { local p; p=$(prop MainPID); [ "$p" != 0 ] && [ "$p" != "$pid1" ] && [ "$(prop ActiveState)" = active ] \
    && [ "$(prop SubState)" = running ]; }
if wait_for 90 back; then
    pass "kill -9: systemd restarted it in $(elapsed "$t") s (PID $pid1 -> $(prop MainPID), NRestarts $restarts0 -> $(prop NRestarts))"
else
    fail "kill -9: not active again within 90 s (state $(prop ActiveState)/$(prop SubState), PID $(prop MainPID))"
fi
journalctl -u rekam.service --no-pager -o cat | grep -q "code=killed, status=9/KILL" \
    && pass "kill -9: journal shows 'Main process exited, code=killed, status=9/KILL'" \
    || fail "kill -9: the journal does not show the SIGKILL"

# 5. Stay up longer than WatchdogSec: a healthy main loop keeps the watchdog fed, no restart.
wd=$(prop WatchdogUSec)
restarts1=$(prop NRestarts)
pid2=$(prop MainPID)
sleep 40
if [ "$(prop NRestarts)" = "$restarts1" ] && [ "$(prop MainPID)" = "$pid2" ] && [ "$(prop ActiveState)" = active ]; then
    pass "watchdog: still active with the same PID after 40 s (WatchdogSec $wd)"
else
    fail "watchdog: restarted or down within 40 s (NRestarts $(prop NRestarts), PID $(prop MainPID), $(prop ActiveState))"
fi

# 6. Stop: SIGTERM, clean exit well within TimeoutStopSec.
tstop=$(prop TimeoutStopUSec)
t=$(date +%s)
timeout 90 systemctl stop rekam.service
took=$(elapsed "$t")
result="$(prop ActiveState) result=$(prop Result) exit=$(prop ExecMainCode)/$(prop ExecMainStatus)"
if [ "$result" = "inactive result=success exit=1/0" ]; then
    pass "stop: stopped in $took s (TimeoutStopSec $tstop): $result"
else
    fail "stop: after $took s: $result (want inactive, success, exited 0)"
fi
journalctl -u rekam.service --no-pager -o cat | grep -q "station .* stopped" \
    && pass "stop: agent logged 'station ... stopped' (journal flushed, components stopped)" \
    || fail "stop: no 'stopped' line from the agent in the journal"
journalctl -u rekam.service --no-pager -o cat | grep -q "^Stopped " \
    && pass "stop: systemd logged '$(journalctl -u rekam.service --no-pager -o cat | grep '^Stopped ' | tail -1)'" \
    || fail "stop: systemd did not log Stopped"
journalctl -u rekam.service --no-pager -o cat | grep -qE "Traceback|ERROR" \
    && fail "journal: Traceback or ERROR lines in the agent's log" \
    || pass "journal: no Traceback or ERROR lines in the agent's log"

# 7. The hardening as this systemd sees the installed unit.
exposure=$(systemd-analyze security rekam.service --no-pager 2>&1 | grep -i "overall exposure")
log "systemd-analyze security rekam.service: ${exposure:-<no exposure line>}"
score=$(echo "$exposure" | grep -oE '[0-9]+\.[0-9]+' | head -1)
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
    pass "security: overall exposure $score (target <= 2.0)"
else
    fail "security: overall exposure '${score:-none}' (target <= 2.0)"
fi

finish
