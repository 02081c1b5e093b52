#!/usr/bin/env bash
# The emulated host's initramfs: busybox, kvm.ko, ifad, ifactl, init and
# the scenarios.
. "$(dirname "$(readlink -f "$0")")/lib.sh"
out=$1
kver=$(kernel_version)
w=$(mktemp -d "$CACHE/initrd.XXXX")
mkdir -p $w/{bin,sbin,proc,sys,dev,tmp,run,lib/modules,scenarios}
cp $CACHE/busybox/usr/bin/busybox $w/bin/busybox
ln -s busybox $w/bin/sh
xz -dc $CACHE/kroot/usr/lib/modules/$kver/kernel/arch/riscv/kvm/kvm.ko.xz > $w/lib/modules/kvm.ko
# The driver of the emulated host's virtio-rng-pci device (09: an MSI-X device
# standing in for an assigned one; virtio-pci and rng-core are built in).
xz -dc $CACHE/kroot/usr/lib/modules/$kver/kernel/drivers/char/hw_random/virtio-rng.ko.xz > $w/lib/modules/virtio-rng.ko
bin=$CACHE/target/riscv64gc-unknown-linux-gnu/release
cp $bin/ifad $bin/ifactl $w/bin/
# The nested VMM: riscv64 QEMU and its shared-library closure.
n=$CACHE/nested
closure() { # prints library paths under $n needed by the given files
    local todo=("$@") seen=" " f lib d
    while [ ${#todo[@]} -gt 0 ]; do
        f=${todo[0]}; todo=("${todo[@]:1}")
        for lib in $(riscv64-linux-gnu-readelf -d "$n/$f" 2>/dev/null | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
            for d in usr/lib/riscv64-linux-gnu lib/riscv64-linux-gnu usr/lib lib; do
                if [ -e "$n/$d/$lib" ]; then
                    case "$seen" in *" $d/$lib "*) ;; *) seen="$seen$d/$lib "; todo+=("$d/$lib"); echo "$d/$lib";; esac
                    break
                fi
            done
        done
    done
}
mkdir -p $w/usr/bin $w/lib $w/l2
cp $n/usr/bin/qemu-system-riscv64 $w/usr/bin/
for p in $(closure usr/bin/qemu-system-riscv64) usr/lib/riscv64-linux-gnu/ld-linux-riscv64-lp64d.so.1; do
    mkdir -p "$w/$(dirname $p)"; cp -L "$n/$p" "$w/$p"
done
ln -sf /usr/lib/riscv64-linux-gnu/ld-linux-riscv64-lp64d.so.1 $w/lib/ld-linux-riscv64-lp64d.so.1
# The nested guest: the same kernel, and an initramfs that reports its CPUs (l2-init).
cp $CACHE/kroot/usr/lib/modules/$kver/vmlinuz $w/l2/vmlinuz
g=$(mktemp -d "$CACHE/l2.XXXX"); mkdir -p $g/bin $g/proc $g/sys $g/dev
cp $CACHE/busybox/usr/bin/busybox $g/bin/busybox; ln -s busybox $g/bin/sh
cp $HERE/l2-init $g/init
chmod +x $g/init
(cd $g && find . | cpio -o -H newc --quiet | gzip -1 > $w/l2/initrd.gz)
rm -rf "$g"
cp $HERE/init $w/init
# IFAD_RIG_SCENARIOS: another directory of scenarios (a wip one, by hand).
cp ${IFAD_RIG_SCENARIOS:-$HERE/scenarios}/* $w/scenarios/
chmod +x $w/init $w/scenarios/[0-9]*
(cd $w && find . | cpio -o -H newc --quiet | gzip -1 > "$out")
rm -rf "$w"
