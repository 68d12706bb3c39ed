"""The demo's progress reading from the worker's Prometheus exposition."""

from __future__ import annotations

from driftwatch.demo import _metric

EXPOSITION = """\
# HELP driftwatch_events_in_total Events read
# TYPE driftwatch_events_in_total counter
driftwatch_events_in_total{partition="0",topic="transactions.scored"} 120.0
driftwatch_events_in_total{partition="1",topic="transactions.scored"} 80.0
driftwatch_events_in_total{partition="0",topic="transactions.labels"} 7.0
driftwatch_events_in_created{partition="0",topic="transactions.scored"} 1.7e9
driftwatch_monitor_passes_total 12.0
driftwatch_monitor_passes_created 1.7e9
driftwatch_monitor_passes_behind 3.0
"""


def test_metric_sums_one_topic_across_partitions() -> None:
    assert _metric(EXPOSITION, "driftwatch_events_in_total", "transactions.scored") == 200.0
    assert _metric(EXPOSITION, "driftwatch_events_in_total", "transactions.labels") == 7.0


def test_metric_without_labels_matches_the_exact_name_only() -> None:
    # not driftwatch_monitor_passes_created / _behind, which share the prefix
    assert _metric(EXPOSITION, "driftwatch_monitor_passes_total") == 12.0
    assert _metric(EXPOSITION, "driftwatch_missing_total") == 0.0
