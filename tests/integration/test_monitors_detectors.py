"""Each detector on small crafted data in real ClickHouse (chdb), with known answers:
the SQL aggregates and the p-values equal the same statistic computed in numpy/scipy
from the same rows."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from driftwatch.monitors.base import PassContext
from driftwatch.monitors.beneficiary import BeneficiaryDetector
from driftwatch.monitors.benford import BenfordDetector
from driftwatch.monitors.cents import CentsDetector
from driftwatch.monitors.disagreement import DisagreementDetector
from driftwatch.monitors.dispersion import between_concentration, cells_vs_reference
from driftwatch.monitors.out_of_domain import OutOfDomainDetector
from driftwatch.monitors.pileup import PileupDetector
from driftwatch.monitors.recall import RecallDetector
from driftwatch.monitors.score_drift import FINE, ScoreDriftDetector, reference_bins, regroup
from driftwatch.monitors.segments import SegmentSpec, segment_sql
from driftwatch.monitors.shadow import ShadowDetector
from driftwatch.monitors.volume import VolumeDetector
from driftwatch.stats.dispersion import chi2_inflation, predictive_concentration
from driftwatch.stats.ks import ks_from_counts
from driftwatch.stats.maxcell import max_cell_test
from driftwatch.stats.psi import psi_test
from driftwatch.stats.rates import upper_rate
from driftwatch.store.client import Store
from tests.integration.monitor_data import (
    HOUR,
    T0,
    background,
    event,
    in_window,
    insert,
    settings_for,
)

AT = T0 + 49 * HOUR
LO = AT - HOUR


def ctx_for(store: Store, **overrides: object) -> PassContext:
    s = settings_for(store, **overrides)
    return PassContext(store, s, SegmentSpec.parse(s.segment_dimensions), AT)


def row(evs, segment: str, model_version: str = ""):  # type: ignore[no-untyped-def]
    for ev in evs:
        for i, seg in enumerate(ev.segment):
            if seg == segment and ev.version(i) == model_version:
                return ev, i
    raise AssertionError(f"{segment} not evaluated")


# -- segments in SQL -------------------------------------------------------------------
def test_one_query_names_every_segment_like_python(store: Store) -> None:
    rng = np.random.default_rng(0)
    rows = insert(store, background(rng, 2, 30, countries=("US", "LT", "DE")))
    insert(store, [event("nocountry", T0, country="")])  # empty dimension: no segment
    spec = SegmentSpec.parse("mcc,merchant_country,mcc*merchant_country,channel")
    got = dict(
        store.query(
            segment_sql(spec, select="count() AS c", source="{db}.scored_transactions FINAL",
                        where="1")
        )
    )
    want: Counter[str] = Counter()
    for e in rows:
        want[f"mcc={e.mcc}"] += 1
        want[f"merchant_country={e.merchant_country}"] += 1
        want[f"mcc={e.mcc},merchant_country={e.merchant_country}"] += 1
        want[f"channel={e.channel}"] += 1
    want["mcc=5411"] += 1
    want["channel=ecom"] += 1
    assert got == dict(want)


# -- cents -----------------------------------------------------------------------------
def test_cents_finds_six_of_nine_and_matches_numpy(store: Store) -> None:
    rng = np.random.default_rng(1)
    base = insert(store, background(rng, 49, 30, mccs=("5967",)))
    attack = insert(
        store,
        [
            event(f"a{j}", LO + (10 + 5 * j) * dt.timedelta(minutes=1), mcc="5967",
                  country="LT", amount=f"{4000 + j}.37", card=f"atk-{j % 3}")
            for j in range(6)
        ],
    )
    rows = base + attack
    ctx = ctx_for(store)
    det = CentsDetector(ctx.settings, ctx.spec)
    ev, _ = det.evaluate(ctx)  # max_cell, then new_merchant_cell
    e, i = row([ev], "mcc=5967")
    # numpy on the same rows
    cur = np.zeros(100)
    for x in in_window(rows, LO, AT, mcc="5967"):
        if x.amount_minor >= 1000:
            cur[x.amount_minor % 100] += 1
    ref = np.zeros(100)
    total = np.zeros(100)
    for x in in_window(rows, T0, LO):
        if x.amount_minor >= 1000:
            total[x.amount_minor % 100] += len(ctx.spec.definitions)
            if x.mcc == "5967":
                ref[x.amount_minor % 100] += 1
    overall = (total + 0.5) / (total.sum() + 50)
    assert det._disp is not None and det._ref is not None
    r_lo, r_hi = LO - dt.timedelta(seconds=ctx.settings.reference_window_s), LO
    # pseudo-rows of all traffic: prior_strength, or fewer where segments differ more
    between = between_concentration(det._ref.table(r_lo, r_hi).values)
    strength = min(det.prior_strength, between, ref.sum())
    own = (ref + 0.5) / (ref.sum() + 1)
    shrunk = (ref + strength * overall) / (ref.sum() + strength)
    use_own = (ref > 0) & (own > shrunk)
    probs = np.where(use_own, own, shrunk)
    conc = det._disp.concentration(["mcc=5967"], r_lo, r_hi)
    rows_of = np.where(use_own, ref.sum() + 1, ref.sum() + strength)
    want = max_cell_test(cur, probs, ref_n_cells=predictive_concentration(rows_of, conc))
    assert e.detail(i)["cents"] == 37 == want.cell
    assert e.statistic[i] == want.count >= 6
    assert e.n[i] == cur.sum()
    assert e.pvalue[i] == pytest.approx(want.pvalue, rel=1e-9)
    assert e.eligible is not None and e.eligible[i]
    # a segment without the attack stays quiet
    e2, j = row([ev], "mcc=5967,merchant_country=US")
    assert e2.pvalue[j] > 1e-3


def test_cents_words_and_evidence_sql(store: Store) -> None:
    rng = np.random.default_rng(2)
    insert(store, background(rng, 48.5, 8, mccs=("5967",), countries=("LT",)))
    insert(
        store,
        [event(f"a{j}", LO + j * dt.timedelta(minutes=7), mcc="5967", country="LT",
               amount=f"{3000 + j}.37", card=f"atk-{j % 2}") for j in range(6)],
    )
    ctx = ctx_for(store)
    det = CentsDetector(ctx.settings, ctx.spec)
    ev, _ = det.evaluate(ctx)
    e, i = row([ev], "mcc=5967")
    words = det.describe(e, i)
    assert re.fullmatch(
        r"MCC 5967: \d+ of \d+ transactions in the last hour end in \.37 "
        r"\(expected ≤ 1\); p = \S+",
        words.summary,
    ), words.summary
    hits = store.query(words.evidence_sql)
    assert len(hits) == e.statistic[i] and all(str(r[7]).endswith(".37") for r in hits)


def test_cents_at_new_merchants_against_the_segments_reference_shares(store: Store) -> None:
    """Five trigger rows at two young merchants among a busy hour: the new-merchant
    stratum's max cell is the numpy max-cell test of those rows against the segment's
    whole reference shares (the all-rows test's null), far smaller than the all-rows
    p-value; three customers paying one young shop's own price (.73) are not eligible."""
    rng = np.random.default_rng(7)
    old = "2020-01-01"
    base = insert(store, background(rng, 49, 240, mccs=("5967",), countries=("US",),
                                    registered=old))
    young = [  # ordinary young-merchant rows: no trigger
        event(f"y{j}", LO + j * dt.timedelta(minutes=9), mcc="5967", amount=f"{20 + j}.00",
              registered="2026-01-01", merchant=f"m-y{j % 3}") for j in range(6)]
    attack = [
        event(f"a{j}", LO + (7 + 9 * j) * dt.timedelta(minutes=1), mcc="5967",
              amount=f"{300 + j}.41", registered="2026-01-15", merchant=f"m-a{j % 2}",
              card=f"atk-{j % 3}") for j in range(5)]
    shop = [  # three cards, one young shop, six times .73 (in another MCC: in the same
        # segment it would be the max cell, ineligible, and hide the trigger)
        event(f"b{j}", LO + (3 + 8 * j) * dt.timedelta(minutes=1), mcc="5411",
              amount=f"{50 + j}.73", registered="2026-02-01", merchant="m-b",
              card=f"c-shop{j % 3}") for j in range(6)]
    rows = base + insert(store, young + attack + shop)
    ctx = ctx_for(store)
    det = CentsDetector(ctx.settings, ctx.spec, new_merchant_days=180)
    all_rows, new = det.evaluate(ctx)
    assert new.test == "new_merchant_cell" and new.alertname == "CentsAtNewMerchants"
    e, i = row([new], "mcc=5967")
    a, k = row([all_rows], "mcc=5967")
    # numpy: the window's young rows against the all-rows test's null shares
    cur = np.zeros(100)
    for x in in_window(rows, LO, AT, mcc="5967"):
        if x.amount_minor >= 1000 and x.merchant_registered_at is not None and (
                x.event_time.date() - x.merchant_registered_at).days < 180:
            cur[x.amount_minor % 100] += 1
    assert e.n[i] == cur.sum() == 11 and e.n_ref[i] == a.n_ref[k]
    assert det._ref is not None and det._disp is not None
    r_lo, r_hi = LO - dt.timedelta(seconds=ctx.settings.reference_window_s), LO
    reference = det._ref.table(r_lo, r_hi)
    total = reference.total()
    want = cells_vs_reference(
        cur[None, :], reference.rows(["mcc=5967"]), (total + 0.5) / (total.sum() + 50),
        det.prior_strength, det._disp.concentration(["mcc=5967"], r_lo, r_hi),
        between_concentration(reference.values))
    assert e.detail(i)["cents"] == 41 == int(want.cell[0]) and e.statistic[i] == 5
    assert e.pvalue[i] == pytest.approx(float(want.pvalue[0]), rel=1e-9)
    assert e.pvalue[i] < 1e-6 < a.pvalue[k]  # the busy hour dilutes the all-rows test
    assert e.eligible is not None and e.eligible[i]
    assert (e.detail(i)["cards"], e.detail(i)["merchants"]) == (3, 2)
    # the shop is MCC 5411's only young cents value: one merchant, never eligible
    b, j = row([new], "mcc=5411")
    assert (b.detail(j)["cents"], b.detail(j)["cards"], b.detail(j)["merchants"]) == (73, 3, 1)
    assert b.eligible is not None and not b.eligible[j]  # cards and rows suffice
    words = det.describe(e, i)
    assert "5 of 11 transactions at merchants registered less than 180 days" in words.summary
    hits = store.query(words.evidence_sql)
    assert len(hits) == 5 and all(str(r[7]).endswith(".41") for r in hits)


def test_cents_at_new_merchants_one_card_at_three_shops_is_eligible_one_payee_is_not(
    store: Store,
) -> None:
    """An attacker's first trigger rows often come from one card: four rows ending in
    .41 from one card at three young merchants are eligible (three merchants stand in
    for the two cards), while one card paying one young payee .58 five times (a scam
    burst) and one card at two young shops (.63, four times) are not; the stratum runs
    by default."""
    rng = np.random.default_rng(9)
    old = "2020-01-01"
    insert(store, background(rng, 49, 120, mccs=("5967", "5411", "7995"), countries=("US",),
                             registered=old))
    attack = [event(f"a{j}", LO + (5 + 12 * j) * dt.timedelta(minutes=1), mcc="5967",
                    amount=f"{400 + j}.41", registered="2026-01-15", merchant=f"m-a{j % 3}",
                    card="atk-0") for j in range(4)]
    burst = [event(f"s{j}", LO + (4 + 10 * j) * dt.timedelta(minutes=1), mcc="5411",
                   amount=f"{90 + j}.58", registered="2026-01-20", merchant="m-payee",
                   card="victim-0") for j in range(5)]
    pair = [event(f"p{j}", LO + (6 + 11 * j) * dt.timedelta(minutes=1), mcc="7995",
                  amount=f"{60 + j}.63", registered="2026-01-25", merchant=f"m-p{j % 2}",
                  card="card-p") for j in range(4)]
    insert(store, attack + burst + pair)
    ctx = ctx_for(store)
    det = CentsDetector(ctx.settings, ctx.spec)
    _, new = det.evaluate(ctx)
    assert new.test == "new_merchant_cell" and det.new_merchant_days == 180
    want = {"mcc=5967": (41, 4, 1, 3, True), "mcc=5411": (58, 5, 1, 1, False),
            "mcc=7995": (63, 4, 1, 2, False)}
    for segment, (cents, count, cards, shops, ok) in want.items():
        e, i = row([new], segment)
        d = e.detail(i)
        assert (d["cents"], d["count"], d["cards"], d["merchants"]) == (
            cents, count, cards, shops), segment
        assert e.pvalue[i] < 1e-6, (segment, e.pvalue[i])  # the floors decide, not p
        assert e.eligible is not None and bool(e.eligible[i]) is ok, segment


# -- shadow ----------------------------------------------------------------------------
def test_shadow_counts_flips_and_matches_betabinomial_tail(store: Store) -> None:
    rng = np.random.default_rng(3)
    evs = []
    for x in background(rng, 48.5, 20, mccs=("5967",), version="v47"):
        s = x["model"]["score"]
        x["shadow"] = [{"version": "v46", "score": s}]
        evs.append(x)
    flips = [
        event(f"f{j}", LO + j * dt.timedelta(minutes=9), mcc="5967", country="LT",
              score=0.2, version="v47", shadow=[("v46", 0.9)]) for j in range(4)
    ]
    rows = insert(store, evs + flips)
    ctx = ctx_for(store)
    det = ShadowDetector(ctx.settings, ctx.spec)
    (ev,) = det.evaluate(ctx)
    e, i = row([ev], "mcc=5967", "v47")
    n = len(in_window(rows, LO, AT, mcc="5967"))
    n_ref = len(in_window(rows, T0, LO, mcc="5967"))
    # null: the pair's flip rate over all its traffic (4 flips in every row stored),
    # shrunk toward prior_rate; then the segment's own reference (no flips) on top;
    # beta-binomial with the predictive concentration of the reference's rows and the
    # reference chunks' spread of flip shares (none here: no flip before the window)
    n_all = len(in_window(rows, T0, AT))
    pair = (4 + det.prior_rate * det.prior_strength) / (n_all + det.prior_strength)
    rate = pair * det.prior_strength / (n_ref + det.prior_strength)
    r_lo, r_hi = det._ref.bounds(LO, ctx.settings.reference_window_s)  # type: ignore[union-attr]
    conc = det._disp.concentration([ev.segment[i] + "\x1fv47\x1fv46"], r_lo, r_hi)  # type: ignore[union-attr]
    assert np.isinf(conc).all()
    c = float(predictive_concentration(n_ref + det.prior_strength, np.inf))
    assert (e.statistic[i], e.n[i], e.n_ref[i]) == (4, n, n_ref)
    assert float(e.detail(i)["rate_ref"]) == pytest.approx(rate, abs=1e-6)
    want = sps.betabinom.pmf(np.arange(4, n + 1), n, rate * c, (1 - rate) * c).sum()
    assert e.pvalue[i] == pytest.approx(want, rel=1e-9)
    assert e.labels is not None and e.labels[i] == {"shadow_version": "v46"}
    whole, k = row([ev], "model_version=v47", "v47")
    assert whole.statistic[k] == 4
    words = det.describe(e, i)
    assert "4 of" in words.summary and "approved by v47 although v46" in words.summary
    assert len(store.query(words.evidence_sql)) == 4


def test_shadow_null_is_the_pairs_own_flip_rate(store: Store) -> None:
    """A retrained challenger that flips 10 % of all traffic raises no segment for
    flipping 10 %; the same flips against a quiet pair would."""
    rng = np.random.default_rng(5)
    evs = []
    for j, x in enumerate(background(rng, 48.5, 80, mccs=("5967", "5411"), version="v47")):
        flip = j % 10 == 0
        x["model"]["score"] = 0.2 if flip else x["model"]["score"]
        x["shadow"] = [{"version": "v46", "score": 0.9 if flip else x["model"]["score"]}]
        evs.append(x)
    insert(store, evs)
    ctx = ctx_for(store)
    det = ShadowDetector(ctx.settings, ctx.spec)
    (ev,) = det.evaluate(ctx)
    e, i = row([ev], "mcc=5967", "v47")
    assert e.statistic[i] >= 3
    assert e.pvalue[i] > 0.05  # flips like the rest of the pair's traffic
    assert float(e.detail(i)["rate_ref"]) >= 0.09
    quiet = ShadowDetector(ctx.settings, ctx.spec, prior_rate=0.002)
    flips, n = int(e.statistic[i]), int(e.n[i])
    # against the configured prior alone the same counts would be significant
    assert sps.binom.sf(flips - 1, n, upper_rate(0, 0, quiet.prior_rate, 500)) < 0.01


# -- score drift -----------------------------------------------------------------------
def test_score_drift_psi_and_ks_equal_numpy_on_the_same_bins(store: Store) -> None:
    rng = np.random.default_rng(4)
    evs = background(rng, 48, 20, mccs=("5411",), countries=("US",))
    cur = background(rng, 1, 150, start=LO, prefix="c", mccs=("5411",), countries=("US",))
    for x in cur:
        x["model"]["score"] = round(min(0.99, x["model"]["score"] + 0.3), 6)
    rows = insert(store, evs + cur)
    ctx = ctx_for(store)
    det = ScoreDriftDetector(ctx.settings, ctx.spec, rank=False)
    psi_ev, ks_ev = det.evaluate(ctx)
    # by rank (the default) the one MCC is all traffic: a shift of everything is no
    # drift of the MCC relative to the rest, but the version's whole traffic (compared
    # by score within its own version) still shows it
    _r_psi, r_ks = ScoreDriftDetector(ctx.settings, ctx.spec).evaluate(ctx)
    e, i = row([r_ks], "mcc=5411")
    assert e.statistic[i] < 0.05 and e.pvalue[i] > 0.01
    e, i = row([r_ks], "model_version=v46")
    assert e.statistic[i] > 0.4 and e.pvalue[i] < 1e-10

    def hist(xs):  # type: ignore[no-untyped-def]
        b = np.minimum(99, np.floor(np.sqrt([x.score for x in xs]) * 100)).astype(int)
        return np.bincount(b, minlength=FINE).astype(float)

    h_cur = hist(in_window(rows, LO, AT))
    h_ref = hist(in_window(rows, T0, LO))
    e, i = row([ks_ev], "mcc=5411")
    bins_cur = np.repeat(np.arange(FINE), h_cur.astype(int))
    bins_ref = np.repeat(np.arange(FINE), h_ref.astype(int))
    assert e.statistic[i] == pytest.approx(sps.ks_2samp(bins_ref, bins_cur).statistic)
    assert e.pvalue[i] == pytest.approx(float(ks_from_counts(h_ref, h_cur).pvalue), rel=1e-9)
    p, j = row([psi_ev], "mcc=5411")
    mapping = reference_bins(h_ref[None, :], det.bins)
    want = psi_test(regroup(h_ref[None, :], mapping, 10), regroup(h_cur[None, :], mapping, 10))
    assert p.statistic[j] == pytest.approx(float(want.psi[0]), rel=1e-9)
    assert p.pvalue[j] < 1e-10 and p.effect[j] >= det.psi_floor


# -- benford ---------------------------------------------------------------------------
def test_benford_first_digits_equal_numpy(store: Store) -> None:
    rng = np.random.default_rng(5)
    rows = insert(store, background(rng, 72, 30, mccs=("5999",), countries=("GB",)))
    s = settings_for(store)
    ctx = PassContext(store, s, SegmentSpec.parse("mcc"), T0 + 72 * HOUR)
    det = BenfordDetector(s, ctx.spec)
    (ev,) = det.evaluate(ctx)
    e, i = row([ev], "mcc=5999")
    cur = Counter(int(str(x.amount_minor)[0]) for x in in_window(rows, T0 + 48 * HOUR, ctx.at))
    assert e.n[i] == sum(cur.values())
    assert abs(e.effect[i]) < det.effect_floor  # same generator: no drift
    # two-sample homogeneity of the 2 x 9 table, as scipy computes it
    ref = Counter(int(str(x.amount_minor)[0]) for x in in_window(rows, T0, T0 + 48 * HOUR))
    table = [[ref[d] for d in range(1, 10)], [cur[d] for d in range(1, 10)]]
    want = sps.chi2_contingency(table, correction=False)
    # ... divided by its inflation under the reference days' own dispersion
    assert det._disp is not None
    conc = det._disp.concentration(["mcc=5999"], T0, T0 + 48 * HOUR)
    n_ref = sum(ref.values())
    phi = chi2_inflation(e.n[i], n_ref, n_ref / 2, conc)
    assert e.statistic[i] == pytest.approx(want.statistic / float(phi[0]), rel=1e-9)
    assert e.pvalue[i] == pytest.approx(sps.chi2.sf(e.statistic[i], 8), rel=1e-9)


# -- volume / new merchants ------------------------------------------------------------
def test_new_merchant_share_counts_distinct_new_merchants(store: Store) -> None:
    rng = np.random.default_rng(6)
    evs = background(rng, 48.5, 20, mccs=("5967", "5411"), registered="2019-01-01")
    new = [
        event(f"n{j}", LO + j * dt.timedelta(minutes=8), mcc="5967", country="LT",
              registered="2026-01-20", merchant=f"new-{j % 3}") for j in range(5)
    ]
    rows = insert(store, evs + new)
    ctx = ctx_for(store)
    det = VolumeDetector(ctx.settings, ctx.spec)
    vol, nm = det.evaluate(ctx)
    e, i = row([nm], "mcc=5967")
    n = len(in_window(rows, LO, AT, mcc="5967"))
    assert (e.statistic[i], e.n[i]) == (5, n)
    assert e.detail(i)["new_merchants"] == 3
    n_ref = float(e.n_ref[i])
    rate = float(e.detail(i)["rate_ref"])
    r_lo, r_hi = det._ref.bounds(LO, ctx.settings.reference_window_s)  # type: ignore[union-attr]
    conc = det._disp_new.concentration(["mcc=5967"], r_lo, r_hi)  # type: ignore[union-attr]
    c = float(predictive_concentration(n_ref + det.prior_strength, conc)[0])
    want = sps.betabinom.pmf(np.arange(5, n + 1), n, rate * c, (1 - rate) * c).sum()
    assert e.pvalue[i] == pytest.approx(want, rel=1e-3)
    assert all(not s.startswith("model_version=") for s in vol.segment)
    # growth: the segment's rows out of the window's total, beta-binomial around its
    # reference share of all traffic with the spread of that share in reference chunks
    v, j = row([vol], "mcc=5967")
    total = float(v.detail(j)["total"])
    total_ref = len(in_window(rows, T0, LO))
    share = (float(v.n_ref[j]) + 1.0) / (total_ref + 1.0)
    vconc = det._disp_volume.concentration(["mcc=5967"], r_lo, r_hi)  # type: ignore[union-attr]
    cv = float(predictive_concentration(total_ref + 1.0, vconc)[0])
    k = int(v.n[j])
    assert 0 < share < 1 and k > 0
    want = sps.betabinom.pmf(np.arange(k, int(total) + 1), total, share * cv, (1 - share) * cv)
    assert v.pvalue[j] == pytest.approx(want.sum(), rel=1e-6)


# -- pile-up ---------------------------------------------------------------------------
def test_pileup_counts_scores_just_below_threshold(store: Store) -> None:
    rng = np.random.default_rng(7)
    evs = background(rng, 48.5, 20, mccs=("4829",))
    probe = [event(f"p{j}", LO + j * dt.timedelta(minutes=5), mcc="4829", score=0.68)
             for j in range(8)]
    rows = insert(store, evs + probe)
    ctx = ctx_for(store)
    (ev,) = PileupDetector(ctx.settings, ctx.spec).evaluate(ctx)
    e, i = row([ev], "mcc=4829")
    band = [x for x in in_window(rows, LO, AT, mcc="4829") if 0.65 <= x.score < 0.7]
    assert e.statistic[i] == len(band) >= 8
    assert e.pvalue[i] < 1e-8


# -- beneficiary -----------------------------------------------------------------------
def named_background() -> list[dict[str, Any]]:
    """Two days of mcc 5967 paying forty ordinary beneficiary names."""
    evs = background(np.random.default_rng(8), 48.5, 20, mccs=("5967",))
    for j, x in enumerate(evs):
        x["beneficiary_name"] = f"SHOP{j % 40} LTD {j}"
    return evs


def test_beneficiary_prefix_concentration_names_the_prefix(store: Store) -> None:
    evs = named_background()
    pay = [
        event(f"i{j}", LO + j * dt.timedelta(minutes=9), mcc="5967", country="LT",
              beneficiary=f"INTL-PAY-GLOBAL-{j:02d}", merchant=f"x-{j}", card=f"k-{j % 3}")
        for j in range(5)
    ]
    insert(store, evs + pay)
    ctx = ctx_for(store)
    det = BeneficiaryDetector(ctx.settings, ctx.spec)
    (ev,) = det.evaluate(ctx)
    e, i = row([ev], "mcc=5967")
    # five rows from three cards, each to another name: five (card, payee) choices
    assert e.statistic[i] == 5 and e.detail(i)["cards"] == 3 and e.detail(i)["payers"] == 5
    assert e.eligible is not None and e.eligible[i]
    assert e.pvalue[i] < 1e-4
    assert "INTL-PAY-* (5)" in det.describe(e, i).summary
    assert "from 3 cards" in det.describe(e, i).summary


@pytest.mark.parametrize(("cards", "alerts"), [(2, False), (12, True)])
def test_beneficiary_one_card_burst_counts_once(store: Store, cards: int, alerts: bool) -> None:
    """Twelve payments under one family of payee handles from two cards, each card
    paying its one handle again and again (as the scam victims of the clean baseline
    do), are two payers: far less surprising than twelve cards paying twelve."""
    pay = [
        event(f"u{j}", LO + j * dt.timedelta(minutes=4), mcc="5967", country="LT",
              beneficiary=f"UPI-PAY-{j % cards:03d}@OKBANK", merchant=f"x-{j}",
              card=f"k-{j % cards}")
        for j in range(12)
    ]
    insert(store, named_background() + pay)
    ctx = ctx_for(store)
    (ev,) = BeneficiaryDetector(ctx.settings, ctx.spec).evaluate(ctx)
    e, i = row([ev], "mcc=5967")
    assert e.statistic[i] == 12 and e.detail(i)["cards"] == e.detail(i)["payers"] == cards
    assert e.effect[i] > 0.25  # the same excess share of rows either way
    # two cards under a prefix the reference never saw: p about 4e-5
    assert (e.pvalue[i] < 1e-8) == alerts, e.pvalue[i]
    assert e.pvalue[i] > (0 if alerts else 1e-6)


def test_beneficiary_one_merchant_repeating_a_name_is_not_eligible(store: Store) -> None:
    evs = named_background()
    # six payouts under one prefix: five from merchant m-1 (one card), one from m-2
    pay = [
        event(f"i{j}", LO + j * dt.timedelta(minutes=9), mcc="5967", country="LT",
              beneficiary=f"INTL-PAY-GLOBAL-{j:02d}", merchant="m-1" if j < 5 else "m-2",
              card="k-1" if j < 5 else "k-2")
        for j in range(6)
    ]
    insert(store, evs + pay)
    ctx = ctx_for(store)
    det = BeneficiaryDetector(ctx.settings, ctx.spec)
    (ev,) = det.evaluate(ctx)
    e, i = row([ev], "mcc=5967")
    d = e.detail(i)
    assert e.statistic[i] == 6
    # counted in ClickHouse for the candidate row: 2 cards, 2 merchants, 6 - 5 = 1 outside m-1
    assert (d["cards"], d["merchants"], d["not_top_merchant"]) == (2, 2, 1)
    assert e.eligible is not None and not e.eligible[i]  # min_others = 2
    # payers are counted exactly for the rows that could alert at all
    for j in range(len(e)):
        dj = e.detail(j)
        could = (dj["count"] >= det.min_count and dj["count"] - dj["expected"] >= 2
                 and e.pvalue[j] <= ctx.settings.fdr_q)
        assert (dj["cards"] >= 0) == could, e.segment[j]


# -- recall ----------------------------------------------------------------------------
def test_recall_drop_from_labels_joined_in_clickhouse(store: Store) -> None:
    from driftwatch.events import Label

    evs = []
    labels = []
    # reference window: 40 frauds, 36 held; current window: 25 frauds, 5 held
    for j in range(40):
        t = T0 + j * dt.timedelta(minutes=30)
        evs.append(event(f"r{j}", t, mcc="5967", score=0.9 if j < 36 else 0.2, version="v46"))
    for j in range(25):
        t = AT - 25 * HOUR + j * dt.timedelta(minutes=40)
        evs.append(event(f"c{j}", t, mcc="5967", score=0.9 if j < 5 else 0.2, version="v47"))
    rows = insert(store, evs)
    for x in rows:
        labels.append(Label(x.txn_id, 1, x.event_time + HOUR, "chargeback"))
    store.insert_labels(labels)
    ctx = ctx_for(store, label_maturity_s=7200)
    det = RecallDetector(ctx.settings, ctx.spec)
    evs_out = det.evaluate(ctx)
    drop = next(e for e in evs_out if e.test == "drop")
    e, i = row([drop], "mcc=5967", "v47")
    assert (e.detail(i)["recall"], e.detail(i)["recall_ref"]) == (0.2, 0.9)
    want = sps.fisher_exact([[5, 20], [36, 4]], alternative="less").pvalue
    assert e.pvalue[i] == pytest.approx(float(want), rel=1e-9)
    assert "recall of v47 fell to 20%" in det.describe(e, i).summary


# -- disagreement ----------------------------------------------------------------------
def _rule_hits(store: Store, n: int, approved: int) -> None:
    rows = []
    for j in range(n):
        rows.append({
            "event_id": f"h{j}", "txn_id": f"t{j}", "event_time": LO + j * dt.timedelta(minutes=3),
            "rule_id": "R013", "rule_version": 1, "severity": "critical", "mode": "enforce",
            "reason_code": "trigger", "high_risk": 1, "pack": "p", "pack_sha256": "0",
            "mcc": "5967", "merchant_country": "LT", "channel": "ecom", "merchant_id": "m",
            "card_id": "c", "model_version": "v47", "score": 0.2,
            "decision": "approve" if j < approved else "review", "amount_minor": 400037,
            "evidence": "{}", "hit_time": LO,
        })
    store.insert_columns("rule_hits", {k: [r[k] for r in rows] for k in rows[0]})


def test_disagreement_reports_nothing_without_the_rule_table(store: Store) -> None:
    store.command("DROP VIEW IF EXISTS {db}.rule_verdicts")
    store.command("DROP TABLE IF EXISTS {db}.rule_hits")
    ctx = ctx_for(store)
    assert DisagreementDetector(ctx.settings, ctx.spec).evaluate(ctx) == []


def test_disagreement_share_of_high_risk_the_model_approved(store: Store) -> None:
    _rule_hits(store, 6, 5)
    ctx = ctx_for(store)
    det = DisagreementDetector(ctx.settings, ctx.spec)
    (ev,) = det.evaluate(ctx)
    e, i = row([ev], "mcc=5967")
    # no reference yet: the prior share, beta-binomial over its prior_strength rows
    a, b = det.prior_rate * det.prior_strength, (1 - det.prior_rate) * det.prior_strength
    assert (e.statistic[i], e.n[i]) == (5, 6)
    assert e.pvalue[i] == pytest.approx(sum(sps.betabinom.pmf([5, 6], 6, a, b)), rel=1e-9)
    assert "approved 5 of 6" in det.describe(e, i).summary
    assert len(store.query(det.describe(e, i).evidence_sql)) == 5


# -- out of domain ---------------------------------------------------------------------
def test_out_of_domain_counts_impossible_ages(store: Store) -> None:
    rng = np.random.default_rng(9)
    evs = background(rng, 48.5, 20, features={"customer_age": 40})
    bad = [event(f"o{j}", LO + j * dt.timedelta(minutes=5), features={"customer_age": 999})
           for j in range(4)]
    insert(store, evs + bad)
    ctx = ctx_for(store)
    det = OutOfDomainDetector(ctx.settings, ctx.spec)
    (ev,) = det.evaluate(ctx)
    e, i = row([ev], "feature=customer_age")
    assert e.statistic[i] == 4 and e.pvalue[i] < 1e-9
    words = det.describe(e, i)
    assert "4 of" in words.summary and "outside 0..125" in words.summary
    assert len(store.query(words.evidence_sql)) == 4
