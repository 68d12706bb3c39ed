"""Recall across model versions from matured labels in the store.

Per model version (ordered by first event): labelled fraud and how much of it the
version held (``score >= threshold``), counting only transactions older than the
label-maturity cut-off. Reported always; *blocking* when the last ``k`` versions each
declined (:func:`~driftwatch.stats.trend.consecutive_declines`) and the drop from the
first to the last of them is significant (one-sided two-proportion test at ``p``) —
the incident's 94.5 % -> 94.2 % -> 93.8 %, each step inside tolerance.
"""

from __future__ import annotations

from typing import Any

from driftwatch.gate.findings import Finding
from driftwatch.stats.recall import two_proportion_test
from driftwatch.stats.trend import consecutive_declines

SQL = """
SELECT model_version, min(event_time) AS first_seen,
       countIf(l.label = 1) AS pos, countIf(l.label = 1 AND score >= threshold) AS tp
FROM {db}.scored_transactions AS t FINAL
INNER JOIN (SELECT txn_id, label FROM {db}.labels FINAL) AS l USING (txn_id)
WHERE event_time < (SELECT max(event_time) FROM {db}.scored_transactions)
                   - toIntervalSecond({maturity:Int64})
GROUP BY model_version ORDER BY first_seen
"""


def recall_by_version(store: Any, maturity_s: int) -> list[dict[str, Any]]:
    """Rows (version, first_seen, pos, tp, recall) from the store, oldest first."""
    rows = store.query(store.sql(SQL), {"maturity": int(maturity_s)})
    return [{"version": str(v), "first_seen": str(t), "pos": int(p), "tp": int(k),
             "recall": k / p if p else float("nan")} for v, t, p, k in rows]


def trend_findings(rows: list[dict[str, Any]], *, k: int, p: float,
                   min_pos: int = 30) -> list[Finding]:
    """Findings of the recall trend over versions (see the module docstring).

    >>> rows = [{"version": v, "pos": 1000, "tp": t} for v, t in
    ...         [("v45", 945), ("v46", 942), ("v47", 938)]]
    >>> [(f.severity, f.blocking) for f in trend_findings(rows, k=3, p=0.01)]
    [('warning', False)]
    >>> rows[-1]["tp"] = 900
    >>> [(f.severity, f.blocking) for f in trend_findings(rows, k=3, p=0.01)]
    [('critical', True)]
    """
    usable = [r for r in rows if r["pos"] >= min_pos]
    text = ", ".join(f"{r['version']} {r['tp'] / r['pos']:.1%} (n={r['pos']})" for r in usable)
    if len(usable) < 2:
        return [Finding(check="recall_trend", severity="info", blocking=False,
                        summary=f"fewer than 2 versions with {min_pos}+ matured fraud labels"
                        + (f": {text}" if text else ""))]
    last = usable[-k:]
    declining = len(last) >= k and consecutive_declines(
        [r["tp"] / r["pos"] for r in last], n=k)
    test = two_proportion_test(last[-1]["tp"], last[-1]["pos"], last[0]["tp"], last[0]["pos"],
                               alternative="less")
    pval = float(test.pvalue)
    if declining and pval < p:
        sev, block = "critical", True
    elif declining:
        sev, block = "warning", False
    else:
        sev, block = "info", False
    return [Finding(
        check="recall_trend", severity=sev, blocking=block, n=sum(r["pos"] for r in last),
        summary=(f"recall by version: {text}"
                 + (f"; {k} declines in a row, first->last p={pval:.1e}" if declining else "")),
        details={"versions": usable, "pvalue": pval},
    )]
