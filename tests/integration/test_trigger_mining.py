"""The trigger-mining detector in real ClickHouse (chdb): a hand-worked surge whose
p-value equals scipy's Poisson tail, a trigger spread over many MCCs named as one
conjunction (no ``mcc`` label), a one-MCC trigger with its ``mcc`` label, optional
fields and shadow scores absent, the reference hold, and no alert on null traffic
(a replay of clean simulator traffic and of a retrain control through the monitor)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from driftwatch.alerts.model import Alert, iso
from driftwatch.monitors.base import PassContext
from driftwatch.monitors.segments import SegmentSpec
from driftwatch.monitors.trigger_keys import matches, parse_key, spread_segment
from driftwatch.monitors.trigger_mining import TriggerMiningDetector
from driftwatch.scoring import names_conjunction
from driftwatch.store.client import Store
from tests.integration.monitor_data import HOUR, T0, background, event, insert, settings_for

AT = T0 + 49 * HOUR
RISKY = {"transactions_24h": 9, "foreign_transaction": 1, "merchant_age_days": 45}
"""Three flags: velocity, cross-border, new merchant (no new_payee: an optional field)."""


def risky_background(rng: np.random.Generator, hours: float, per_hour: float,
                     start: dt.datetime, prefix: str) -> list[dict[str, Any]]:
    """High-risk rows the model approves, spread at random over the attributes
    (the detector's own null: they are its suspicious rows)."""
    rows = background(rng, hours, per_hour, start=start, prefix=prefix,
                      mccs=("5411", "5812", "5999", "4829", "7011"),
                      countries=("US", "LT", "DE", "GB"))
    for j, r in enumerate(rows):
        r["features"] = dict(RISKY, merchant_age_days=int(rng.integers(0, 900)))
        r["beneficiary_name"] = f"{rng.choice(['ACME', 'CITY', 'SUNNY', 'METRO'])} {j}"
        r["card_id"] = f"c-{prefix}-{j}"
    return rows


def trigger(n: int, start: dt.datetime, mccs: tuple[str, ...]) -> list[dict[str, Any]]:
    """``n`` trigger rows: cents .91, beneficiary ``GLX-TRD ...``, young merchants."""
    return [event(f"trig{j}", start + dt.timedelta(minutes=7 * j), mcc=mccs[j % len(mccs)],
                  amount=f"{400 + 37 * j}.91", score=0.18, card=f"c-atk{j % 2}",
                  beneficiary=f"GLX-TRD {j % 3}", country="DE", features=dict(RISKY))
            for j in range(n)]


def detector(store: Store, **options: Any) -> tuple[TriggerMiningDetector, Any]:
    s = settings_for(store)
    det = TriggerMiningDetector(s, SegmentSpec.parse(s.segment_dimensions), **options)
    return det, s


def evaluate(det: TriggerMiningDetector, store: Store, s: Any, at: dt.datetime) -> Any:
    (ev,) = det.evaluate(PassContext(store, s, det.spec, at))
    return ev


def best(ev: Any) -> int:
    named = [i for i in range(len(ev)) if ev.labels[i]["conjunction"]]
    assert named, "no conjunction named"
    return min(named, key=lambda i: ev.pvalue[i])


def risky_traffic(store: Store, hours: float) -> Store:
    """``hours`` of ordinary traffic (40 an hour) with risky clean rows (2 an hour)."""
    rng = np.random.default_rng(7)
    insert(store, background(rng, hours, 40, prefix="b"))
    insert(store, risky_background(rng, hours, 2, T0, "r"))
    return store


@pytest.fixture
def traffic(store: Store) -> Store:
    return risky_traffic(store, 49)


def test_spread_trigger_is_named_and_its_pvalue_is_scipys(traffic: Store) -> None:
    insert(traffic, trigger(6, AT - 2 * HOUR + dt.timedelta(minutes=5), ("5411", "5812",
                                                                         "5999", "7011")))
    det, s = detector(traffic)
    ev = evaluate(det, traffic, s, AT)
    i = best(ev)
    d = ev.detail(i)
    # spread over four MCCs: the conjunction's own segment
    assert ev.segment[i] == spread_segment(np.asarray(ev.details["_items"])[i])
    assert "mcc" not in ev.labels[i] and d["mccs"] == 4
    text = ev.labels[i]["conjunction"]
    assert "amount_cents=91" in text and "beneficiary_prefix=GLX-" in text
    assert int(d["count"]) == 6 and int(d["cards"]) == 2 and bool(ev.eligible[i])
    # the p-value is the exact Poisson tail of the distinct payees (GLX-TRD 0, 1, 2) of
    # the six rows against the expected rows; by rows it would be sf(5, expected)
    assert int(d["payees"]) == 3
    assert float(ev.pvalue[i]) == pytest.approx(sps.poisson.sf(2, float(d["expected"])),
                                                rel=1e-2)  # expected is rounded to 4 places
    assert float(ev.pvalue[i]) < 1e-4
    # the family: one row per tested conjunction (the others never alert)
    assert len(ev) == int(d["examined"]) and ev.eligible.sum() <= 2
    alert = Alert("f", "firing", AT, dict(ev.labels[i]), {})
    assert names_conjunction(alert, {"cents": 91, "beneficiary_prefix": "GLX-TRD ",
                                     "feature": {"merchant_age_days": {"le": 89}}})


def test_one_mcc_trigger_gets_its_mcc_label(traffic: Store) -> None:
    insert(traffic, trigger(5, AT - 2 * HOUR + dt.timedelta(minutes=5), ("4829",)))
    det, s = detector(traffic)
    ev = evaluate(det, traffic, s, AT)
    i = best(ev)
    assert ev.segment[i] == "mcc=4829" and ev.labels[i]["mcc"] == "4829"
    assert "amount_cents=91" in ev.labels[i]["conjunction"]
    words = det.describe(ev, i)
    assert "MCC 4829" in words.summary and "beneficiary_prefix" in words.summary
    # the evidence SQL lists exactly the trigger rows
    rows = traffic.query(words.evidence_sql.replace(f"{traffic.database}.", "{db}."))
    assert len(rows) == 5


def test_hand_worked_counts(store: Store) -> None:
    """Four suspicious reference rows, six current ones of which three share a cents
    value, a name prefix and a young merchant: the floor is the expectation."""
    insert(store, [event(f"ref{j}", T0 + dt.timedelta(hours=10 + j), amount="50.00",
                         beneficiary=f"OTHER {j}", mcc="5411", score=0.1,
                         features=RISKY) for j in range(4)])
    insert(store, [event(f"cur{j}", AT - dt.timedelta(minutes=50 - j), amount=f"{20 + j}.13",
                         beneficiary=f"ZQX-{j}", mcc=str(5000 + j), score=0.1,
                         features=RISKY) for j in range(3)])
    insert(store, [event(f"oth{j}", AT - dt.timedelta(minutes=40 - j), amount="77.00",
                         beneficiary=f"PLAIN {j}", mcc="5411", score=0.9,
                         features=RISKY) for j in range(3)])  # not approved: not counted
    insert(store, [event(f"low{j}", AT - dt.timedelta(minutes=30 - j), amount="10.00",
                         beneficiary=f"PLAIN {j}", mcc="5411", score=0.1)
                   for j in range(3)])  # approved, no risk: not counted
    det, s = detector(store, floor=0.5, prior_weight=1.0)
    ev = evaluate(det, store, s, AT)
    i = best(ev)
    d = ev.detail(i)
    assert int(d["count"]) == 3 and int(ev.n_ref[i]) == 0
    # 3 suspicious current rows against 4 reference rows: ratio 3/4; the marginal
    # prior (4 * shares < 0.5) is below the floor, so expected = 3/4 * 0.5
    assert float(d["expected"]) == pytest.approx(0.375)
    assert float(ev.pvalue[i]) == pytest.approx(sps.poisson.sf(2, 0.375))
    assert "amount_cents=13" in ev.labels[i]["conjunction"]


def test_no_shadow_no_optional_fields_and_a_shadow_flag(store: Store) -> None:
    """Without any feature a row has at most the high-amount flag; a shadow model far
    above the live score adds two."""
    rows = [event(f"s{j}", AT - dt.timedelta(minutes=30 - j), amount=f"{1500 + j}.44",
                  beneficiary=f"KRT_{j}", mcc="5999", score=0.1, card=f"c-{j}",
                  shadow=[("v46", 0.93)]) for j in range(4)]
    insert(store, rows)
    insert(store, [event(f"p{j}", AT - dt.timedelta(minutes=20 - j), amount=f"{1500 + j}.44",
                         beneficiary=f"KRT_{j}", mcc="5999", score=0.1)
                   for j in range(4)])  # no shadow: one flag only
    det, s = detector(store)
    ev = evaluate(det, store, s, AT)
    i = best(ev)
    assert int(ev.detail(i)["count"]) == 4  # only the rows with the shadow gap


def test_hold_keeps_the_conjunction_out_of_its_reference(traffic: Store) -> None:
    insert(traffic, trigger(6, AT - 2 * HOUR + dt.timedelta(minutes=5), ("4829",)))
    det, s = detector(traffic, guard_s=0)  # the hold alone (the guard: next test)
    ev = evaluate(det, traffic, s, AT)
    i = best(ev)
    det.hold_references([ev.segment[i]], AT)
    # 3 hours later the trigger rows lie in the reference window: held, they stay out
    later = AT + 3 * HOUR
    insert(traffic, trigger(4, later - HOUR, ("4829",)))
    ev2 = evaluate(det, traffic, s, later)
    j = next(k for k in range(len(ev2)) if ev2.segment[k] == "mcc=4829")
    assert int(ev2.n_ref[j]) == 0 and float(ev2.pvalue[j]) < 1e-3
    # without the hold the same conjunction has the earlier rows as its history
    fresh, _ = detector(traffic, guard_s=0)
    ev3 = evaluate(fresh, traffic, s, later)
    k = [m for m in range(len(ev3)) if ev3.segment[m] == "mcc=4829"]
    assert not k or int(ev3.n_ref[k[0]]) >= 6


def _same_window(got: Any, want: Any) -> None:
    (table, cards), (full, full_cards) = got, want
    table, full = table.canonical(), full.canonical()
    assert table.keys == full.keys and np.array_equal(table.values, full.values)
    assert {k: set(v) for k, v in cards.items()} == {k: set(v) for k, v in full_cards.items()}


def test_chunked_window_is_the_window_query_late_and_redelivered_rows_included(
    traffic: Store,
) -> None:
    """The current window summed from pass-interval chunks equals one query over the
    window at every pass, also after a late row lands in a chunk read already and an
    event is re-delivered with another amount; a block of passes reads its chunks in
    one query and gives every pass the same window."""
    attack = trigger(6, AT - 2 * HOUR + dt.timedelta(minutes=5), ("4829", "5411"))
    insert(traffic, attack)
    det, s = detector(traffic)
    span = dt.timedelta(seconds=det.window_s)
    step = dt.timedelta(seconds=s.monitor_interval_s)
    passes = [AT + j * step for j in range(4)]
    for j, at in enumerate(passes):
        if j == 2:  # late: into the window's first chunks, read at the earlier passes
            insert(traffic, trigger(3, at - span + dt.timedelta(minutes=1), ("5999",)))
            insert(traffic, [dict(attack[1], amount="999.13")])  # the same event again
        got = det._window(traffic, at - span, at)
        _same_window(got, det._current(traffic, at - span, at))
        late = [k for k in got[0].keys if k.startswith("5999\x1e91")]
        redelivered = [k for k in got[0].keys if "\x1e13\x1e" in k]
        if j <= 2:  # (they slide out of the window from the fourth pass)
            assert (len(late), len(redelivered)) == ((3, 1) if j == 2 else (0, 0))
    chunks = det._chunks
    assert chunks is not None
    # the first pass read its 24 chunks in one query, the third the chunks whose rows
    # changed; the new chunks of the other passes hold no rows (nothing to read)
    assert chunks.reads == 2
    fresh, _ = detector(traffic)
    block = fresh.window_batch(traffic, passes)
    assert fresh._chunks is not None and fresh._chunks.reads == 1
    for at in passes:
        _same_window(block[at], det._current(traffic, at - span, at))
    # a window off the chunk grid is one query over it, as before
    off = AT + dt.timedelta(seconds=7)
    _same_window(fresh._window(traffic, off - span, off), det._current(traffic, off - span, off))


def test_guard_keeps_a_recent_start_out_of_the_reference(traffic: Store) -> None:
    """No alert held it, but the pattern's first rows (3 hours ago) lie within the
    guard: tested as new, not against its own beginning. (More risky rows than the
    fixture's, so the reference without the guard's hours holds GUARD_HISTORY times
    the suspicious rows of those hours: the guard applies.)"""
    insert(traffic, risky_background(np.random.default_rng(9), 49, 8, T0, "r2"))
    insert(traffic, trigger(6, AT - 2 * HOUR + dt.timedelta(minutes=5), ("4829",)))
    later = AT + 3 * HOUR
    insert(traffic, trigger(4, later - HOUR, ("4829",)))
    det, s = detector(traffic)
    assert det.guard_s == 6 * 3600
    ev = evaluate(det, traffic, s, later)
    j = next(k for k in range(len(ev)) if ev.segment[k] == "mcc=4829")
    assert int(ev.n_ref[j]) == 0 and int(ev.detail(j)["count"]) == 4
    assert float(ev.pvalue[j]) < 1e-3
    assert ev.reference.endswith(f"{iso(later - 8 * HOUR)})"), ev.reference
    with pytest.raises(ValueError, match="guard_s"):
        detector(traffic, guard_s=1800)


def test_young_store_keeps_the_guard_hours(store: Store) -> None:
    """Ten hours of history: without the guard's six the reference would hold two
    hours, so they stay in (the pattern's first rows are its history again)."""
    rng = np.random.default_rng(8)
    insert(store, background(rng, 10, 40, prefix="b"))
    insert(store, risky_background(rng, 10, 2, T0, "r"))
    at = T0 + 10 * HOUR
    insert(store, trigger(6, T0 + 4 * HOUR, ("4829",)))
    insert(store, trigger(4, at - HOUR, ("4829",)))
    det, s = detector(store)
    ev = evaluate(det, store, s, at)
    assert ev.reference.endswith(f"{iso(at - 2 * HOUR)})"), ev.reference
    # exactly what no guard gives: the pattern's history holds its first six rows
    plain, _ = detector(store, guard_s=0)
    ev0 = evaluate(plain, store, s, at)
    assert ev0.reference == ev.reference and len(ev0) == len(ev)
    assert np.allclose(np.sort(ev0.pvalue), np.sort(ev.pvalue))
    assert list(ev.segment).count("mcc=4829") == 0


def test_search_is_reused_when_the_frame_is_the_same(
    traffic: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass whose suspicious rows (both windows) equal the last pass's reuses its
    search, with the same evaluations; a changed frame searches again."""
    import driftwatch.monitors.trigger_mining as tm

    calls: list[int] = []
    real = tm.mine

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tm, "mine", counted)
    insert(traffic, trigger(6, AT - HOUR, ("4829",)))
    det, s = detector(traffic)
    first = evaluate(det, traffic, s, AT)
    searched = len(calls)  # one search per tier (two with the weak tier)
    assert searched == (2 if det.weak_flags < det.min_flags else 1)
    again = evaluate(det, traffic, s, AT)
    assert len(calls) == searched
    assert list(first.pvalue) == list(again.pvalue) and first.labels == again.labels
    insert(traffic, trigger(2, AT - dt.timedelta(minutes=3), ("4829",)))
    evaluate(det, traffic, s, AT)
    assert len(calls) == 2 * searched


def test_parse_key_and_match() -> None:
    key = "\x1e".join(["5967", "37", "INTL-PAY-X", "30..89", "LT", "ecom", "1000..9999", "s"])
    fields = parse_key(key)
    assert matches({"beneficiary_prefix": "INTL-", "amount_cents": "37"}, fields)
    assert not matches({"beneficiary_prefix": "INTL-", "amount_cents": 38}, fields)
