"""The monitor's decisions over one pass: BH family, alert level, corroboration,
effect floors, hysteresis and carry-forward (no ClickHouse: detectors return fixed
evaluations)."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import numpy as np

from driftwatch.monitors.base import Description, Detector, Evaluations, PassContext
from driftwatch.monitors.monitor import Monitor
from driftwatch.monitors.segments import SegmentSpec
from driftwatch.settings import Settings

AT = dt.datetime(2026, 3, 18, 14, 0, tzinfo=dt.UTC)
SETTINGS = Settings.load(config_file=None, env={})
SPEC = SegmentSpec.parse("mcc")
NOISE = 2000  # null tests in the family


class Fixed(Detector):
    """A detector that reports preset p-values for a few segments plus null noise."""

    name = "fixed"
    tests: ClassVar[dict[str, str]] = {"t": "FixedAnomaly"}
    effect_floor = 0.1

    def __init__(self, name: str, rows: dict[str, float], **kw: Any) -> None:
        super().__init__(SETTINGS, SPEC, **kw)
        self.name = name  # type: ignore[misc]
        self.rows = dict(rows)

    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        rng = np.random.default_rng(len(self.name))
        segs = list(self.rows) + [f"mcc={9000 + i}" for i in range(NOISE)]
        p = np.concatenate([list(self.rows.values()), rng.uniform(size=NOISE)])
        size = len(segs)
        return [
            Evaluations(
                detector=self.name, test="t", alertname=f"{self.name}Anomaly",
                window_start=ctx.at - dt.timedelta(hours=1), window_end=ctx.at,
                reference="fixed", segment=segs, statistic=np.ones(size), pvalue=p,
                effect=np.full(size, 0.5), n=np.ones(size, dtype=np.int64),
                n_ref=np.ones(size, dtype=np.int64), effect_floor=self.effect_floor,
                critical_effect=0.9,
            )
        ]

    def describe(self, ev: Evaluations, i: int) -> Description:
        return Description(summary=f"{ev.segment[i]} p={ev.pvalue[i]:.1e}")


def run(*detectors: Detector, at: dt.datetime = AT) -> list[tuple[str, str, str]]:
    mon = Monitor(None, SETTINGS, list(detectors), warmup_s=0, write_results=False)  # type: ignore[arg-type]
    return sorted((f.origin, f.segment, f.severity) for f in mon.run_pass(at).findings)


def test_strong_discoveries_alert_alone() -> None:
    assert run(Fixed("a", {"mcc=5967": 1e-12})) == [("a", "mcc=5967", "warning")]


def test_moderate_discoveries_alert_only_when_another_detector_agrees() -> None:
    # 2e-6 x 2001 tests = 4e-3: a discovery at fdr_q 0.01, not at alert_q 1e-4
    assert run(Fixed("a", {"mcc=5967": 2e-6})) == []
    both = run(Fixed("a", {"mcc=5967": 2e-6}), Fixed("b", {"mcc=5967": 2e-6}))
    assert both == [("a", "mcc=5967", "warning"), ("b", "mcc=5967", "warning")]
    # agreement on different segments is no corroboration
    assert run(Fixed("a", {"mcc=5967": 2e-6}), Fixed("b", {"mcc=5411": 2e-6})) == []


def test_effect_floor_blocks_even_strong_evidence() -> None:
    assert run(Fixed("a", {"mcc=5967": 1e-12}, effect_floor=0.6)) == []


def test_hysteresis_keeps_an_alerting_segment_with_weaker_evidence() -> None:
    det = Fixed("a", {"mcc=5967": 1e-12})
    mon = Monitor(None, SETTINGS, [det], warmup_s=0, write_results=False)  # type: ignore[arg-type]
    assert mon.run_pass(AT).findings
    det.rows["mcc=5967"] = 5e-3  # no discovery any more, but clearly elevated
    again = mon.run_pass(AT + dt.timedelta(minutes=5))
    assert [f.segment for f in again.findings] == ["mcc=5967"]
    assert again.decisions["sustain"] == 1
    det.rows["mcc=5967"] = 0.5
    assert mon.run_pass(AT + dt.timedelta(minutes=10)).findings == []


def test_hourly_detectors_carry_their_findings_between_runs() -> None:
    det = Fixed("a", {"mcc=5967": 1e-12}, every_s=3600)
    mon = Monitor(None, SETTINGS, [det], warmup_s=0, write_results=False)  # type: ignore[arg-type]
    assert len(mon.run_pass(AT).findings) == 1
    carried = mon.run_pass(AT + dt.timedelta(minutes=5)).findings
    assert [(f.segment, f.event_time) for f in carried] == [
        ("mcc=5967", AT + dt.timedelta(minutes=5))
    ]


class Paired(Fixed):
    """A detector whose null needs no trailing baseline (like shadow scores)."""

    needs_history: ClassVar[bool] = False


def test_warmup_silences_only_detectors_that_need_history() -> None:
    baseline = Fixed("a", {"mcc=5967": 1e-12})
    paired = Paired("b", {"mcc=5411": 1e-12})
    mon = Monitor(None, SETTINGS, [baseline, paired], warmup_s=86400, write_results=False)  # type: ignore[arg-type]
    mon._data_start = AT - dt.timedelta(hours=2)  # two hours of history: warming up
    result = mon.run_pass(AT)
    assert [(f.origin, f.segment) for f in result.findings] == [("b", "mcc=5411")]
    assert result.decisions["warmup"] == 1
    mon._data_start = AT - dt.timedelta(days=2)
    later = mon.run_pass(AT + dt.timedelta(minutes=5))
    assert sorted(f.origin for f in later.findings) == ["a", "b"]
