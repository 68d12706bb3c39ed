"""The trigger miner can count distinct payees, not rows (issue 22): three suspicious rows
of three cards at one shop (clean traffic clusters on payees) are one unit of evidence;
three rows to three merchants sharing a prefix (a trigger) keep the rows' p-value. Both
checked against scipy's Poisson tail. Default (``unit="spread"``): payees for spread
conjunctions only."""

from __future__ import annotations

from typing import Any

import pytest
from scipy import stats as sps

from driftwatch.monitors.segments import SegmentSpec
from driftwatch.monitors.trigger_mining import TriggerMiningDetector
from driftwatch.settings import Settings
from tests.unit.mining.test_spread_kept import _frame, _row


def _search(extra: list[dict[str, Any]], unit: str) -> list[dict[str, Any]]:
    s = Settings.load(config_file=None, env={})
    det = TriggerMiningDetector(s, SegmentSpec.parse(s.segment_dimensions), unit=unit)
    return [r for r in det._search(_frame(extra), {}, None, None)  # type: ignore[arg-type]
            if not r.get("filler")]


ONE_SHOP = [_row("7011", 13, "LIBERTY GRILL 12", 3, 0, country="LT", channel="pos",
                 band="10..99", age="90..179")]
THREE_SHOPS = [_row("7011", 13, f"LIBERTY GRILL {j}", 1, 0, country="LT", channel="pos",
                    band="10..99", age="90..179") for j in (12, 13, 14)]


def test_rows_of_one_payee_are_one_unit() -> None:
    (by_rows,) = _search(ONE_SHOP, "row")
    assert by_rows["k"] == 3 and by_rows["payees"] == 1
    e = by_rows["expected"]
    assert by_rows["pvalue"] == pytest.approx(sps.poisson.sf(2, e))
    assert by_rows["pvalue"] < 1e-6
    found = _search(ONE_SHOP, "payee")
    # one payee: P(Poisson(e) >= 1); over the family not even a discovery at fdr_q
    assert all(r["pvalue"] == pytest.approx(sps.poisson.sf(0, r["expected"]))
               for r in found)
    assert found and all(r["pvalue"] * r["examined"] > 0.01 for r in found)  # > fdr_q


def test_rows_of_distinct_payees_keep_their_pvalue() -> None:
    (by_rows,) = _search(THREE_SHOPS, "row")
    (by_payees,) = _search(THREE_SHOPS, "payee")
    assert by_payees["payees"] == 3 and by_payees["k"] == 3
    assert by_payees["pvalue"] == by_rows["pvalue"]
    assert by_payees["pvalue"] == pytest.approx(sps.poisson.sf(2, by_payees["expected"]))


def test_unknown_unit_is_refused() -> None:
    s = Settings.load(config_file=None, env={})
    with pytest.raises(ValueError, match="unit"):
        TriggerMiningDetector(s, SegmentSpec.parse(s.segment_dimensions), unit="card")


def test_default_counts_payees_of_spread_conjunctions_only() -> None:
    assert _search(ONE_SHOP, "spread") == _search(ONE_SHOP, "row")  # one MCC: rows
    spread = [_row(m, 13, "LIBERTY GRILL 12", 1, 0, country="LT", channel="pos",
                   band="10..99", age="90..179") for m in ("7011", "5812", "5411")]
    by_rows = [r for r in _search(spread, "row") if r["mccs"] == 3]
    assert by_rows and by_rows[0]["pvalue"] < 1e-6
    found = [r for r in _search(spread, "spread") if r["mccs"] == 3]
    assert found and all(r["payees"] == 1 and r["pvalue"] * r["examined"] > 0.01 for r in found)
