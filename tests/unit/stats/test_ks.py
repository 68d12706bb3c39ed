"""Two-sample KS: scipy on the same data, hand cases, binned counts, properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftwatch.stats.ks import (
    EXACT_AUTO_MAX_PRODUCT,
    ks_2samp,
    ks_from_counts,
    ks_pvalue,
)


def scipy_exact(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a silent fallback to 'asymp' would void the check
        r = stats.ks_2samp(x, y, method="exact")
    return float(r.statistic), float(r.pvalue)


@pytest.mark.parametrize(
    ("m", "n"),
    [(1, 1), (1, 7), (2, 3), (5, 5), (8, 12), (20, 20), (13, 47), (60, 45), (100, 100), (37, 250)],
)
def test_exact_matches_scipy_without_ties(m: int, n: int) -> None:
    rng = np.random.default_rng(1000 * m + n)
    for shift in (0.0, 0.5, 1.5):
        x = rng.normal(0.0, 1.0, m)
        y = rng.normal(shift, 1.0, n)
        d_ref, p_ref = scipy_exact(x, y)
        res = ks_2samp(x, y, method="exact")
        assert res.exact is True
        assert res.statistic == pytest.approx(d_ref, abs=1e-12)
        assert res.pvalue == pytest.approx(p_ref, rel=1e-6, abs=1e-12)
        assert (res.n_ref, res.n_cur) == (m, n)


def test_hand_cases() -> None:
    # complete separation of 3 + 3: only 2 of C(6, 3) = 20 orderings reach D = 1
    res = ks_2samp([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert res.statistic == 1.0
    assert res.pvalue == pytest.approx(0.1, abs=1e-15)
    # one against one: D = 1 always
    assert ks_2samp([0.0], [1.0]).pvalue == pytest.approx(1.0)
    # interleaved equal samples: D = 1/3, every ordering reaches it
    assert ks_2samp([1.0, 3.0, 5.0], [2.0, 4.0, 6.0]).pvalue == pytest.approx(1.0)
    p, exact = ks_pvalue([0], [5], [5])
    assert p[0] == 1.0 and exact[0]


def test_single_observation_closed_form_matches_scipy() -> None:
    # one current value with r of the `big` reference values below it, for every r
    for big in (1, 2, 7, 40):
        for r in range(big + 1):
            x = np.array([0.0])
            y = np.arange(big) - r + 0.5
            d_ref, p_ref = scipy_exact(x, y)
            res = ks_2samp(x, y, method="exact")
            assert res.statistic == pytest.approx(d_ref) == max(r, big - r) / big
            assert res.pvalue == pytest.approx(p_ref, rel=1e-9)


def test_auto_switches_on_the_product_of_sizes() -> None:
    rng = np.random.default_rng(2)
    small = ks_2samp(rng.normal(size=50), rng.normal(size=50))
    large = ks_2samp(rng.normal(size=60), rng.normal(size=50))
    assert 50 * 50 <= EXACT_AUTO_MAX_PRODUCT < 60 * 50
    assert small.exact is True and large.exact is False
    assert ks_2samp(rng.normal(size=60), rng.normal(size=50), method="exact").exact is True


@pytest.mark.parametrize(("m", "n"), [(30, 40), (50, 50), (100, 120), (200, 2000), (20, 1000)])
def test_asymptotic_is_close_and_errs_conservative(m: int, n: int) -> None:
    g = math.gcd(m, n)
    lcm = m * n // g
    h = np.arange(1, lcm + 1)
    approx, flags = ks_pvalue(h, m, n, "asymp")
    h = h[(approx > 1e-5) & (approx < 0.3)]
    h = h[:: max(1, h.size // 60)]  # about 60 points across the useful range
    approx, flags = ks_pvalue(h, m, n, "asymp")
    exact, _ = ks_pvalue(h, m, n, "exact")
    assert not flags.any()
    sel = (exact > 1e-4) & (exact < 0.2)
    ratio = approx[sel] / exact[sel]
    assert ratio.min() >= 0.97, ratio.min()
    assert ratio.max() <= 1.2, ratio.max()


def test_asymptotic_close_to_scipy_asymp() -> None:
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=400), rng.normal(0.25, 1.0, 300)
    ours = ks_2samp(x, y, method="asymp")
    ref = stats.ks_2samp(x, y, method="asymp")
    assert ours.statistic == pytest.approx(ref.statistic)
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=0.1)


def test_from_counts_equals_scipy_on_binned_data() -> None:
    rng = np.random.default_rng(17)
    bins = np.arange(20)
    for _ in range(40):
        m, n = int(rng.integers(1, 60)), int(rng.integers(1, 60))
        ref = rng.multinomial(m, rng.dirichlet(np.ones(20)))
        cur = rng.multinomial(n, rng.dirichlet(np.ones(20)))
        res = ks_from_counts(ref, cur, method="exact")
        d_ref, p_ref = scipy_exact(np.repeat(bins, ref), np.repeat(bins, cur))
        assert res.statistic == pytest.approx(d_ref, abs=1e-12)
        assert res.pvalue == pytest.approx(p_ref, rel=1e-6, abs=1e-12)


def test_from_counts_vectorised_equals_rows() -> None:
    rng = np.random.default_rng(23)
    m = rng.integers(1, 3000, 300)
    n = rng.integers(1, 200, 300)
    ref = np.array([rng.multinomial(a, [0.05] * 20) for a in m])
    cur = np.array([rng.multinomial(b, rng.dirichlet(np.full(20, 5.0))) for b in n])
    vec = ks_from_counts(ref, cur)
    assert isinstance(vec.statistic, np.ndarray) and vec.statistic.shape == (300,)
    for i in range(0, 300, 7):
        one = ks_from_counts(ref[i], cur[i])
        assert one.statistic == pytest.approx(vec.statistic[i], abs=1e-15)
        assert one.pvalue == pytest.approx(vec.pvalue[i], rel=1e-12, abs=1e-15)
        assert one.exact == bool(vec.exact[i])  # type: ignore[index]
    assert set(np.unique(vec.exact)) == {True, False}  # type: ignore[arg-type]


def test_binning_never_raises_d_and_null_rate_is_conservative() -> None:
    rng = np.random.default_rng(31)
    edges = np.quantile(rng.normal(size=10_000), np.linspace(0, 1, 21)[1:-1])
    reps = 1500
    rej = 0
    for _ in range(reps):
        x, y = rng.normal(size=200), rng.normal(size=40)
        cx = np.bincount(np.searchsorted(edges, x, side="right"), minlength=20)
        cy = np.bincount(np.searchsorted(edges, y, side="right"), minlength=20)
        binned = ks_from_counts(cx, cy)
        assert binned.statistic <= ks_2samp(x, y).statistic + 1e-12
        rej += binned.pvalue < 0.05
    assert rej / reps <= 0.05 + 0.015


def test_empty_samples_and_nan() -> None:
    res = ks_2samp([], [1.0, 2.0])
    assert math.isnan(res.statistic) and math.isnan(res.pvalue) and res.n_ref == 0
    res = ks_2samp([1.0, float("nan"), 2.0], [3.0])
    assert res.n_ref == 2
    vec = ks_from_counts([[0, 0], [3, 4]], [[1, 1], [0, 0]])
    assert np.isnan(vec.pvalue).all()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whole numbers"):
        ks_from_counts([1.5, 2], [1, 2])
    with pytest.raises(ValueError, match="method='x'"):
        ks_2samp([1.0], [2.0], method="x")  # type: ignore[arg-type]


samples = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(samples, samples)
def test_properties_symmetry_and_range(x: list[float], y: list[float]) -> None:
    a = ks_2samp(x, y)
    b = ks_2samp(y, x)
    assert a.statistic == b.statistic
    assert a.pvalue == pytest.approx(b.pvalue, rel=1e-12, abs=1e-15)
    assert 0.0 <= a.statistic <= 1.0
    assert 0.0 <= a.pvalue <= 1.0
    assert ks_2samp(x, x).statistic == 0.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=2, max_size=12), st.data())
def test_properties_counts(ref: list[int], data: st.DataObject) -> None:
    cur = data.draw(st.lists(st.integers(0, 30), min_size=len(ref), max_size=len(ref)))
    res = ks_from_counts(ref, cur)
    swapped = ks_from_counts(cur, ref)
    if sum(ref) and sum(cur):
        assert 0.0 <= res.pvalue <= 1.0
        assert res.statistic == swapped.statistic
        assert res.pvalue == pytest.approx(swapped.pvalue, rel=1e-12, abs=1e-15)
    else:
        assert math.isnan(res.pvalue)
