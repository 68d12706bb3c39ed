"""Rates, Wilson intervals and the two-proportion test against scipy and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftwatch.stats.recall import (
    precision,
    rate,
    recall,
    two_proportion_test,
    wilson_interval,
)


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_matches_scipy_binomtest(confidence: float) -> None:
    for n in (1, 2, 5, 17, 30, 100, 1000):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            ci = stats.binomtest(k, n).proportion_ci(confidence, method="wilson")
            low, high = wilson_interval(k, n, confidence)
            assert low == pytest.approx(ci.low, abs=1e-12)
            assert high == pytest.approx(ci.high, abs=1e-12)


def test_wilson_hand_case_and_vectorised() -> None:
    # k = 0, n = 10, z = 1.959964: high = z^2 / (n + z^2)
    z = stats.norm.ppf(0.975)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(z * z / (10 + z * z))
    lows, highs = wilson_interval([0, 5, 10, 0], [10, 10, 10, 0])
    assert isinstance(lows, np.ndarray) and isinstance(highs, np.ndarray)
    assert highs[2] == 1.0 and lows[1] == pytest.approx(1 - highs[1])
    assert math.isnan(lows[3]) and math.isnan(highs[3])
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=95)
    with pytest.raises(ValueError, match="k <= n"):
        wilson_interval(3, 2)


def test_rate_min_count_guard() -> None:
    r = rate([940, 9, 0], [1000, 10, 0], min_n=30)
    assert isinstance(r.rate, np.ndarray)
    assert r.rate[0] == pytest.approx(0.94)
    assert np.isnan(r.rate[1:]).all() and np.isnan(r.low[1:]).all()  # type: ignore[index]
    assert r.n.tolist() == [1000, 10, 0]  # type: ignore[union-attr]
    one = rate(3, 4)
    assert one.rate == 0.75 and 0 < one.low < 0.75 < one.high < 1  # type: ignore[operator]
    assert recall(942, 58).rate == pytest.approx(0.942)
    assert precision(978, 22).rate == pytest.approx(0.978)


def test_two_proportion_matches_chi2_contingency() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        n1, n2 = int(rng.integers(5, 3000)), int(rng.integers(5, 3000))
        k1, k2 = int(rng.integers(0, n1 + 1)), int(rng.integers(0, n2 + 1))
        res = two_proportion_test(k1, n1, k2, n2)
        table = np.array([[k1, n1 - k1], [k2, n2 - k2]])
        if 0 < k1 + k2 < n1 + n2:
            chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
            assert res.z**2 == pytest.approx(chi2, rel=1e-9)  # type: ignore[operator]
            assert res.pvalue == pytest.approx(p, rel=1e-9, abs=1e-300)
        assert res.diff == pytest.approx(k1 / n1 - k2 / n2)


def test_two_proportion_hand_case_and_alternatives() -> None:
    # 10/100 vs 20/100: pooled 0.15, se = sqrt(0.15 * 0.85 * 0.02), z = -0.1 / se
    se = math.sqrt(0.15 * 0.85 * 0.02)
    two = two_proportion_test(10, 100, 20, 100)
    assert two.z == pytest.approx(-0.1 / se)
    assert two.pvalue == pytest.approx(2 * stats.norm.sf(0.1 / se))
    less = two_proportion_test(10, 100, 20, 100, alternative="less")
    greater = two_proportion_test(10, 100, 20, 100, alternative="greater")
    assert less.pvalue == pytest.approx(stats.norm.cdf(-0.1 / se))
    assert less.pvalue + greater.pvalue == pytest.approx(1.0)  # type: ignore[operator]
    assert two.pvalue == pytest.approx(2 * less.pvalue)  # type: ignore[operator]
    # the recall drop of the incident: 71.3 % vs 94.2 % on 1,000 labelled frauds each
    drop = two_proportion_test(713, 1000, 942, 1000, alternative="less")
    assert drop.pvalue < 1e-40  # type: ignore[operator]


def test_two_proportion_degenerate_and_guards() -> None:
    same = two_proportion_test(10, 10, 20, 20)
    assert same.z == 0.0 and same.pvalue == 1.0 and same.diff == 0.0
    guarded = two_proportion_test([5, 50], [8, 80], [40, 40], [50, 50], min_n=10)
    assert isinstance(guarded.pvalue, np.ndarray)
    assert math.isnan(guarded.pvalue[0]) and not math.isnan(guarded.pvalue[1])
    with pytest.raises(ValueError, match="alternative='lower'"):
        two_proportion_test(1, 2, 1, 2, alternative="lower")  # type: ignore[arg-type]


def test_two_proportion_null_rate() -> None:
    rng = np.random.default_rng(5)
    k1 = rng.binomial(400, 0.9, 5000)
    k2 = rng.binomial(600, 0.9, 5000)
    res = two_proportion_test(k1, 400, k2, 600)
    rate_05 = float(np.mean(np.asarray(res.pvalue) < 0.05))
    assert 0.04 <= rate_05 <= 0.06


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.data())
def test_properties(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    low, high = wilson_interval(k, n, 0.9)
    assert 0.0 <= low <= k / n <= high <= 1.0  # type: ignore[operator]
    n2 = data.draw(st.integers(1, 5000))
    k2 = data.draw(st.integers(0, n2))
    for alt in ("two-sided", "less", "greater"):
        res = two_proportion_test(k, n, k2, n2, alternative=alt)  # type: ignore[arg-type]
        assert 0.0 <= res.pvalue <= 1.0  # type: ignore[operator]
    sym = two_proportion_test(k2, n2, k, n)
    assert sym.pvalue == pytest.approx(two_proportion_test(k, n, k2, n2).pvalue)


@pytest.mark.parametrize("alternative", ["less", "greater", "two-sided"])
def test_fisher_method_matches_scipy_fisher_exact(alternative: str) -> None:
    cases = [(5, 25, 36, 40), (0, 3, 3, 3), (28, 30, 940, 1000), (7, 7, 0, 9), (0, 0, 1, 5)]
    k1, n1, k2, n2 = (np.array(c) for c in zip(*cases, strict=True))
    res = two_proportion_test(k1, n1, k2, n2, alternative, method="fisher")  # type: ignore[arg-type]
    pvals = np.asarray(res.pvalue)
    for i, (a, b, c, d) in enumerate(cases):
        if b == 0:
            assert math.isnan(pvals[i])
            continue
        table = [[a, b - a], [c, d - c]]
        if alternative == "two-sided":
            want = min(
                1.0,
                2 * min(stats.fisher_exact(table, "less").pvalue,
                        stats.fisher_exact(table, "greater").pvalue),
            )
        else:
            want = stats.fisher_exact(table, alternative).pvalue
        assert pvals[i] == pytest.approx(want, rel=1e-9, abs=1e-300)


def test_fisher_hand_case_and_bad_method() -> None:
    # 0 of 3 vs 3 of 3: P(K <= 0) = 1 / C(6, 3) = 0.05
    assert two_proportion_test(0, 3, 3, 3, "less", method="fisher").pvalue == pytest.approx(0.05)
    with pytest.raises(ValueError, match="method"):
        two_proportion_test(1, 2, 1, 2, method="exact")  # type: ignore[arg-type]


def test_fisher_false_positive_rate_stays_at_or_below_alpha() -> None:
    # Null: both groups recall 0.94; the pooled z-test's tail is too light here.
    rng = np.random.default_rng(11)
    n1, n2, p = 40, 400, 0.94
    k1 = rng.binomial(n1, p, 200_000)
    k2 = rng.binomial(n2, p, 200_000)
    fisher = np.asarray(two_proportion_test(k1, n1, k2, n2, "less", method="fisher").pvalue)
    for alpha in (1e-2, 1e-3):
        assert (fisher <= alpha).mean() <= alpha * 1.15
