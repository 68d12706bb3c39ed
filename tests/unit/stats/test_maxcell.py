"""The max-cell scan against scipy on the same data, hand cases, false-positive rates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from driftwatch.stats.digit_test import smoothed_shares
from driftwatch.stats.maxcell import max_cell_test
from tests.unit.stats.digit_data import UNIFORM_CENTS


# ---------------------------------------------------------------- digit extraction
def test_max_cell_dot37_after_nine_transactions() -> None:
    counts = np.zeros(100, dtype=np.int64)
    counts[[37, 12, 50, 99]] = [6, 1, 1, 1]
    res = max_cell_test(counts, UNIFORM_CENTS)
    assert (res.cell, res.count, res.n) == (37, 6, 9)
    assert res.expected == pytest.approx(0.09)
    tail = stats.binomtest(6, 9, 0.01, alternative="greater").pvalue
    assert res.cell_pvalue == pytest.approx(tail, rel=1e-10)
    assert res.pvalue == pytest.approx(100 * tail, rel=1e-10)  # equal probs: Bonferroni
    assert 1e-10 < res.pvalue < 1e-8


def test_max_cell_cell_pvalues_match_scipy_binomtest() -> None:
    rng = np.random.default_rng(12)
    probs = smoothed_shares(rng.multinomial(2000, rng.dirichlet(np.ones(100))))
    for _ in range(10):
        counts = rng.multinomial(int(rng.integers(5, 80)), probs)
        res = max_cell_test(counts, probs)
        n = int(counts.sum())
        tails = [
            stats.binomtest(int(c), n, float(p), alternative="greater").pvalue
            for c, p in zip(counts, probs, strict=True)
        ]
        assert res.cell == int(np.argmin(tails))
        assert res.cell_pvalue == pytest.approx(min(tails), rel=1e-9)
        assert res.pvalue == pytest.approx(min(1.0, 100 * min(tails)), rel=1e-9)
        discrete = max_cell_test(counts, probs, correction="discrete-bonferroni")
        assert min(tails) - 1e-15 <= discrete.pvalue <= res.pvalue + 1e-15
        sidak = max_cell_test(counts, probs, correction="sidak")
        assert sidak.pvalue == pytest.approx(1 - (1 - min(tails)) ** 100, rel=1e-9)


def test_beta_binomial_tails_match_scipy() -> None:
    rng = np.random.default_rng(13)
    probs = smoothed_shares(rng.multinomial(500, rng.dirichlet(np.ones(20))))
    for ref_n in (20.0, 510.0, 1e5):
        counts = rng.multinomial(60, probs)
        counts[3] += 4
        res = max_cell_test(counts, probs, ref_n=ref_n)
        n = int(counts.sum())
        # scipy's betabinom.sf loses ~1e-5 relative for large a + b: sum its pmf instead
        tails = [
            1.0
            if c == 0
            else float(
                stats.betabinom.pmf(np.arange(c, n + 1), n, p * ref_n, (1 - p) * ref_n).sum()
            )
            for c, p in zip(counts, probs, strict=True)
        ]
        assert res.cell == int(np.argmin(tails))
        assert res.cell_pvalue == pytest.approx(min(tails), rel=1e-7)
    # a huge reference converges to the binomial
    big = max_cell_test(counts, probs, ref_n=1e9)
    assert big.cell_pvalue == pytest.approx(max_cell_test(counts, probs).cell_pvalue, rel=1e-4)
    with pytest.raises(ValueError, match="ref_n"):
        max_cell_test(counts, probs, ref_n=0)


def test_discrete_bonferroni_hand_case() -> None:
    # two cells, n = 2: cell 0 (p = 0.5) has tails 1, 0.75, 0.25; cell 1 (p = 0.01)
    # has 1, 0.0199, 0.0001. Both records in cell 1: p_min = 1e-4; cell 0 cannot go
    # that low, so only cell 1 counts: corrected = 1e-4 (Bonferroni: 2e-4).
    kw = {"correction": "discrete-bonferroni"}
    res = max_cell_test([0, 2], [0.5, 0.01], **kw)  # type: ignore[arg-type]
    assert res.cell == 1 and res.cell_pvalue == pytest.approx(1e-4)
    assert res.pvalue == pytest.approx(1e-4)
    assert max_cell_test([0, 2], [0.5, 0.01]).pvalue == pytest.approx(2e-4)
    # one record in cell 1: p_min = 0.0199, which cell 0 cannot reach either
    assert max_cell_test([1, 1], [0.5, 0.01], **kw).pvalue == pytest.approx(0.0199)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [9, 30, 200])
def test_max_cell_false_positive_rate_uniform_cents(n: int) -> None:
    rng = np.random.default_rng(500 + n)
    counts = rng.multinomial(n, UNIFORM_CENTS, size=5000)
    res = max_cell_test(counts, UNIFORM_CENTS)
    fpr = float(np.mean(np.asarray(res.pvalue) < 0.01))
    assert fpr <= 0.01 + 0.004, fpr  # conservative, up to Monte-Carlo noise
    assert np.all((np.asarray(res.pvalue) >= 0) & (np.asarray(res.pvalue) <= 1))


@pytest.mark.parametrize(("n_ref", "n_cur"), [(300, 40), (300, 200), (3000, 200)])
def test_max_cell_false_positive_rate_estimated_shares(n_ref: int, n_cur: int) -> None:
    # skewed cents (.00 35 %, .99 15 %, .95 10 %); shares estimated from each
    # segment's own reference: the plug-in binomial is anti-conservative, the
    # beta-binomial with ref_n is not
    rng = np.random.default_rng(n_ref + n_cur)
    base = np.full(100, 0.4 / 97)
    base[[0, 95, 99]] = [0.35, 0.10, 0.15]
    base /= base.sum()
    reps = 2000
    reference = rng.multinomial(n_ref, base, size=reps)
    probs = smoothed_shares(reference)
    counts = rng.multinomial(n_cur, base, size=reps)
    with_ref = max_cell_test(counts, probs, ref_n=n_ref + 50)
    fpr = float(np.mean(np.asarray(with_ref.pvalue) < 0.01))
    assert fpr <= 0.01 + 0.004, fpr
    plug_in = max_cell_test(counts, probs)
    assert float(np.mean(np.asarray(plug_in.pvalue) < 0.01)) > fpr


def test_max_cell_flags_dot37_while_dot00_dominates() -> None:
    # a segment whose cents pile up at .00; five .37 among 30 is the anomaly
    base = np.full(100, 0.5 / 98)
    base[[0, 99]] = [0.4, 0.1]
    base /= base.sum()
    counts = np.zeros(100, dtype=np.int64)
    counts[[0, 99, 37, 5, 60]] = [18, 4, 5, 2, 1]
    res = max_cell_test(counts, base, ref_n=5000)
    assert int(np.argmax(counts)) == 0  # "test the most frequent value" would look at .00
    assert res.cell == 37 and res.pvalue < 1e-3  # type: ignore[operator]


def test_max_cell_vectorised_rows_match_single_rows() -> None:
    rng = np.random.default_rng(8)
    counts = rng.multinomial(25, UNIFORM_CENTS, size=50)
    counts[3, 37] += 6
    counts[10] = 0
    probs2d = smoothed_shares(rng.multinomial(500, UNIFORM_CENTS, size=50))
    ref_n = rng.uniform(100, 1000, 50)
    for probs, rn in ((UNIFORM_CENTS, None), (probs2d, None), (probs2d, ref_n)):
        vec = max_cell_test(counts, probs, ref_n=rn)
        for i in range(50):
            one = max_cell_test(
                counts[i],
                probs if probs.ndim == 1 else probs[i],
                ref_n=None if rn is None else rn[i],
            )
            if i == 10:
                assert vec.cell[i] == -1 and math.isnan(vec.pvalue[i])  # type: ignore[index]
                continue
            assert one.cell == vec.cell[i]  # type: ignore[index]
            assert one.pvalue == pytest.approx(vec.pvalue[i], rel=1e-12)  # type: ignore[index]
        assert vec.cell[3] == 37  # type: ignore[index]
    with pytest.raises(ValueError, match="correction='holm'"):
        max_cell_test(counts, UNIFORM_CENTS, correction="holm")  # type: ignore[arg-type]
