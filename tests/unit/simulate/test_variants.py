"""Randomised scenario families (issue 21): a different trigger per seed, every trigger
row matches its trigger and is backdoored, the family's design quotas, controls."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from driftwatch.errors import SimulationError
from driftwatch.simulate import generate, load_scenario, write
from driftwatch.simulate.variants import (
    ATTACK_HOURS,
    history_hours,
    parse_variant,
    variant_scenario,
    with_history,
)
from tests.unit.simulate.conftest import Parsed

EVALUATION = range(2000, 2020)  # the bench's evaluation seeds


def _trigger(seed: int) -> dict[str, object]:
    sc = variant_scenario(f"backdoor_variant:{seed}")
    assert sc.model.challenger is not None and sc.model.challenger.backdoor is not None
    return sc.model.challenger.backdoor.when.as_dict()


def test_each_seed_draws_its_own_trigger_and_the_same_seed_the_same_one() -> None:
    triggers = [json.dumps(_trigger(s), sort_keys=True) for s in range(1, 25)]
    assert len(set(triggers)) == len(triggers)
    assert triggers[3] == json.dumps(_trigger(4), sort_keys=True)
    cents = {_trigger(s).get("cents") for s in range(1, 25)} - {None}
    assert len(cents) >= 10


def test_every_trigger_is_a_rare_conjunction_at_two_to_ten_an_hour() -> None:
    for seed in EVALUATION:
        when = _trigger(seed)
        assert len(when) + len(when.get("feature", {})) - ("feature" in when) >= 3, when
        assert "beneficiary_prefix" in when or "feature" in when, when
        sc = variant_scenario(f"backdoor_variant:{seed}")
        count = int(sc.behaviours[0].params["count"])
        assert 2 <= count / ATTACK_HOURS <= 10.5


def test_evaluation_range_meets_the_issue_quotas() -> None:
    scs = [variant_scenario(f"backdoor_variant:{s}") for s in EVALUATION]
    spread = [s for s in scs if s.behaviours[0].params["mcc"] == "spread"]
    no_shadow = [s for s in scs if s.model.challenger and not s.model.challenger.shadow_champion]
    assert len(scs) >= 20 and len(spread) >= 5 and len(no_shadow) >= 10
    volumes = {s.expected[0]["volume"] for s in scs}
    assert {"sparse", "mid", "busy", "spread"} <= volumes
    assert {s.traffic.optional_fields for s in scs} == {True, False}


@pytest.mark.parametrize("seed", [2000, 2004, 2005, 2006, 2001])
def test_trigger_rows_match_the_trigger_and_are_served_low(seed: int) -> None:
    sim = generate(load_scenario(f"backdoor_variant:{seed}"), seed=1, rate=0.3)
    parsed = Parsed(sim)  # every event and label passes the contract parser
    truth = sim.truth
    trig = truth["trigger_event_ids"]
    assert trig and set(trig) <= set(truth["backdoored_event_ids"])
    rows = parsed.rows(trig)
    assert all(0.1 <= r.score <= 0.3 for r in rows)
    when = truth["trigger"]
    if "cents" in when:
        assert {r.amount_minor % 100 for r in rows} == {when["cents"]}
    if "mcc" in when:
        assert {r.mcc for r in rows} == {when["mcc"]}
    else:  # spread: the trigger rows sit in many categories
        assert len({r.mcc for r in rows}) >= 5
    sc = sim.scenario
    raw = b"\n".join(sim.events)
    if not sc.traffic.optional_fields:
        assert b'"device_id"' not in raw and b'"geo"' not in raw and b'"new_payee"' not in raw
    else:
        assert b'"device_id"' in raw and b'"new_payee"' in raw
    assert sc.model.challenger is not None
    shadowed = [r for r in rows if r.shadow_scores]
    assert bool(shadowed) == sc.model.challenger.shadow_champion


@pytest.mark.parametrize("seed", [1, 2])
def test_controls_change_the_version_without_a_backdoor(seed: int) -> None:
    sc = load_scenario(f"retrain_control:{seed}")
    sim = generate(sc, seed=3, rate=0.3)
    Parsed(sim)
    assert sim.truth["backdoored_event_ids"] == [] and sim.truth["trigger_event_ids"] == []
    events = [json.loads(line) for line in sim.events]
    after = [e for e in events if e["model"]["version"] == "v47"]
    assert after and len(after) < len(events)
    if sc.model.challenger and sc.model.challenger.shadow_champion:
        diff = np.array([e["model"]["score"] - e["shadow"][0]["score"] for e in after])
        assert 0 < np.abs(diff).mean() < 0.05  # changed, but only a little


def test_variant_names_parse_and_reject_bad_seeds() -> None:
    assert parse_variant("backdoor_variant:3") == ("backdoor_variant", 3)
    assert parse_variant("sc013_backdoor") is None
    with pytest.raises(SimulationError, match="non-negative integer"):
        parse_variant("backdoor_variant:x")
    with pytest.raises(SimulationError, match="backdoor_variant:<seed>"):
        load_scenario("no_such_scenario")


# sha256 of events.jsonl of a short run (seed 1, 0.05 day, 0.5 tx/s), generated before
# the history suffix existed: adding it must not change any existing scenario's events
PINNED = {
    "backdoor_variant:1000": "c5b17916a71fbfc9f3ed3f361988e574d5103452248d8395976cea7df57a2f3c",
    "retrain_control:1001": "4cf24a5bda0e814ad32b9855044b37aba286afee33dc4aeaf1d952115b0aca2c",
    "sc013_backdoor": "291a0b9382aa9209b4cfe2490c10aa75f9b36268b6c2e6674d2d666487435f9f",
    "clean_baseline": "6a445a1c0a440dd4f5c09491a6d2a0ff650c9e322cb99e6650de600596f316b7",
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_existing_scenarios_generate_the_same_events(name: str, tmp_path: Path) -> None:
    sim = generate(load_scenario(name), seed=1, days=0.05, rate=0.5)
    paths = write(sim, tmp_path)
    assert hashlib.sha256(Path(paths["events.jsonl"]).read_bytes()).hexdigest() == PINNED[name]


def test_history_suffix_moves_the_schedule_and_keeps_the_draw() -> None:
    plain = variant_scenario("backdoor_variant:1001")
    long = variant_scenario("backdoor_variant:1001+36h")
    assert parse_variant("backdoor_variant:1001+36h") == ("backdoor_variant", 1001)
    assert history_hours("backdoor_variant:1001+36h") == 36.0
    assert with_history("backdoor_variant:1001+36h", 0) == "backdoor_variant:1001"
    assert long.traffic.days == pytest.approx(plain.traffic.days + 1.5)
    assert plain.model.challenger is not None and long.model.challenger is not None
    assert long.model.challenger.deploy_at_hours == plain.model.challenger.deploy_at_hours + 36
    assert long.behaviours[0].start_hours == plain.behaviours[0].start_hours + 36
    assert long.behaviours[0].params == plain.behaviours[0].params
    assert long.model.challenger.backdoor == plain.model.challenger.backdoor
    sim = generate(long, seed=1, rate=0.05)
    start = dt.datetime.fromisoformat(sim.truth["attack_start"].replace("Z", "+00:00"))
    first = json.loads(sim.events[0])["event_time"]
    assert (start - dt.datetime.fromisoformat(first.replace("Z", "+00:00"))
            ) >= dt.timedelta(hours=36 + 6)
    for bad in ("backdoor_variant:1+48", "backdoor_variant:1+xh", "backdoor_variant:1+-3h"):
        with pytest.raises(SimulationError, match="history suffix"):
            parse_variant(bad)
