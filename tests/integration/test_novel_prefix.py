"""The novel-prefix detector on crafted traffic in the real store: a payout family spread
over MCCs is named with its shared values, clean traffic with its chance pairs raises
nothing, the reference hold keeps an alert while the attack lasts, and backfill
writes the rows of the pass-by-pass path."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

from driftwatch.monitors.base import PassContext
from driftwatch.monitors.monitor import Monitor
from driftwatch.monitors.novel_prefix import NovelPrefixDetector
from driftwatch.monitors.registry import create
from driftwatch.monitors.segments import SegmentSpec
from driftwatch.stats.group_tail import combine, group_tail
from driftwatch.store.client import Store, open_store
from tests.integration.monitor_data import HOUR, T0, event, insert, settings_for
from tests.integration.test_monitors_backfill import _results, _same

FIRST = ("ANA", "JON", "MIA", "WEI", "NOA", "SAM", "OMA", "LIN", "JIM", "EVA")
LAST = ("LEE", "KHN", "SMT", "GAR", "NGU", "COH", "LOP", "KIM", "JON", "WUU")
SHOPS = ("GREEN MART", "CITY PLUS", "NORTH OUTLET", "RIVER HOUSE", "BLUE CAFE")
MCCS = ("5411", "5812", "5999", "7011", "4121", "5732")
AT = T0 + 50 * HOUR


def clean(hours: float, per_hour: int, seed: int = 3) -> list[dict[str, Any]]:
    """Shoppers at a few hundred named merchants, and person-to-person payees: names
    ``FIRST LAST NUMBER``, most of them new each hour, whose 12-character prefixes
    (``ANA LEE 1012``) fall into 6,000 cells: chance pairs and triples of new names that
    share a never-seen prefix happen every few windows."""
    rng = np.random.default_rng(seed)
    n = int(hours * per_hour)
    secs = np.sort(rng.uniform(0, hours * 3600, n))
    out = []
    for j in range(n):
        if rng.random() < 0.5:
            k = int(rng.integers(0, 300))
            name, merchant = f"{SHOPS[k % 5]} {k}", f"m-{k}"
        else:
            name = (f"{FIRST[rng.integers(0, 10)]} {LAST[rng.integers(0, 10)]} "
                    f"{rng.integers(1000, 1060)}{rng.integers(0, 100):02d}")
            merchant = "m-p2p"
        cents = 0 if rng.random() < 0.3 else int(rng.integers(0, 100))
        out.append(event(f"b{j}", T0 + dt.timedelta(seconds=float(secs[j])),
                         mcc=MCCS[int(rng.integers(0, 6))], merchant=merchant,
                         amount=f"{rng.integers(5, 900)}.{cents:02d}", beneficiary=name,
                         card=f"c-{rng.integers(0, 20_000)}", score=float(rng.beta(1, 40))))
    return out


def payout(n: int, start: dt.datetime, every: dt.timedelta, tag: str = "a",
           merchants: int = 40) -> list[dict[str, Any]]:
    """``n`` trigger rows: three cards, names of a ``QZV-PAY`` family (one per merchant),
    cents .91, spread over six MCCs."""
    rng = np.random.default_rng(9)
    out = []
    for j in range(n):
        k = int(rng.integers(0, merchants))
        out.append(event(f"{tag}{j}", start + j * every, mcc=MCCS[j % 6], merchant=f"m-q{k}",
                         amount=f"{300 + 41 * j}.91", beneficiary=f"QZV-PAY{k:02d}-X",
                         card=f"c-q{j % 3}", score=0.2, country="DE"))
    return out


@pytest.fixture
def traffic(store: Store) -> Store:
    insert(store, clean(56, 150))
    return store


def _detector(store: Store) -> tuple[NovelPrefixDetector, Any]:
    s = settings_for(store, reference_window_s=7 * 86400)
    (det,) = create(s, SegmentSpec.parse(s.segment_dimensions), ["novel_prefix"])
    assert isinstance(det, NovelPrefixDetector)
    return det, s


def test_spread_payout_family_is_named_and_its_pvalue_is_the_tail(traffic: Store) -> None:
    insert(traffic, payout(6, AT - 2 * HOUR, dt.timedelta(minutes=17)))
    det, s = _detector(traffic)
    (ev,) = det.evaluate(PassContext(traffic, s, SegmentSpec.parse(s.segment_dimensions), AT))
    i = int(np.argmin(ev.pvalue))
    d = ev.detail(i)
    assert str(d["prefix"]).startswith("QZV-PAY") and int(d["names"]) >= 5
    assert int(d["cards"]) == 3 and bool(ev.eligible[i])
    text = ev.labels[i]["conjunction"]
    assert "beneficiary_prefix=QZV-PAY" in text and "amount_cents=91" in text
    assert "merchant_country=DE" in text and "mcc" not in ev.labels[i]
    # the p-value: the chance-group tail of the history, combined with the shared cents
    sizes, founders, _ = det._null(traffic, AT - dt.timedelta(seconds=det.window_s))
    tail = group_tail(int(d["names"]), int(d["new_names"]), sizes, founders)
    assert float(d["p_names"]) == pytest.approx(tail.pvalue, rel=1e-9)
    assert float(ev.pvalue[i]) == pytest.approx(
        min(1.0, 2 * min(tail.pvalue, combine(tail.pvalue, float(d["p_shared"])))), rel=1e-9)
    assert float(ev.pvalue[i]) < 1e-8
    # the clean traffic's own chance groups are there, and none is eligible
    assert sizes and founders > 1000
    others = [k for k in range(len(ev)) if k != i]
    assert all(not ev.eligible[k] or ev.pvalue[k] > 1e-3 for k in others)
    # the evidence query lists the family's rows
    words = det.describe(ev, i)
    rows = traffic.query(words.evidence_sql.replace(traffic.database + ".", "{db}."))
    assert len(rows) >= int(d["names"])


def test_clean_traffic_raises_nothing(traffic: Store) -> None:
    """Chance pairs and triples of new names every window; no pass alerts."""
    s = settings_for(traffic, reference_window_s=7 * 86400, monitor_warmup_s=3600)
    mon = Monitor(traffic, s, create(s, SegmentSpec.parse(s.segment_dimensions),
                                     ["novel_prefix"]), max_catchup=200)
    groups = 0
    smallest = 1.0
    for k in range(16):
        res = mon.run_pass(T0 + 40 * HOUR + k * HOUR / 2)
        assert not res.findings
        for ev in res.evaluations:
            groups += len(ev)
            smallest = min([smallest, *ev.pvalue.tolist()])
    assert groups >= 16  # the test sees chance groups to judge
    assert smallest > 1e-4


def test_hold_keeps_the_alert_while_the_family_keeps_paying(traffic: Store) -> None:
    """Twelve hours of a 40-name family: its names repeat, so without the hold they
    would become known after the first window and the alert would resolve."""
    insert(traffic, payout(60, AT - 2 * HOUR, dt.timedelta(minutes=12)))
    s = settings_for(traffic, reference_window_s=7 * 86400, monitor_warmup_s=3600,
                     reference_hold=True)
    mon = Monitor(traffic, s, create(s, SegmentSpec.parse(s.segment_dimensions),
                                     ["novel_prefix"]), max_catchup=200)
    firing = []
    for k in range(20):
        res = mon.run_pass(AT + k * HOUR / 2)
        firing.append(any(f.origin == "novel_prefix" and "QZV-PAY" in f.summary
                          for f in res.findings))
    assert all(firing[:18]), firing  # the family pays until AT + 10 h
    (det,) = mon.detectors
    assert isinstance(det, NovelPrefixDetector)
    assert [h.prefix[:7] for h in det._holds.values()] == ["QZV-PAY"]


@pytest.mark.slow
def test_backfill_writes_the_rows_of_the_pass_by_pass_path(store: Store, chdb_dsn: str) -> None:
    events = clean(30, 120, seed=8) + payout(20, T0 + 26 * HOUR, dt.timedelta(minutes=9))
    other = open_store(chdb_dsn, f"{store.database}_bf", init=True)
    try:
        rows = []
        for target, block in ((store, 1), (other, 40)):
            insert(target, events)
            s = settings_for(target, monitor_warmup_s=3600, monitor_backfill_passes=block,
                             reference_window_s=7 * 86400)
            mon = Monitor(target, s, create(s, SegmentSpec.parse(s.segment_dimensions),
                                            ["novel_prefix"]), max_catchup=100)
            mon.on_watermark(T0 + 30 * HOUR)
            assert mon.passes == 100 and mon.detector_errors == {}
            rows.append(_results(target))
    finally:
        other.drop()
    seq, bf = rows
    assert any(r[14] == "alert" for r in seq) and len(seq) > 100
    assert len(seq) == len(bf)
    assert all(a == b or _same(a, b) for a, b in zip(seq, bf, strict=True))
