"""``drift_results.details``: the column-wise JSON is the row-wise ``json.dumps`` text."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np

from driftwatch.monitors.base import Evaluations

T = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _evaluations(details: dict[str, np.typing.ArrayLike], size: int) -> Evaluations:
    zeros = np.zeros(size)
    return Evaluations(
        detector="d", test="t", alertname="A", window_start=T, window_end=T, reference="",
        segment=["mcc=1"] * size, statistic=zeros, pvalue=zeros, effect=zeros,
        n=np.zeros(size, dtype=np.int64), n_ref=np.zeros(size, dtype=np.int64),
        effect_floor=0.0, critical_effect=1.0, details=details,
    )


def test_details_json_all_is_json_dumps_of_every_row() -> None:
    size = 10
    rng = np.random.default_rng(2)
    details: dict[str, np.typing.ArrayLike] = {
        "float": np.array([np.nan, np.inf, -np.inf, 1e300, 5e-324, -0.0, 0.1, 2.5, 3.0, 1e-7]),
        "float32": rng.random(size).astype(np.float32),
        "int": rng.integers(-(10**15), 10**15, size),
        "uint16": rng.integers(0, 100, size).astype(np.uint16),
        "bool": rng.random(size) < 0.5,
        "text": np.array(['a"b', "ü", "x\x1fy", "", "plain"] * 2, dtype=object),
        "_internal": np.arange(size),
    }
    ev = _evaluations(details, size)
    want = []
    for i in range(size):
        row = {k: np.asarray(v)[i] for k, v in details.items() if k[0] != "_"}
        row = {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
        row = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
               for k, v in row.items()}
        want.append(json.dumps(row, separators=(",", ":"), sort_keys=True))
    assert ev.details_json_all() == want == [ev.details_json(i) for i in range(size)]
    assert want[0].startswith('{"bool":') and '"float":null' in want[0]
