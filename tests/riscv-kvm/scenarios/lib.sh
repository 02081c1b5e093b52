# Shared by the scenarios (not itself run: not executable).
# -d unimp: QEMU logs "un-handled exit reason 9" (KVM_EXIT_FAIL_ENTRY) only then.
L2="-M virt,aia=aplic-imsic -cpu host -bios none -m 256M -no-reboot -display none -d unimp
    -kernel /l2/vmlinuz -initrd /l2/initrd.gz"
# The guest's command line; hold=N keeps it up N seconds after it reports.
L2APPEND=${L2APPEND:-console=ttyS0}

# until SECONDS COMMAND...: polls every half second.
until_true() {
    t=$(($1 * 2)); shift
    while [ $t -gt 0 ]; do "$@" && return 0; sleep 0.5; t=$((t - 1)); done
    return 1
}

T=/sys/kernel/tracing

# start_ifad [ifad flags...]: where the observer is on, a tracing instance of our own copies
# its events, so `observer_agrees` can check ifad independently.
start_ifad() {
    # A fresh state dir (unless STATE_DIR names one): no scenario inherits
    # another one's VMs.
    ifad --socket /run/ifad.sock --metrics-listen off --state-dir "${STATE_DIR:-$(mktemp -d)}" "$@" >/tmp/ifad.log 2>&1 &
    IFAD=$!
    until_true 10 test -S /run/ifad.sock || return 1
    OBSERVED=
    if grep -q "kprobe observer on" /tmp/ifad.log; then
        mkdir -p $T/instances/check && echo 1 >$T/instances/check/events/ifad/enable && OBSERVED=1
    fi
    return 0
}

# stop_ifad: our instance lets go of ifad's probes first, or ifad could not
# remove them on exit and the next ifad would find them taken.
stop_ifad() {
    if [ -n "$OBSERVED" ]; then
        echo 0 >$T/instances/check/events/ifad/enable; rmdir $T/instances/check
    fi
    kill $IFAD; wait $IFAD 2>/dev/null
}

# held_observed: "tid hart line" per line KVM holds, replayed from our copy
# of KVM's alloc/free calls.
held_observed() {
    grep -v '^#' $T/instances/check/trace | awk '
    match($0, /-[0-9]+ +\[[0-9]+\] /) {
        tid = substr($0, RSTART + 1); sub(/ .*/, "", tid)
        for (i = 1; i <= NF; i++) if (split($i, kv, "=") == 2) v[kv[1]] = kv[2]
        if ($0 ~ / alloc_hgei: /) calling[tid] = v["cpu"]
        else if ($0 ~ / alloc_hgei_ret: /) {
            if ((tid in calling) && v["ret"] + 0 > 0) holder[calling[tid] " " v["ret"]] = tid
            delete calling[tid]
        } else if ($0 ~ / free_hgei: /) delete holder[v["cpu"] " " v["hgei"]]
    }
    END { for (k in holder) print holder[k], k }' | sort
}

# held_ledger: "tid hart line" per vCPU ifad placed on a VS-file.
held_ledger() {
    for vm in $(ctl vms | awk 'NR > 1 {print $1}'); do
        ctl vm $vm | awk '$1 ~ /^[0-9]+$/ && $3 == "vsfile" && $7 ~ /^[0-9]+$/ {print $7, $2, $4}'
    done | sort
}

# observer_agrees: KVM's allocations, as our own copy of the kprobe events
# shows them, are exactly the ledger's: each VS-file vCPU holds one line on
# its hart and nothing else holds one. Per hart, prints what KVM holds.
observer_agrees() {
    [ -n "$OBSERVED" ] || { echo "observer unavailable on this kernel: not compared"; return 0; }
    # ifad's own observer may be a tick behind: give it a few seconds.
    until_true 5 sh -c ". /scenarios/lib.sh; held_observed >/tmp/held-observed; held_ledger >/tmp/held-ledger
        cmp -s /tmp/held-observed /tmp/held-ledger"
    ok=$?
    echo "KVM holds per hart: $(awk '{n[$2]++; c++} END {for (h in n) printf "%s:%d ", h, n[h]; if (!c) printf "none"}' /tmp/held-observed)"
    [ $ok = 0 ] && return 0
    echo "observed (tid hart line):"; cat /tmp/held-observed
    echo "ledger (tid hart line):"; cat /tmp/held-ledger
    echo "KVM's allocations differ from the ledger"; return 1
}

ctl() { ifactl --socket /run/ifad.sock "$@"; }

# boot_placed VM N: starts QEMU paused for VM (N vCPUs, its AIA mode), attaches
# it, checks each thread's affinity, resumes it and waits for the guest to
# report N CPUs and power off. Fails (returns 1) with the reason last.
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
    # WHILE_UP: a check to run while the guest is up; its failure fails the boot.
    if [ -n "${WHILE_UP:-}" ]; then $WHILE_UP || return 1; fi
    # KEEP=1: leave it running (its QEMU's pid is in $q).
    [ -n "${KEEP:-}" ] && { grep -q "L2: up $n cpus" $log; return; }
    grep -q "exit reason 9" /tmp/qemu-$vm.log && { echo "$vm: KVM_EXIT_FAIL_ENTRY"; return 1; }
    grep -q "L2: up $n cpus" $log || { tail -3 $log; echo "$vm did not come up with $n CPUs"; return 1; }
    # The guest powers off: QEMU exits.
    until_true 30 sh -c "! kill -0 $q 2>/dev/null" || kill $q
    wait $q 2>/dev/null
    return 0
}

# released VM: ifad answers that VM is not placed (exit 2; 1 would be no answer).
released() {
    until_true 10 sh -c "ifactl --socket /run/ifad.sock vm $1 >/dev/null 2>&1; [ \$? = 2 ]"
}
