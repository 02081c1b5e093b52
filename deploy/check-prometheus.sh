#!/usr/bin/env bash
# Checks the operations artefacts in deploy/ and the daemon's live /metrics:
#   rules      promtool check rules deploy/prometheus/ifad-rules.yml
#   dashboard  deploy/grafana/ifad.json is valid JSON
#   metrics    a simulated ifad, after a few placements (one refused), serves
#              an exposition that `promtool check metrics` accepts without a
#              single complaint
# Run from the repository root: bash deploy/check-prometheus.sh
# Needs root (or promtool already on PATH), cargo, python3. Installs Debian's
# prometheus package for promtool when missing and makes sure that does not
# leave a Prometheus server running.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

RULES=deploy/prometheus/ifad-rules.yml
DASHBOARD=deploy/grafana/ifad.json
failures=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failures=$((failures + 1)); }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ifad-check-prom.XXXXXX")
DAEMON_PID=
POLICY_RC_CREATED=
cleanup() {
    if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill "$DAEMON_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$DAEMON_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$DAEMON_PID" 2>/dev/null || true
    fi
    if [[ -n "$POLICY_RC_CREATED" ]]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ tools needed --
# promtool comes with Debian's prometheus package; python3 (for the JSON
# check) is not in every minimal image.
apt_install() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "need root to install $*" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Keep the package's maintainer scripts from starting a server at all
    # (policy-rc.d is honoured by invoke-rc.d and deb-systemd-invoke).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=1
    fi
    local apt=(apt-get install -y --no-install-recommends -o Dpkg::Use-Pty=0 "$@")
    local rc=0
    if ! "${apt[@]}" >"$TMP/apt.log" 2>&1; then
        apt-get update >>"$TMP/apt.log" 2>&1 || true
        "${apt[@]}" >>"$TMP/apt.log" 2>&1 || rc=$?
    fi
    if [[ -n "$POLICY_RC_CREATED" ]]; then
        rm -f /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=
    fi
    # In case a server was started anyway (a permissive policy-rc.d was
    # already there, or an init that ignores it): stop it; never fail on this.
    if [[ " $* " == *" prometheus "* ]]; then
        if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
            systemctl stop prometheus >/dev/null 2>&1 || true
        fi
        if command -v service >/dev/null 2>&1; then
            service prometheus stop >/dev/null 2>&1 || true
        fi
    fi
    if [[ $rc -ne 0 ]]; then
        tail -n 20 "$TMP/apt.log" >&2
    fi
    return "$rc"
}

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [[ ${#missing[@]} -gt 0 ]]; then
    apt_install "${missing[@]}" || true
fi
if command -v promtool >/dev/null 2>&1; then
    pass "promtool ($(promtool --version 2>&1 | head -n1))"
else
    fail promtool "not found and could not install the prometheus package"
fi
have_promtool() { command -v promtool >/dev/null 2>&1; }

# ------------------------------------------------------------------- rules --
if ! have_promtool; then
    fail rules "promtool unavailable"
elif out=$(promtool check rules "$RULES" 2>&1); then
    pass "rules ($(grep -o 'SUCCESS: [0-9]* rules found' <<<"$out" || echo ok))"
else
    fail rules "$(tr '\n' ' ' <<<"$out")"
fi

# --------------------------------------------------------------- dashboard --
if ! command -v python3 >/dev/null 2>&1; then
    fail dashboard "python3 unavailable"
elif out=$(python3 -m json.tool "$DASHBOARD" 2>&1 >/dev/null); then
    pass dashboard
else
    fail dashboard "$(tr '\n' ' ' <<<"$out")"
fi

# ----------------------------------------------------------------- metrics --
# Runs in this shell (not a $(...) subshell) so the EXIT trap sees DAEMON_PID.
MSG=
live_metrics() {
    if ! cargo build --quiet -p ifad -p ifactl >"$TMP/build.log" 2>&1; then
        tail -n 20 "$TMP/build.log" >&2
        MSG="cargo build failed"
        return 1
    fi
    local sock="$TMP/ifad.sock" log="$TMP/ifad.log" ifactl=target/debug/ifactl
    RUST_LOG=info target/debug/ifad --simulate=harts=4,files=2 \
        --socket "$sock" --state-dir "$TMP/state" \
        --metrics-listen 127.0.0.1:0 >"$log" 2>&1 &
    DAEMON_PID=$!

    local ready= i
    for i in $(seq 100); do # 10 s
        if grep -q ' ready$' "$log" 2>/dev/null; then
            ready=1
            break
        fi
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            tail -n 20 "$log" >&2
            MSG="ifad exited before it was ready"
            return 1
        fi
        sleep 0.1
    done
    if [[ -z "$ready" ]]; then
        tail -n 20 "$log" >&2
        MSG="ifad not ready within 10s"
        return 1
    fi
    local addr
    addr=$(sed -n 's|.*serving metrics on http://\([^/]*\)/metrics.*|\1|p' "$log" | head -n1)
    if [[ -z "$addr" ]]; then
        MSG="no 'serving metrics on' line in the ifad log"
        return 1
    fi

    local t=(timeout 10 "$ifactl" --socket "$sock")
    "${t[@]}" place --vm b --vcpus 5 --class burstable >/dev/null ||
        { MSG="place burstable failed"; return 1; }
    "${t[@]}" place --vm g --vcpus 2 --class guaranteed >/dev/null ||
        { MSG="place guaranteed failed"; return 1; }
    local rc=0
    "${t[@]}" place --vm x --vcpus 9 --class guaranteed >/dev/null 2>&1 || rc=$?
    if [[ $rc -ne 1 ]]; then
        MSG="oversized guaranteed placement: want exit 1 (refused), got $rc"
        return 1
    fi

    local url="http://$addr/metrics"
    if command -v curl >/dev/null 2>&1; then
        curl -sf --max-time 10 "$url" >"$TMP/metrics.txt" ||
            { MSG="GET $url failed"; return 1; }
    else
        python3 - "$url" >"$TMP/metrics.txt" 2>"$TMP/get.err" <<'EOF' || { MSG="GET $url failed: $(tail -n1 "$TMP/get.err")"; return 1; }
import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
EOF
    fi
    local m
    for m in ifad_vcpus ifad_placement_refusals_total ifad_mrif_fallbacks_total \
        ifad_hart_vsfiles_used ifad_decision_duration_seconds_bucket \
        ifad_interrupts_per_second ifad_rebalances_total; do
        if ! grep -q "^$m[{ ]" "$TMP/metrics.txt"; then
            MSG="$m missing from $url"
            return 1
        fi
    done
    if ! grep -q '^ifad_placement_refusals_total{class="guaranteed",[^}]*} [1-9]' "$TMP/metrics.txt"; then
        MSG="the refused guaranteed placement is not counted in ifad_placement_refusals_total"
        return 1
    fi

    local lint
    rc=0
    lint=$(promtool check metrics <"$TMP/metrics.txt" 2>&1) || rc=$?
    if [[ $rc -ne 0 || -n "$lint" ]]; then
        printf '%s\n' "$lint" >&2
        MSG="promtool check metrics (exit $rc): $(tr '\n' ';' <<<"$lint")"
        return 1
    fi
    MSG="$(grep -c '^ifad_' "$TMP/metrics.txt") samples from $url"
}

if ! have_promtool; then
    fail metrics "promtool unavailable"
elif live_metrics; then
    pass "metrics ($MSG)"
else
    fail metrics "$MSG"
fi

if [[ $failures -ne 0 ]]; then
    echo "$failures check(s) failed"
    exit 1
fi
