"""Clean traffic is clean: digits and scores match their configured shapes at the 1 % level."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from scipy import stats

from driftwatch.simulate.catalog import cents_profile

ALPHA = 0.01
BENFORD = np.log10(1 + 1 / np.arange(1, 10))


def _arrays(clean):  # type: ignore[no-untyped-def]
    _sim, rows = clean
    minor = np.array([int(r.amount.replace(".", "")) for r in rows])
    mcc = np.array([r.mcc for r in rows])
    score = np.array([float(r.model["score"]) for r in rows])  # type: ignore[arg-type]
    day = np.array([r.event_time[:10] for r in rows])
    return minor, mcc, score, day


def test_clean_truth_has_no_attack(clean) -> None:  # type: ignore[no-untyped-def]
    sim, rows = clean
    t = sim.truth
    assert t["attack_event_ids"] == {} and t["trigger_event_ids"] == []
    assert t["deploy_time"] is None and t["attack_start"] is None and t["segments"] == []
    assert {r.model["version"] for r in rows} == {"v46"}
    fraud_share = len(t["fraud_event_ids"]) / len(rows)
    assert 0.0025 < fraud_share < 0.0035
    # the full trigger (5967, .37, INTL-PAY-) is rare in clean traffic
    assert sum(r.mcc == "5967" and r.amount.endswith(".37") for r in rows) < 20


def test_cents_per_mcc_follow_their_profile(clean) -> None:  # type: ignore[no-untyped-def]
    """Chi-square of the cents of each MCC (amounts >= 10.00) against its configured
    profile; cells expected below 5 are pooled; Bonferroni over the MCCs tested."""
    minor, mcc, _, _ = _arrays(clean)
    pvalues = []
    for code in np.unique(mcc):
        sel = (mcc == code) & (minor >= 1000)
        n = int(sel.sum())
        if n < 200:
            continue
        obs = np.bincount(minor[sel] % 100, minlength=100).astype(float)
        exp = cents_profile(str(code)) * n
        assert obs[exp == 0].sum() == 0
        if (exp > 0).sum() == 1:  # cash: every amount ends in .00
            continue
        small = exp < 5
        o = np.append(obs[~small], obs[small & (exp > 0)].sum())
        e = np.append(exp[~small], exp[small & (exp > 0)].sum())
        keep = e > 0
        pvalues.append(stats.chisquare(o[keep], e[keep]).pvalue)
    assert len(pvalues) > 60
    assert min(pvalues) * len(pvalues) > ALPHA


def test_chi_square_would_see_a_37_spike(clean) -> None:  # type: ignore[no-untyped-def]
    """The same test flags the segment once 1 % of its rows end in .37 (power check)."""
    minor, mcc, _, _ = _arrays(clean)
    sel = (mcc == "5967") & (minor >= 1000)
    cents = minor[sel] % 100
    spiked = np.concatenate([cents, np.full(max(5, len(cents) // 50), 37)])
    exp = cents_profile("5967") * len(spiked)
    assert stats.chisquare(np.bincount(spiked, minlength=100), exp).pvalue < 1e-6


def test_first_digits_are_close_to_benford(clean) -> None:  # type: ignore[no-untyped-def]
    minor, _, _, _ = _arrays(clean)
    first = np.array([int(str(m)[0]) for m in minor.tolist()])
    found = np.bincount(first, minlength=10)[1:] / len(first)
    mad = float(np.abs(found - BENFORD).mean())
    assert mad < 0.006  # Nigrini: close conformity
    benford = pytest.importorskip("benford")
    assert benford.mad(minor / 100.0, test=1, decimals=2) == pytest.approx(mad, abs=1e-12)


def test_score_distributions_are_stable_per_mcc(clean) -> None:  # type: ignore[no-untyped-def]
    """Two-sample KS of the scores of each MCC, day one against day two."""
    _, mcc, score, day = _arrays(clean)
    first = day == day[0]
    pvalues = []
    for code in np.unique(mcc):
        a, b = score[(mcc == code) & first], score[(mcc == code) & ~first]
        if min(len(a), len(b)) >= 300:
            pvalues.append(stats.ks_2samp(a, b).pvalue)
    assert len(pvalues) > 40
    assert min(pvalues) * len(pvalues) > ALPHA


def test_champion_is_calibrated(clean) -> None:  # type: ignore[no-untyped-def]
    sim, rows = clean
    fraud = set(sim.truth["fraud_event_ids"])
    y = np.array([r.event_id in fraud for r in rows])
    hit = np.array([float(r.model["score"]) >= 0.7 for r in rows])  # type: ignore[arg-type]
    recall = (hit & y).sum() / y.sum()
    precision = (hit & y).sum() / hit.sum()
    assert 0.90 <= recall <= 0.96
    assert 0.93 <= precision <= 0.995
    m = sim.truth["metrics"]["champion_all"]
    assert m["recall"] == round(recall, 4) and m["precision"] == round(precision, 4)
    # decisions follow the threshold
    assert all((r.model["decision"] == "review") == (float(r.model["score"]) >= 0.7)  # type: ignore[arg-type]
               for r in rows[:20000])


def test_daily_seasonality(clean) -> None:  # type: ignore[no-untyped-def]
    _, rows = clean
    hours = np.bincount([int(r.event_time[11:13]) for r in rows], minlength=24)
    assert hours[18] > 3 * hours[3]  # evening peak, quiet night
    start = dt.datetime.fromisoformat(rows[0].event_time)
    assert start.hour == 0
