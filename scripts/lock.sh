#!/usr/bin/env bash
# Regenerates requirements/runtime.lock: every runtime dependency of driftwatch (and the
# build backend the image uses), pinned by version and SHA-256 of every file PyPI has for
# that version, for the Docker image (`pip install --require-hashes`). Resolved from PyPI
# itself, ignoring local pip configuration (mirrors, find-links, constraints), for the
# image's Python (3.11; run this with a Python 3.11 that has pip-tools: `pip install pip-tools`).
#
#   scripts/lock.sh            # after changing dependencies in pyproject.toml
#   scripts/lock.sh --upgrade  # move every pin to the newest allowed version
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then PY=.venv/bin/python; fi
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || { echo "lock.sh: needs Python 3.11 (the image's); set PYTHON" >&2; exit 2; }

env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_CONSTRAINT \
    PIP_CONFIG_FILE=/dev/null \
    "$PY" -m piptools compile \
    --quiet --generate-hashes --allow-unsafe --strip-extras \
    --index-url https://pypi.org/simple --no-emit-index-url --no-emit-find-links \
    --output-file requirements/runtime.lock \
    "$@" pyproject.toml requirements/build.in
