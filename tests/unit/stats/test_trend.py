"""Consecutive declines (the recall trend across versions): hand cases and the stream."""

from __future__ import annotations

import math

import numpy as np
import pytest

from driftwatch.stats.trend import DeclineRun, consecutive_declines


def test_consecutive_declines_incident_series() -> None:
    assert consecutive_declines([94.5, 94.2, 93.8])  # v45 -> v46 -> v47
    assert not consecutive_declines([94.5, 94.2, 94.3])
    assert not consecutive_declines([94.5, 94.2])  # too short
    assert consecutive_declines([96.0, 94.5, 94.2, 93.8], n=4)
    assert not consecutive_declines([94.5, 94.2, 93.8], tolerance=0.35)
    assert consecutive_declines([94.5, 94.2, math.nan, 93.8])
    with pytest.raises(ValueError, match="n=1"):
        consecutive_declines([1.0], n=1)


def test_decline_run_stream() -> None:
    run = DeclineRun(n=3)
    flags = [run.update(x).drift_detected for x in (94.0, 94.5, 94.2, 93.8, 93.1, 93.5)]
    assert flags == [False, False, False, True, True, False]
    assert run.length == 1
    series = np.random.default_rng(3).normal(0.94, 0.01, 200)
    det = DeclineRun(n=4)
    for i, x in enumerate(series):
        assert det.update(x).drift_detected == consecutive_declines(series[: i + 1], n=4)
