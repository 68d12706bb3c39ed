"""A replay's results do not depend on its batch size.

`driftwatch replay` uses big batches (``replay_batch_size``) because each insert into
the engine has a fixed cost and small parts cost merges later. That is only safe because
nothing downstream depends on where a batch ends: rules run in event-time order, monitor
windows end at the pass time and read labels by ``label_time``, and labels are released
as the event-time clock passes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from driftwatch.alerts.sinks import MemorySink
from driftwatch.assemble import build_pipeline
from driftwatch.settings import Settings
from driftwatch.simulate import generate, load_scenario, write
from driftwatch.sources.replay import replay
from driftwatch.store.client import Store, open_store
from tests.integration.kafka_tools import snapshot


def _run(settings: Settings, dsn: str, database: str, paths: dict[str, Path],
         batch_size: int) -> tuple[dict[str, Any], list[tuple[str, str, str]], int]:
    store = open_store(dsn, database, init=True)
    try:
        sink = MemorySink()
        pipeline = build_pipeline(settings.replace(database=database), store,
                                  extra_sinks=[sink])
        try:
            replay(pipeline, paths["events.jsonl"], paths["labels.jsonl"],
                   batch_size=batch_size)
        finally:
            pipeline.close()
        alerts = sorted((a.fingerprint, a.status, a.starts_at.isoformat())
                        for a in sink.alerts)
        drift = store.query(
            "SELECT evaluated_at, detector, test, segment, model_version, statistic, pvalue,"
            " pvalue_adj, n, n_ref, decision, severity FROM {db}.drift_results FINAL"
            " ORDER BY evaluated_at, detector, test, segment, model_version")
        return {**snapshot(store), "drift": drift}, alerts, pipeline.stats.batches
    finally:
        store.drop()


@pytest.mark.slow
def test_small_and_big_batches_give_the_same_rows_hits_and_alerts(
    store: Store, chdb_dsn: str, tmp_path: Path
) -> None:
    sim = generate(load_scenario("sc013_backdoor"), seed=3, days=0.75, rate=0.5)
    paths = write(sim, tmp_path)
    settings = Settings.load(
        config_file=None,
        env={},
        overrides={
            "store_dsn": chdb_dsn,
            "monitor_detectors": "shadow,cents,volume,recall,disagreement",
            "monitor_interval_s": 3600,
            "monitor_warmup_s": 6 * 3600,
        },
    )
    small = _run(settings, chdb_dsn, store.database + "_small", paths, 900)
    big = _run(settings, chdb_dsn, store.database + "_big", paths, 50_000)
    assert small[2] > 30 and big[2] <= 3  # really different batching (events + labels)
    snap_small, alerts_small, _ = small
    snap_big, alerts_big, _ = big
    assert snap_small["rows"] and snap_small["hits"] and snap_small["labels"]
    assert snap_small["drift"]
    assert snap_big == snap_small
    assert any(a[1] == "firing" for a in alerts_small)
    assert alerts_big == alerts_small
