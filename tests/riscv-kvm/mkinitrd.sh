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
bin=$CACHE/target/riscv64gc-unknown-linux-gnu/release
cp $bin/ifad $bin/ifactl $w/bin/
cp $HERE/init $w/init
cp $HERE/scenarios/* $w/scenarios/
chmod +x $w/init $w/scenarios/*
(cd $w && find . | cpio -o -H newc --quiet | gzip -1 > "$out")
rm -rf "$w"
