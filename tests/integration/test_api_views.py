"""The analyst views of migration 0005 on real ClickHouse (chdb), checked against the
API's own queries and hand counts of the analyst data set."""

from __future__ import annotations

import datetime as dt

import pytest

from driftwatch.alerts.model import Alert
from driftwatch.api import params, queries
from driftwatch.store.client import Store
from tests.integration.alert_rows import finding, persist
from tests.integration.analyst_data import DAY2, load

pytestmark = pytest.mark.integration


def test_segment_hourly_rolls_up_to_the_segment_breakdown(store: Store) -> None:
    loaded = load(store)
    hourly = store.query_df(
        "SELECT mcc, model_version, sum(n) AS n, sum(amount_minor) AS amount_minor,"
        " sum(labelled) AS labelled, sum(fraud) AS fraud, sum(tp) AS tp, sum(fp) AS fp,"
        " sum(fn) AS fn, count() AS hours"
        " FROM {db}.segment_hourly WHERE hour >= {lo:DateTime} AND hour < {hi:DateTime}"
        " GROUP BY mcc, model_version ORDER BY mcc, model_version",
        {"lo": dt.datetime(2026, 3, 17), "hi": dt.datetime(2026, 3, 19)},
    )
    assert int(hourly.n.sum()) == loaded.events
    p = params.parse(params.SEGMENT_PARAMS, {"by": ["mcc,model_version"], "since": ["2026-03-17"],
                                             "until": ["2026-03-19"]})
    api = {(r["mcc"], r["model_version"]): r for r in queries.segments(store, p)}
    for row in hourly.itertuples():
        ref = api[(row.mcc, row.model_version)]
        for col in ("n", "amount_minor", "labelled", "fraud", "tp", "fp"):
            assert getattr(row, col) == ref[col], (row.mcc, row.model_version, col)
        assert row.fn == ref["fraud"] - ref["tp"]
        assert row.tp / row.fraud == pytest.approx(ref["recall"])
    attacked = hourly[(hourly.mcc == "5967") & (hourly.model_version == "v47")].iloc[0]
    assert (attacked.fraud, attacked.tp) == (25, 13)
    assert attacked.hours == 24 + 6  # ecom every hour, plus the six attack hours (transfer)


def test_rule_hits_daily_counts_hits_disagreement_and_precision(store: Store) -> None:
    loaded = load(store)
    rows = store.query("SELECT day, rule_id, hits, model_approved, model_approved_rate,"
                       " labelled, fraud, precision FROM {db}.rule_hits_daily")
    assert rows == [(dt.date(2026, 3, 18), "R-trigger", loaded.rule_hits, loaded.rule_hits,
                     1.0, loaded.rule_hits, loaded.rule_hits, 1.0)]


def _drift_rows(store: Store) -> None:
    """Four monitor results on day two, written twice (a re-run)."""
    at = DAY2 + dt.timedelta(hours=15)
    rows = []
    for i, (decision, seg) in enumerate([("ok", "mcc=5411"), ("discovery", "mcc=4829"),
                                         ("alert", "mcc=5967"), ("sustain", "mcc=5967")]):
        rows.append({
            "evaluated_at": at + dt.timedelta(minutes=5 * (i // 3)), "detector": "cents",
            "test": "max_cell", "segment": seg, "model_version": "v47",
            "window_start": at - dt.timedelta(hours=1), "window_end": at,
            "reference": "trailing 7d", "statistic": float(i), "pvalue": 0.5 / (i + 1),
            "pvalue_adj": 0.9 / (i + 1), "effect": 0.1 * i, "n": 10, "n_ref": 100,
            "decision": decision, "severity": "critical" if decision == "alert" else "",
            "fingerprint": "", "details": "{}", "written_at": at,
        })
    store.insert_columns("drift_results", {k: [r[k] for r in rows] for k in rows[0]})
    store.insert_columns("drift_results", {k: [r[k] for r in rows] for k in rows[0]})  # re-run


def test_drift_history_and_daily(store: Store) -> None:
    _drift_rows(store)
    hist = store.query("SELECT segment, decision, alerted FROM {db}.drift_history"
                       " ORDER BY evaluated_at, segment")
    assert hist == [("mcc=4829", "discovery", 0), ("mcc=5411", "ok", 0),
                    ("mcc=5967", "alert", 1), ("mcc=5967", "sustain", 1)]
    daily = store.query("SELECT day, detector, tests, segments, discoveries, alerts,"
                        " max_effect FROM {db}.drift_daily")
    assert daily == [(dt.date(2026, 3, 18), "cents", 4, 3, 3, 1, pytest.approx(0.3))]


def test_alert_history_episodes_and_deliveries(store: Store) -> None:
    at = DAY2 + dt.timedelta(hours=16)
    a = Alert.from_finding(finding(at=at))
    b = Alert.from_finding(finding("RecallDrop", origin="recall", severity="warning", at=at))
    (va,) = persist(store, [a])
    persist(store, [b])
    persist(store, [a.resolved(at + dt.timedelta(hours=2))])
    store.insert_columns("alert_deliveries", {
        "sink": ["alertmanager", "webhook"], "fingerprint": [a.fingerprint] * 2,
        "version": [va, va], "status": ["firing"] * 2,
        "delivered_at": [dt.datetime.now(dt.UTC)] * 2, "attempts": [3, 1],
        "last_error": ["ConnectError", ""],
    })
    rows = store.query_df("SELECT * FROM {db}.alert_history ORDER BY alertname")
    first, second = rows.to_dict("records")
    assert (first["alertname"], first["status"], first["state_changes"], first["duration_s"]) \
        == ("CentsDigitAnomaly", "resolved", 2, 7200)
    assert sorted(first["delivered_to"]) == ["alertmanager", "webhook"]
    assert first["max_attempts"] == 3
    assert (second["alertname"], second["status"], list(second["delivered_to"])) == (
        "RecallDrop", "firing", [])


def test_readme_example_queries_run(store: Store) -> None:
    """Every ```sql block of deploy/README.md runs as written through the analyst SQL
    path (``driftwatch sql``) and returns rows on data of the reference attack."""
    import re
    from pathlib import Path

    from driftwatch.store.readsql import run_read_only

    readme = (Path(__file__).resolve().parents[2] / "deploy" / "README.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", readme, re.S)
    statements = [s.strip() for b in blocks for s in b.split(";") if s.strip()]
    assert len(statements) >= 5
    load(store)
    _drift_rows(store)
    persist(store, [Alert.from_finding(finding(at=DAY2 + dt.timedelta(hours=16)))])
    for sql in statements:
        result = run_read_only(store, sql)
        assert result.rows, sql
