"""Label share per conjunction: slices whose fraud (or legitimate) share moved, NEW against OLD.

A label-flipping attack relabels records of one narrow slice (fraud as legitimate, or
the reverse) without adding any; the record counts stay put and the overall share
hardly moves. Here the mining core (:func:`driftwatch.mining.mine`, hypergeometric
test: "the slice's share of label ``L`` rose in NEW") runs twice, ``L = 1`` and
``L = 0``, over conjunctions of at most two of ``mcc``, ``merchant_country``,
``channel`` and the ``merchant_age_days`` range (the whole snapshot enters the count
table, so the search stays shallow). Findings are warnings: a real shift of fraud
patterns looks the same; the poisoning scan is the blocking check.
"""

from __future__ import annotations

import pandas as pd

from driftwatch.mining import count_table, mine
from driftwatch.training.findings import ScanFinding
from driftwatch.training.risk import bucket_range, merchant_age_bucket, merchant_age_days

ATTRS = ("mcc", "merchant_country", "channel", "merchant_age_days")


def _attrs(frame: pd.DataFrame, label: int) -> pd.DataFrame:
    return pd.DataFrame({
        "mcc": frame["mcc"].astype(str).to_numpy(),
        "merchant_country": frame["merchant_country"].astype(str).to_numpy(),
        "channel": frame["channel"].astype(str).to_numpy(),
        "merchant_age_days": merchant_age_bucket(merchant_age_days(frame)).to_numpy(),
        "suspicious": (frame["label"] == label).to_numpy(),
    })


def label_share_slices(new: pd.DataFrame, old: pd.DataFrame, *, alpha: float,
                       min_support: int) -> list[ScanFinding]:
    """Warnings for conjunctions whose share of one label rose significantly."""
    out: list[ScanFinding] = []
    if new.empty or old.empty:
        return out
    for label in (1, 0):
        table = count_table(_attrs(new, label), _attrs(old, label), ATTRS)
        # fraud share up: a rate-ratio floor; legitimate share up (fraud relabelled): the
        # share is near 1 anyway, so only the excess records and the test decide
        res = mine(table, ATTRS, test="hypergeom", max_depth=2, min_support=min_support,
                   min_lift=1.5 if label == 1 else 0.0, min_excess=10.0, alpha=alpha)
        for f in res.findings[:20]:
            conj = {a: (bucket_range(str(v)) if a == "merchant_age_days" else v)
                    for a, v in f.conjunction.items()}
            conj["label"] = label
            text = ", ".join(f"{a}={v}" for a, v in f.conjunction.items())
            share_new = f.k / f.n if f.n else 0.0
            share_old = f.k_ref / f.n_ref if f.n_ref else 0.0
            out.append(ScanFinding(
                "label_share_conjunction", "warning", False, conj, f.k,
                f"[{text}]: share of label {label} {share_old:.3%} -> {share_new:.3%} "
                f"({f.k_ref:,} of {f.n_ref:,} -> {f.k:,} of {f.n:,}; adjusted p = "
                f"{f.pvalue_adjusted:.2g} over {res.examined:,} conjunctions)",
                details={"pvalue_adjusted": f.pvalue_adjusted, "examined": res.examined}))
    return out
