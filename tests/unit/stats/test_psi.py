"""PSI: hand-computed values, a reference computation on the same bins, calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from driftwatch.stats.psi import bin_counts, psi, psi_critical, psi_test, quantile_edges


def hand_psi(ref: list[float], cur: list[float], eps: float = 1e-4) -> float:
    """PSI written out term by term, as in the usual spreadsheet definition."""
    nr, nc = sum(ref), sum(cur)
    total = 0.0
    for r, c in zip(ref, cur, strict=True):
        p = max(r / nr, eps)
        q = max(c / nc, eps)
        total += (q - p) * math.log(q / p)
    return total


# ---------------------------------------------------------------- edges and counts
def test_quantile_edges_uniform_reference() -> None:
    x = np.arange(1000) / 1000.0
    edges = quantile_edges(x, bins=10)
    assert edges.shape == (9,)
    np.testing.assert_allclose(edges, np.quantile(x, np.arange(1, 10) / 10))
    counts = bin_counts(x, edges)
    assert counts.tolist() == [100] * 10


def test_quantile_edges_ties_dedupe_and_minimum_dropped() -> None:
    # 60 % zeros: the 0.2/0.4 quantiles equal the minimum and are dropped
    x = np.array([0.0] * 60 + list(np.linspace(0.1, 1.0, 40)))
    edges = quantile_edges(x, bins=10)
    assert (np.diff(edges) > 0).all()
    assert edges.min() > 0.0
    counts = bin_counts(x, edges)
    assert counts[0] == 60 and (counts > 0).all()


def test_quantile_edges_constant_and_errors() -> None:
    assert quantile_edges([3.0, 3.0, 3.0], bins=5).size == 0
    with pytest.raises(ValueError, match="bins=1"):
        quantile_edges([1.0, 2.0], bins=1)
    with pytest.raises(ValueError, match="no finite value"):
        quantile_edges([float("nan"), float("inf")])


def test_bin_index_convention_side_right() -> None:
    edges = np.array([0.2, 0.5])
    # a value equal to an edge belongs to the bin above it
    assert bin_counts([0.1, 0.2, 0.49, 0.5, 0.9], edges).tolist() == [1, 2, 2]
    assert np.searchsorted(edges, 0.5, side="right") == 2
    with pytest.raises(ValueError, match="strictly increasing"):
        bin_counts([1.0], [0.5, 0.5])


# ---------------------------------------------------------------- psi values
def test_psi_hand_checkable() -> None:
    ref, cur = [25, 25, 25, 25], [10, 20, 30, 40]
    expected = (
        (0.1 - 0.25) * math.log(0.1 / 0.25)
        + (0.2 - 0.25) * math.log(0.2 / 0.25)
        + (0.3 - 0.25) * math.log(0.3 / 0.25)
        + (0.4 - 0.25) * math.log(0.4 / 0.25)
    )
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-12)
    assert psi(ref, cur) == pytest.approx(0.228217, abs=1e-6)


def test_psi_empty_bin_uses_eps_floor() -> None:
    ref, cur = [50, 50, 0], [40, 40, 20]
    expected = (0.4 - 0.5) * math.log(0.4 / 0.5) * 2 + (0.2 - 1e-4) * math.log(0.2 / 1e-4)
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-12)
    assert psi(ref, cur, eps=1e-3) < psi(ref, cur, eps=1e-4)
    with pytest.raises(ValueError, match="eps"):
        psi(ref, cur, eps=0.0)


def test_psi_matches_hand_reference_on_same_bins() -> None:
    rng = np.random.default_rng(11)
    reference = rng.beta(2, 5, 3000)
    current = rng.beta(2.4, 5, 400)
    edges = quantile_edges(reference, bins=10)
    r, c = bin_counts(reference, edges), bin_counts(current, edges)
    assert psi(r, c) == pytest.approx(hand_psi(r.tolist(), c.tolist()), rel=1e-12)


def test_psi_vectorised_rows_and_broadcast() -> None:
    rng = np.random.default_rng(3)
    ref = rng.multinomial(500, [0.1] * 10, size=50)
    cur = rng.multinomial(80, [0.1] * 10, size=50)
    vec = psi(ref, cur)
    assert isinstance(vec, np.ndarray) and vec.shape == (50,)
    loop = [hand_psi(ref[i].tolist(), cur[i].tolist()) for i in range(50)]
    np.testing.assert_allclose(vec, loop, rtol=1e-12)
    shared = psi(ref[0], cur)  # one reference for every segment
    np.testing.assert_allclose(shared, [psi(ref[0], row) for row in cur], rtol=1e-12)


def test_psi_empty_window_is_nan() -> None:
    out = psi([[10, 10], [10, 10]], [[0, 0], [5, 5]])
    assert isinstance(out, np.ndarray)
    assert math.isnan(out[0]) and out[1] == 0.0


def test_psi_rejects_bad_counts() -> None:
    with pytest.raises(ValueError, match="bins axis"):
        psi([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="non-negative"):
        psi([1, -2], [1, 2])


counts_rows = arrays(np.int64, st.integers(2, 12), elements=st.integers(0, 1000)).filter(
    lambda a: a.sum() > 0
)


@settings(max_examples=150, deadline=None)
@given(counts_rows, st.data())
def test_psi_properties(ref: np.ndarray, data: st.DataObject) -> None:
    cur = data.draw(
        arrays(np.int64, ref.shape, elements=st.integers(0, 1000)).filter(lambda a: a.sum() > 0)
    )
    value = psi(ref, cur)
    assert value >= 0.0
    assert psi(ref, ref) == 0.0
    assert psi(ref, ref * 3) == pytest.approx(0.0, abs=1e-12)
    assert value == pytest.approx(psi(cur, ref), rel=1e-9, abs=1e-12)  # Jeffreys: symmetric
    res = psi_test(ref, cur)
    assert 0.0 <= res.pvalue <= 1.0


# ---------------------------------------------------------------- the test and its calibration
def test_psi_test_pearson_equals_scipy_chi2_contingency() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        ref = rng.multinomial(int(rng.integers(50, 2000)), rng.dirichlet(np.ones(10)))
        cur = rng.multinomial(int(rng.integers(5, 300)), rng.dirichlet(np.ones(10)))
        table = np.vstack([ref, cur])
        table = table[:, table.sum(axis=0) > 0]
        chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
        res = psi_test(ref, cur)
        assert res.statistic == pytest.approx(chi2, rel=1e-10)
        assert res.pvalue == pytest.approx(p, rel=1e-8, abs=1e-300)
        assert res.bins == dof + 1
        assert (res.n_ref, res.n_cur) == (ref.sum(), cur.sum())
        assert res.psi == pytest.approx(psi(ref, cur))


def test_psi_test_psi_method_is_neff_times_psi() -> None:
    ref, cur = np.array([300, 300, 400]), np.array([20, 50, 30])
    res = psi_test(ref, cur, method="psi")
    n_eff = 1000 * 100 / 1100
    assert res.statistic == pytest.approx(n_eff * psi(ref, cur))
    assert res.pvalue == pytest.approx(stats.chi2.sf(n_eff * psi(ref, cur), 2))
    with pytest.raises(ValueError, match="method='g'"):
        psi_test(ref, cur, method="g")  # type: ignore[arg-type]


def test_psi_under_null_sits_near_bins_minus_one_over_n() -> None:
    rng = np.random.default_rng(21)
    ref = rng.multinomial(100_000, [0.1] * 10, size=2000)
    cur = rng.multinomial(200, [0.1] * 10, size=2000)
    n_eff = 100_000 * 200 / 100_200
    assert float(np.mean(psi(ref, cur))) == pytest.approx(9 / n_eff, rel=0.1)


@pytest.mark.parametrize("n_cur", [10, 30, 100])
def test_psi_test_false_positive_rate_small_samples(n_cur: int) -> None:
    rng = np.random.default_rng(100 + n_cur)
    reps = 4000
    ref = rng.multinomial(1000, [0.1] * 10, size=reps)
    cur = rng.multinomial(n_cur, [0.1] * 10, size=reps)
    res = psi_test(ref, cur)
    assert isinstance(res.pvalue, np.ndarray)
    fpr = float(np.mean(res.pvalue < 0.05))
    assert 0.035 <= fpr <= 0.065, fpr
    # what the literal n_eff * PSI calibration would have done on small windows
    literal = psi_test(ref, cur, method="psi")
    if n_cur <= 30:
        assert float(np.mean(np.asarray(literal.pvalue) < 0.01)) > 0.2


def test_psi_test_detects_a_shift() -> None:
    rng = np.random.default_rng(8)
    reference = rng.normal(0.0, 1.0, 5000)
    edges = quantile_edges(reference, bins=10)
    r = bin_counts(reference, edges)
    shifted = bin_counts(rng.normal(0.8, 1.0, 60), edges)
    clean = bin_counts(rng.normal(0.0, 1.0, 60), edges)
    assert psi_test(r, shifted).pvalue < 1e-4
    assert psi_test(r, clean).pvalue > 0.01


def test_psi_test_degenerate_rows() -> None:
    res = psi_test([[10, 0], [0, 0], [5, 5]], [[3, 0], [1, 1], [0, 0]])
    assert isinstance(res.pvalue, np.ndarray)
    assert res.pvalue[0] == 1.0  # one occupied bin: nothing to compare
    assert math.isnan(res.pvalue[1]) and math.isnan(res.pvalue[2])
    assert res.bins.tolist() == [1, 2, 2]  # type: ignore[union-attr]


def test_psi_critical_formula_and_large_sample_rate() -> None:
    assert psi_critical(10_000, 1000, 10, 0.05) == pytest.approx(
        stats.chi2.ppf(0.95, 9) / (10_000 * 1000 / 11_000)
    )
    crit = psi_critical([1000, 0], [100, 100], [10, 10], 0.01)
    assert isinstance(crit, np.ndarray) and math.isnan(crit[1])
    rng = np.random.default_rng(4)
    ref = rng.multinomial(50_000, [0.1] * 10, size=4000)
    cur = rng.multinomial(2000, [0.1] * 10, size=4000)
    rate = float(np.mean(np.asarray(psi(ref, cur)) > psi_critical(50_000, 2000, 10, 0.05)))
    assert 0.035 <= rate <= 0.065, rate
    with pytest.raises(ValueError, match="alpha"):
        psi_critical(10, 10, 10, alpha=1.5)
    with pytest.raises(ValueError, match="bins"):
        psi_critical(10, 10, 1)
