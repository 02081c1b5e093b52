# Sourced by the riscv-kvm harness scripts: where downloads and builds are
# cached, which Debian archive to use (the one this machine's apt already
# uses; never written into the repository), and stage timing.
set -euo pipefail

HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO=$(readlink -f "$HERE/../..")
CACHE=${IFAD_RIG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ifad-riscv-kvm}
mkdir -p "$CACHE"

archive_uri() {
    local u
    u=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v -- -security | head -1 || true)
    [ -n "$u" ] || u=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
    echo "$u"
}

# apt options for an isolated package list of one architecture and suite set.
apt_opts() { # NAME ARCH
    local d=$CACHE/apt-$1
    echo "-oAPT::Architecture=$2 -oAPT::Architectures=$2 -oDir::State::Lists=$d/lists -oDir::Etc::SourceList=$d/sources.list -oDir::Etc::SourceParts=/dev/null -oDir::Cache::Archives=$d/cache/archives -oDir::Cache=$d/cache"
}

STAGE_T0=0
stage() { # NAME: prints the previous stage's wall time, starts a new one
    local now; now=$(date +%s)
    if [ -n "${STAGE_NAME:-}" ]; then
        echo "TIME ${STAGE_NAME} $((now - STAGE_T0))s"
    fi
    STAGE_NAME=$1; STAGE_T0=$now
}

kernel_version() { ls "$CACHE/kroot/usr/lib/modules" 2>/dev/null | head -1; }
