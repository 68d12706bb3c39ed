"""Digit tests (chi-square, z, MAD) against benford_py and scipy on the same data, hand
cases, calibration."""

from __future__ import annotations

import math

import benford as bf
import numpy as np
import pytest
from scipy import stats

from driftwatch.stats.digit_test import MAD_RANGES, digit_test, mad_conformity
from driftwatch.stats.digits import (
    digit_counts,
    digits_of,
    expected_proportions,
    first_digit,
)
from tests.unit.stats.digit_data import amounts, benford_table


# ---------------------------------------------------------------- digit extraction
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
