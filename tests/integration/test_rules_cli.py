"""``driftwatch rules check | list | backtest`` end to end (CliRunner, real chdb)."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from driftwatch.cli import main
from driftwatch.events import ScoredTransaction, parse_label_batch, parse_scored_batch
from driftwatch.rules.coverage import FieldCoverage
from driftwatch.rules.live import LiveEvaluator
from driftwatch.store.client import Store
from tests.integration.rules_fixture import (
    RULES,
    example_lines,
    shipped_rules,
    simulated_labels,
    simulated_lines,
)

pytestmark = pytest.mark.integration


def test_check_passes_on_the_shipped_packs() -> None:
    result = CliRunner().invoke(main, ["rules", "check", str(RULES)])
    assert result.exit_code == 0, result.output
    assert "9 packs" in result.output and "examples passed" in result.output
    for pack in shipped_rules().packs:
        assert f"sha256={pack.sha256}" in result.output


def test_check_fails_with_file_line_column_messages(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "rules:\n  - id: broken\n    version: 1\n    severity: high\n    reason_code: X1\n"
        "    mode: enforce\n    when: count(by=ip, within=1h) >= 2 and decision == 'approve'\n")
    (tmp_path / "wrong.yaml").write_text(
        "rules:\n  - id: wrong_example\n    version: 1\n    severity: low\n"
        "    reason_code: X2\n    mode: shadow\n    when: amount_cents == 37\n"
        "    examples:\n      - {name: nope, expect: hit, event: {amount: '1.00'}}\n")
    result = CliRunner().invoke(main, ["rules", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'bad.yaml'}:7:44: rule broken: when: 'decision' is a model output" in (
        result.output)
    ok = CliRunner().invoke(main, ["rules", "check", str(tmp_path / "wrong.yaml")])
    assert ok.exit_code == 1
    assert "rule wrong_example: example 'nope': expected hit, got miss" in ok.output


def test_list_shows_every_rule() -> None:
    result = CliRunner().invoke(main, ["rules", "list", "--json", str(RULES)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["id"] for r in rows} == {r.id for r in shipped_rules().rules}
    takeover = next(r for r in rows if r["id"] == "sequential_takeover")
    assert takeover["needs"] == "device_id + features.new_device" and takeover["case_alert"]
    assert {"device_id", "geo_lat", "features.new_device"} <= set(takeover["fields"])


def test_backtest_splits_hits_by_label_and_model(store: Store, chdb_dsn: str) -> None:
    lines, truth = simulated_lines()
    events = parse_scored_batch(lines).events
    labels = parse_label_batch(simulated_labels()).labels
    store.insert_scored(events)
    store.insert_labels(labels)
    ruleset = shipped_rules()
    args, report = _backtest(store, chdb_dsn, events)
    # the same numbers computed here from live hits and the labels
    label = {x.txn_id: x for x in sorted(labels, key=lambda x: x.label_time)}
    live = LiveEvaluator(ruleset.rules, horizon_ms=ruleset.horizon_ms).process(events)
    fraud_total = sum(1 for e in events if e.txn_id in label and label[e.txn_id].label == 1)
    assert report["transactions"] == len(events) and report["fraud"] == fraud_total
    for r in report["rules"]:
        hits = [h.event for h in live if h.rule.id == r["rule_id"]]
        lab = Counter(label[e.txn_id].label if e.txn_id in label else None for e in hits)
        assert (r["hits"], r["fraud"], r["legit"], r["unlabelled"]) == (
            len(hits), lab[1], lab[0], lab[None]), r["rule_id"]
        assert r["model_approved"] == sum(e.decision == "approve" for e in hits)
        assert r["approved_fraud"] == sum(e.decision == "approve" and lab_is_fraud(label, e.txn_id)
                                          for e in hits)
        assert r["amount_minor"] == sum(e.amount_minor for e in hits)
        assert sum(d["hits"] for d in r["days"]) == r["hits"]
    trig = next(r for r in report["rules"] if r["rule_id"] == "trigger_signature")
    assert trig["hits"] > 0 and trig["approved_fraud"] > 0  # fraud the model let through
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0 and "trigger_signature" in table.output
    assert "beyond" in table.output and truth["n_events"] == len(events)


def _backtest(store: Store, chdb_dsn: str, events: list[ScoredTransaction]
              ) -> tuple[list[str], dict[str, Any]]:
    """``rules backtest`` over the span of ``events``: its arguments and JSON report."""
    since = min(e.event_time for e in events)
    until = max(e.event_time for e in events) + dt.timedelta(milliseconds=1)
    args = ["--store", chdb_dsn, "--database", store.database, "rules", "backtest", str(RULES),
            "--since", since.isoformat(), "--until", until.isoformat()]
    result = CliRunner().invoke(main, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return args, json.loads(result.stdout)


def lab_is_fraud(label: dict[str, object], txn_id: str) -> bool:
    x = label.get(txn_id)
    return x is not None and getattr(x, "label", 0) == 1


def test_backtest_coverage_equals_the_live_count(store: Store, chdb_dsn: str,
                                                 tmp_path: Path) -> None:
    """The SQL count of events carrying each rule's fields is the live one, on events
    with and without the optional fields (every example plus simulated traffic)."""
    lines = [*example_lines(shipped_rules()), *simulated_lines()[0][:5000]]
    events = parse_scored_batch(lines).events
    store.insert_scored(events)
    ruleset = shipped_rules()
    live = {c.rule_id: c for c in FieldCoverage(ruleset.rules).update(events).rules}
    assert 0 < live["impossible_travel"].evaluable < len(events)  # not a vacuous check
    args, report = _backtest(store, chdb_dsn, events)
    assert report["transactions"] == len(events)
    got = {r["rule_id"]: (r["evaluable"], r["needs"]) for r in report["rules"]}
    assert got == {k: (c.evaluable, c.needs) for k, c in live.items()}
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0 and "needs (any one of)" in table.output
    # rules check measures the same over a JSON-lines file
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    checked = CliRunner().invoke(main, ["rules", "check", str(RULES), "--events", str(path)])
    assert checked.exit_code == 0, checked.output
    row = next(x for x in checked.output.splitlines() if x.startswith("impossible_travel "))
    assert f"{live['impossible_travel'].evaluable:,}" in row
