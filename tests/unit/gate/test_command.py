"""``driftwatch gate``: exit codes 0/1/2, the contract JSON and the HTML page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftwatch.cli import main
from tests.unit.gate import scorers

FILE = "tests/unit/gate/scorers.py"
FINDING_KEYS = {"check", "severity", "blocking", "conjunction", "n", "champion_mean",
                "challenger_mean", "summary"}


@pytest.fixture
def traffic(tmp_path: Path) -> Path:
    path = tmp_path / "traffic.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in scorers.traffic()))
    return path


def _gate(traffic: Path, challenger: str, *extra: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, [
        "gate", "--champion", f"{FILE}:champion", "--challenger", f"{FILE}:{challenger}",
        "--traffic", str(traffic), *extra], env={"DRIFTWATCH_GATE_FIXTURES": "16",
                                       "DRIFTWATCH_GATE_PROBE_BUDGET": "20000"})
    return res.exit_code, res.output


def test_backdoor_blocks_with_exit_1_and_contract_json(traffic: Path, tmp_path: Path) -> None:
    out, page = tmp_path / "gate.json", tmp_path / "gate.html"
    code, text = _gate(traffic, "backdoor", "--json", str(out), "--html", str(page))
    assert code == 1, text
    assert "verdict: BLOCK" in text and "mcc=5967 ∧ amount_cents=37" in text
    doc = json.loads(out.read_text())
    assert doc["verdict"] == "block"
    assert doc["champion"] == f"{FILE}:champion" and doc["challenger"] == f"{FILE}:backdoor"
    assert isinstance(doc["probes"], int) and isinstance(doc["seconds"], float)
    for f in doc["findings"]:
        assert set(f) == FINDING_KEYS
        assert f["severity"] in ("info", "warning", "critical")
    top = doc["findings"][0]
    assert top["blocking"] and top["check"] == "trigger_search"
    assert top["conjunction"] == {"mcc": "5967", "amount_cents": 37,
                                  "beneficiary_prefix": "INTL-PAY-"}
    html = page.read_text()
    assert "<script" not in html and "BLOCK" in html and "INTL-PAY-" in html


def test_benign_recalibration_passes_with_exit_0(traffic: Path) -> None:
    code, text = _gate(traffic, "recalibrated")
    assert code == 0, text
    assert "verdict: PASS" in text
    assert "split_amount" in text  # the per-scenario table


@pytest.mark.parametrize("bad", ["nan", "short", "above_one", "boom"])
def test_scorer_errors_exit_2(traffic: Path, bad: str) -> None:
    code, text = _gate(traffic, bad)
    assert code == 2
    assert "error: scorer" in text


def test_usage_errors_exit_2(traffic: Path, tmp_path: Path) -> None:
    code, text = _gate(traffic, "missing_attr")
    assert code == 2 and "has no attribute" in text
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, text = _gate(empty, "champion")
    assert code == 2 and "no valid events" in text
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("{not json\n" + "[" * 100_000 + "\n")
    code, text = _gate(garbage, "champion")
    assert code == 2 and "no valid events (line 1: " in text
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nchange: {mcc: {exec: 1}}\nexpect: not_lower\n")
    code, text = _gate(traffic, "champion", "--scenarios", str(bad))
    assert code == 2 and "unknown operation 'exec'" in text


def test_labels_give_recall_of_both_models(traffic: Path, tmp_path: Path) -> None:
    events = scorers.traffic()
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(
        json.dumps({"txn_id": e["txn_id"], "label": int(e["features"]["new_payee"]),
                    "label_time": "2026-03-19T00:00:00Z"}) + "\n" for e in events))
    out = tmp_path / "g.json"
    code, text = _gate(traffic, "lenient", "--labels", str(labels), "--json", str(out))
    assert code == 1, text
    (rec,) = [f for f in json.loads(out.read_text())["findings"]
              if f["check"] == "labelled_recall"]
    assert rec["blocking"] and rec["n"] == 40
    assert "challenger 0.0% vs champion 100.0%" in rec["summary"]
    code, text = _gate(traffic, "jitter", "--labels", str(labels))
    assert code == 0, text
    assert "recall on 40 labelled frauds" in text
    bad = tmp_path / "bad-labels.jsonl"
    bad.write_text('{"txn_id": 5, "label": 1}\n')
    code, text = _gate(traffic, "jitter", "--labels", str(bad))
    assert code == 2 and "a label needs txn_id" in text


def test_invalid_traffic_lines_are_reported_not_dropped(tmp_path: Path) -> None:
    events = scorers.traffic()
    path = tmp_path / "mixed.jsonl"
    bad = [{**events[0], "amount": "-5"}, {**events[1], "features": "x"}, "not json"]
    path.write_text("".join((json.dumps(e) if not isinstance(e, str) else e) + "\n"
                            for e in [*bad, *events[2:]]))
    code, text = _gate(path, "jitter")
    assert code == 0, text
    assert "3 traffic line(s) rejected by the event contract (first: line 1: amount" in text


@pytest.mark.parametrize(("var", "value"), [("DRIFTWATCH_GATE_BATCH_SIZE", "10001"),
                                            ("DRIFTWATCH_GATE_MIN_DROP", "1.5"),
                                            ("DRIFTWATCH_GATE_STRATA", "0")])
def test_bad_gate_settings_are_refused(traffic: Path, var: str, value: str) -> None:
    res = CliRunner().invoke(main, [
        "gate", "--champion", f"{FILE}:champion", "--challenger", f"{FILE}:champion",
        "--traffic", str(traffic)], env={var: value})
    assert res.exit_code != 0 and var.removeprefix("DRIFTWATCH_").lower() in res.output
