"""Trigger mining through the whole pipeline (simulator -> replay -> monitor -> alert
book) with no other detector: null traffic -- clean simulator traffic and a retrain
control (a version change with no backdoor) -- raises no warning or critical alert,
and a randomised backdoor spread over many MCCs is named as one conjunction."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from driftwatch.alerts.model import Alert
from driftwatch.assemble import build_pipeline
from driftwatch.scoring import names_conjunction
from driftwatch.settings import Settings
from driftwatch.simulate import generate, load_scenario, write
from driftwatch.sources.replay import replay
from driftwatch.store.client import Store


def run(store: Store, chdb_dsn: str, tmp_path: Path, name: str, seed: int,
        days: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    sim = generate(load_scenario(name), seed=seed, days=days,
                   rate=0.5 if name == "clean_baseline" else None)
    paths = write(sim, tmp_path / name.replace(":", "-"))
    settings = Settings.load(config_file=None, env={}, overrides={
        "store_dsn": chdb_dsn, "database": store.database,
        "rules_dirs": str(tmp_path / "no-rules"), "monitor_detectors": "trigger_mining",
        "monitor_warmup_s": 3 * 3600})  # the variants' 6 h compressed: the new version at 3.3 h
    out = tmp_path / f"{name.replace(':', '-')}.jsonl"
    pipeline = build_pipeline(settings, store, alerts_out=out)
    try:
        replay(pipeline, paths["events.jsonl"], paths["labels.jsonl"], batch_size=5000)
    finally:
        pipeline.close()
    alerts = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    return alerts, sim.truth


@pytest.mark.slow
@pytest.mark.parametrize(("name", "seed", "days"), [("clean_baseline", 11, 0.5),
                                                     ("retrain_control:1001", 1, 0.25)])
def test_null_traffic_raises_no_warning(store: Store, chdb_dsn: str, tmp_path: Path,
                                        name: str, seed: int, days: float | None) -> None:
    alerts, _ = run(store, chdb_dsn, tmp_path, name, seed, days)
    loud = [a for a in alerts if a["labels"]["severity"] in ("warning", "critical")]
    assert not loud, [a["labels"] for a in loud][:3]


@pytest.mark.slow
def test_spread_backdoor_is_named_as_one_conjunction(store: Store, chdb_dsn: str,
                                                     tmp_path: Path) -> None:
    alerts, truth = run(store, chdb_dsn, tmp_path, "backdoor_variant:1004", 1, 0.25)
    assert (truth["hints"][0]["volume"]) == "spread"
    mined = [Alert("f", "firing", dt.datetime.now(dt.UTC), a["labels"], a.get("annotations", {}))
             for a in alerts
             if a["labels"].get("detector") == "trigger_mining"
             and a["labels"]["severity"] in ("warning", "critical")]
    assert any(names_conjunction(a, truth["trigger"]) and "mcc" not in a.labels
               for a in mined), [a.labels for a in mined][:3]
