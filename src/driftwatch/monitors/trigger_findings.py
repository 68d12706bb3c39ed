"""The trigger miner's findings as evaluation rows: the weak tier's guards and the
columnar :class:`~driftwatch.monitors.base.Evaluations` of a pass
(:mod:`driftwatch.monitors.trigger_mining`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from driftwatch.monitors.base import Evaluations
from driftwatch.monitors.trigger_keys import conjunction_text

CENTS_VALUES = 100
"""Cents endings ``.00`` to ``.99``: the smoothing of :func:`common_cents`."""


def common_cents(frame: pd.DataFrame, share: float) -> frozenset[str]:
    """The cents values common among the reference's suspicious rows: their smoothed
    share ``(k_ref + 0.5) / (K_ref + 50)`` of the ``k_ref`` column exceeds ``share``.

    Ordinary prices end in a few values (``.00``, ``.99``, ``.50``, ``.95``; on clean
    simulator traffic ``.00`` holds a quarter of the rows with two risk flags, and a
    transfer channel is mostly round amounts), so a handful of two-flag rows of a young
    merchant in one country sharing ``.00`` is no trigger. Which values are common is
    read from the reference itself, never from a list: a trigger's value (a rare ending)
    holds about 1/100 of them at most, and none before the attack.

    >>> ref = pd.DataFrame({"amount_cents": ["0", "99", "37", "13"],
    ...                     "k_ref": [300, 60, 2, 0]})
    >>> sorted(common_cents(ref, 0.03))
    ['0', '99']
    >>> sorted(common_cents(ref.iloc[:0], 0.03))
    []
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"share={share!r}; allowed: 0 < share < 1")
    if not len(frame):
        return frozenset()
    per = frame.groupby(frame["amount_cents"].astype(str))["k_ref"].sum()
    smoothed = (per.to_numpy(dtype=np.float64) + 0.5) / (float(per.sum()) + 0.5 * CENTS_VALUES)
    return frozenset(str(c) for c in per.index[smoothed > share])


def weak_kept(conj: Mapping[str, Any], cards: int, weak_cards: int,
              common: frozenset[str]) -> bool:
    """Whether a weak-tier finding may become a row: it names a shared cents value that
    is not :func:`common_cents` and comes from at least ``weak_cards`` cards.

    >>> weak_kept({"amount_cents": "91"}, 3, 3, frozenset({"0"}))
    True
    >>> weak_kept({"amount_cents": "0"}, 5, 3, frozenset({"0"})), weak_kept({}, 5, 3, frozenset())
    (False, False)
    """
    cents = conj.get("amount_cents")
    return cents is not None and str(cents) not in common and cards >= weak_cards


def evaluations(rows: Sequence[Mapping[str, Any]], *, detector: str, alertname: str,
                reference: str, lo: dt.datetime, hi: dt.datetime, alert_q: float,
                min_count: int, min_cards: int, effect_floor: float,
                critical_effect: float) -> Evaluations:
    """One pass's rows (findings, held conjunctions, fillers) as evaluations: a filler
    never alerts, and a weak-tier finding alerts only on its own family-wise evidence
    (p-value x conjunctions examined <= ``alert_q``), never corroborated."""
    k = np.array([r["k"] for r in rows], dtype=np.float64)
    expected = np.array([r["expected"] for r in rows], dtype=np.float64)
    cards = np.array([r["cards"] for r in rows], dtype=np.int64)
    filler = np.array([bool(r.get("filler")) for r in rows], dtype=bool)
    pvalue = np.array([r["pvalue"] for r in rows], dtype=np.float64)
    alone = pvalue * np.array([max(r["examined"], 1) for r in rows]) <= alert_q
    weak = np.array([bool(r.get("weak")) for r in rows], dtype=bool) & ~alone
    labels = []
    for r in rows:
        lab = {"conjunction": conjunction_text(r["conjunction"])}
        if r["mcc"]:
            lab["mcc"] = r["mcc"]
        labels.append(lab)
    with np.errstate(invalid="ignore", divide="ignore"):
        effect = np.where(k > 0, (k - expected) / np.maximum(k, 1), 0.0)
    effect[filler] = 0.0
    return Evaluations(
        detector=detector, test="conjunction", alertname=alertname,
        window_start=lo, window_end=hi, reference=reference,
        segment=[r["segment"] for r in rows], statistic=k,
        pvalue=pvalue, effect=effect, n=k.astype(np.int64),
        n_ref=np.array([r["k_ref"] for r in rows], dtype=np.int64),
        effect_floor=effect_floor, critical_effect=critical_effect,
        eligible=(k >= min_count) & (cards >= min_cards) & ~filler & ~weak,
        labels=labels,
        details={
            "conjunction": np.array([lab["conjunction"] for lab in labels], dtype=object),
            "_items": np.array([r["conjunction"] for r in rows] or [], dtype=object),
            "count": k.astype(np.int64), "expected": np.round(expected, 4),
            "cards": cards, "mccs": np.array([r["mccs"] for r in rows], dtype=np.int64),
            "payees": np.array([r.get("payees", 0) for r in rows], dtype=np.int64),
            "examined": np.array([r["examined"] for r in rows], dtype=np.int64),
        },
    )
