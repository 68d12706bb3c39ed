#!/usr/bin/env bash
# The main job on the embedded default, from a fresh machine: sets up, then runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
driftwatch replay examples/sample_events.jsonl --alerts-out .driftwatch/alerts.jsonl "$@"
