#!/usr/bin/env bash
# Proves ifad on real RISC-V KVM: boots Debian's riscv64 Linux with KVM and
# AIA on a RISC-V host emulated by QEMU (virt, aia=aplic-imsic, 5 guest
# files per hart, 4 harts), runs the scenarios inside, and prints one line
# per scenario: PASS <name> or FAIL <name>: <reason>. Exits 0 only if every
# scenario passed. Root, Debian 12 amd64; downloads and builds are cached.
. "$(dirname "$(readlink -f "$0")")/lib.sh"

stage setup;    "$HERE/setup.sh"
stage build;    "$HERE/build.sh"
stage initrd;   "$HERE/mkinitrd.sh" "$CACHE/initrd.gz"
stage boot
log=$CACHE/boot.log
kver=$(kernel_version)
timeout "${BOOT_TIMEOUT:-1500}" qemu-system-riscv64 \
    -machine virt,aia=aplic-imsic,aia-guests=5 -cpu rv64,h=true -smp 4 -m 2G \
    -device virtio-rng-pci \
    -nographic -no-reboot \
    -kernel "$CACHE/kroot/usr/lib/modules/$kver/vmlinuz" -initrd "$CACHE/initrd.gz" \
    -append "console=ttyS0 quiet loglevel=4 rdinit=/init" >"$log" 2>&1 </dev/null || true
stage done
tr -d '\r' <"$log" >"$log.txt"
grep -a -E '^  [0-9a-z-]+\| ' "$log.txt" || true
results=$(grep -a -E '^IFAD-SCENARIO (PASS|FAIL)' "$log.txt" | sed 's/^IFAD-SCENARIO //')
expected=$(ls "${IFAD_RIG_SCENARIOS:-$HERE/scenarios}"/[0-9]* | wc -l)
if [ -z "$results" ]; then
    echo "FAIL boot: no scenario ran; see $log.txt"; tail -20 "$log.txt"; exit 1
fi
echo "$results"
passed=$(echo "$results" | grep -c '^PASS' || true)
[ "$passed" = "$expected" ] || { echo "$passed of $expected scenarios passed"; exit 1; }
