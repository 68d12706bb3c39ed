"""Recall from delayed labels: the same label-age cutoff in both windows, and every
stored version of a label (no label vanishes because a later version exists)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from scipy import stats as sps

from driftwatch.events import Label
from driftwatch.monitors.base import PassContext
from driftwatch.monitors.recall import RecallDetector, drop_pvalue
from driftwatch.monitors.segments import SegmentSpec
from driftwatch.stats.dispersion import rate_concentration
from driftwatch.store.client import Store
from tests.integration.monitor_data import HOUR, T0, event, insert, settings_for

DAY = 24 * HOUR
AT = T0 + 4 * DAY
"""Pass time: current window [AT - 48 h, AT - 24 h), reference the two days before."""


def _ctx(store: Store) -> PassContext:
    s = settings_for(store, label_maturity_s=86400, reference_window_s=2 * 86400)
    return PassContext(store, s, SegmentSpec.parse(s.segment_dimensions), AT)


def _drop(store: Store) -> tuple[float, float, float, int, int]:
    ctx = _ctx(store)
    out = RecallDetector(ctx.settings, ctx.spec).evaluate(ctx)
    ev = next(e for e in out if e.test == "drop")
    i = next(j for j, s in enumerate(ev.segment) if s == "mcc=5967" and ev.version(j) == "v46")
    d = ev.detail(i)
    return float(d["recall"]), float(d["recall_ref"]), float(ev.pvalue[i]), int(ev.n[i]), int(
        ev.n_ref[i]
    )


def _fraud_stream(store: Store) -> list[tuple[str, dt.datetime, bool]]:
    """Frauds every 30 min from T0 to AT - 24 h; per block of 8: 6 held, 2 missed."""
    rows = []
    evs = []
    j = 0
    t = T0
    while t < AT - DAY:
        held = j % 8 < 6
        evs.append(event(f"f{j}", t, mcc="5967", score=0.9 if held else 0.2, version="v46"))
        rows.append((f"t-f{j}", t, held))
        j += 1
        t += dt.timedelta(minutes=30)
    insert(store, evs)
    return rows


def test_fast_held_slow_missed_labels_show_no_recall_change(store: Store) -> None:
    # Same true recall (6 of 8) all along. Held frauds: analyst label after 1 h.
    # Missed frauds: alternately 12 h (customer report) and 30 h (chargeback).
    rows = _fraud_stream(store)
    labels = []
    missed = 0
    for txn, t, held in rows:
        if held:
            delay = HOUR
        else:
            delay = 12 * HOUR if missed % 2 == 0 else 30 * HOUR
            missed += 1
        if t + delay < AT:
            labels.append(Label(txn, 1, t + delay, "chargeback" if not held else "analyst"))
    store.insert_labels(labels)
    recall, recall_ref, pvalue, n, n_ref = _drop(store)
    # With a 24 h cutoff in both windows, 6 held and 1 missed of every 8 count.
    assert recall == recall_ref == round(6 / 7, 4)
    assert (n, n_ref) == (42, 84)
    assert pvalue > 0.4
    # The old rule (every label known at the pass) would have compared windows of
    # different label ages: the fixture does separate the two.
    known = {lab.txn_id for lab in labels}

    def naive(lo: dt.datetime, hi: dt.datetime) -> float:
        sel = [(x, h) for x, t, h in rows if lo <= t < hi and x in known]
        return sum(h for _, h in sel) / len(sel)

    assert naive(AT - 2 * DAY, AT - DAY) > naive(T0, AT - 2 * DAY) + 0.03


def test_a_later_label_version_does_not_hide_the_one_known_earlier(store: Store) -> None:
    rows = _fraud_stream(store)
    first = [Label(txn, 1, t + HOUR, "analyst") for txn, t, _ in rows]
    store.insert_labels(first)
    before = _drop(store)
    # Chargebacks confirm every fraud 5 days later, i.e. after the pass time: the
    # newest version is unknown at the pass, the analyst's label still counts.
    store.insert_labels([Label(txn, 1, t + 5 * DAY, "chargeback") for txn, t, _ in rows])
    after = _drop(store)
    assert after == before
    assert before[3:] == (48, 96)
    assert before[0] == before[1] == 0.75


def test_a_relabel_after_the_cutoff_does_not_change_the_window(store: Store) -> None:
    rows = _fraud_stream(store)
    store.insert_labels([Label(txn, 1, t + HOUR, "analyst") for txn, t, _ in rows])
    # Every transaction relabelled legitimate 30 h later: known at the pass for the
    # reference, past the 24 h cutoff for both windows, so ignored in both.
    store.insert_labels(
        [Label(txn, 0, t + 30 * HOUR, "other") for txn, t, _ in rows if t + 30 * HOUR < AT]
    )
    recall, recall_ref, pvalue, n, n_ref = _drop(store)
    assert (recall, recall_ref, n, n_ref) == (0.75, 0.75, 48, 96)
    want = sps.fisher_exact([[36, 12], [72, 24]], alternative="less").pvalue
    assert pvalue == pytest.approx(float(want), rel=1e-9)


def test_day_to_day_recall_spread_of_the_reference_widens_the_null(store: Store) -> None:
    # reference days: 36 of 40 held, then 16 of 40; current day: 16 of 40
    evs = []
    plan = [(T0, 36), (T0 + DAY, 16), (AT - 2 * DAY, 16)]
    for d, (start, held) in enumerate(plan):
        for j in range(40):
            t = start + j * dt.timedelta(minutes=30)
            evs.append(event(f"d{d}-{j}", t, mcc="5967", score=0.9 if j < held else 0.2,
                             version="v46"))
    rows = insert(store, evs)
    store.insert_labels([Label(x.txn_id, 1, x.event_time + HOUR, "analyst") for x in rows])
    recall, recall_ref, pvalue, n, n_ref = _drop(store)
    assert (n, n_ref, recall, recall_ref) == (40, 80, 0.4, 0.65)
    fisher = sps.fisher_exact([[16, 24], [52, 28]], alternative="less").pvalue
    conc = rate_concentration([[36.0, 16.0]], [[40.0, 40.0]])
    want = drop_pvalue(np.array([16.0]), np.array([40.0]), np.array([52.0]), np.array([80.0]),
                       conc)
    assert np.isfinite(conc[0])
    assert pvalue == pytest.approx(float(want[0]), rel=1e-9)
    assert pvalue > 10 * fisher


def test_a_label_changed_later_does_not_change_an_earlier_pass_on_replay(
    store: Store,
) -> None:
    """Relabelled after the pass and merged away in ``labels``: the history keeps the
    version the pass saw, so replaying the pass gives the same result."""
    rows = _fraud_stream(store)
    store.insert_labels([Label(txn, 1, t + HOUR, "analyst") for txn, t, _ in rows])
    before = _drop(store)
    # every fraud relabelled legitimate after the pass time, then the table merged:
    # `labels` holds only the newest versions now
    store.insert_labels([Label(txn, 0, AT + DAY, "review") for txn, _, _ in rows])
    store.command("OPTIMIZE TABLE {db}.labels FINAL")
    current = store.query("SELECT countIf(label = 1), count() FROM {db}.labels")
    assert (int(current[0][0]), int(current[0][1])) == (0, len(rows))
    history = store.query("SELECT count() FROM {db}.label_history")
    assert int(history[0][0]) == 2 * len(rows)
    after = _drop(store)
    assert after == before
    assert before[3:] == (48, 96) and before[0] == before[1] == 0.75
