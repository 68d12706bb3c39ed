"""``driftwatch segments`` and ``driftwatch alerts list|show`` on real ClickHouse (chdb)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from driftwatch.alerts.model import Alert
from driftwatch.cli import main
from driftwatch.store.client import Store
from tests.integration.alert_rows import finding, persist
from tests.integration.alertmanager_proc import free_port
from tests.integration.analyst_data import DAY2, load

pytestmark = pytest.mark.integration


def run(store: Store, dsn: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--store", dsn, "--database", store.database, *args])


def test_segments_table_csv_and_json_agree(store: Store, chdb_dsn: str) -> None:
    loaded = load(store)
    args = ["segments", "--by", "mcc", "--by", "model_version", "--since", "2026-03-17",
            "--until", "2026-03-19"]
    as_json = json.loads(run(store, chdb_dsn, *args, "--format", "json").output)
    assert len(as_json) == 6 and sum(r["n"] for r in as_json) == loaded.events
    rows = list(csv.DictReader(io.StringIO(run(store, chdb_dsn, *args, "--format", "csv").output)))
    assert [(r["mcc"], r["model_version"], int(r["n"])) for r in rows] == [
        (r["mcc"], r["model_version"], r["n"]) for r in as_json
    ]
    text = run(store, chdb_dsn, *args).output.splitlines()
    assert text[0].split()[:4] == ["mcc", "model_version", "n", "amount"]
    line = next(x for x in text if x.startswith("5967  v47"))
    assert "52.0%" in line  # recall of v47 in the attacked MCC: 13 of 25 fraud caught


def test_segments_filters_by_values_time_and_model_version(store: Store, chdb_dsn: str) -> None:
    loaded = load(store)
    out = run(store, chdb_dsn, "segments", "--by", "mcc", "--mcc", "5967", "--mcc", "4829",
              "--model-version", "v47", "--since", "2026-03-18", "--format", "json")
    rows = {r["mcc"]: r["n"] for r in json.loads(out.output)}
    assert rows == {"5967": loaded.per_mcc_day2["5967"], "4829": loaded.per_mcc_day2["4829"]}
    out = run(store, chdb_dsn, "segments", "--by", "channel", "--country", "LT",
              "--since", "1d", "--bucket", "day", "--format", "json")
    assert {(r["channel"], r["n"]) for r in json.loads(out.output)} == {
        ("ecom", 72), ("transfer", loaded.attack)
    }


def test_segments_refuses_bad_values_with_the_api_message(store: Store, chdb_dsn: str) -> None:
    out = run(store, chdb_dsn, "segments", "--mcc", "5967' OR 1=1 --")
    assert out.exit_code == 2
    assert "mcc: \"5967' OR 1=1 --\" does not match ^[0-9]{4}$" in out.output
    out = run(store, chdb_dsn, "segments", "--by", "card_id")
    assert out.exit_code == 2 and "by: 'card_id'; valid: mcc" in out.output


def test_alerts_list_and_show_with_evidence(store: Store, chdb_dsn: str) -> None:
    load(store)
    at = DAY2 + dt.timedelta(hours=17)
    rule = Alert.from_finding(finding("RuleHit", source="rule", origin="R-trigger",
                                      severity="critical", at=at))
    drift = Alert.from_finding(finding("ScoreDriftKS", origin="ks", severity="warning",
                                       segment="mcc=5411", at=at))
    persist(store, [rule, drift])
    listed = run(store, chdb_dsn, "alerts", "list", "--format", "json")
    assert {a["fingerprint"] for a in json.loads(listed.output)} == {rule.fingerprint,
                                                                     drift.fingerprint}
    table = run(store, chdb_dsn, "alerts", "list", "--severity", "critical").output
    assert rule.fingerprint in table and drift.fingerprint not in table

    shown = run(store, chdb_dsn, "alerts", "show", rule.fingerprint)
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert "RuleHit  [firing]" in text and "label      rule_id = R-trigger" in text
    assert "evidence (rule_hits," in text and "R-trigger" in text
    assert "evidence query:" in text
    detail = json.loads(run(store, chdb_dsn, "alerts", "show", rule.fingerprint,
                            "--format", "json").output)
    rows = detail["evidence"]["rows"]
    assert rows and all(r["mcc"] == "5967" and r["amount_minor"] % 100 == 37
                        and r["rule_id"] == "R-trigger" for r in rows)
    assert all("2026-03-18T16:00:00Z" <= r["event_time"] < "2026-03-18T17:00:01Z" for r in rows)
    assert "driftwatch" in detail["evidence"]["evidence_sql_error"]  # no such database here
    drift_rows = json.loads(run(store, chdb_dsn, "alerts", "show", drift.fingerprint,
                                "--format", "json").output)["evidence"]
    assert drift_rows["source"] == "scored_transactions"
    assert drift_rows["rows"] and all(r["mcc"] == "5411" for r in drift_rows["rows"])
    assert run(store, chdb_dsn, "alerts", "show", "0" * 16).exit_code == 1


def test_alert_evidence_rows_are_its_query_rows(store: Store, chdb_dsn: str) -> None:
    load(store)
    at = DAY2 + dt.timedelta(hours=17)
    f = finding("CentsDigitAnomaly", origin="cents", severity="warning", at=at)
    sql = f.evidence_sql.replace("driftwatch.", f"{store.database}.")
    first = Alert.from_finding(f)
    alert = dataclasses.replace(first, annotations={**first.annotations, "evidence_sql": sql})
    persist(store, [alert])
    out = json.loads(run(store, chdb_dsn, "alerts", "show", alert.fingerprint,
                         "--evidence-limit", "5", "--format", "json").output)
    assert out["evidence"]["source"] == "evidence_sql"
    rows = out["evidence_rows"]
    assert len(rows) == 5 and all(r["mcc"] == "5967" and r["amount_cents"] == 37 for r in rows)
    every = {r[0] for r in store.query(sql.replace("SELECT *", "SELECT event_id"))}
    assert {r["event_id"] for r in rows} <= every


def test_segment_buckets_in_time_order_and_asc(store: Store, chdb_dsn: str) -> None:
    load(store)
    args = ["segments", "--since", "2026-03-17", "--until", "2026-03-19", "--bucket", "hour",
            "--by", "channel", "--format", "json"]
    rows = json.loads(run(store, chdb_dsn, *args).output)
    buckets = [r["bucket"] for r in rows]
    assert len(set(buckets)) > 1 and buckets == sorted(buckets)
    for b in set(buckets):
        ns = [r["n"] for r in rows if r["bucket"] == b]
        assert ns == sorted(ns, reverse=True)
    up = json.loads(run(store, chdb_dsn, *args, "--asc").output)
    assert [r["bucket"] for r in up] == buckets
    for b in set(buckets):
        assert [r["n"] for r in up if r["bucket"] == b] == sorted(
            r["n"] for r in rows if r["bucket"] == b)
    assert run(store, chdb_dsn, "alerts", "show", "nope").exit_code == 2


def test_api_command_refuses_to_start_without_a_token(
    store: Store, chdb_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIFTWATCH_API_TOKEN", raising=False)
    out = run(store, chdb_dsn, "api", "--port", "1")
    assert out.exit_code == 2 and "DRIFTWATCH_API_TOKEN" in out.output


def test_api_command_serves(tmp_path: Path) -> None:
    """`driftwatch api` in its own process (its own embedded store path)."""
    port = free_port()
    env = {**os.environ, "DRIFTWATCH_API_TOKEN": "cli-token", "DRIFTWATCH_LOG_FORMAT": "json"}
    exe = str(Path(sys.executable).parent / "driftwatch")
    # A read-only command never creates a store: `db init` makes the (empty) one it reads.
    subprocess.run([exe, "--store", f"chdb://{tmp_path / 'ch'}", "db", "init"], env=env,
                   check=True, capture_output=True, timeout=120)
    proc = subprocess.Popen(
        [exe, "--store", f"chdb://{tmp_path / 'ch'}", "api", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
                time.sleep(0.2)
        assert r.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/alerts").status_code == 401
        ok = httpx.get(f"http://127.0.0.1:{port}/alerts",
                       headers={"Authorization": "Bearer cli-token"})
        assert ok.status_code == 200 and ok.json() == {"count": 0, "alerts": []}
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "cli-token" not in err
    assert '"path": "/alerts"' in err and '"status": 401' in err
