"""The gate's recall trend across model versions, from matured labels in a real
(embedded) ClickHouse store."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftwatch.cli import main
from driftwatch.events import parse_label_batch, parse_scored_batch
from driftwatch.gate.trend import recall_by_version, trend_findings
from driftwatch.store.client import Store
from tests.unit.gate import scorers

pytestmark = pytest.mark.integration
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _fill(store: Store, recalls: list[tuple[str, int, int]]) -> None:
    """Per version: ``pos`` labelled frauds of which ``tp`` were held; one day each,
    plus an unlabelled late event that makes every label mature."""
    events, labels = [], []
    for day, (version, pos, tp) in enumerate(recalls):
        for i in range(pos):
            t = T0 + dt.timedelta(days=day, seconds=i)
            eid = f"{version}-{i}"
            events.append({
                "event_id": eid, "txn_id": eid, "event_time": t.isoformat(),
                "amount": "100.00", "currency": "USD", "mcc": "5411", "merchant_id": "m",
                "card_id": "c", "model": {"name": "f", "version": version,
                                          "score": 0.9 if i < tp else 0.1, "threshold": 0.7}})
            labels.append({"txn_id": eid, "label": 1,
                           "label_time": (t + dt.timedelta(hours=1)).isoformat()})
    late = T0 + dt.timedelta(days=len(recalls) + 3)
    events.append({"event_id": "late", "txn_id": "late", "event_time": late.isoformat(),
                   "amount": "1.00", "currency": "USD", "mcc": "5411", "merchant_id": "m",
                   "card_id": "c", "model": {"name": "f", "version": recalls[-1][0],
                                             "score": 0.1}})
    batch = parse_scored_batch([json.dumps(e) for e in events])
    assert not batch.rejected
    store.insert_scored(batch.events)
    lab = parse_label_batch([json.dumps(x) for x in labels])
    assert not lab.rejected
    store.insert_labels(lab.labels)


def test_three_small_declines_are_reported_not_blocking(store: Store) -> None:
    _fill(store, [("v45", 1000, 945), ("v46", 1000, 942), ("v47", 1000, 938)])
    rows = recall_by_version(store, maturity_s=86400)
    assert [(r["version"], r["pos"], r["tp"]) for r in rows] == [
        ("v45", 1000, 945), ("v46", 1000, 942), ("v47", 1000, 938)]
    (f,) = trend_findings(rows, k=3, p=0.01)
    assert (f.severity, f.blocking) == ("warning", False)
    assert "v45 94.5%" in f.summary and "3 declines in a row" in f.summary


def test_a_significant_decline_blocks_the_gate(store: Store, chdb_dsn: str,
                                                tmp_path: Path) -> None:
    _fill(store, [("v45", 600, 570), ("v46", 600, 540), ("v47", 600, 480)])
    traffic = tmp_path / "t.jsonl"
    traffic.write_text("".join(json.dumps(e) + "\n" for e in scorers.traffic()))
    out = tmp_path / "g.json"
    spec = "tests/unit/gate/scorers.py:champion"
    args = ["--store", chdb_dsn, "--database", store.database, "gate", "--champion", spec,
            "--challenger", spec, "--traffic", str(traffic), "--json", str(out)]
    res = CliRunner().invoke(main, [*args, "--store-trend"],
                             env={"DRIFTWATCH_GATE_FIXTURES": "8"})
    assert res.exit_code == 1, res.output
    doc = json.loads(out.read_text())
    blocking = [f for f in doc["findings"] if f["blocking"]]
    assert [f["check"] for f in blocking] == ["recall_trend"]
    # without --store-trend the same gate passes and says the trend was skipped
    res = CliRunner().invoke(main, args, env={"DRIFTWATCH_GATE_FIXTURES": "8"})
    assert res.exit_code == 0, res.output
    assert "recall trend skipped" in res.output
