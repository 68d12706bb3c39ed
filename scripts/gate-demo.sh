#!/usr/bin/env bash
# The pre-promotion gate on real trained models, from a fresh machine: sets up, trains
# a champion, an honest challenger and a poisoned challenger (scikit-learn, saved as
# .skops with their SHA-256 in a training-run record), then gates both challengers.
# The honest one must pass (exit 0), the poisoned one must be blocked (exit 1).
# Extra arguments are passed to examples/gate/train.py (e.g. --days 0.25).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
OUT=${GATE_EXAMPLE_DIR:-.driftwatch/gate-demo}
export GATE_EXAMPLE_DIR=$OUT

python examples/gate/train.py --out "$OUT" "$@"

gate() {  # gate NAME: run driftwatch gate on one challenger, print its exit status
    local name=$1 status=0
    echo
    echo "=== driftwatch gate: champion vs $name challenger ==="
    driftwatch gate --champion examples/gate/scorer.py:champion \
        --challenger "examples/gate/scorer.py:$name" \
        --traffic "$OUT/traffic.jsonl.gz" --training "$OUT/training/$2" \
        --json "$OUT/gate-$name.json" --html "$OUT/gate-$name.html" || status=$?
    echo "exit status $status; JSON $OUT/gate-$name.json, HTML $OUT/gate-$name.html"
    return "$status"
}

honest=0; poisoned=0
gate honest challenger || honest=$?
gate poisoned poisoned || poisoned=$?
echo
if [ "$honest" -eq 0 ] && [ "$poisoned" -eq 1 ]; then
    echo "OK: the honest challenger passes, the poisoned challenger is blocked."
else
    echo "UNEXPECTED: honest exit $honest (want 0), poisoned exit $poisoned (want 1)." >&2
    exit 1
fi
