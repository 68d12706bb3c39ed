"""The trigger miner's weak tier: rows with only ``weak_flags`` risk flags are searched
too (in the same Bonferroni family), and a finding of them alerts only when it names a
shared cents value and comes from ``weak_cards`` distinct cards."""

from __future__ import annotations

from typing import Any

import pandas as pd
from scipy import stats

from driftwatch.monitors.segments import SegmentSpec
from driftwatch.monitors.trigger_keys import FIELDS, SEP
from driftwatch.monitors.trigger_mining import TriggerMiningDetector
from driftwatch.settings import Settings
from tests.unit.mining.test_spread_kept import _frame, _row


def _weak(cents: list[int]) -> list[dict[str, Any]]:
    return [_row("5411", c, f"GLX-TRD {j}", 1, 0) | {"risk": "w"} for j, c in enumerate(cents)]


def _search(frame: pd.DataFrame, cards_per_row: int, **options: Any) -> list[dict[str, Any]]:
    options.setdefault("weak_flags", 2)  # the default: the tier on
    s = Settings.load(config_file=None, env={})
    det = TriggerMiningDetector(s, SegmentSpec.parse(s.segment_dimensions), **options)
    keys = [SEP.join(str(r[f]) for f in FIELDS) for r in frame.to_dict("records") if r["k"]]
    cards = {key: [f"card{j}-{i}" for i in range(cards_per_row)] for j, key in enumerate(keys)}
    return det._search(frame, cards, None, None)  # type: ignore[arg-type]


def _found(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if not r.get("filler")]


def test_weak_rows_are_found_from_enough_cards_with_a_cents_value() -> None:
    rows = _search(_frame(_weak([91] * 5)), 1)  # five rows, each its own card
    found = [r for r in _found(rows) if r["conjunction"].get("amount_cents") == "91"]
    assert found and found[0]["k"] == 5 and found[0]["cards"] == 5
    # the exact Poisson tail of its count against its expected count
    assert found[0]["pvalue"] == stats.poisson.sf(4, found[0]["expected"])
    # the family holds both tiers' conjunctions
    strong = _search(_frame(_weak([91] * 5)), 1, weak_flags=3)
    assert len(rows) > len(strong)


def test_weak_rows_alone_need_cards_and_cents() -> None:
    one_group = pd.DataFrame([_row("5411", 91, "GLX-TRD 0", 5, 0) | {"risk": "w"}])
    same_cards = _frame([]).pipe(lambda f: pd.concat([f, one_group], ignore_index=True))
    assert not [r for r in _found(_search(same_cards, 2))
                if r["conjunction"].get("amount_cents") == "91"]  # 2 cards < weak_cards
    assert [r for r in _found(_search(same_cards, 3))  # 3 cards: found
            if r["conjunction"].get("amount_cents") == "91"]
    mixed = _search(_frame(_weak([11, 23, 37, 51, 77])), 1)  # no shared cents value
    assert not [r for r in _found(mixed)
                if str(r["conjunction"].get("beneficiary_prefix", "")).startswith("GLX")]
    off = _search(_frame(_weak([91] * 5)), 1, weak_flags=3)  # the tier switched off
    assert not [r for r in _found(off) if r["conjunction"].get("amount_cents") == "91"]


def test_a_weak_finding_must_pass_its_family_alone() -> None:
    """A weak-tier finding is eligible only when p x conjunctions examined <= alert_q
    (a discovery at fdr_q corroborated by another detector must not make it an alert:
    the development control's 2e-5 over 580 conjunctions); a strong one is not held to
    that."""
    import datetime as dt

    s = Settings.load(config_file=None, env={})
    det = TriggerMiningDetector(s, SegmentSpec.parse(s.segment_dimensions), weak_flags=2)
    base = {"conjunction": {"amount_cents": "89"}, "k": 3, "expected": 0.05, "k_ref": 0,
            "cards": 3, "mccs": 1, "mcc": "7033", "examined": 580}
    rows = [base | {"segment": "mcc=7033", "pvalue": 2e-5, "weak": True},
            base | {"segment": "mcc=7034", "pvalue": 1e-9, "weak": True},
            base | {"segment": "mcc=7035", "pvalue": 2e-5, "weak": False}]
    at = dt.datetime(2026, 3, 18, 12, tzinfo=dt.UTC)
    ev = det._evaluations(rows, at - dt.timedelta(hours=2), at, at - dt.timedelta(days=2),
                          at - dt.timedelta(hours=8))
    assert s.alert_q / 580 < 2e-5 and s.alert_q >= 1e-9 * 580
    assert ev.eligible is not None and ev.eligible.tolist() == [False, True, True]


def test_a_weak_finding_must_not_rest_on_a_common_cents_value() -> None:
    """Two-flag rows sharing an ordinary price ending are no trigger: a cents value whose
    smoothed share of the reference's suspicious rows exceeds ``weak_common`` (read from
    the reference, here .00 at about a fifth) cannot carry a weak finding; a rare one
    still does."""
    frame = _frame(_weak([0] * 5))
    ref = frame[frame["k_ref"] > 0]
    assert (ref["amount_cents"] == "0").mean() > 0.1  # the reference's own share of .00

    def named(rows: list[dict[str, Any]], cents: str) -> list[dict[str, Any]]:
        return [r for r in _found(rows) if r["conjunction"].get("amount_cents") == cents
                and str(r["conjunction"].get("beneficiary_prefix", "")).startswith("GLX")]

    assert named(_search(frame, 1, weak_common=0.9), "0")  # without the guard: found
    assert not named(_search(frame, 1), "0")
    assert named(_search(_frame(_weak([91] * 5)), 1), "91")  # a rare value: found
