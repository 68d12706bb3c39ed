"""Streaming detectors: river on the same streams, fixed detection points, hand cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from river import drift

from driftwatch.stats.adwin import ADWIN
from driftwatch.stats.cusum import CUSUM
from driftwatch.stats.page_hinkley import PageHinkley
from driftwatch.stats.trend import DeclineRun, consecutive_declines


def detections(detector: CUSUM | PageHinkley | ADWIN | DeclineRun, stream: np.ndarray) -> list[int]:
    return [i for i, x in enumerate(stream) if detector.update(float(x)).drift_detected]


def river_detections(detector: drift.PageHinkley | drift.ADWIN, stream: np.ndarray) -> list[int]:
    out = []
    for i, x in enumerate(stream):
        detector.update(float(x))
        if detector.drift_detected:
            out.append(i)
    return out


# ---------------------------------------------------------------- Page-Hinkley vs river
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mode": "up", "threshold": 20.0},
        {"mode": "down", "threshold": 10.0, "delta": 0.01},
        {"min_instances": 5, "alpha": 0.99, "threshold": 5.0},
    ],
)
def test_page_hinkley_matches_river(kwargs: dict[str, object]) -> None:
    rng = np.random.default_rng(12345)
    stream = np.concatenate(
        [rng.normal(0.0, 1.0, 800), rng.normal(1.5, 1.0, 600), rng.normal(-1.0, 1.0, 600)]
    )
    ours = detections(PageHinkley(**kwargs), stream)  # type: ignore[arg-type]
    theirs = river_detections(drift.PageHinkley(**kwargs), stream)  # type: ignore[arg-type]
    assert ours == theirs
    assert ours  # the stream has changes to find


def test_page_hinkley_fixed_points_and_validation() -> None:
    rng = np.random.default_rng(12345)
    stream = np.concatenate([rng.integers(0, 2, 1000), rng.integers(4, 8, 1000)])
    assert detections(PageHinkley(), stream) == [1008]
    ph = PageHinkley()
    assert detections(ph, np.random.default_rng(1).normal(0.5, 0.1, 3000)) == []
    assert ph.n == 3000 and ph.statistic < ph.threshold
    with pytest.raises(ValueError, match="mode='sideways'"):
        PageHinkley(mode="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"alpha=1\.5"):
        PageHinkley(alpha=1.5)


# ---------------------------------------------------------------- CUSUM
def test_cusum_hand_case() -> None:
    det = CUSUM(target=0.0, sigma=1.0, k=0.5, h=2.0, direction="up")
    sums = [det.update(x).upper for x in (1.0, 1.0, 0.0, 2.0)]
    assert sums == [0.5, 1.0, 0.5, 2.0]
    assert not det.drift_detected  # 2.0 is not > h
    assert det.update(1.0).drift_detected and det.statistic == 2.5
    # after a detection the next update restarts the sums
    assert det.update(0.0).upper == 0.0 and not det.drift_detected


def test_cusum_fixed_detection_point_on_seeded_recall_series() -> None:
    rng = np.random.default_rng(5)
    stream = np.concatenate([rng.normal(0.94, 0.01, 60), rng.normal(0.91, 0.01, 40)])
    det = CUSUM(warmup=30, direction="down")
    found = detections(det, stream)
    assert found[0] == 62
    assert det.reference_mean == pytest.approx(0.94, abs=0.005)
    assert det.reference_sigma == pytest.approx(0.01, rel=0.3)
    up_only = CUSUM(warmup=30, direction="up")
    assert detections(up_only, stream) == []


def test_cusum_in_control_false_alarms_are_rare() -> None:
    rng = np.random.default_rng(9)
    alarms = 0
    for _ in range(50):
        det = CUSUM(target=0.0, sigma=1.0, direction="down")
        alarms += len(detections(det, rng.normal(0.0, 1.0, 200)))
    # one-sided ARL0 ~ 930 at k = 0.5, h = 5: expect about 50 * 200 / 930 = 11
    assert alarms <= 25


def test_cusum_warmup_nan_and_validation() -> None:
    det = CUSUM(warmup=3)
    for x in (1.0, float("nan"), 2.0, 3.0):
        det.update(x)
    assert det.warmed_up and det.n == 3
    assert det.reference_mean == 2.0 and det.reference_sigma == 1.0
    flat = CUSUM(warmup=2).update(5.0).update(5.0)
    assert flat.reference_sigma == flat.min_sigma
    assert flat.update(5.1).drift_detected  # any change of a constant series
    for bad, match in (
        ({"direction": "left"}, "direction='left'"),
        ({"sigma": 0.0}, "sigma=0.0"),
        ({"k": -1.0}, "k=-1.0"),
        ({"h": 0.0}, "h=0.0"),
        ({"warmup": 1}, "warmup=1"),
    ):
        with pytest.raises(ValueError, match=match):
            CUSUM(**bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- ADWIN
def test_adwin_matches_river() -> None:
    rng = np.random.default_rng(1)
    stream = np.concatenate([rng.binomial(1, 0.05, 2000), rng.binomial(1, 0.30, 500)])
    ours = ADWIN()
    found = detections(ours, stream)
    assert found == river_detections(drift.ADWIN(), stream)
    assert found[0] == 2111
    assert 0.2 < ours.estimation < 0.4 and ours.width < 2500
    with pytest.raises(ValueError, match="delta=2"):
        ADWIN(delta=2)


# ---------------------------------------------------------------- declines
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
