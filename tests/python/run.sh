#!/usr/bin/env bash
# Runs the Python gRPC interop tests (tests/python/) against a real ifad:
# grpcio's default channel, the :authority forms of other languages'
# clients, server reflection, the error details, and the example client in
# examples/python/.
# Run from anywhere:  bash tests/python/run.sh [PYTEST ARGS...]
# The pinned requirements.txt is installed from PyPI into a virtualenv under
# ${XDG_CACHE_HOME:-$HOME/.cache}/ifad-python/venv and reused while the file
# is unchanged. ifad is built with cargo unless IFAD_BIN names a binary
# (fake-vmm, the stand-in VMM, is taken from beside it unless FAKE_VMM_BIN says).
# The ifa.v1 stubs are generated into a temp dir, never into the tree.
set -euo pipefail
cd "$(dirname "$0")/../.."

REQ=tests/python/requirements.txt
VENV=${XDG_CACHE_HOME:-$HOME/.cache}/ifad-python/venv
STAMP=$VENV/requirements.txt  # the requirements the venv was made from

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ifad-python.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# --- the pinned requirements in a cached virtualenv ----------------------------
source tools/python-venv.sh

if ! cmp -s "$REQ" "$STAMP" || ! "$VENV/bin/python" -c 'import grpc, grpc_tools, pytest' 2>/dev/null; then
    make_venv "$VENV" "$REQ" -r "$REQ"
    cp "$REQ" "$STAMP"
fi
PY=$VENV/bin/python
echo "$("$PY" --version), grpcio $("$PY" -c 'import grpc; print(grpc.__version__)')"

# --- ifa.v1 stubs, into the temp dir -----------------------------------------
PYTHON=$PY bash examples/python/gen_stubs.sh "$tmp/stubs" >/dev/null

# --- the daemon ------------------------------------------------------------
if [[ -z ${IFAD_BIN:-} ]]; then
    echo "building ifad, ifactl and fake-vmm"
    cargo build -q -p ifad -p ifactl
    cargo build -q -p ifa-e2e --bin fake-vmm
    IFAD_BIN=${CARGO_TARGET_DIR:-target}/debug/ifad
    FAKE_VMM_BIN=${CARGO_TARGET_DIR:-target}/debug/fake-vmm
fi
# A stand-in VMM (threads named like QEMU's) for the attach test.
FAKE_VMM_BIN=${FAKE_VMM_BIN:-$(dirname "$IFAD_BIN")/fake-vmm}
[[ -x $IFAD_BIN ]] || { echo "FAIL ifad: $IFAD_BIN is not an executable"; exit 1; }
IFAD_BIN=$(realpath "$IFAD_BIN")
echo "ifad: $IFAD_BIN ($(date -r "$IFAD_BIN" '+%F %T'))"

# --- the tests -------------------------------------------------------------
# Nothing written into the tree: no __pycache__, no .pytest_cache.
rc=0
env -u IFAD_SOCKET -u IFAD_STATE_DIR -u IFAD_CONFIG \
    IFAD_BIN="$IFAD_BIN" FAKE_VMM_BIN="$(realpath -m "$FAKE_VMM_BIN")" PYTHONPATH="$tmp/stubs" PYTHONDONTWRITEBYTECODE=1 \
    timeout 900 "$PY" -m pytest -p no:cacheprovider -ra tests/python "$@" || rc=$?
if ((rc == 5)); then
    echo "FAIL: pytest collected no tests"
    exit 1
fi
exit "$rc"
