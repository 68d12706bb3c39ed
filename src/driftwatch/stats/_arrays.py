"""Private array helpers shared by the statistics modules (validation and shapes)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


def as_counts(counts: ArrayLike, name: str = "counts", integral: bool = False) -> FloatArray:
    """Return ``counts`` as a float array of at least one dimension, checked >= 0.

    Raises ``ValueError`` for NaN, negative or (with ``integral``) non-integer values.
    """
    arr = np.asarray(counts, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have a bins axis (got a scalar)")
    if np.isnan(arr).any() or (arr < 0).any():
        raise ValueError(f"{name} must be non-negative numbers without NaN")
    if integral and (arr != np.floor(arr)).any():
        raise ValueError(f"{name} must be whole numbers")
    return arr


def count_pair(
    ref_counts: ArrayLike, cur_counts: ArrayLike, integral: bool = False
) -> tuple[FloatArray, FloatArray]:
    """Validate two count arrays with the same bins (last axis) and broadcast them."""
    ref = as_counts(ref_counts, "ref_counts", integral)
    cur = as_counts(cur_counts, "cur_counts", integral)
    if ref.shape[-1] != cur.shape[-1]:
        raise ValueError(
            f"ref_counts and cur_counts must share the bins axis (last axis): "
            f"{ref.shape[-1]} != {cur.shape[-1]}"
        )
    ref_b, cur_b = np.broadcast_arrays(ref, cur)
    return np.asarray(ref_b, dtype=np.float64), np.asarray(cur_b, dtype=np.float64)


def out_float(value: FloatArray) -> float | FloatArray:
    """A 0-d result as a Python float, anything else as a float64 array."""
    arr = np.asarray(value, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else arr


def out_int(value: NDArray[np.generic]) -> int | IntArray:
    """A 0-d result as a Python int, anything else as an int64 array."""
    arr = np.asarray(value, dtype=np.int64)
    return int(arr) if arr.ndim == 0 else arr


def check_probability(value: float, name: str, *, open_low: bool = True) -> float:
    """Check ``0 < value < 1`` (``0 <= value < 1`` if not ``open_low``) and return it."""
    v = float(value)
    ok = (0.0 < v < 1.0) if open_low else (0.0 <= v < 1.0)
    if not ok:
        bound = "0 < {0} < 1" if open_low else "0 <= {0} < 1"
        raise ValueError(f"{name}={value!r}; allowed: {bound.format(name)}")
    return v
