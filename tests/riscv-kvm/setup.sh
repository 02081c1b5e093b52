#!/usr/bin/env bash
# Installs what the harness needs (as root, Debian 12 amd64), from the Debian
# archive this machine's apt uses: QEMU 10 for riscv64 (bookworm-backports),
# the riscv64 cross linker, and, unpacked into the cache, sid's riscv64
# kernel + modules, busybox and rust-src. Cached: runs once per machine.
. "$(dirname "$(readlink -f "$0")")/lib.sh"

[ -f "$CACHE/setup.done" ] && command -v qemu-system-riscv64 >/dev/null && [ -x "$CACHE/nested/usr/bin/qemu-system-riscv64" ] && exit 0
M=$(archive_uri)
[ -n "$M" ] || { echo "no Debian archive in this machine's apt sources" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
key="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"

d=$CACHE/apt-host; mkdir -p $d/lists/partial $d/cache/archives/partial
printf 'deb %s %s bookworm main\ndeb %s %s bookworm-updates main\ndeb %s %s bookworm-backports main\n' \
    "$key" "$M" "$key" "$M" "$key" "$M" > $d/sources.list
o=$(apt_opts host amd64)
apt-get $o -q update >/dev/null
apt-get $o -q install -y -t bookworm-backports qemu-system-riscv >/dev/null
apt-get $o -q install -y gcc-riscv64-linux-gnu libc6-dev-riscv64-cross cpio xz-utils >/dev/null

d=$CACHE/apt-sid; mkdir -p $d/lists/partial $d/cache/archives/partial
echo "deb $key $M sid main" > $d/sources.list
o="$(apt_opts sid riscv64) -oDir::State::status=/dev/null"
apt-get $o -q update >/dev/null
kpkg=$(apt-cache $o depends linux-image-riscv64 | awk '/Depends: linux-image-[0-9]/{print $2}')
kver=${kpkg#linux-image-}
mkdir -p $CACHE/debs && cd $CACHE/debs
apt-get $o -q download busybox-static rust-src "linux-binary-$kver" "linux-modules-$kver" >/dev/null 2>&1
rm -rf $CACHE/kroot $CACHE/busybox $CACHE/rust-src
mkdir -p $CACHE/kroot $CACHE/busybox $CACHE/rust-src
dpkg -x linux-binary-$kver*.deb $CACHE/kroot
dpkg -x linux-modules-$kver*.deb $CACHE/kroot
dpkg -x busybox-static_*.deb $CACHE/busybox
dpkg -x rust-src_*.deb $CACHE/rust-src
# The VMM inside the emulated host: sid's riscv64 QEMU and the packages it
# needs, unpacked (mkinitrd.sh copies the binary's library closure).
mkdir -p $CACHE/nested-debs && cd $CACHE/nested-debs
apt-cache $o depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances --no-pre-depends qemu-system-riscv 2>/dev/null \
    | grep -v -E '^ |^<' | sort -u \
    | grep -v -E '^(systemd|libpam|passwd|login.defs|opensysusers|debconf|cdebconf|base-passwd|libsemanage|libdebian-installer4|libnewt|libslang2|libtextwrap1|libdebconfclient0|readline-common)' \
    > ../nested-pkgs.txt
apt-get $o -q download $(cat ../nested-pkgs.txt) >/dev/null 2>&1 || true
rm -rf $CACHE/nested && mkdir -p $CACHE/nested
for f in *.deb; do dpkg -x "$f" $CACHE/nested; done
apt-get $(apt_opts host amd64) -q install -y binutils-riscv64-linux-gnu >/dev/null
touch $CACHE/setup.done
echo "setup: qemu $(qemu-system-riscv64 --version | head -1 | awk '{print $4}'), kernel $kver"
