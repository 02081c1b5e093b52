# Sourced by the check and test scripts that need Python packages from PyPI:
#   make_venv VENV WHAT PIP_ARGS...
# makes a fresh virtualenv at VENV from Debian's python3 (a python3 on PATH may
# be pyenv's), installs PIP_ARGS into it, and exits 1 with pip's log if that
# fails. WHAT names the packages in messages. Installs python3-venv with apt
# where Debian's python3 lacks ensurepip.

apt_install() {
    command -v apt-get >/dev/null 2>&1 || { echo "FAIL tools: need $*, no apt-get"; exit 1; }
    echo "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq
    timeout 600 apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

make_venv() {
    local venv=$1 what=$2 py=python3 log
    shift 2
    log=$(mktemp)
    [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
    command -v "$py" >/dev/null 2>&1 || { apt_install python3 python3-venv; py=/usr/bin/python3; }
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    # Debian splits ensurepip into python3-venv.
    if ! "$py" -m venv "$venv" >"$log" 2>&1; then
        rm -rf "$venv"
        apt_install python3-venv
        "$py" -m venv "$venv"
    fi
    echo "installing $what into $venv"
    if ! timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check "$@" >"$log" 2>&1; then
        cat "$log"
        rm -rf "$venv" "$log"
        echo "FAIL tools: pip install $what"
        exit 1
    fi
    rm -f "$log"
}
