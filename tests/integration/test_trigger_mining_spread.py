"""Spread conjunctions in the stored results and the alert book (issue 22): each spread
conjunction has its own stable segment (``conjunction=<digest>``), the pass's filler
rows (the rest of the Bonferroni family) have theirs (``conjunction=*``), so the spread
row survives ``FINAL`` in ``drift_results`` and two different spread conjunctions raise
two alerts (two fingerprints), never one re-opened as the other's "sustain"."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

from driftwatch.monitors.monitor import Monitor
from driftwatch.monitors.registry import create
from driftwatch.monitors.segments import SegmentSpec
from driftwatch.monitors.trigger_keys import FILLER_SEGMENT, spread_segment
from driftwatch.store.client import Store
from tests.integration.monitor_data import HOUR, T0, event, insert, settings_for
from tests.integration.test_trigger_mining import RISKY, risky_traffic

AT = T0 + 49 * HOUR
MCCS = ("5411", "5812", "5999", "7011")


def spread_trigger(n: int, start: dt.datetime, cents: int, prefix: str,
                   tag: str) -> list[dict[str, Any]]:
    """``n`` trigger rows of ``n`` cards over four MCCs: one cents value, one prefix."""
    return [event(f"{tag}{j}", start + dt.timedelta(minutes=7 * j), mcc=MCCS[j % 4],
                  amount=f"{400 + 37 * j}.{cents:02d}", score=0.18, card=f"c-{tag}{j}",
                  beneficiary=f"{prefix}{j}", country="DE", features=dict(RISKY))
            for j in range(n)]


@pytest.fixture
def traffic(store: Store) -> Store:
    return risky_traffic(store, 53)


def _monitor(store: Store) -> Monitor:
    s = settings_for(store, reference_hold=True)
    return Monitor(store, s, create(s, SegmentSpec.parse(s.segment_dimensions),
                                    ["trigger_mining"]))


def test_spread_row_survives_final_and_two_conjunctions_are_two_alerts(
        traffic: Store) -> None:
    insert(traffic, spread_trigger(6, AT - 2 * HOUR + dt.timedelta(minutes=5), 91,
                                   "GLX-TRD ", "a"))
    insert(traffic, spread_trigger(6, AT + 2 * HOUR + dt.timedelta(minutes=5), 13,
                                   "ZQV-PAY ", "z"))
    mon = _monitor(traffic)
    first = mon.run_pass(AT)
    (ev,) = [e for e in first.evaluations if e.detector == "trigger_mining"]
    spread = [i for i in range(len(ev)) if ev.labels[i]["conjunction"]]
    assert len(spread) == 1
    i = spread[0]
    seg = ev.segment[i]
    assert seg == spread_segment(np.asarray(ev.details["_items"])[i])
    assert seg.startswith("conjunction=") and "amount_cents=91" in ev.labels[i]["conjunction"]
    fillers = [s for k, s in enumerate(ev.segment) if k != i]
    assert fillers and set(fillers) == {FILLER_SEGMENT}
    # the stored spread row is found under FINAL (it used to collapse with the fillers)
    rows = traffic.query(
        "SELECT segment, decision, JSONExtractString(details, 'conjunction') "
        "FROM {db}.drift_results FINAL WHERE detector = 'trigger_mining' "
        "AND evaluated_at = {at:DateTime64(3, 'UTC')}", {"at": AT})
    by_segment = {str(r[0]): r for r in rows}
    assert set(by_segment) == {seg, FILLER_SEGMENT}
    assert "amount_cents=91" in str(by_segment[seg][2])
    assert str(by_segment[seg][1]) != "ok"
    alerts_a = [f for f in first.findings if f.origin == "trigger_mining"]
    assert [f.segment for f in alerts_a] == [seg]
    # four hours later a different spread conjunction: its own segment and fingerprint
    second = mon.run_pass(AT + 4 * HOUR)
    alerts_b = [f for f in second.findings if f.origin == "trigger_mining"
                and "amount_cents=13" in f.labels().get("conjunction", "")]
    assert len(alerts_b) == 1
    assert alerts_b[0].segment.startswith("conjunction=") and alerts_b[0].segment != seg
    assert alerts_b[0].fingerprint != alerts_a[0].fingerprint
