"""Delayed ground-truth labels: chargebacks, customer reports, analysts, samples.

>>> from driftwatch.simulate.scenario import LabelSetup
>>> rng = np.random.default_rng(0)
>>> t = np.zeros(6, np.int64)
>>> fraud = np.array([1, 1, 0, 0, 0, 0], bool)
>>> review = np.array([1, 0, 1, 0, 0, 0], bool)
>>> lab = draw_labels(rng, t, fraud, review, LabelSetup(), end_ms=10**12)
>>> sorted(set(lab.source.tolist())) <= ["analyst", "chargeback", "customer_report", "other"]
True
>>> bool(np.all(lab.label == fraud[lab.row]))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from driftwatch.simulate.scenario import LabelSetup, LabelSource

I64 = npt.NDArray[np.int64]
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Labels:
    """Labels as parallel arrays, sorted by ``time`` (then row)."""

    row: I64  # index of the labelled event (in event order)
    label: npt.NDArray[np.int8]
    time: I64  # label_time, ms since the epoch
    source: npt.NDArray[np.str_]

    def __len__(self) -> int:
        return int(self.row.shape[0])


def _delays(rng: np.random.Generator, n: int, src: LabelSource) -> I64:
    lo, hi = src.delay_hours
    hours = np.exp(rng.uniform(np.log(lo), np.log(hi), n)) if hi > lo else np.full(n, lo)
    return (hours * HOUR_MS).astype(np.int64)


def draw_labels(
    rng: np.random.Generator,
    t: I64,
    fraud: npt.NDArray[np.bool_],
    reviewed: npt.NDArray[np.bool_],
    setup: LabelSetup,
    *,
    end_ms: int,
) -> Labels:
    """Labels for events at times ``t`` with ground truth ``fraud``.

    Labels whose time falls at or after ``end_ms`` are dropped unless
    ``setup.keep_after_end`` (what a monitor could know by the end of the run).
    """
    n = len(t)
    u = rng.random((4, n))
    rows: list[I64] = []
    times: list[I64] = []
    sources: list[npt.NDArray[np.str_]] = []

    def add(sel: npt.NDArray[np.bool_], src: LabelSource, name: str) -> None:
        idx = np.flatnonzero(sel).astype(np.int64)
        rows.append(idx)
        times.append(t[idx] + _delays(rng, len(idx), src))
        sources.append(np.full(len(idx), name))

    chargeback = fraud & (u[0] < setup.chargeback.fraction)
    add(chargeback, setup.chargeback, "chargeback")
    add(fraud & ~chargeback & (u[1] < setup.customer_report.fraction),
        setup.customer_report, "customer_report")
    add(reviewed & (u[2] < setup.analyst.fraction), setup.analyst, "analyst")
    add(~fraud & ~reviewed & (u[3] < setup.legit_sample.fraction), setup.legit_sample, "other")
    row = np.concatenate(rows)
    time = np.concatenate(times)
    source = np.concatenate(sources)
    keep = np.ones(len(row), bool) if setup.keep_after_end else time < end_ms
    row, time, source = row[keep], time[keep], source[keep]
    order = np.lexsort((row, time))
    return Labels(
        row=row[order], label=fraud[row[order]].astype(np.int8), time=time[order],
        source=source[order],
    )
