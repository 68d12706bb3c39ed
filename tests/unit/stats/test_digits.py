"""Digit tests against benford_py and scipy on the same data, hand cases, calibration."""

from __future__ import annotations

import math

import benford as bf
import numpy as np
import pytest
from benford.utils import get_digs
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftwatch.stats.digits import (
    LAST_TWO_MIN_MINOR,
    MAD_RANGES,
    amounts_for_last_two,
    digit_counts,
    digit_test,
    digits_of,
    expected_proportions,
    first_digit,
    first_two_digits,
    grouped_digit_counts,
    last_two_digits,
    last_two_eligible,
    mad_conformity,
    max_cell_test,
    smoothed_shares,
)

UNIFORM_CENTS = expected_proportions("last_two")


def amounts(seed: int, size: int) -> np.ndarray:
    """Log-uniform amounts from 0.01 to 100,000.00 in minor units (Benford-like)."""
    rng = np.random.default_rng(seed)
    return np.floor(10 ** rng.uniform(0, 7, size)).astype(np.int64)


def benford_table(a: np.ndarray, digs: int) -> object:
    # benford_py with integer input and decimals=0 reads the minor units exactly
    if digs == -2:
        return bf.last_two_digits(a, decimals=0, verbose=False, show_plot=False, confidence=95)
    return bf.first_digits(a, digs=digs, decimals=0, verbose=False, show_plot=False, confidence=95)


# ---------------------------------------------------------------- digit extraction
def test_digit_extraction_hand_cases() -> None:
    a = [123437, 9, -5000, 0, 10, 99, 100, 1999]
    assert first_digit(a).tolist() == [1, 9, 5, -1, 1, 9, 1, 1]
    assert first_two_digits(a).tolist() == [12, -1, 50, -1, 10, 99, 10, 19]
    assert last_two_digits(a).tolist() == [37, 9, 0, 0, 10, 99, 0, 99]
    assert last_two_eligible(a).tolist() == [True, False, True, False, False, False, False, True]
    assert digits_of(a, "last_two").tolist() == [37, -1, 0, -1, -1, -1, -1, 99]
    assert LAST_TWO_MIN_MINOR == 1000
    assert amounts_for_last_two(a).tolist() == [123437, -5000, 1999]
    # integers beyond float precision stay exact
    assert first_two_digits([9_007_199_254_740_993]).tolist() == [90]
    assert last_two_digits([9_007_199_254_740_993]).tolist() == [93]


def test_amount_validation() -> None:
    assert first_digit(np.array([1234.0, 50.0])).tolist() == [1, 5]
    with pytest.raises(ValueError, match="whole numbers"):
        first_digit([1234.37])  # a float amount in major units is a bug upstream
    with pytest.raises(ValueError, match="kind='second'"):
        digit_counts([1], "second")  # type: ignore[arg-type]


def test_digits_match_benford_py() -> None:
    a = amounts(1, 5000)
    ref = get_digs(a, decimals=0)
    keep = a != 0  # benford_py drops zeros
    assert (ref["F1D"].to_numpy() == first_digit(a[keep])).all()
    f2 = ref["F2D"].to_numpy()
    assert (f2 == first_two_digits(a[keep])).all()
    l2 = ref["L2D"].to_numpy()
    assert (l2 == np.where(a[keep] >= 1000, last_two_digits(a[keep]), -1)).all()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**15))
def test_digits_properties(x: int) -> None:
    s = str(x)
    assert first_digit([x])[0] == int(s[0])
    assert first_two_digits([x])[0] == (int(s[:2]) if len(s) >= 2 else -1)
    assert last_two_digits([x])[0] == x % 100
    assert first_digit([-x])[0] == first_digit([x])[0]


# ---------------------------------------------------------------- counts and expectations
def test_counts_and_expected_match_benford_py() -> None:
    a = amounts(2, 8000)
    for kind, digs in (("first", 1), ("first_two", 2)):
        table = benford_table(a, digs).sort_index()  # type: ignore[attr-defined]
        counts = digit_counts(digits_of(a, kind), kind)  # type: ignore[arg-type]
        full = np.zeros_like(counts)
        full[table.index.to_numpy() - (1 if digs == 1 else 10)] = table["Counts"].to_numpy()
        assert (counts == full).all()
        exp = bf.expected.First(digs, plot=False)["Expected"].to_numpy()
        np.testing.assert_allclose(expected_proportions(kind), exp, rtol=1e-12)  # type: ignore[arg-type]
    assert expected_proportions("first").sum() == pytest.approx(1.0)
    assert expected_proportions("first_two").sum() == pytest.approx(1.0)
    assert expected_proportions("last_two").sum() == pytest.approx(1.0)


def test_grouped_counts_equal_per_group_counts() -> None:
    rng = np.random.default_rng(3)
    a = amounts(3, 3000)
    g = rng.integers(0, 7, a.size)
    d = digits_of(a, "last_two")
    grouped = grouped_digit_counts(d, g, "last_two", n_groups=8)
    assert grouped.shape == (8, 100)
    for k in range(8):
        assert (grouped[k] == digit_counts(d[g == k], "last_two")).all()


# ---------------------------------------------------------------- digit_test vs references
@pytest.mark.parametrize(("kind", "digs"), [("first", 1), ("first_two", 2)])
def test_digit_test_matches_benford_py_and_scipy(kind: str, digs: int) -> None:
    a = amounts(4, 3000)
    counts = digit_counts(digits_of(a, kind), kind)  # type: ignore[arg-type]
    res = digit_test(counts, kind)  # type: ignore[arg-type]
    n = counts.sum()
    p = expected_proportions(kind)  # type: ignore[arg-type]
    chi = stats.chisquare(counts, n * p)
    assert res.chi2 == pytest.approx(chi.statistic, rel=1e-10)
    assert res.pvalue == pytest.approx(chi.pvalue, rel=1e-8)
    assert res.n == n
    assert res.mad == pytest.approx(bf.mad(a, test=digs, decimals=0), rel=1e-10)
    table = benford_table(a, digs).sort_index()  # type: ignore[attr-defined]
    full_z = np.full(counts.size, np.nan)
    full_z[table.index.to_numpy() - (1 if digs == 1 else 10)] = table["Z_score"].to_numpy()
    absdiff = np.abs(counts / n - p)
    usual = absdiff > 0.5 / n  # where Nigrini's correction applies, the z agree
    np.testing.assert_allclose(np.abs(res.z[usual]), full_z[usual], rtol=1e-10)
    # elsewhere the correction is skipped (Nigrini), benford_py subtracts it anyway
    np.testing.assert_allclose(
        np.abs(res.z[~usual]), absdiff[~usual] / np.sqrt(p * (1 - p) / n)[~usual], rtol=1e-10
    )
    assert (np.sign(res.z) == np.sign(counts / n - p)).all()


def test_last_two_matches_benford_py_with_its_expectation() -> None:
    # benford_py's last-two expectation is 1/99 per cell (sums to 100/99);
    # passing the same expectation reproduces its z-scores and MAD
    a = amounts(5, 6000)
    counts = digit_counts(digits_of(a, "last_two"), "last_two")
    ours = digit_test(counts, "last_two", expected=np.full(100, 1 / 99))
    n = counts.sum()
    table = benford_table(a, -2).sort_index()  # type: ignore[attr-defined]
    assert (table["Counts"].to_numpy() == counts).all()
    usual = np.abs(counts / n - 1 / 99) > 0.5 / n
    z_ref = table["Z_score"].to_numpy()
    np.testing.assert_allclose(np.abs(ours.z[usual]), z_ref[usual], rtol=1e-10)
    assert ours.mad == pytest.approx(bf.mad(a, test=-2, decimals=0), rel=1e-10)
    # with the correct uniform expectation the chi-square equals scipy's
    res = digit_test(counts, "last_two")
    assert res.chi2 == pytest.approx(stats.chisquare(counts).statistic, rel=1e-10)


def test_digit_test_hand_case_and_vectorised_rows() -> None:
    counts = np.zeros(100, dtype=np.int64)
    counts[37] = 10
    counts[:90] += 1  # 100 records: .37 has 11, cells 0..89 have 1, 90..99 have 0
    res = digit_test(counts, "last_two")
    assert res.n == 100
    # (11 - 1)^2 / 1 + 10 cells of (0 - 1)^2 / 1 + 89 cells of 0
    assert res.chi2 == pytest.approx(100 + 10)
    # z of .37: f = 0.11, p = 0.01 -> (0.10 - 0.005) / sqrt(0.0099 / 100)
    assert res.z[37] == pytest.approx(0.095 / math.sqrt(0.0099 / 100))
    assert res.mad == pytest.approx((0.10 + 10 * 0.01) / 100)
    rows = np.vstack([counts, np.full(100, 3), np.zeros(100, dtype=np.int64)])
    vec = digit_test(rows, "last_two")
    assert vec.z.shape == (3, 100)
    assert vec.chi2[0] == pytest.approx(res.chi2)  # type: ignore[index]
    assert vec.chi2[1] == 0.0 and vec.conformity[1] == "close"  # type: ignore[index]
    assert math.isnan(vec.pvalue[2]) and vec.conformity[2] == ""  # type: ignore[index]
    with pytest.raises(ValueError, match="need 9 cells"):
        digit_test(counts, "first")


def test_mad_conformity_ranges() -> None:
    assert MAD_RANGES["first"] == (0.006, 0.012, 0.015)
    assert MAD_RANGES["first_two"] == (0.0012, 0.0018, 0.0022)
    assert MAD_RANGES["last_two"] == (0.0016, 0.0018, 0.0020)
    got = mad_conformity([0.0, 0.006, 0.0060001, 0.012, 0.015, 0.0151], "first")
    assert got.tolist() == [  # type: ignore[union-attr]
        "close",
        "close",
        "acceptable",
        "acceptable",
        "marginal",
        "nonconformity",
    ]
    assert mad_conformity(0.0019, "first_two") == "marginal"
    assert mad_conformity(0.0017, "last_two") == "acceptable"
    assert mad_conformity(float("nan"), "first") == ""


def test_benford_sample_conforms_and_uniform_digits_do_not() -> None:
    a = amounts(6, 20_000)
    good = digit_test(digit_counts(first_digit(a), "first"), "first")
    assert good.conformity == "close" and good.pvalue > 0.001  # type: ignore[operator]
    rng = np.random.default_rng(6)
    flat = rng.integers(1000, 10_000, 20_000)  # uniform first digits: far from Benford
    bad = digit_test(digit_counts(first_digit(flat), "first"), "first")
    assert bad.conformity == "nonconformity" and bad.pvalue < 1e-100  # type: ignore[operator]


# ---------------------------------------------------------------- max_cell_test
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
