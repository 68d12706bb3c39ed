"""``score_drift_predeploy`` on real ClickHouse (chdb): a sparse backdoored segment
without shadow scores is found against the champion's pre-deployment scores; clean
segments, a globally recalibrated version and the simulator's benign-retrain control
(``retrain_control:<seed>``) are not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from driftwatch.assemble import build_pipeline
from driftwatch.monitors.base import PassContext
from driftwatch.monitors.score_drift_predeploy import PreDeployScoreDrift
from driftwatch.monitors.segments import SegmentSpec
from driftwatch.settings import Settings
from driftwatch.simulate.engine import generate
from driftwatch.simulate.output import write
from driftwatch.simulate.scenario import load_scenario
from driftwatch.sources.replay import replay
from driftwatch.store.client import Store

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 16, tzinfo=dt.UTC)
DEPLOY = T0 + dt.timedelta(hours=24)
END = DEPLOY + dt.timedelta(hours=6)
ALERT_P = 1e-6  # alert_q 1e-4 over a family of 100 segment tests
MCCS = {"5998": 20, "5732": 15, "7995": 30, "4829": 12}  # rows an hour
BUSY = 600  # rows an hour of the rest of the traffic


def _logit(s: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(np.log(s / (1 - s)))


def _expit(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1 / (1 + np.exp(-x)))


def _rows(rng: np.random.Generator, mcc: str, per_hour: int, lo: dt.datetime,
          hi: dt.datetime, risky: float) -> tuple[list[str], list[dt.datetime], NDArray[np.float64],
                                                 NDArray[np.bool_]]:
    """Poisson arrivals; ordinary scores plus a share ``risky`` of high-risk rows
    (returned as a mask, scored 0.9 here)."""
    hours = (hi - lo).total_seconds() / 3600
    n = int(rng.poisson(per_hour * hours))
    times = [lo + dt.timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, hours * 3600, n))]
    high = rng.random(n) < risky
    scores = _expit(rng.normal(-4.0, 1.2, n))
    scores[high] = np.clip(rng.normal(0.9, 0.03, int(high.sum())), 0.01, 0.99)
    return [mcc] * n, times, scores, high


def _load(store: Store, recalibrate: tuple[float, float] | None, backdoor: str | None,
          seed: int) -> None:
    rng = np.random.default_rng(seed)
    cols: dict[str, list[object]] = {k: [] for k in (
        "event_id", "txn_id", "event_time", "mcc", "model_version", "score", "ingest_time")}
    for version, lo, hi in (("v46", T0, DEPLOY), ("v47", DEPLOY, END)):
        for mcc, per_hour in {**MCCS, "5411": BUSY}.items():
            mccs, times, scores, high = _rows(rng, mcc, per_hour, lo, hi, 0.5 if mcc in MCCS
                                              else 0.01)
            if version == "v47" and mcc == backdoor:
                scores[high] = np.clip(rng.normal(0.2, 0.03, int(high.sum())), 0.01, 0.99)
            if version == "v47" and recalibrate is not None:
                scores = _expit(recalibrate[0] * _logit(scores) + recalibrate[1])
            start = len(cols["event_id"])
            ids = [f"{version}-{start + i}" for i in range(len(times))]
            for key, values in (("event_id", ids), ("txn_id", ids), ("event_time", times),
                                ("mcc", mccs), ("model_version", [version] * len(ids)),
                                ("score", scores.tolist()), ("ingest_time", times)):
                cols[key].extend(values)
    store.insert_columns("scored_transactions", cols)


def _evaluate(store: Store, at: dt.datetime, settings: Settings | None = None,
              ) -> dict[str, tuple[float, float, int]]:
    settings = settings or Settings()
    spec = SegmentSpec.parse("mcc")
    det = PreDeployScoreDrift(settings, spec)
    out: dict[str, tuple[float, float, int]] = {}
    for ev in det.evaluate(PassContext(store, settings, spec, at)):
        for i, seg in enumerate(ev.segment):
            out[seg] = (float(ev.effect[i]), float(ev.pvalue[i]), int(ev.n[i]))
            assert ev.version(i) == "v47"
            assert "before v47" in ev.reference
        if len(ev):
            words = det.describe(ev, 0)
            assert "v47" in words.summary and "model_version = 'v47'" in words.evidence_sql
    return out


def test_sparse_backdoored_segment_found_against_pre_deployment_scores(store: Store) -> None:
    _load(store, None, backdoor="5998", seed=1)
    got = _evaluate(store, END)
    assert set(got) == {f"mcc={m}" for m in (*MCCS, "5411")}
    d, p, n = got["mcc=5998"]
    assert 90 <= n <= 150  # 20 rows an hour pooled over the 6 h since deployment
    assert p <= ALERT_P and d >= PreDeployScoreDrift.ks_floor, (d, p)
    for seg, (d, p, _) in got.items():
        if seg != "mcc=5998":
            assert p > 1e-3, (seg, d, p)


def test_a_global_recalibration_raises_nothing(store: Store) -> None:
    _load(store, (1.15, 0.3), backdoor=None, seed=2)
    got = _evaluate(store, END)
    assert len(got) == len(MCCS) + 1
    for seg, (d, p, _) in got.items():
        assert p > 1e-3 and d < PreDeployScoreDrift.ks_floor, (seg, d, p)


@pytest.mark.slow
def test_benign_retrain_control_of_the_simulator_raises_nothing(
    store: Store, chdb_dsn: str, tmp_path: Path
) -> None:
    """``retrain_control:1000`` (development seed; small logit jitter on the new
    version) loaded through the ingest path with the monitors off, then the detector
    at every hour after the deployment: no segment reaches alert level."""
    sim = generate(load_scenario("retrain_control:1000"), seed=1, rate=1.0)
    paths = write(sim, tmp_path / "control")
    settings = Settings.load(config_file=None, overrides={
        "store_dsn": chdb_dsn, "database": store.database, "monitor_detectors": "none"})
    pipeline = build_pipeline(settings, store)
    try:
        replay(pipeline, paths["events.jsonl"], None, batch_size=settings.batch_size)
    finally:
        pipeline.close()
    first, last = store.query(
        "SELECT min(event_time), max(event_time) FROM {db}.scored_transactions")[0]
    start = first.replace(tzinfo=dt.UTC) if first.tzinfo is None else first
    stop = last.replace(tzinfo=dt.UTC) if last.tzinfo is None else last
    tested = 0
    at = start + dt.timedelta(hours=7)  # the control deploys v47 at hour 6
    while at <= stop:
        for seg, (d, p, _) in _evaluate(store, at).items():
            tested += 1
            assert not (p <= ALERT_P and d >= PreDeployScoreDrift.ks_floor), (at, seg, d, p)
        at += dt.timedelta(hours=1)
    assert tested >= 20  # segments x passes actually tested
