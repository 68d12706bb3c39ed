"""The random records the mining tests share: four categorical attributes and a
``suspicious`` flag, with no relation between them unless a test plants one."""

from __future__ import annotations

import numpy as np
import pandas as pd

ATTRS = ["a", "b", "c", "d"]


def records(rng: np.random.Generator, n: int, sus_rate: float = 0.02) -> pd.DataFrame:
    """``n`` records: ``a`` of 12 values, ``b`` of 30, ``c`` of 3, ``d`` of 6, each row
    suspicious with probability ``sus_rate``."""
    return pd.DataFrame({
        "a": rng.choice([f"a{i}" for i in range(12)], n),
        "b": rng.choice([f"b{i}" for i in range(30)], n),
        "c": rng.choice(["x", "y", "z"], n),
        "d": rng.choice([f"d{i}" for i in range(6)], n),
        "suspicious": rng.random(n) < sus_rate,
    })
