#!/usr/bin/env bash
# Validates the manifests in deploy/kubernetes/ against the Kubernetes API
# schemas (kubernetes-validate --strict: unknown fields are errors), checks
# the kustomization lists them, that the ConfigMap's ifad.toml parses, and,
# when a built ifad is at hand, that the flags and TOML keys used exist.
# Run from anywhere:  bash deploy/check-kubernetes.sh
# kubernetes-validate is installed from PyPI into a virtualenv under
# ${XDG_CACHE_HOME:-$HOME/.cache}/ifad-kubernetes-validate and reused.
set -euo pipefail
cd "$(dirname "$0")/.."

KV_VERSION=1.37.0
# The oldest Kubernetes these manifests claim to support, and the newest
# the pinned kubernetes-validate knows.
K8S_VERSIONS=(1.30.0 1.37.0)
DIR=deploy/kubernetes
VENV=${XDG_CACHE_HOME:-$HOME/.cache}/ifad-kubernetes-validate

failed=0
pass() { printf 'PASS %s\n' "$1"; }
fail() { printf 'FAIL %s: %s\n' "$1" "$2"; failed=1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- kubernetes-validate in a cached virtualenv --------------------------------
source tools/python-venv.sh

if [[ $("$VENV/bin/kubernetes-validate" --version 2>/dev/null) != "$KV_VERSION" ]]; then
    make_venv "$VENV" "kubernetes-validate $KV_VERSION" "kubernetes-validate==$KV_VERSION"
fi
echo "kubernetes-validate $("$VENV/bin/kubernetes-validate" --version) (Kubernetes ${K8S_VERSIONS[*]})"

# --- schema validation, per file --------------------------------------------
shopt -s nullglob
manifests=()
for f in "$DIR"/*.yaml "$DIR"/*.yml; do
    case $(basename "$f") in
        kustomization.yaml|kustomization.yml) ;;  # kustomize's, not an API object
        *) manifests+=("$f") ;;
    esac
done
((${#manifests[@]})) || { echo "FAIL manifests: none in $DIR"; exit 1; }

for f in "${manifests[@]}"; do
    why=""
    for v in "${K8S_VERSIONS[@]}"; do
        rc=0
        timeout 120 "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$f" \
            >"$tmp/out" 2>&1 || rc=$?
        # A warning is a failure too: "Couldn't find schema" is how a
        # misspelt kind or apiVersion shows up.
        if ((rc != 0)) || grep -qE '^(WARN|ERROR)' "$tmp/out"; then
            sed 's/^/    /' "$tmp/out"
            why+="${why:+; }invalid for Kubernetes $v"
        fi
    done
    if [[ -n $why ]]; then fail "$f" "$why"; else pass "$f"; fi
done

# --- kustomization lists every manifest ----------------------------------------
if [[ -f $DIR/kustomization.yaml ]]; then
    if out=$("$VENV/bin/python" - "$DIR" "${manifests[@]}" <<'EOF'
import os, sys, yaml
d, files = sys.argv[1], sys.argv[2:]
k = yaml.safe_load(open(os.path.join(d, "kustomization.yaml")))
listed = set(k.get("resources", []))
names = {os.path.basename(f) for f in files}
errs = [f"{r} listed but missing" for r in sorted(listed - names)]
errs += [f"{n} not listed" for n in sorted(names - listed)]
print("; ".join(errs))
sys.exit(1 if errs else 0)
EOF
    ); then pass "$DIR/kustomization.yaml"; else fail "$DIR/kustomization.yaml" "$out"; fi
fi

# --- ifad.toml and the daemon's flags ----------------------------------------
# The newest built ifad (CI's cargo test builds target/debug/ifad); without
# one, build it: a check that skips itself proves nothing.
target=${CARGO_TARGET_DIR:-target}
newest_ifad() {
    bin=""
    for b in "$target/debug/ifad" "$target/release/ifad"; do
        if [[ -x $b && ( -z $bin || $b -nt $bin ) ]]; then bin=$b; fi
    done
}
newest_ifad
if [[ -z $bin ]]; then
    echo "no built ifad under $target: cargo build -p ifad"
    cargo build -q -p ifad
    newest_ifad
fi
help=$tmp/help
if [[ -n $bin ]] && timeout 10 "$bin" --help >"$help" 2>&1; then :; else help=""; fi

rc=0
out=$("$VENV/bin/python" - "$help" "$tmp" "${manifests[@]}" <<'EOF' 2>&1
import re, sys, yaml
try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None
help_path, tmp, files = sys.argv[1], sys.argv[2], sys.argv[3:]
flags = set(re.findall(r"--([a-z0-9-]+)", open(help_path).read())) if help_path else None
errs, seen_toml = [], False
for f in files:
    for doc in yaml.safe_load_all(open(f)):
        if not doc:
            continue
        kind = doc.get("kind")
        if kind == "ConfigMap" and "ifad.toml" in doc.get("data", {}):
            seen_toml = True
            open(f"{tmp}/ifad.toml", "w").write(doc["data"]["ifad.toml"])
            if tomllib is None:
                print("note: no tomllib, ifad.toml not parsed")
                continue
            try:
                keys = tomllib.loads(doc["data"]["ifad.toml"]).keys()
            except tomllib.TOMLDecodeError as e:
                errs.append(f"{f}: ifad.toml: {e}")
                continue
            if flags is not None:
                errs += [f"{f}: ifad.toml key {k!r} is not an ifad flag" for k in keys if k not in flags]
        if kind == "DaemonSet":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                open(f"{tmp}/args", "w").write("".join(a + "\n" for a in c.get("args", [])))
                for a in c.get("args", []):
                    m = re.match(r"--([a-z0-9-]+)", a)
                    if m and flags is not None and m.group(1) not in flags:
                        errs.append(f"{f}: arg --{m.group(1)} is not an ifad flag")
if not seen_toml:
    errs.append("no ConfigMap with ifad.toml")
print("\n".join(errs))
sys.exit(1 if errs else 0)
EOF
) || rc=$?
if ((rc == 0)); then
    [[ -n $out ]] && printf '%s\n' "$out"
    if [[ -n $help ]]; then pass "flags and ifad.toml keys (against $bin --help)"
    else fail "flags and ifad.toml keys" "no runnable ifad under $target"; fi
else
    fail "flags and ifad.toml" "$(printf '%s' "$out" | paste -sd';' -)"
fi

# The daemon's own judgement of the ConfigMap's file plus the DaemonSet's
# args (values too: drift, kick-signal, ...), where it has --check-config.
if [[ -n $help && -f $tmp/ifad.toml ]] && grep -q -- '--check-config' "$help"; then
    args=()
    [[ -f $tmp/args ]] && mapfile -t args <"$tmp/args"
    if out=$(env -u IFAD_CONFIG -u IFAD_SOCKET -u IFAD_STATE_DIR timeout 10 \
        "$bin" --config "$tmp/ifad.toml" --check-config "${args[@]}" 2>&1); then
        pass "ifad --check-config (ConfigMap + DaemonSet args)"
    else
        fail "ifad --check-config" "$(printf '%s' "$out" | sed "s#$tmp/#ConfigMap #" | paste -sd';' -)"
    fi
else
    fail "ifad --check-config" "${bin:-no ifad} has no --check-config, or the ConfigMap has no ifad.toml"
fi

exit "$failed"
