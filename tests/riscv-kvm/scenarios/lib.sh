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

start_ifad() { # [ifad flags...]
    ifad --socket /run/ifad.sock --metrics-listen off ${KPROBES:---no-kprobes} "$@" >/tmp/ifad.log 2>&1 &
    IFAD=$!
    until_true 10 test -S /run/ifad.sock
}

ctl() { ifactl --socket /run/ifad.sock "$@"; }

# boot_placed VM N: starts QEMU paused for VM (N vCPUs, HWACCEL), attaches
# it, checks each thread's affinity, resumes it and waits for the guest to
# report N CPUs and power off. Fails (returns 1) with the reason last.
boot_placed() {
    vm=$1; n=$2; log=/tmp/l2-$vm.log
    rm -f /tmp/mon-$vm.in /tmp/mon-$vm.out; mkfifo /tmp/mon-$vm.in /tmp/mon-$vm.out
    # QEMU opens both ends of its monitor pipe at start: hold the input open
    # (read-write, so this does not block) and drain the output.
    exec 3<>/tmp/mon-$vm.in
    cat /tmp/mon-$vm.out >/dev/null &
    qemu-system-riscv64 -name $vm,debug-threads=on -S -monitor pipe:/tmp/mon-$vm $L2 \
        -append "$L2APPEND" -accel kvm,riscv-aia=hwaccel -smp $n -serial file:$log >/tmp/qemu-$vm.log 2>&1 &
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
    [ -n "${WHILE_UP:-}" ] && $WHILE_UP
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
