"""The monitor holds every detector's reference of an alerting segment (issue 21):
from the pass that alerts until the alert resolves, then releases it (no ClickHouse:
fixed evaluations, a reference over an in-memory fetch)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from driftwatch.monitors.base import Evaluations, PassContext
from driftwatch.monitors.monitor import Monitor
from driftwatch.monitors.reference import SegmentTable
from tests.unit.monitors.test_monitor_decisions import AT, SETTINGS, Fixed


class WithReference(Fixed):
    """A fixed detector that also reads a sliding reference every pass."""

    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        if not self._references:
            self.sliding(lambda lo, hi: SegmentTable(
                ["mcc=5967", "mcc=5411"], np.full((2, 3), (hi - lo).total_seconds())))
        ref = self._references[0]
        ref.table(*ref.bounds(ctx.at, 86400))
        return super().evaluate(ctx)


def test_alerting_segment_is_held_in_every_detector_until_it_resolves() -> None:
    alerting = WithReference("a", {"mcc=5967": 1e-12})
    quiet = WithReference("b", {})
    mon = Monitor(None, SETTINGS, [alerting, quiet], warmup_s=0, write_results=False)  # type: ignore[arg-type]
    mon.run_pass(AT)
    assert alerting._references[0].held == {"mcc=5967"}
    assert quiet._references[0].held == {"mcc=5967"}  # the slice, in every detector
    alerting.rows["mcc=5967"] = 0.5  # clean evidence from now on
    step = dt.timedelta(seconds=SETTINGS.monitor_interval_s)
    for k in range(1, SETTINGS.alert_resolve_after):
        mon.run_pass(AT + k * step)
        assert alerting._references[0].held == {"mcc=5967"}  # not resolved yet
    mon.run_pass(AT + SETTINGS.alert_resolve_after * step)
    assert alerting._references[0].held == frozenset()


def test_no_hold_when_switched_off() -> None:
    det = WithReference("a", {"mcc=5967": 1e-12})
    mon = Monitor(None, SETTINGS.replace(reference_hold=False), [det], warmup_s=0,  # type: ignore[arg-type]
                  write_results=False)
    mon.run_pass(AT)
    assert det._references[0].held == frozenset()
