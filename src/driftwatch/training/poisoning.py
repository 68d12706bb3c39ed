"""The poisoning scan: conjunctions of fraud-like records labelled legit, too many in NEW.

Suspicious records are those whose label contradicts their model-independent risk
(:func:`driftwatch.training.risk.fraud_like` and ``label == 0``). Only they enter the
count table (the binomial test reads suspicious counts and the overall record
totals), so the search stays small on snapshots of millions of records. The
attributes are the gate's fields (``mcc``, ``amount_cents``, ``beneficiary_prefix``
with prefixes derived from the suspicious names, ``merchant_age_days`` as a range,
``merchant_country``, ``channel``); the core is :func:`driftwatch.mining.mine`.

Each finding names the closed conjunction and the NEW records in it (file and line
or row), and blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from driftwatch.mining import count_table, mine
from driftwatch.training.findings import ScanFinding
from driftwatch.training.risk import (
    ATTRIBUTES,
    DEFAULT_RULE,
    RiskRule,
    attributes,
    bucket_range,
    fraud_like,
)


@dataclass(frozen=True)
class PoisonConfig:
    """Search settings of the poisoning scan."""

    alpha: float = 0.01
    min_support: int = 20
    max_depth: int = 3
    min_lift: float = 2.0
    listed: int = 50
    rule: RiskRule = DEFAULT_RULE


def _contract_value(attr: str, value: Any) -> Any:
    if attr == "merchant_age_days":
        return bucket_range(str(value))
    return value


def record_ref(file: str, line: int) -> dict[str, Any]:
    """``{"file", "line"}`` (``"row"`` for Parquet)."""
    return {"file": file, ("row" if file.endswith(".parquet") else "line"): int(line)}


def poisoning_scan(new: pd.DataFrame, old: pd.DataFrame,
                   cfg: PoisonConfig | None = None) -> tuple[list[ScanFinding], dict[str, Any]]:
    """Findings of the poisoning scan, and figures about the search.

    Returns
    -------
    (findings, figures)
        Blocking critical findings, most significant first; ``figures`` holds the
        suspicious counts and the search's size (``examined`` is the family).
    """
    cfg = cfg or PoisonConfig()
    if new.empty or old.empty:
        return [], {"suspicious": 0, "suspicious_baseline": 0, "examined": 0}
    sus_new = fraud_like(new, cfg.rule) & (new["label"] == 0)
    sus_old = fraud_like(old, cfg.rule) & (old["label"] == 0)
    a_new, a_old = new[sus_new.to_numpy()], old[sus_old.to_numpy()]
    figures: dict[str, Any] = {"suspicious": len(a_new), "suspicious_baseline": len(a_old),
                               "examined": 0, "candidates": 0}
    if a_new.empty:
        return [], figures
    attr_new, attr_old = attributes(a_new, a_old, cfg.min_support, len(new), len(old))
    attr_new["suspicious"] = True
    attr_old["suspicious"] = True
    table = count_table(attr_new, attr_old, ATTRIBUTES)
    table["amount_cents"] = table["amount_cents"].astype(object)
    res = mine(table, ATTRIBUTES, total=len(new), total_ref=len(old), test="binomial",
               max_depth=cfg.max_depth, min_support=cfg.min_support, min_lift=cfg.min_lift,
               alpha=cfg.alpha)
    figures.update(examined=res.examined, candidates=res.candidates, truncated=res.truncated)
    out = []
    for f in res.findings:
        mask = pd.Series(True, index=attr_new.index)
        for a, v in f.conjunction.items():
            mask &= attr_new[a] == v
        hits = a_new.loc[mask[mask].index, ["file", "line"]]
        conj = {a: _contract_value(a, v) for a, v in f.conjunction.items()}
        conj["label"] = 0
        text = ", ".join(f"{a}={v}" for a, v in f.conjunction.items())
        out.append(ScanFinding(
            "poisoning", "critical", True, conj, f.k,
            f"{f.k:,} fraud-like records labelled legitimate in [{text}] "
            f"(baseline {f.k_ref:,}; expected {f.expected:.1f}; "
            f"adjusted p = {f.pvalue_adjusted:.2g} over {res.examined:,} conjunctions)",
            records=tuple(record_ref(str(f_), int(ln)) for f_, ln in zip(
                hits['file'].head(cfg.listed).tolist(), hits['line'].head(cfg.listed).tolist(),
                strict=True)),
            details={"baseline": f.k_ref, "expected": f.expected, "lift": f.lift,
                     "pvalue": f.pvalue, "pvalue_adjusted": f.pvalue_adjusted,
                     "examined": res.examined,
                     "searched": {a: _contract_value(a, v) for a, v in f.searched.items()}}))
    return out, figures
