"""A cold first pass (a worker restarted, a backfill started later) computes what a
process running since long before computes at that pass: the detectors' dispersion
estimates are read at fixed points of event time, not from whenever the process
started (monitors/dispersion.ReferenceDispersion), in a young store and later."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from driftwatch.monitors.base import Evaluations
from driftwatch.monitors.dispersion import ReferenceDispersion
from driftwatch.monitors.monitor import Monitor
from driftwatch.monitors.registry import create
from driftwatch.monitors.segments import SegmentSpec
from driftwatch.store.client import Store
from tests.integration.monitor_data import HOUR, T0, background, insert, settings_for

DETECTORS = ("cents", "volume", "benford")


def _monitor(store: Store) -> Monitor:
    settings = settings_for(store, monitor_interval_s=1800, monitor_warmup_s=3600)
    spec = SegmentSpec.parse(settings.segment_dimensions)
    return Monitor(store, settings, create(settings, spec, list(DETECTORS)),
                   write_results=False)


def _key(evs: list[Evaluations]) -> list[tuple[object, ...]]:
    """Every test's row: detector, test, segment, p-value, rows, reference rows (the
    order of segments within an evaluation is not part of the result)."""
    return sorted(
        (e.detector, e.test, e.segment[i], float(e.pvalue[i]), int(e.n[i]), int(e.n_ref[i]))
        for e in evs for i in range(len(e.segment))
    )


@pytest.mark.slow
def test_a_cold_first_pass_evaluates_as_a_warm_process_does(store: Store) -> None:
    rng = np.random.default_rng(7)
    # three days of traffic; the reference window is two days, so the store is young
    # (empty reference chunks) for the first two and complete on the third
    insert(store, background(rng, 72, 80, mccs=("5967", "5411", "5812"),
                             countries=("US", "LT")))
    warm = _monitor(store)
    passes = [T0 + 20 * HOUR + k * dt.timedelta(minutes=30) for k in range(100)]
    seen = {at: _key(warm.run_pass(at).evaluations) for at in passes}
    assert sum(len(v) for v in seen.values()) > 100
    disps = [v for d in warm.detectors for v in vars(d).values()
             if isinstance(v, ReferenceDispersion)]
    reads = [x.reads for x in disps]
    assert disps and max(reads) >= 3, reads  # the estimates were re-read on the way
    # cold starts spread over the young and the mature store, three passes each
    for start in (7, 23, 41, 58, 77, 95):
        cold = _monitor(store)
        for at in passes[start:start + 3]:
            assert _key(cold.run_pass(at).evaluations) == seen[at], at
