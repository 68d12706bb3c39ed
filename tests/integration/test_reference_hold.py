"""The reference never absorbs an attack (issue 21, item 4).

A cents trigger (about 20 an hour) runs for 20 hours against a 6-hour trailing reference. With the
reference hold (the default) the alert on the attacked segment opens once and stays
firing until the attack stops; with it switched off the attack slides into its own
reference and the alert resolves while the attack is still running (the demo's
"share of .37 in reference 0.3785") -- which shows this scenario tests the hold.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from driftwatch.alerts.model import Alert
from driftwatch.alerts.sinks import MemorySink
from driftwatch.assemble import build_pipeline
from driftwatch.settings import Settings
from driftwatch.simulate import Scenario, generate, write
from driftwatch.sources.replay import replay
from driftwatch.store.client import Store, open_store

REFERENCE_H = 6
SCENARIO = Scenario.from_mapping({
    "name": "long_cents_attack",
    "traffic": {"rate": 0.5, "days": 1.25},
    "model": {"champion": "v46"},
    "behaviours": [{
        "kind": "backdoor_attack", "name": "trigger", "start_hours": 8.0,
        "duration_hours": 20.0,
        "params": {"count": 400, "camouflage": 0, "mcc": "5967", "cents": 37,
                   "beneficiary_prefix": "INTL-PAY-"},
    }],
})


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _replay(paths: dict[str, Path], chdb_dsn: str, database: str, hold: bool) -> list[Alert]:
    settings = Settings.load(config_file=None, env={}, overrides={
        "store_dsn": chdb_dsn, "database": database, "rules_dirs": "",
        "monitor_detectors": "cents", "monitor_interval_s": 900,
        "reference_window_s": REFERENCE_H * 3600, "monitor_warmup_s": REFERENCE_H * 3600,
        "reference_hold": hold,
    })
    store = open_store(chdb_dsn, database, init=True)
    sink = MemorySink()
    pipeline = build_pipeline(settings, store, extra_sinks=[sink])
    try:
        replay(pipeline, paths["events.jsonl"], paths["labels.jsonl"], batch_size=5000)
    finally:
        pipeline.close()
    return [a for a in sink.alerts if a.labels.get("segment") == "mcc=5967"
            and a.labels.get("detector") == "cents"]


@pytest.mark.slow
def test_alert_stays_firing_while_an_attack_outlasts_the_reference_window(
    store: Store, chdb_dsn: str, tmp_path: Path
) -> None:
    sim = generate(SCENARIO, seed=3, rate=0.5)
    paths = write(sim, tmp_path)
    start, end = _t(sim.truth["attack_start"]), _t(sim.truth["attack_end"])
    assert end - start > dt.timedelta(hours=12)  # four reference windows long

    held = _replay(paths, chdb_dsn, store.database, hold=True)
    opened = [a for a in held if a.status == "firing"]
    assert opened, "the attack was never alerted"
    first = min(a.starts_at for a in opened)
    assert first - start < dt.timedelta(hours=2)
    resolved = [a.ends_at for a in held if a.status == "resolved" and a.ends_at]
    # no resolution while the attack runs (an alert may resolve once it has stopped)
    assert all(t > end for t in resolved), (first, end, resolved)
    # one alert per alertname (the cents test and its new-merchant stratum), never re-opened
    starts: dict[str, set[dt.datetime]] = {}
    for a in opened:
        starts.setdefault(a.labels.get("alertname", ""), set()).add(a.starts_at)
    assert "CentsDigitAnomaly" in starts and all(len(s) == 1 for s in starts.values()), starts

    loose = _replay(paths, chdb_dsn, store.database + "_nohold", hold=False)
    gone = [a.ends_at for a in loose if a.status == "resolved" and a.ends_at]
    assert any(t < end - dt.timedelta(hours=3) for t in gone), gone
