#!/usr/bin/env bash
# The main job on the embedded default, from a fresh machine: sets up, then runs
# `driftwatch demo` (extra arguments are passed on, e.g. --seed 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
exec driftwatch demo "$@"
