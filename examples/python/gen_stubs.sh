#!/usr/bin/env bash
# Generates the Python stubs of ifa.v1 (ifa/v1/ifa_pb2.py, ifa/v1/ifa_pb2_grpc.py)
# from proto/ifa/v1/ifa.proto into OUT (default: a new temp dir), and prints
# OUT. Stubs are never committed: generate them where you build.
#   bash examples/python/gen_stubs.sh [OUT]
#   PYTHONPATH=$(bash examples/python/gen_stubs.sh) python examples/python/ifad_client.py ...
# Needs grpcio-tools (pip install -r tests/python/requirements.txt).
# PYTHON names the interpreter that has it (default: python3).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$(mktemp -d "${TMPDIR:-/tmp}/ifa-stubs.XXXXXX")}
mkdir -p "$out"
"${PYTHON:-python3}" -m grpc_tools.protoc -I "$root/proto" \
    --python_out="$out" --grpc_python_out="$out" \
    "$root/proto/ifa/v1/ifa.proto" >&2
printf '%s\n' "$out"
