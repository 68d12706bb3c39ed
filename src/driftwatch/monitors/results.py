"""The ``drift_results`` rows of a monitor pass, column by column.

:meth:`Monitor._write <driftwatch.monitors.monitor.Monitor>` inserts them after every
pass; in backfill (:mod:`driftwatch.monitors.backfill`) they are collected over a block
of passes and inserted at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from driftwatch.events import EPOCH, UTC
from driftwatch.monitors.base import Evaluations

COLUMNS = (
    "evaluated_at", "detector", "test", "segment", "model_version",
    "window_start", "window_end", "reference", "statistic", "pvalue",
    "pvalue_adj", "effect", "n", "n_ref", "decision", "severity",
    "fingerprint", "details", "written_at",
)  # fmt: skip
"""The ``drift_results`` columns written (every column of the table)."""


def add_rows(cols: dict[str, list[Any]], evs: Sequence[Evaluations], at: dt.datetime) -> None:
    """Append the rows of ``evs`` (decided: their ``_pvalue_adj``, ``_decision``,
    ``_severity`` and ``_fingerprint`` details set) evaluated at ``at`` to ``cols``."""
    now = _ms(dt.datetime.now(UTC))
    at_ms = _ms(at)
    for name in COLUMNS:
        cols.setdefault(name, [])
    for ev in evs:
        size = len(ev)
        internal = {k: np.asarray(v) for k, v in ev.details.items() if k[0] == "_"}
        cols["evaluated_at"].extend([at_ms] * size)
        cols["detector"].extend([ev.detector] * size)
        cols["test"].extend([ev.test] * size)
        cols["segment"].extend(ev.segment)
        cols["model_version"].extend(ev.model_version or [""] * size)
        cols["window_start"].extend([_ms(ev.window_start)] * size)
        cols["window_end"].extend([_ms(ev.window_end)] * size)
        cols["reference"].extend([ev.reference] * size)
        cols["statistic"].extend(_floats(ev.statistic))
        cols["pvalue"].extend(_floats(ev.pvalue))
        cols["pvalue_adj"].extend(_floats(internal["_pvalue_adj"]))
        cols["effect"].extend(_floats(ev.effect))
        cols["n"].extend(np.asarray(ev.n, dtype=np.int64).tolist())
        cols["n_ref"].extend(np.asarray(ev.n_ref, dtype=np.int64).tolist())
        for name in ("decision", "severity", "fingerprint"):  # object arrays of str
            cols[name].extend(internal[f"_{name}"].tolist())
        cols["details"].extend(ev.details_json_all())
        cols["written_at"].extend([now] * size)


def _ms(t: dt.datetime) -> int:
    """``t`` as DateTime64(3) ticks (ms, rounded down as clickhouse-connect does)."""
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


def _floats(values: Any) -> list[float]:
    out: list[float] = np.asarray(values, dtype=np.float64).tolist()
    return out
