# Shared by the scenarios (not itself run: not executable).
# -d unimp: QEMU logs "un-handled exit reason 9" (KVM_EXIT_FAIL_ENTRY) only then.
L2="-M virt,aia=aplic-imsic -cpu host -bios none -m 256M -no-reboot -display none -d unimp
    -kernel /l2/vmlinuz -initrd /l2/initrd.gz -append console=ttyS0"

# until SECONDS COMMAND...: polls every half second.
until_true() {
    t=$(($1 * 2)); shift
    while [ $t -gt 0 ]; do "$@" && return 0; sleep 0.5; t=$((t - 1)); done
    return 1
}

start_ifad() {
    ifad --socket /run/ifad.sock --metrics-listen off --no-kprobes >/tmp/ifad.log 2>&1 &
    IFAD=$!
    until_true 10 test -S /run/ifad.sock
}

ctl() { ifactl --socket /run/ifad.sock "$@"; }
