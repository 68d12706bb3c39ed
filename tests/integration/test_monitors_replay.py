"""A short sc013 backdoor replay through the whole pipeline (simulator → replay →
monitors → alert book): the attacked segment is named by independent detectors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from driftwatch.assemble import build_pipeline
from driftwatch.settings import Settings
from driftwatch.simulate import generate, load_scenario, write
from driftwatch.sources.replay import replay
from driftwatch.store.client import Store


@pytest.mark.slow
def test_short_backdoor_replay_is_named_by_two_detectors_within_few_triggers(
    store: Store, chdb_dsn: str, tmp_path: Path
) -> None:
    sim = generate(load_scenario("sc013_backdoor"), seed=5, days=1.75, rate=0.5)
    paths = write(sim, tmp_path)
    settings = Settings.load(
        config_file=None,
        env={},
        overrides={
            "store_dsn": chdb_dsn,
            "database": store.database,
            "rules_dirs": str(tmp_path / "no-rules"),
            "monitor_detectors": "shadow,cents,volume",
            "monitor_interval_s": 900,
            "monitor_warmup_s": 6 * 3600,
        },
    )
    pipeline = build_pipeline(settings, store, alerts_out=tmp_path / "alerts.jsonl")
    try:
        replay(pipeline, paths["events.jsonl"], paths["labels.jsonl"], batch_size=5000)
    finally:
        pipeline.close()
    alerts = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    firing = [a for a in alerts if a["status"] == "firing"]
    on_target = [a for a in firing if "mcc=5967" in a["labels"]["segment"]]
    detectors = {a["labels"]["detector"] for a in on_target}
    assert {"shadow", "volume"} <= detectors, detectors
    trigger_ids = set(sim.truth["trigger_event_ids"])
    parsed = (json.loads(line) for line in sim.events)
    trigger_times = sorted(
        dt.datetime.fromisoformat(e["event_time"].replace("Z", "+00:00"))
        for e in parsed
        if e["event_id"] in trigger_ids
    )
    first = min(dt.datetime.fromisoformat(a["starts_at"].replace("Z", "+00:00"))
                for a in on_target)
    before = sum(1 for t in trigger_times if t < first)
    assert 1 <= before <= 10, before
    # every alert carries the contract labels, event-time starts_at inside the data
    for a in firing:
        assert a["labels"]["severity"] in ("warning", "critical")
        assert a["starts_at"] >= sim.truth["start"][:10]
    _evidence_rows_are_the_evidence_query_rows(store)


def _evidence_rows_are_the_evidence_query_rows(store: Store) -> None:
    """`alerts show` lists rows of the alert's own evidence_sql, never other rows."""
    from driftwatch.api.queries import alert_detail

    fingerprints = [r[0] for r in store.query("SELECT fingerprint FROM {db}.alerts FINAL")]
    assert fingerprints
    checked = 0
    for fp in fingerprints:
        detail = alert_detail(store, fp, evidence_limit=25)
        assert detail is not None
        sql = detail["alert"]["annotations"].get("evidence_sql", "")
        if not sql:
            continue
        ev = detail["evidence"]
        assert ev["source"] == "evidence_sql", fp
        full = store.query_columns(sql)
        key = "event_id" if "event_id" in full else next(iter(full))
        allowed = {str(v) for v in full[key]}
        shown = [str(r[key]) for r in ev["rows"]]
        assert set(shown) <= allowed, (fp, sql)
        assert len(shown) == min(25, len(allowed)) or len(shown) == min(25, len(full[key]))
        checked += 1
    assert checked >= 2
