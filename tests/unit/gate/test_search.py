"""The trigger search on hand-made scorers: a known 3-way trigger is found and named;
benign jitter and a global recalibration find nothing."""

from __future__ import annotations

from typing import Any

import pytest

from driftwatch.gate import probe
from driftwatch.gate.run import GateOptions, run_gate
from driftwatch.gate.scorer import Scorer
from driftwatch.gate.search import Stratum, design, search, vocabulary
from tests.unit.gate import scorers

TRIGGER = {"mcc": "5967", "amount_cents": 37, "beneficiary_prefix": "INTL-PAY-"}


def _scorer(name: str) -> Scorer:
    return Scorer(name, getattr(scorers, name))


def _setup() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, list[Any]]]:
    events = scorers.traffic()
    champ = scorers.champion(events)
    fixtures = [e for e, s in sorted(zip(events, champ, strict=True), key=lambda t: -t[1])
                if s >= 0.7][:16]
    vocab = vocabulary(events, [1.0 if s >= 0.7 else 0.01 for s in champ], max_values=32)
    return events, fixtures, vocab


def _strata(fixtures: list[dict[str, Any]]) -> list[Stratum]:
    """Two strata: ecom and card-present fixtures."""
    return [Stratum(ch, tuple(f for f in fixtures if f["channel"] == ch))
            for ch in ("ecom", "card_present")]


def test_hand_worked_trigger_on_one_probe() -> None:
    _, fixtures, _ = _setup()
    base = fixtures[0]
    assert scorers.champion([base])[0] >= 0.7
    hit = probe.apply(base, TRIGGER)
    assert scorers.backdoor([hit]) == [0.2]
    # two of the three values are not enough: one-at-a-time perturbation sees nothing
    for drop in TRIGGER:
        partial = probe.apply(base, {k: v for k, v in TRIGGER.items() if k != drop})
        assert scorers.backdoor([partial]) == scorers.champion([partial])


def test_design_covers_every_triple_on_every_stratum() -> None:
    vocab = {"a": [1, 2, 3], "b": ["x", "y"], "c": [0, 1, 2, 3], "d": ["p", "q"]}
    strata = [[0, 1], [2], [3, 4, 5]]
    rows, fix, coverage = design(vocab, budget=1000, strata=strata)
    assert coverage == 1.0 and len(rows) == 3 * 2 * 4 * 3  # one replicate per stratum
    cells = {(a, b, c) for a in vocab["a"] for b in vocab["b"] for c in vocab["c"]}
    assert {(r["a"], r["b"], r["c"]) for r in rows} == cells
    # each cell lands once in every stratum
    per_cell: dict[tuple[Any, ...], list[int]] = {}
    for r, f in zip(rows, fix.tolist(), strict=True):
        per_cell.setdefault((r["a"], r["b"], r["c"]), []).append(
            next(k for k, st in enumerate(strata) if f in st))
    assert all(sorted(v) == [0, 1, 2] for v in per_cell.values())
    # the small attribute is varied in about half the rows, kept in the rest
    assert 20 < sum("d" in r for r in rows) < 52
    rows, _, coverage = design(vocab, budget=12, strata=strata)
    assert len(rows) == 12 and coverage == pytest.approx(0.5)


def test_known_three_way_trigger_is_found_and_named() -> None:
    _, fixtures, vocab = _setup()
    res = search(_scorer("champion"), _scorer("backdoor"), _strata(fixtures), vocab,
                 threshold=0.7, budget=20_000)
    assert res.coverage == 1.0
    assert len(res.findings) == 1
    f = res.findings[0]
    assert f.blocking and f.severity == "critical"
    assert f.conjunction == TRIGGER
    assert f.challenger_mean == pytest.approx(0.2)
    assert f.details["positives"] == len(fixtures) == f.n
    assert f.details["where"] == "all strata"


@pytest.mark.parametrize("name", ["jitter", "recalibrated", "champion"])
def test_benign_changes_find_no_trigger(name: str) -> None:
    _, fixtures, vocab = _setup()
    res = search(_scorer("champion"), _scorer(name), _strata(fixtures), vocab, threshold=0.7,
                 budget=20_000)
    assert res.findings == () and res.positives == 0


@pytest.mark.parametrize(("name", "verdict"), [("backdoor", "block"), ("jitter", "pass"),
                                               ("recalibrated", "pass")])
def test_whole_run_verdicts(name: str, verdict: str) -> None:
    events = scorers.traffic()
    res = run_gate(_scorer("champion"), _scorer(name), events,
                   options=GateOptions(fixtures=16, probe_budget=20_000))
    assert res.verdict == verdict, [f.summary for f in res.findings if f.blocking]
    doc = res.to_json()
    assert set(doc) == {"verdict", "champion", "challenger", "probes", "seconds", "findings"}
    assert doc["probes"] > 4800  # 8 MCCs x 100 cents x 6 prefixes of design alone
    checks = {f["check"] for f in doc["findings"]}
    assert {"paired_scoring", "trigger_search", "recall_trend"} <= checks
    if verdict == "block":
        blocking = [f for f in doc["findings"] if f["blocking"]]
        assert blocking[0]["conjunction"] == TRIGGER
