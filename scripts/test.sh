#!/usr/bin/env bash
# The test command (README, CI): set up, lint, type-check and run the whole suite.
# The tests start and stop the services they need themselves (tansu broker,
# Alertmanager, embedded ClickHouse) on free local ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check src streams tests bench
mypy
pytest "$@"
