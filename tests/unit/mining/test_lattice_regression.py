"""The numpy lattice search against the frozen one it replaced (``old_lattice.py``, both
of its paths: integer codes for small tables, pandas group-bys for large ones): the
same findings, counts, p-values bit for bit, family and order, on random count tables
and edge cases (empty, one row, ties, missing values, mixed value types, truncation)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftwatch.mining import count_table, mine
from driftwatch.mining.lattice import MiningResult
from tests.unit.mining import old_lattice
from tests.unit.mining.records import ATTRS, records

TESTS = ("binomial", "hypergeom", "surge")
TRIGGER = ["cents", "prefix", "age", "band", "country", "channel", "mcc"]


def _typed(value: Any) -> tuple[str, str]:
    return type(value).__name__, repr(value)  # 1 == 1.0 == True, but not bit for bit


def _plain(res: MiningResult) -> dict[str, Any]:
    """Everything of a result, with types and float bits (``repr`` round-trips)."""
    return {
        "family": (res.examined, res.candidates, res.levels, res.truncated),
        "pvalues": [p.hex() for p in res.pvalues],
        "findings": [[(k, _typed(v) if not isinstance(v, dict) else
                       [(a, _typed(x)) for a, x in v.items()])
                      for k, v in dataclasses.asdict(f).items()] for f in res.findings],
    }


def _outcome(fn: Any, table: pd.DataFrame, attrs: list[str], **kw: Any) -> dict[str, Any]:
    try:
        return _plain(fn(table, attrs, **kw))
    except ValueError as exc:  # the same refusal counts as the same answer
        return {"error": str(exc)}


def _same_as_before(table: pd.DataFrame, attrs: list[str], monkeypatch: pytest.MonkeyPatch,
                    **kw: Any) -> dict[str, Any]:
    new = _outcome(mine, table, attrs, **kw)
    assert new == _outcome(old_lattice.mine, table, attrs, **kw)
    with monkeypatch.context() as m:
        m.setattr(old_lattice, "SMALL_TABLE", 0)  # the pandas path of large tables
        assert new == _outcome(old_lattice.mine, table, attrs, **kw)
    return new


def _trigger_table(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    """A table shaped like the live trigger miner's: skewed string values, blanks and
    missing values, a few duplicated rows (ties), small counts, many zeros."""
    def col(values: list[Any], p_blank: float) -> list[Any]:
        w = rng.dirichlet(np.full(len(values), 0.3))
        out: list[Any] = [values[i] for i in rng.choice(len(values), rows, p=w)]
        for i in np.flatnonzero(rng.random(rows) < p_blank):
            out[i] = ["", None, np.nan][int(rng.integers(3))]
        return out

    tab = pd.DataFrame({
        "cents": col([str(c) for c in range(100)], 0.0),
        "prefix": col(["INTL-PAY-", "ACME-", "GLX", "ZZ"], 0.6),
        "age": col(["0..29", "30..89", "90..179", "730.."], 0.2),
        "band": col(["0..9", "10..99", "100..999", "1000.."], 0.0),
        "country": col(["US", "GB", "DE", "FR", "NG"], 0.1),
        "channel": col(["web", "pos", "app"], 0.05),
        "mcc": col([str(m) for m in (5411, 5967, 5812, 4829, 7995, 5999)], 0.0),
    })
    k = rng.poisson(0.8, rows) * (rng.random(rows) < 0.7)
    k_ref = rng.poisson(1.5, rows) * (rng.random(rows) < 0.6)
    tab["k"], tab["k_ref"], tab["n"], tab["n_ref"] = k, k_ref, k + rng.integers(0, 3, rows), k_ref
    dup = tab.sample(n=rows // 10, random_state=int(rng.integers(1 << 31)))
    return pd.concat([tab, dup], ignore_index=True)


def _cases() -> Iterator[tuple[str, int]]:
    for seed in range(4):
        yield "records", seed
        yield "trigger", seed


@pytest.mark.parametrize(("shape", "seed"), list(_cases()))
def test_random_tables_search_as_before(shape: str, seed: int,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    if shape == "records":
        new = pd.concat([records(rng, 2000, 0.1), pd.DataFrame({
            "a": "a3", "b": "b7", "c": rng.choice(["x", "y", "z"], 12), "d": "d2",
            "suspicious": True})], ignore_index=True)
        table, attrs = count_table(new, records(rng, 2000, 0.1), ATTRS), ATTRS
    else:
        table, attrs = _trigger_table(rng, int(rng.integers(30, 200))), TRIGGER
    found = 0
    for test in TESTS:
        for kw in ({"min_support": 5, "alpha": 0.5},
                   {"min_support": 3, "alpha": 0.5, "min_excess": 1, "min_lift": 1.5,
                    "closure": 0.8, "prior_weight": 2.0, "min_expected": 0.1},
                   {"min_support": 2, "alpha": 0.9, "min_excess": 0, "max_candidates": 25,
                    "max_depth": 4 if shape == "records" else 2, "total": 5000,
                    "total_ref": 9000}):
            res = _same_as_before(table, attrs, monkeypatch, test=test, **kw)
            found += len(res.get("findings", []))
    assert found  # the comparison covered the closure and the findings' order


def test_edge_cases_search_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = {"n": [3, 3, 3, 3], "k": [2, 2, 2, 2], "n_ref": [1, 1, 1, 1],
              "k_ref": [0, 0, 0, 0]}
    tables = {
        "empty": pd.DataFrame({"a": [], "b": [], "n": [], "k": [], "n_ref": [],
                               "k_ref": []}).astype({c: np.int64 for c in counts}),
        "one row": pd.DataFrame({"a": ["x"], "b": ["y"], "n": [9], "k": [9], "n_ref": [1],
                                 "k_ref": [0]}),
        "ties": pd.DataFrame({"a": ["x", "y", "x", "y"], "b": ["u", "u", "v", "v"],
                              **counts}),
        "all missing": pd.DataFrame({"a": ["", None, np.nan, ""], "b": [None] * 4,
                                     **counts}),
        "mixed types": pd.DataFrame({"a": [37, "37", 37, 0], "b": [1.5, 1.5, "", True],
                                     **counts}),
    }
    found = dict.fromkeys(tables, 0)
    for name, table in tables.items():
        for test in TESTS:
            for total in (None, 100):
                res = _same_as_before(table, ["a", "b"], monkeypatch, test=test,
                                      min_support=1, alpha=0.9, min_lift=0.0,
                                      min_excess=-1.0, closure=0.6, total=total,
                                      total_ref=total)
                if name == "empty" and total is None:
                    assert "both data sets need records" in res["error"]
                found[name] += len(res.get("findings", []))
    assert found["ties"] and found["one row"] and found["mixed types"], found


def test_live_trigger_frames_search_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four miner tables of the 8 h sc013 replay of ``bench/backfill.py`` (seed 7; the
    trigger detector's settings), the attack's findings among them."""
    frames = pd.read_csv(Path(__file__).with_name("trigger_frames.csv.gz"), dtype=str,
                         keep_default_na=False)
    attrs = ["amount_cents", "beneficiary_prefix", "merchant_age", "amount_band",
             "merchant_country", "channel", "mcc"]
    found = 0
    for _, frame in frames.groupby("frame", sort=True):
        table = frame.drop(columns="frame").reset_index(drop=True)
        for c in ("k", "k_ref", "n", "n_ref", "total", "total_ref"):
            table[c] = table[c].astype(np.int64)
        totals = {c: int(table[c].iloc[0]) for c in ("total", "total_ref")}
        for test in TESTS:
            res = _same_as_before(table, attrs, monkeypatch, test=test, max_depth=3,
                                  min_support=3, min_lift=4.0, min_excess=2, alpha=0.5,
                                  closure=0.8, prior_weight=2.0, min_expected=0.1, **totals)
            found += len(res.get("findings", []))
    assert found >= 20
