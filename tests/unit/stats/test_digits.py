"""Digit extraction and counts against benford_py on the same data, hand cases."""

from __future__ import annotations

import benford as bf
import numpy as np
import pytest
from benford.utils import get_digs
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.stats.digits import (
    LAST_TWO_MIN_MINOR,
    amounts_for_last_two,
    digit_counts,
    digits_of,
    expected_proportions,
    first_digit,
    first_two_digits,
    grouped_digit_counts,
    last_two_digits,
    last_two_eligible,
)
from tests.unit.stats.digit_data import amounts, benford_table


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
