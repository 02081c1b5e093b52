#!/usr/bin/env bash
# Cross-builds ifad and ifactl for riscv64gc-unknown-linux-gnu, statically
# linked: rustup's nightly compiles std itself (-Zbuild-std) from sid's
# rust-src, since no riscv64 std can be fetched here. Incremental in the cache.
. "$(dirname "$(readlink -f "$0")")/lib.sh"

src=$(ls -d $CACHE/rust-src/usr/src/rustc-*/library | head -1)
[ -d "$src" ] || { echo "no rust-src unpacked; run setup.sh" >&2; exit 1; }
cd "$REPO"
env -u RUSTUP_TOOLCHAIN \
    __CARGO_TESTS_ONLY_SRC_ROOT="$src" \
    CARGO_TARGET_DIR="$CACHE/target" \
    CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_LINKER=riscv64-linux-gnu-gcc \
    RUSTFLAGS="-C target-feature=+crt-static" \
    cargo +nightly build --release -q -Zbuild-std=std,panic_abort \
        --target riscv64gc-unknown-linux-gnu -p ifad -p ifactl
out=$CACHE/target/riscv64gc-unknown-linux-gnu/release
ls -la "$out/ifad" "$out/ifactl" | awk '{print "build:", $NF, $5, "bytes"}'
