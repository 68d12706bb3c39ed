"""The aggregate checks of ``driftwatch training scan``: counts, label shares, sources, new values.

Every check pairs a business rule with an exact test: a change counts only when it
is larger than the rule's tolerance (record counts: ``count_tolerance``, 1 %) *and*
significant at ``alpha`` after a Bonferroni correction over the check's family
(segments, days). So a 0.3 % count change never fires and a 1.5 % one on a few
hundred records (well inside noise) does not either; on snapshots of the incident's
size every 1.5 % change does.

Record counts compare NEW with OLD (overall: ``X = N_new ~ Binom(N_new + N_old, 1/2)``;
per segment: the segment's share, ``X = n_new ~ Binom(n_new + n_old, p0)``,
``p0 = N_new / (N_new + N_old)``); per ingestion day, each NEW day against the
median OLD day with the OLD days' own dispersion. Label shares use the same
conditional test on fraud labels (``p`` = the records' split). The label-source mix
is a chi-square test on the source counts; new merchants and beneficiary prefixes
"in bulk" are values absent from OLD that carry at least ``bulk`` NEW records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from driftwatch.training.findings import ScanFinding, two_sided_binomial

SEGMENTS = ("mcc", "merchant_country", "channel")


@dataclass(frozen=True)
class CheckConfig:
    """Thresholds of the aggregate checks (from the settings; see ``settings.py``)."""

    count_tolerance: float = 0.01
    alpha: float = 0.01
    label_share_tolerance: float = 0.10
    min_segment_records: int = 30
    bulk: int = 50
    listed: int = 50

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")
        if not 0.0 <= self.count_tolerance < 1.0:
            raise ValueError(f"count_tolerance must be in [0, 1), got {self.count_tolerance!r}")


def _pct(x: float) -> str:
    return f"{x * 100:+.2f} %"


def record_count(new: pd.DataFrame, old: pd.DataFrame, cfg: CheckConfig) -> list[ScanFinding]:
    """Overall record count: blocks when it moved more than the tolerance, significantly."""
    n_new, n_old = len(new), len(old)
    if n_old == 0:
        return [ScanFinding("record_count", "critical", True, {}, n_new,
                            "baseline snapshot has no valid records")]
    rel = n_new / n_old - 1.0
    p = float(two_sided_binomial(n_new, n_new + n_old, 0.5))
    over = abs(rel) > cfg.count_tolerance
    sig = p <= cfg.alpha
    blocking = over and sig
    summary = (f"record count {n_old:,} -> {n_new:,} ({_pct(rel)}; rule > "
               f"{cfg.count_tolerance * 100:g} %, exact p = {p:.2g})")
    return [ScanFinding("record_count", "critical" if blocking else "info", blocking, {},
                        n_new, summary, details={"relative_change": rel, "pvalue": p,
                                                 "baseline": n_old})]


def _days(frame: pd.DataFrame) -> pd.Series:
    t = frame["ingested_at"]
    if t.isna().all():
        return pd.Series(dtype=np.int64)
    days: pd.Series = t.dropna().dt.strftime("%Y-%m-%d").value_counts().sort_index()
    return days


def records_per_day(new: pd.DataFrame, old: pd.DataFrame, cfg: CheckConfig) -> list[ScanFinding]:
    """Each NEW ingestion day against the median OLD day (OLD days' own dispersion)."""
    d_new, d_old = _days(new), _days(old)
    if d_new.empty or len(d_old) < 2:
        return []
    med = float(d_old.median())
    var = max(float(d_old.var(ddof=1)), med)  # at least Poisson
    z = (d_new.to_numpy(np.float64) - med) / np.sqrt(var * (1 + 1 / len(d_old)))
    p = np.minimum(1.0, 2 * stats.norm.sf(np.abs(z)) * len(d_new))
    rel = d_new.to_numpy(np.float64) / med - 1.0
    out = []
    for day, r, pv, c in zip(d_new.index, rel, p, d_new.to_numpy(), strict=True):
        if abs(r) > cfg.count_tolerance and pv <= cfg.alpha:
            out.append(ScanFinding(
                "records_per_day", "warning", False, {"ingested_day": str(day)}, int(c),
                f"{day}: {int(c):,} records vs a typical baseline day of {med:,.0f} "
                f"({_pct(r)}, adjusted p = {pv:.2g})",
                details={"relative_change": float(r), "pvalue_adjusted": float(pv)}))
    return out


def _segment_counts(new: pd.DataFrame, old: pd.DataFrame, seg: str,
                    value: str | None = None) -> pd.DataFrame:
    def side(f: pd.DataFrame) -> pd.DataFrame:
        key = f[seg].astype(str)
        g = f.groupby(key, observed=True)["label"].agg(["size", "sum"])
        return g.rename(columns={"size": "n", "sum": "fraud"})

    a, b = side(new), side(old)
    out = a.join(b, how="outer", lsuffix="_new", rsuffix="_old").fillna(0).astype(np.int64)
    return out[out.index != ""]


def records_per_segment(new: pd.DataFrame, old: pd.DataFrame,
                        cfg: CheckConfig) -> list[ScanFinding]:
    """Each segment's share of records, NEW against OLD (Bonferroni over all segments)."""
    n_new, n_old = len(new), len(old)
    if not n_new or not n_old:
        return []
    p0 = n_new / (n_new + n_old)
    tables = {seg: _segment_counts(new, old, seg) for seg in SEGMENTS}
    family = sum(len(t) for t in tables.values())
    out = []
    for seg, t in tables.items():
        t = t[(t["n_new"] + t["n_old"]) >= cfg.min_segment_records]
        p = two_sided_binomial(t["n_new"], t["n_new"] + t["n_old"], p0) * family
        share_new, share_old = t["n_new"] / n_new, t["n_old"] / n_old
        rel = share_new / share_old.where(share_old > 0) - 1.0
        for (value, row), pv, r in zip(t.iterrows(), p, rel.to_numpy(), strict=True):
            if pv <= cfg.alpha and not abs(r) <= cfg.count_tolerance:
                what = "new segment" if row["n_old"] == 0 else _pct(float(r))
                out.append(ScanFinding(
                    "records_per_segment", "warning", False, {seg: str(value)},
                    int(row["n_new"]),
                    f"{seg}={value}: {int(row['n_old']):,} -> {int(row['n_new']):,} records "
                    f"(share {what}, adjusted p = {min(pv, 1.0):.2g})",
                    details={"pvalue_adjusted": float(min(pv, 1.0)),
                             "relative_change": None if np.isnan(r) else float(r)}))
    return out


def label_share(new: pd.DataFrame, old: pd.DataFrame, cfg: CheckConfig) -> list[ScanFinding]:
    """Fraud share overall (blocking) and per segment (warnings), NEW against OLD."""
    out: list[ScanFinding] = []
    n_new, n_old = len(new), len(old)
    if not n_new or not n_old:
        return out
    f_new, f_old = int(new["label"].sum()), int(old["label"].sum())
    s_new, s_old = f_new / n_new, f_old / n_old
    p0 = n_new / (n_new + n_old)
    p = float(two_sided_binomial(f_new, f_new + f_old, p0)) if f_new + f_old else 1.0
    rel = s_new / s_old - 1.0 if s_old else (np.inf if s_new else 0.0)
    block = p <= cfg.alpha and abs(rel) > cfg.label_share_tolerance
    out.append(ScanFinding(
        "label_share", "critical" if block else "info", block, {"label": 1}, f_new,
        f"fraud share {s_old:.4%} -> {s_new:.4%} ({_pct(rel)} relative, exact p = {p:.2g})",
        details={"baseline_share": s_old, "share": s_new, "pvalue": p}))
    tables = {seg: _segment_counts(new, old, seg) for seg in SEGMENTS}
    family = sum(len(t) for t in tables.values())
    for seg, t in tables.items():
        t = t[(t["n_new"] >= cfg.min_segment_records) & (t["n_old"] >= cfg.min_segment_records)
              & ((t["fraud_new"] + t["fraud_old"]) > 0)]
        split = t["n_new"] / (t["n_new"] + t["n_old"])
        pv = two_sided_binomial(t["fraud_new"], t["fraud_new"] + t["fraud_old"], split) * family
        sn, so = t["fraud_new"] / t["n_new"], t["fraud_old"] / t["n_old"]
        for (value, row), p_i, a, b in zip(t.iterrows(), pv, sn, so, strict=True):
            if p_i <= cfg.alpha and abs(a - b) > cfg.label_share_tolerance * max(b, 1e-3):
                out.append(ScanFinding(
                    "label_share_segment", "warning", False, {seg: str(value), "label": 1},
                    int(row["fraud_new"]),
                    f"{seg}={value}: fraud share {b:.3%} -> {a:.3%} "
                    f"(adjusted p = {min(p_i, 1.0):.2g})",
                    details={"pvalue_adjusted": float(min(p_i, 1.0))}))
    return out


def label_sources(new: pd.DataFrame, old: pd.DataFrame, cfg: CheckConfig) -> list[ScanFinding]:
    """The mix of ``label_source`` (per label value), NEW against OLD: chi-square test."""
    out = []
    for label in (0, 1):
        a = new.loc[new["label"] == label, "label_source"].astype(str).value_counts()
        b = old.loc[old["label"] == label, "label_source"].astype(str).value_counts()
        t = pd.concat([a, b], axis=1, keys=["new", "old"]).fillna(0)
        if len(t) < 2 or t["new"].sum() == 0 or t["old"].sum() == 0:
            continue
        t = t[(t["new"] + t["old"]) > 0]
        chi = stats.chi2_contingency(t.to_numpy().T)
        p = float(chi.pvalue) * 2  # two label values
        share_new, share_old = t["new"] / t["new"].sum(), t["old"] / t["old"].sum()
        diff = (share_new - share_old).abs()
        if p <= cfg.alpha and float(diff.max()) >= 0.01:
            src = str(diff.idxmax())
            out.append(ScanFinding(
                "label_source_mix", "warning", False, {"label": label, "label_source": src},
                int(t["new"].get(src, 0)),
                f"label {label}: source {src!r} share {share_old[src]:.2%} -> "
                f"{share_new[src]:.2%} (chi-square p = {min(p, 1.0):.2g})",
                details={"pvalue_adjusted": min(p, 1.0),
                         "shares": {str(k): round(float(v), 6) for k, v in share_new.items()},
                         "baseline_shares": {str(k): round(float(v), 6)
                                             for k, v in share_old.items()}}))
    return out


_TOKEN = re.compile(r"^([^-_ ]+[-_ ])")


def new_values(new: pd.DataFrame, old: pd.DataFrame, cfg: CheckConfig) -> list[ScanFinding]:
    """Merchants and leading-token beneficiary prefixes absent from OLD, in bulk in NEW."""
    out: list[ScanFinding] = []
    seen = set(old["merchant_id"].unique().tolist())
    counts = new["merchant_id"].value_counts()
    fresh = counts[~counts.index.isin(seen)]
    bulk = fresh[fresh >= cfg.bulk]
    for value, n in bulk.head(cfg.listed).items():
        out.append(ScanFinding(
            "new_values", "warning", False, {"merchant_id": str(value)}, int(n),
            f"merchant {value} is new and carries {int(n):,} records"))
    if len(fresh):
        out.append(ScanFinding(
            "new_values", "info", False, {}, int(fresh.sum()),
            f"{len(fresh):,} merchants new in this snapshot ({int(fresh.sum()):,} records); "
            f"{len(bulk):,} with >= {cfg.bulk} records"))

    def prefixes(frame: pd.DataFrame) -> pd.Series:
        names = frame["beneficiary_name"].astype(str).value_counts()
        first = pd.Series(names.index, index=names.index).str.extract(_TOKEN, expand=False)
        return names.groupby(first.fillna("").to_numpy()).sum()

    old_p = set(prefixes(old).index.tolist())
    pc = prefixes(new)
    pc = pc[(pc.index != "") & ~pc.index.isin(old_p) & (pc >= cfg.bulk)]
    for value, n in pc.head(cfg.listed).items():
        out.append(ScanFinding(
            "new_values", "warning", False, {"beneficiary_prefix": str(value)}, int(n),
            f"beneficiary prefix {value!r} is new and carries {int(n):,} records"))
    return out


def bad_records(bad: list[Any], total: int, name: str, cfg: CheckConfig) -> list[ScanFinding]:
    """Records that broke the contract (reported, never dropped silently)."""
    if not total:
        return []
    reasons = pd.Series([b.reason for b in bad]).value_counts()
    top = ", ".join(f"{r} ({n})" for r, n in reasons.head(5).items())
    return [ScanFinding(
        "bad_records", "warning", False, {}, total,
        f"{total:,} records of the {name} snapshot break the contract: {top}",
        records=tuple(b.as_dict() for b in bad[: cfg.listed]))]
