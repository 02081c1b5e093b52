# Shared by the scenarios (not itself run: not executable).
# -d unimp: QEMU logs "un-handled exit reason 9" (KVM_EXIT_FAIL_ENTRY) only then.
L2="-M virt,aia=aplic-imsic -cpu host -bios none -m 256M -no-reboot -display none -d unimp
    -kernel /l2/vmlinuz -initrd /l2/initrd.gz"
# The guest's command line (see l2-init): it stays up until its QEMU is killed.
L2APPEND=${L2APPEND:-console=ttyS0}

# until SECONDS COMMAND...: polls every half second.
until_true() {
    t=$(($1 * 2)); shift
    while [ $t -gt 0 ]; do "$@" && return 0; sleep 0.5; t=$((t - 1)); done
    return 1
}

T=/sys/kernel/tracing
# The harness's own tracing instance: its own kprobes on KVM's allocator and the
# kernel's signal_generate tracepoint, independent of ifad's probes (whose
# definitions could be wrong in the same way as ifad's reading of them).
C=$T/instances/check

# trace_on: defines the probes (group "check") and enables them in our instance
# only; a scenario that cannot trace KVM fails. The return probe reads the
# VS-file's physical address that KVM wrote through its fourth argument
# (kvm_riscv_aia_alloc_hgei(cpu, owner, &va, &pa), arch/riscv/kvm/aia.c).
trace_on() {
    grep -qw kvm_riscv_aia_alloc_hgei $T/available_filter_functions \
        || { echo "the kernel has no kvm_riscv_aia_alloc_hgei to probe"; return 1; }
    if [ ! -d $T/events/check ]; then
        echo 'p:check/alloc kvm_riscv_aia_alloc_hgei cpu=%a0:s32' >>$T/kprobe_events &&
        echo 'r:check/alloc_ret kvm_riscv_aia_alloc_hgei ret=$retval:s32 pa=+0($arg4):x64' >>$T/kprobe_events &&
        echo 'p:check/free kvm_riscv_aia_free_hgei cpu=%a0:s32 hgei=%a1:s32' >>$T/kprobe_events \
            || { echo "defining the harness's kprobes failed"; return 1; }
    fi
    mkdir -p $C
    echo 'sig == 10' >$C/events/signal/signal_generate/filter
    echo 1 >$C/events/check/enable && echo 1 >$C/events/signal/signal_generate/enable \
        || { echo "enabling the harness's trace failed"; return 1; }
}

# Our trace as "time kind tid a b": alloc TID CPU -, ret TID LINE PA, free - CPU LINE,
# sig SENDER TARGET -.
trace_events() {
    [ -r $C/trace ] || { echo "the harness's trace is missing" >&2; return 1; }
    grep -v '^#' $C/trace | awk '
    match($0, /-[0-9]+ +\[[0-9]+\] /) {
        tid = substr($0, RSTART + 1); sub(/ .*/, "", tid)
        split("", v)
        for (i = 1; i <= NF; i++) if (split($i, kv, "=") == 2) v[kv[1]] = kv[2]
        t = $0; sub(/: .*/, "", t); sub(/.* /, "", t)
        if ($0 ~ / alloc: /) print t, "alloc", tid, v["cpu"], "-"
        else if ($0 ~ / alloc_ret: /) { pa = v["pa"]; sub(/^0x0*/, "0x", pa); print t, "ret", tid, v["ret"], pa }
        else if ($0 ~ / free: /) print t, "free", "-", v["cpu"], v["hgei"]
        else if ($0 ~ / signal_generate: /) print t, "sig", tid, v["pid"], "-"
        else if ($0 ~ / tracing_mark_write: /) { m = $0; sub(/.* tracing_mark_write: /, "", m); print t, "mark", "-", m }
    }'
}

# held_observed: "tid hart line hpa" per line KVM holds, replayed from our trace.
held_observed() {
    [ -r $C/trace ] || { echo "the harness's trace is missing" >&2; return 1; }
    trace_events | awk '
    $2 == "alloc" { calling[$3] = $4 }
    $2 == "ret" {
        if (($3 in calling) && $4 + 0 > 0) {
            # One line per thread: KVM frees the old one right after.
            for (k in holder) if (holder[k] == $3) delete holder[k]
            holder[calling[$3] " " $4] = $3; pa[calling[$3] " " $4] = $5
        }
        delete calling[$3]
    }
    $2 == "free" { delete holder[$4 " " $5] }
    END { for (k in holder) print holder[k], k, pa[k] }' | sort
}

# held_ledger: "tid hart line hpa" per running vCPU (one with a thread) that ifad
# placed on a VS-file; a line or address ifad does not know shows as "-".
held_ledger() {
    for vm in $(ctl vms | awk 'NR > 1 {print $1}'); do
        ctl vm $vm | awk '$1 ~ /^[0-9]+$/ && $3 == "vsfile" && $7 ~ /^[0-9]+$/ {print $7, $2, $4, $6}'
    done | sort
}

# observer_agrees: KVM's allocations, as our own probes show them, are exactly
# the ledger's: each VS-file vCPU holds one line, on its hart, at the VS-file
# address ifad reports, and nothing else holds one. Per hart, prints what KVM holds.
observer_agrees() {
    held_observed >/tmp/held-observed || return 1
    # ifad's own observer may be a tick behind: give it a few seconds.
    until_true 5 sh -c ". /scenarios/lib.sh; held_observed >/tmp/held-observed; held_ledger >/tmp/held-ledger
        cmp -s /tmp/held-observed /tmp/held-ledger"
    ok=$?
    echo "KVM holds per hart: $(awk '{n[$2]++; c++} END {for (h in n) printf "%s:%d ", h, n[h]; if (!c) printf "none"}' /tmp/held-observed)"
    [ $ok = 0 ] && return 0
    echo "observed (tid hart line hpa):"; cat /tmp/held-observed
    echo "ledger (tid hart line hpa):"; cat /tmp/held-ledger
    echo "KVM's allocations differ from the ledger"; return 1
}

# holds TID: prints "hart line" of the line KVM says TID holds (nothing if none).
holds() { held_observed | awk -v t=$1 '$1 == t {print $2, $3}'; }

# mark TEXT: a line in our trace, ordered with the kernel's events.
mark() { echo "$*" >$C/trace_marker; }

# follow_state VM SECONDS: marks VM's state in our trace every half second
# until it is ready (0) or SECONDS pass (1).
follow_state() {
    t=$(($2 * 2))
    while [ $t -gt 0 ]; do
        s=$(ctl vm $1 | awk '/^STATE/ {print $2}'); mark "state $1 $s"
        [ "$s" = ready ] && return 0
        sleep 0.5; t=$((t - 1))
    done
    return 1
}

# since_mark TEXT: our trace from the first mark TEXT on.
since_mark() {
    trace_events | awk -v m="$*" '!on && $2 == "mark" { x = $0; sub(/^[^ ]+ mark - /, "", x); if (x == m) on = 1 } on'
}

# ready_after_free VM HART LINE SINCE: after mark SINCE, our trace shows the
# kernel freeing HART's LINE before VM was first seen ready, and VM seen ready.
ready_after_free() {
    since_mark "$4" | awk -v vm=$1 -v cpu=$2 -v line=$3 '
    $2 == "free" && $4 == cpu && $5 == line && freed == "" { freed = $1 }
    $2 == "mark" && $4 == "state" && $5 == vm && $6 == "ready" && ready == "" { ready = $1 }
    END { exit !(freed != "" && ready != "" && freed + 0 < ready + 0) }'
}

# kicked_before_free TID HART LINE SINCE: after mark SINCE, ifad signalled TID,
# and the kernel freed HART's LINE after that.
kicked_before_free() {
    since_mark "$4" | awk -v t=$1 -v cpu=$2 -v line=$3 '
    $2 == "sig" && $4 == t && kick == "" { kick = $1; sender = $3 }
    $2 == "free" && $4 == cpu && $5 == line && kick != "" && freed == "" { freed = $1 }
    END { if (kick != "" && freed != "") print sender }' | while read sender; do
        [ -d /proc/$IFAD/task/$sender ] && echo yes
    done | grep -q yes
}

# seen_state VM STATE SINCE: how many times VM was marked STATE after mark SINCE.
seen_state() {
    since_mark "$3" | awk -v vm=$1 -v s=$2 '$2 == "mark" && $4 == "state" && $5 == vm && $6 == s {n++} END {print n + 0}'
}

# demoted_lines VM PLACE_OUTPUT PINS HELD: "tid hart line" each vCPU of VM that
# the place output demoted held, from the pins and held lines before it.
demoted_lines() {
    awk -v vm=$1 '/^DEMOTED/ {d = 1; next} d && $1 == vm {print $2}' $2 | while read v; do
        tid=$(sed -n "$((v + 1))p" $3 | cut -d' ' -f2)
        awk -v t=$tid '$1 == t {print $1, $2, $3}' $4
    done
}

METRICS=127.0.0.1:9464

# start_ifad [ifad flags...]: the daemon on the Linux backend, metrics on loopback.
start_ifad() {
    [ -d $C ] || { echo "trace_on first: the harness's own trace is off"; return 1; }
    # A fresh state dir (unless STATE_DIR names one): no scenario inherits
    # another one's VMs.
    ifad --socket /run/ifad.sock --metrics-listen $METRICS --state-dir "${STATE_DIR:-$(mktemp -d)}" "$@" >/tmp/ifad.log 2>&1 &
    IFAD=$!
    # Serving, not only bound: a failed start may leave its socket file.
    until_true 10 sh -c "kill -0 $IFAD && ifactl --socket /run/ifad.sock harts >/dev/null 2>&1" \
        || { tail -5 /tmp/ifad.log; echo "ifad is not serving"; return 1; }
}

# metric NAME: the value ifad's /metrics shows for an unlabelled metric.
metric() {
    wget -q -O - http://$METRICS/metrics | awk -v m=$1 '$1 == m {print $2}'
}

# no_corrections: ifad never had to correct its ledger from what the host showed.
no_corrections() {
    n=$(metric ifad_ledger_corrections_total)
    [ "$n" = 0 ] && return 0
    grep -iE "warn|error" /tmp/ifad.log | tail -5
    echo "ifad corrected its ledger ${n:-(no metric)} times"; return 1
}

stop_ifad() { kill $IFAD; wait $IFAD 2>/dev/null; }

ctl() { ifactl --socket /run/ifad.sock "$@"; }

# vcpu_tids PID: the KVM vCPU thread ids of QEMU process PID.
vcpu_tids() {
    grep -l '/KVM' /proc/$1/task/*/comm 2>/dev/null | sed 's|/proc/[0-9]*/task/||; s|/comm||'
}

# stop_vm PID: the guest is still up (so every check before ran while it was),
# then its QEMU is killed: the kernel must free every line its threads held.
stop_vm() {
    kill -0 $1 2>/dev/null || { echo "QEMU $1 stopped before its checks were done"; return 1; }
    tids=$(vcpu_tids $1)
    kill $1; wait $1 2>/dev/null
    for tid in $tids; do
        [ -z "$(holds $tid)" ] || { echo "thread $tid still holds a line after QEMU exited: $(holds $tid)"; return 1; }
    done
    echo "QEMU $1 exited; the kernel freed its lines"
}

# boot_placed VM N: starts QEMU paused for VM (N vCPUs, its AIA mode), attaches
# it, checks each thread's affinity, resumes it and waits for the guest to
# report N CPUs; runs WHILE_UP while the guest runs, then kills QEMU and
# checks the kernel freed its lines (KEEP=1 leaves it running, pid in $q).
# Fails (returns 1) with the reason last.
boot_placed() {
    vm=$1; n=$2; log=/tmp/l2-$vm.log
    rm -f /tmp/mon-$vm.in /tmp/mon-$vm.out; mkfifo /tmp/mon-$vm.in /tmp/mon-$vm.out
    # QEMU opens both ends of its monitor pipe at start: hold the input open
    # (read-write, so this does not block) and drain the output.
    exec 3<>/tmp/mon-$vm.in
    cat /tmp/mon-$vm.out >/dev/null &
    # The AIA mode ifad chose for the VM's class (burstable: auto).
    mode=$(ctl vm $vm | awk '/^AIA MODE/ {print $3}')
    qemu-system-riscv64 -name $vm,debug-threads=on -S -monitor pipe:/tmp/mon-$vm $L2 \
        -append "$L2APPEND" -accel kvm,riscv-aia=$mode -smp $n -serial file:$log >/tmp/qemu-$vm.log 2>&1 &
    q=$!
    # The glob is expanded at each try: threads appear after QEMU starts.
    until_true 30 sh -c "grep -qs 'CPU $((n - 1))/KVM' /proc/$q/task/*/comm" \
        || { cat /tmp/qemu-$vm.log; echo "no vCPU threads"; return 1; }
    ctl attach --vm $vm --pid $q >/dev/null || { echo "attach failed"; return 1; }
    ctl vm $vm | awk '$1 ~ /^[0-9]+$/ && NF >= 7 {print $2, $7}' >/tmp/pins-$vm
    while read hart tid; do
        mask=$(taskset -p $tid | sed 's/.*: //')
        want=$(printf '%x' $((1 << hart)))
        [ "$mask" = "$want" ] || { echo "thread $tid: mask $mask, want hart $hart"; return 1; }
    done </tmp/pins-$vm
    echo "$vm pinned (hart tid): $(tr '\n' ' ' </tmp/pins-$vm)"
    echo cont >&3
    until_true 180 grep -q "L2: up" $log
    exec 3>&-
    grep -q "exit reason 9" /tmp/qemu-$vm.log && { echo "$vm: KVM_EXIT_FAIL_ENTRY"; return 1; }
    grep -q "L2: up $n cpus" $log || { tail -3 $log; echo "$vm did not come up with $n CPUs"; return 1; }
    # WHILE_UP: a check to run while the guest is up; its failure fails the boot.
    if [ -n "${WHILE_UP:-}" ]; then $WHILE_UP || return 1; fi
    [ -n "${KEEP:-}" ] && return 0
    stop_vm $q
}

# released VM: ifad answers that VM is not placed (exit 2; 1 would be no answer).
released() {
    until_true 10 sh -c "ifactl --socket /run/ifad.sock vm $1 >/dev/null 2>&1; [ \$? = 2 ]"
}

# swap_setup B_APPEND [ifad flags...]: a 10-vCPU burstable VM b (guest command
# line B_APPEND) holds every line of harts 0 and 1; then a guaranteed VM g of 2
# vCPUs limited to harts 0-1 is placed, which makes ifad demote 2 of b's vCPUs.
# Leaves b's QEMU in $qb and "tid hart line" of each demoted vCPU's old line in
# /tmp/demoted; marks "placing g" in our trace just before the place, and the
# state the place answered just after.
swap_setup() {
    b_append=$1; shift
    start_ifad "$@" || { echo "ifad did not start"; return 1; }
    ctl place --vm b --vcpus 10 --class burstable --harts 0-1 >/dev/null || return 1
    L2APPEND="$b_append" KEEP=1 WHILE_UP=observer_agrees boot_placed b 10 || return 1
    qb=$q
    case "$b_append" in *offline=*)
        until_true 60 grep -q "L2: offline" /tmp/l2-b.log || { echo "b's CPUs did not go offline"; return 1; }
        grep "L2: offline" /tmp/l2-b.log
        observer_agrees || return 1;;
    esac
    held_observed >/tmp/held-before-g
    [ "$(wc -l </tmp/held-before-g)" = 10 ] || { echo "b should hold all 10 lines of harts 0-1"; return 1; }
    mark "placing g"
    ctl place --vm g --vcpus 2 --class guaranteed --harts 0-1 | tee /tmp/place-g
    mark "state g $(awk '/^STATE/ {print $2}' /tmp/place-g)"
    demoted_lines b /tmp/place-g /tmp/pins-b /tmp/held-before-g >/tmp/demoted
    echo "demoted (tid hart line): $(tr '\n' ' ' </tmp/demoted)"
    [ "$(wc -l </tmp/demoted)" = 2 ] || { echo "expected 2 of b's vCPUs demoted"; return 1; }
}

# both_up: g and b run, b with 2 vCPUs on MRIF, and KVM agrees with the ledger.
both_up() {
    kill -0 $qb 2>/dev/null || { echo "the burstable VM stopped"; return 1; }
    ctl vm b
    mrif=$(ctl vm b | awk '$1 ~ /^[0-9]+$/ && $3 == "mrif"' | wc -l)
    [ "$mrif" = 2 ] || { echo "expected 2 burstable vCPUs on MRIF, got $mrif"; return 1; }
    observer_agrees
}
