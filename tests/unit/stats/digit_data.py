"""Shared data for the digit tests: log-uniform amounts, uniform cents, benford_py tables."""

from __future__ import annotations

import benford as bf
import numpy as np

from driftwatch.stats.digits import expected_proportions

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
