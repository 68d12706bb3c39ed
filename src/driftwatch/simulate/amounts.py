"""Transaction amounts with real-world digit shape.

The whole-unit part is log-normal around the category's median times the
customer's spending level: log10 of such amounts spreads over more than one
decade, so first digits follow Benford's law closely (the mantissa of a normal
with sigma >= 0.4 decades is uniform to within a fraction of a per cent). The
cents are drawn independently from the category's cents profile
(:func:`~driftwatch.simulate.catalog.cents_profile`); cash withdrawals are whole
multiples of 20 with zero cents.

>>> from driftwatch.simulate.catalog import cents_profile, mcc_catalog
>>> cat = mcc_catalog()
>>> rng = np.random.default_rng(7)
>>> cents = sample_cents(rng, np.full(50000, cat.index["5967"]), cat)
>>> share = np.bincount(cents, minlength=100) / 50000
>>> bool(np.abs(share - cents_profile("5967")).max() < 0.01)
True
>>> round(float(cents_profile("5967")[99]), 3), round(float(cents_profile("5967")[37]), 4)
(0.3, 0.0042)
>>> a = sample_amounts(rng, np.full(5, cat.index["6011"]), np.ones(5), cat)
>>> bool(np.all(a % 2000 == 0))
True
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from driftwatch.simulate.catalog import MccCatalog

I64 = npt.NDArray[np.int64]


def sample_cents(rng: np.random.Generator, mcc: npt.NDArray[np.integer], cat: MccCatalog) -> I64:
    """Cents 0..99 for each row, drawn from the row's MCC cents profile (exactly).

    A profile is an even part (mass ``u`` spread over all 100 values) plus a few
    bumps: with probability ``u`` the cents are uniform, otherwise one bump is
    picked in proportion to its extra mass.
    """
    n = len(mcc)
    u = rng.random(n)
    even = cat.cents_uniform[mcc]
    out = rng.integers(0, 100, n)
    bump = u >= even
    if bump.any():
        rows = mcc[bump]
        v = (u[bump] - even[bump])[:, None]
        k = (v >= cat.cents_bump_cum[rows]).sum(axis=1)
        k = np.minimum(k, cat.cents_bumps.shape[1] - 1)
        out[bump] = cat.cents_bumps[rows, k]
    return out.astype(np.int64)


def sample_amounts(
    rng: np.random.Generator,
    mcc: npt.NDArray[np.integer],
    spend: npt.NDArray[np.float64],
    cat: MccCatalog,
    *,
    scale: float | npt.NDArray[np.float64] = 1.0,
) -> I64:
    """Amounts in minor units for legitimate-looking purchases.

    Parameters
    ----------
    mcc : array of int
        Category index of each row.
    spend : array of float
        Spending multiplier of each row's customer.
    scale : float or array
        Extra multiplier on the median (e.g. account takeover buys big).
    """
    n = len(mcc)
    median = cat.amount_median[mcc] * spend * scale
    x = np.exp(np.log(median) + cat.amount_sigma[mcc] * rng.standard_normal(n))
    major = np.maximum(1, np.floor(x)).astype(np.int64)
    cents = sample_cents(rng, mcc, cat)
    cash = cat.cents[mcc, 0] >= 1.0
    if cash.any():
        major[cash] = np.maximum(20, np.round(x[cash] / 20.0) * 20).astype(np.int64)
    return np.asarray(np.minimum(major, 99_999_999) * 100 + cents, dtype=np.int64)
