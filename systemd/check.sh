#!/usr/bin/env bash
# Checks systemd/ifad.service without installing it: invariants the daemon
# depends on, `systemd-analyze verify` (against a built ifad binary) and
# `systemd-analyze security --offline`. Run from the repository root as
#   bash systemd/check.sh
# Works where systemd is not PID 1 (containers). Installs the `systemd`
# package only when systemd-analyze is missing; writes only under a temp
# dir and the cargo target dir; starts no daemon.
set -euo pipefail
cd "$(dirname "$0")/.."

UNIT=systemd/ifad.service
failed=0
pass() { printf 'PASS %s\n' "$1"; }
fail() { printf 'FAIL %s: %s\n' "$1" "$2"; failed=1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- tools ------------------------------------------------------------------
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "systemd-analyze missing: installing the systemd package"
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "FAIL tools: no systemd-analyze and no apt-get"; exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq
    timeout 600 apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
echo "$(systemd-analyze --version | head -n1)"
export SYSTEMD_PAGER=cat SYSTEMD_COLORS=0

# --- invariants: the hardening must not break what ifad does ------------------
# Plain "Key=value" lines of the unit (comments stripped, last one wins as
# systemd does for these single-valued settings).
val() { sed -n "s/^$1=//p" "$UNIT" | tail -n1; }
inv=()
[[ $(val Type) == notify ]] || inv+=("Type= must be notify (READY=1 after restore + first reconcile)")
[[ $(val NotifyAccess) == main ]] || inv+=("NotifyAccess= must be main")
[[ -n $(val WatchdogSec) ]] || inv+=("WatchdogSec= missing (the control loop sends WATCHDOG=1)")
[[ $(val Restart) == on-failure ]] || inv+=("Restart= must be on-failure")
[[ $(val RuntimeDirectory) == ifad ]] || inv+=("RuntimeDirectory=ifad missing (/run/ifad/ifad.sock)")
[[ $(val StateDirectory) == ifad ]] || inv+=("StateDirectory=ifad missing (/var/lib/ifad)")
grep -qE '^ReadWritePaths=(.*[[:space:]])?-?/proc/irq/?([[:space:]]|$)' "$UNIT" || inv+=("ReadWritePaths=/proc/irq missing (IRQ affinity writes)")
grep -qE '^CapabilityBoundingSet=.*CAP_SYS_NICE' "$UNIT" || inv+=("CAP_SYS_NICE missing (affinity of other users' threads)")
case $(val PrivateUsers) in ''|no|false|0|off) ;; *) inv+=("PrivateUsers= breaks CAP_SYS_NICE over host threads");; esac
case $(val ProtectKernelTunables) in ''|no|false|0|off) ;; *) inv+=("ProtectKernelTunables= makes /proc/irq read-only");; esac
case $(val ProtectKernelLogs) in ''|no|false|0|off) ;; *) inv+=("ProtectKernelLogs= hides /dev/kmsg");; esac
case $(val PrivateDevices) in ''|no|false|0|off) ;; *) inv+=("PrivateDevices= hides /dev/kvm and /dev/kmsg");; esac
case $(val PrivatePIDs) in ''|no|false|0|off) ;; *) inv+=("PrivatePIDs= hides the VMM processes");; esac
case $(val ProtectProc) in ''|default) ;; *) inv+=("ProtectProc= must be default (other users' VMM processes)");; esac
case $(val ProcSubset) in ''|all) ;; *) inv+=("ProcSubset= must be all (/proc/irq, /proc/cpuinfo)");; esac
grep -qE '^SystemCallFilter=~.*@resources' "$UNIT" && inv+=("SystemCallFilter=~@resources denies sched_setaffinity")
if ((${#inv[@]})); then
    for i in "${inv[@]}"; do fail unit-invariants "$i"; done
else
    pass unit-invariants
fi

# --- a binary for ExecStart= ----------------------------------------------------
# The dev profile: CI's `cargo test` has built most of it already. The unit
# is verified as a copy whose ExecStart= points at this build, so nothing is
# installed into /usr or /etc.
echo "building ifad (cargo build -p ifad --bin ifad)"
if ! out=$(timeout 1800 cargo build -q -p ifad --bin ifad --message-format=json 2>"$tmp/cargo.err"); then
    cat "$tmp/cargo.err" >&2
    fail build "cargo build -p ifad failed"
    exit 1
fi
bin=$(printf '%s\n' "$out" | grep -o '"executable":"[^"]*/ifad"' | tail -n1 | cut -d'"' -f4)
if [[ -z $bin || ! -x $bin ]]; then
    fail build "no ifad executable in cargo's output"
    exit 1
fi
pass "build ($bin)"

mkdir -p "$tmp/units"
copy=$tmp/units/ifad.service
sed "s#^ExecStart=/usr/bin/ifad\\b#ExecStart=$bin#" "$UNIT" >"$copy"
if ! grep -q "^ExecStart=$bin" "$copy"; then
    fail verify "ExecStart= of $UNIT is not /usr/bin/ifad[ args]: update this check"
    exit 1
fi

# --- systemd-analyze verify -----------------------------------------------------
# Any line about our unit (its path or its name) is a failure, as is a
# non-zero exit; other lines (the machine's own units) are shown as notes.
rc=0
timeout 120 systemd-analyze verify --man=no "$copy" >"$tmp/verify.out" 2>&1 || rc=$?
ours=$(grep -E "ifad\.service|$tmp" "$tmp/verify.out" || true)
others=$(grep -vE "ifad\.service|$tmp" "$tmp/verify.out" || true)
[[ -n $others ]] && printf 'note (not about ifad.service): %s\n' "$others"
if [[ -n $ours ]]; then
    printf '%s\n' "$ours" | sed "s#$tmp/units/#systemd/#"
    fail verify "systemd-analyze verify complains about ifad.service"
elif ((rc != 0)); then
    fail verify "systemd-analyze verify exited $rc"
else
    pass verify
fi

# --- systemd-analyze security: no worse than the README says -------------------
# ifad needs root, host network and /proc/irq, which the score counts against
# it; what is judged is that the unit is not less confined than documented.
rc=0
timeout 120 systemd-analyze security --no-pager --offline=true "$copy" >"$tmp/security.out" 2>&1 || rc=$?
line=$(grep -F 'Overall exposure level' "$tmp/security.out" || true)
quoted=$(grep -oE 'exposure \*\*[0-9]+\.[0-9]+' README.md | grep -oE '[0-9]+\.[0-9]+' | head -n1 || true)
score=$(printf '%s\n' "$line" | grep -oE '[0-9]+\.[0-9]+' | head -n1 || true)
if [[ -n $score && -z $quoted ]]; then
    fail security "README.md quotes no exposure score (\"exposure **N.N\")"
elif [[ -n $score ]]; then
    printf '%s (README: %s)\n' "$line" "$quoted"
    if [[ ${IFAD_CHECK_VERBOSE:-0} == 1 ]]; then cat "$tmp/security.out"; fi
    if awk -v s="$score" -v q="$quoted" 'BEGIN { exit !(s <= q) }'; then
        pass "security (exposure $score, at most the README's $quoted)"
    else
        fail security "exposure $score is worse than the README's $quoted"
    fi
else
    cat "$tmp/security.out"
    fail security "systemd-analyze security --offline=true failed (exit $rc)"
fi

exit "$failed"
