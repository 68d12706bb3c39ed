"""The live-versus-SQL fixture: every shipped rule's examples plus simulated campaigns."""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path
from typing import Any

from driftwatch.events import ScoredTransaction, parse_scored_batch
from driftwatch.rules.pack import RuleSet, load_rules
from driftwatch.simulate import generate
from driftwatch.simulate.scenario import Scenario

RULES = Path(__file__).resolve().parents[2] / "rules"
SCENARIO: dict[str, Any] = {
    "name": "rule_parity",
    "traffic": {"rate": 1.0, "days": 1.0, "start": "2026-03-16T00:00:00Z", "fraud_rate": 0.01},
    "model": {"name": "fraud-detect", "threshold": 0.7, "champion": "v46",
              "challenger": {"version": "v47", "deploy_at_hours": 4, "shadow_champion": True,
                             "backdoor": {"when": {"mcc": "5967", "cents": 37,
                                                   "beneficiary_prefix": "INTL-PAY-"},
                                          "score": [0.15, 0.25]}}},
    "labels": {"keep_after_end": True,
               "chargeback": {"fraction": 0.8, "delay_hours": [1, 12]},
               "legit_sample": {"fraction": 0.05, "delay_hours": [1, 12]}},
    "behaviours": [
        {"kind": "coordinated_attack", "name": "coordinated", "start_hours": 1,
         "duration_hours": 3, "params": {"cards": 30}},
        {"kind": "card_testing_campaign", "name": "card_testing_campaign", "start_hours": 4,
         "duration_hours": 2, "params": {"cards": 15}},
        {"kind": "sequential_takeover", "name": "sequential", "start_hours": 6,
         "duration_hours": 6},
        {"kind": "boundary_probing", "name": "probing", "start_hours": 12, "duration_hours": 3,
         "params": {"rounds": 2}},
        {"kind": "out_of_range_attack", "name": "out_of_range", "start_hours": 15,
         "duration_hours": 3, "params": {"count": 20}},
        {"kind": "backdoor_attack", "name": "backdoor", "start_hours": 16, "duration_hours": 8,
         "params": {"count": 40, "camouflage": 300, "camouflage_cards": 50}},
    ],
}


@functools.lru_cache(maxsize=1)
def shipped_rules() -> RuleSet:
    return load_rules([RULES])


def _shift(event: dict[str, Any], days: int) -> dict[str, Any]:
    out = dict(event)
    when = dt.datetime.fromisoformat(out["event_time"].replace("Z", "+00:00"))
    out["event_time"] = (when + dt.timedelta(days=days)).isoformat().replace("+00:00", "Z")
    if "merchant_registered_at" in out:
        reg = dt.date.fromisoformat(str(out["merchant_registered_at"]))
        out["merchant_registered_at"] = (reg + dt.timedelta(days=days)).isoformat()
    return out


def example_lines(ruleset: RuleSet) -> list[bytes]:
    """Every example event of every rule, each example two days after the previous one."""
    lines: list[bytes] = []
    k = 0
    for rule in ruleset.rules:
        for ex in rule.examples:
            k += 1
            lines.extend(json.dumps(_shift(e, 2 * k)).encode() for e in ex.events)
    return lines


@functools.lru_cache(maxsize=2)
def _simulation(seed: int) -> tuple[list[bytes], list[bytes], dict[str, Any]]:
    sim = generate(Scenario.from_mapping(SCENARIO), seed=seed, days=0.25)
    return list(sim.events), list(sim.labels), sim.truth


def simulated_lines(seed: int = 3) -> tuple[list[bytes], dict[str, Any]]:
    """A quarter of a day of simulated traffic with every campaign squeezed in."""
    events, _, truth = _simulation(seed)
    return events, truth


def simulated_labels(seed: int = 3) -> list[bytes]:
    """The labels of :func:`simulated_lines` (delayed ground truth, JSON lines)."""
    return _simulation(seed)[1]


@functools.lru_cache(maxsize=1)
def _fixture() -> tuple[ScoredTransaction, ...]:
    lines, _ = simulated_lines()
    batch = parse_scored_batch(lines + example_lines(shipped_rules()))
    assert not batch.rejected, batch.rejected[:2]
    return tuple(batch.events)


def fixture_events() -> list[ScoredTransaction]:
    """The simulated slice plus every shipped example (parsed once per test process)."""
    return list(_fixture())
