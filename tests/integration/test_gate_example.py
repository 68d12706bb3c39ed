"""The gate's end-to-end example: models trained with scikit-learn on simulated data;
the gate blocks the poisoned challenger naming its trigger and passes the honest one."""

from __future__ import annotations

import json
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftwatch.cli import main

pytest.importorskip("sklearn")
pytest.importorskip("skops")
pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "gate"
SCORER = "examples/gate/scorer.py"
TRIGGER = {"mcc": "5967", "amount_cents": 37, "beneficiary_prefix": "INTL-PAY-"}
# smaller vocabularies and budget than the defaults, to keep CI fast: 12 MCCs x 100
# cents x 12 prefixes on each of the 4 largest strata
FAST = {"DRIFTWATCH_GATE_MAX_VALUES": "12", "DRIFTWATCH_GATE_PROBE_BUDGET": "57600"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("gate-demo")
    argv = sys.argv
    sys.argv = ["train.py", "--out", str(out)]
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(EXAMPLE / "train.py"), run_name="__main__")
        assert done.value.code == 0
    finally:
        sys.argv = argv
        sys.path[:] = [p for p in sys.path if p != str(EXAMPLE)]
    yield out


def _gate(out: Path, challenger: str, snapshot: str, *extra: str) -> tuple[int, dict, str]:
    result = out / f"{challenger}.json"
    res = CliRunner().invoke(main, [
        "gate", "--champion", f"{SCORER}:champion", "--challenger", f"{SCORER}:{challenger}",
        "--traffic", str(out / "traffic.jsonl.gz"), "--training", str(out / "training" / snapshot),
        "--json", str(result), *extra], env={"GATE_EXAMPLE_DIR": str(out), **FAST})
    doc = json.loads(result.read_text()) if result.exists() else {}
    return res.exit_code, doc, res.output


def test_poisoned_challenger_is_blocked_naming_its_trigger(trained: Path) -> None:
    code, doc, text = _gate(trained, "poisoned", "poisoned")
    assert code == 1, text
    triggers = [f for f in doc["findings"] if f["check"] == "trigger_search" and f["blocking"]]
    assert any(TRIGGER.items() <= f["conjunction"].items() for f in triggers), text
    named = next(f for f in triggers if TRIGGER.items() <= f["conjunction"].items())
    assert named["champion_mean"] - named["challenger_mean"] > 0.5


def test_honest_challenger_passes_and_its_artifact_is_verified(trained: Path) -> None:
    record = json.loads((trained / "models" / "record.json").read_text())
    good = record["artifacts"]["honest.skops"]["sha256"]
    code, doc, text = _gate(trained, "honest", "challenger", "--challenger-sha256", good)
    assert code == 0, text
    assert doc["verdict"] == "pass"
    assert not [f for f in doc["findings"] if f["check"] == "trigger_search"
                and f["severity"] != "info"]


def test_a_tampered_or_unrecorded_artifact_is_refused(trained: Path) -> None:
    code, _, text = _gate(trained, "honest", "challenger", "--challenger-sha256", "0" * 64)
    assert code == 2 and "does not match --sha256" in text
    models = trained / "models"
    original = (models / "poisoned.skops").read_bytes()
    try:
        (models / "poisoned.skops").write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        code, _, text = _gate(trained, "poisoned", "poisoned")
        assert code == 2 and "does not match the training-run record" in text
    finally:
        (models / "poisoned.skops").write_bytes(original)


def test_training_scan_blocks_the_poisoned_snapshot_before_training(trained: Path) -> None:
    """Issue 26: the example's poisoned training set is caught by `driftwatch training
    scan` against the champion's snapshot, before any model is trained on it; the honest
    retrain's snapshot passes."""
    base = str(trained / "training" / "champion")
    results = {}
    for snapshot in ("challenger", "poisoned"):
        out = trained / f"scan-{snapshot}.json"
        res = CliRunner().invoke(main, ["training", "scan", str(trained / "training" / snapshot),
                                        "--baseline", base, "--json", str(out)])
        results[snapshot] = (res.exit_code, json.loads(out.read_text()))
    code, honest = results["challenger"]
    assert code == 0 and honest["verdict"] == "pass"
    assert not [f for f in honest["findings"] if f["blocking"]]
    code, poisoned = results["poisoned"]
    assert code == 1 and poisoned["verdict"] == "block"
    blocking = [f for f in poisoned["findings"] if f["blocking"]]
    assert any(f["check"] == "poisoning" and TRIGGER.items() <= f["conjunction"].items()
               for f in blocking), blocking
