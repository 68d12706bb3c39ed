"""Paired scoring on recent traffic: both models on the same events.

Per segment (``mcc``, ``merchant_country``, ``channel``) and per slice
(``mcc`` x ``merchant_country``) with at least ``min_n`` events: the two-sample KS
test of the score distributions (:func:`~driftwatch.stats.ks.ks_2samp`) and the
one-sided two-proportion test that the challenger holds fewer transactions than the
champion (:func:`~driftwatch.stats.recall.two_proportion_test`), with
Benjamini-Hochberg over every test of the run
(:func:`~driftwatch.stats.fdr.benjamini_hochberg`). A segment blocks when its
hold-rate test is a discovery, the challenger holds at least ``min_drop`` (absolute
share) fewer of its transactions, and at least ``min_flips`` of them changed from
held to approved. Both tests treat the two score sets as independent samples; pairing
makes them conservative when the models agree closely.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.gate.findings import Finding
from driftwatch.stats.fdr import benjamini_hochberg
from driftwatch.stats.ks import ks_2samp
from driftwatch.stats.recall import two_proportion_test

F64 = npt.NDArray[np.float64]
DIMENSIONS: tuple[tuple[str, ...], ...] = (
    ("mcc",), ("merchant_country",), ("channel",), ("mcc", "merchant_country"),
)


def _groups(events: Sequence[Mapping[str, Any]]) -> dict[tuple[tuple[str, str], ...],
                                                            list[int]]:
    out: dict[tuple[tuple[str, str], ...], list[int]] = defaultdict(list)
    for i, e in enumerate(events):
        for dims in DIMENSIONS:
            key = tuple((d, str(e.get(d, ""))) for d in dims)
            out[key].append(i)
    return out


def paired(
    events: Sequence[Mapping[str, Any]],
    champion: F64,
    challenger: F64,
    *,
    threshold: float,
    q: float = 0.01,
    min_n: int = 30,
    min_drop: float = 0.2,
    min_flips: int = 5,
) -> tuple[list[Finding], list[dict[str, Any]]]:
    """Findings and per-segment rows of the paired comparison."""
    held_c, held_n = champion >= threshold, challenger >= threshold
    findings = [Finding(
        check="paired_scoring", severity="info", blocking=False, n=len(events),
        champion_mean=float(champion.mean()) if len(events) else float("nan"),
        challenger_mean=float(challenger.mean()) if len(events) else float("nan"),
        summary=(f"{len(events)} traffic events: {int((held_c & ~held_n).sum())} held by the "
                 f"champion are approved by the challenger, {int((~held_c & held_n).sum())} "
                 "the other way"),
    )]
    rows: list[dict[str, Any]] = []
    for key, idx in _groups(events).items():
        if len(idx) < min_n:
            continue
        ix = np.asarray(idx)
        c, h = champion[ix], challenger[ix]
        kc, kh = int((c >= threshold).sum()), int((h >= threshold).sum())
        rows.append({
            "segment": ",".join(f"{d}={v}" for d, v in key), "key": key, "n": len(idx),
            "champion_mean": float(c.mean()), "challenger_mean": float(h.mean()),
            "champion_held": kc, "challenger_held": kh,
            "flips": int(((c >= threshold) & (h < threshold)).sum()),
            "ks_p": float(ks_2samp(c, h).pvalue),
            "hold_p": float(two_proportion_test(kh, len(idx), kc, len(idx), "less").pvalue),
        })
    if not rows:
        return findings, rows
    pvals = np.array([[r["ks_p"], r["hold_p"]] for r in rows])
    bh = benjamini_hochberg(pvals, q=q)
    for r, rej in zip(rows, bh.rejected, strict=True):
        r["ks_discovery"], r["hold_discovery"] = bool(rej[0]), bool(rej[1])
        drop = (r["champion_held"] - r["challenger_held"]) / r["n"]
        conj = {d: v for d, v in r["key"]}
        if r["hold_discovery"] and drop >= min_drop and r["flips"] >= min_flips:
            findings.append(Finding(
                check="paired_segment", severity="critical", blocking=True, n=r["n"],
                conjunction=conj, champion_mean=r["champion_mean"],
                challenger_mean=r["challenger_mean"],
                summary=(f"{r['segment']}: challenger holds {r['challenger_held']}/{r['n']} vs "
                         f"champion {r['champion_held']} ({r['flips']} held -> approved)"),
            ))
        elif r["ks_discovery"] and r["champion_mean"] - r["challenger_mean"] >= min_drop / 2:
            findings.append(Finding(
                check="paired_segment", severity="warning", blocking=False, n=r["n"],
                conjunction=conj, champion_mean=r["champion_mean"],
                challenger_mean=r["challenger_mean"],
                summary=(f"{r['segment']}: score distribution lower under the challenger "
                         f"({r['challenger_mean']:.2f} vs {r['champion_mean']:.2f}, KS)"),
            ))
    for r in rows:
        del r["key"]
    return findings, rows
