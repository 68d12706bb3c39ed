"""Label share per conjunction: a relabelled slice is named; unchanged data gives nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from driftwatch.training.label_slices import label_share_slices


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    mcc = rng.choice([f"{5000 + i}" for i in range(20)], n)
    fraud_rate = np.where(mcc == "5007", 0.05, 0.005)
    return pd.DataFrame({
        "mcc": mcc,
        "merchant_country": rng.choice(["US", "GB", "DE"], n),
        "channel": rng.choice(["ecom", "card_present"], n),
        "features.merchant_age_days": rng.integers(0, 2000, n).astype(float),
        "amount_minor": rng.integers(100, 100_000, n),
        "label": (rng.random(n) < fraud_rate).astype(np.int64),
    })


def test_fraud_relabelled_as_legit_in_one_slice_is_named() -> None:
    rng = np.random.default_rng(5)
    old, new = _frame(rng, 60_000), _frame(rng, 60_000)
    flip = (new["mcc"] == "5007") & (new["channel"] == "ecom") & (new["label"] == 1)
    new.loc[flip, "label"] = 0
    found = label_share_slices(new, old, alpha=0.01, min_support=20)
    assert found, "no finding"
    top = found[0]
    assert top.check == "label_share_conjunction" and not top.blocking
    assert top.conjunction["mcc"] == "5007" and top.conjunction["label"] == 0
    assert top.conjunction.get("channel", "ecom") == "ecom"


def test_same_distribution_gives_no_finding() -> None:
    rng = np.random.default_rng(6)
    hits = sum(bool(label_share_slices(_frame(rng, 20_000), _frame(rng, 20_000),
                                       alpha=0.01, min_support=20)) for _ in range(10))
    assert hits <= 1
