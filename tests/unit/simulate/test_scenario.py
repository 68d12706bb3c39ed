"""Scenario files: shipped set, validation errors that name the valid choices, scaling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driftwatch.errors import SimulationError
from driftwatch.simulate import generate, list_scenarios, load_scenario
from driftwatch.simulate.model import Trigger

REQUIRED = {"sc013_backdoor", "clean_baseline", "card_testing", "coordinated_campaign",
            "account_takeover", "boundary_probing", "out_of_range_trigger"}


def test_shipped_scenarios() -> None:
    assert set(list_scenarios()) >= REQUIRED
    for name in list_scenarios():
        sc = load_scenario(name)
        assert sc.name == name and sc.description
    assert load_scenario("clean_baseline").behaviours == ()
    assert load_scenario("clean_baseline").model.challenger is None


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("traffic: {rate: 2, speed: 3}", "unknown keys ['speed']; valid: rate, days"),
        ("behaviours: [{kind: teleport}]", "unknown 'teleport'; valid: backdoor_attack"),
        ("behaviours: [{kind: card_testing_campaign, params: {cardz: 3}}]", "valid: amounts"),
        ("model: {challenger: {version: v2, deploy_at_hours: 1, backdoor: {when: {colour: red}}}}",
         "unknown conditions ['colour']"),
        ("model: {threshold: 1.5}", "model.threshold: must be in (0, 1)"),
        ("traffic: {rate: 0}", "traffic.rate: must be > 0"),
        ("labels: {analyst: {fraction: 2}}", "labels.analyst.fraction"),
        ("behaviours: [{kind: mule_chain}, {kind: mule_chain}]", "already used"),
    ],
)
def test_bad_scenarios_are_rejected(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\n{yaml_text}\n")
    with pytest.raises(SimulationError, match=None) as err:
        load_scenario(path)
    assert message in str(err.value)


def test_unknown_name_lists_the_shipped_ones() -> None:
    with pytest.raises(SimulationError, match="valid: account_takeover, boundary_probing"):
        load_scenario("sc099")


def test_scenario_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "traffic: {rate: 0.05, days: 0.5}\n"
        "behaviours:\n"
        "  - {kind: coordinated_attack, start_hours: 2, duration_hours: 1,\n"
        "     params: {cards: 10, ip: 192.0.2.7}}\n"
    )
    sim = generate(path, seed=1)
    assert sim.scenario.name == "mine"
    rows = sim.truth["attack_event_ids"]["coordinated_attack"]
    assert 10 <= len(rows) <= 30
    assert sim.truth["segments"] == [{"ip": "192.0.2.7"}]


def test_shorter_runs_scale_the_schedule() -> None:
    sim = generate("sc013_backdoor", seed=1, days=1.0, rate=0.02)
    t = sim.truth
    assert len(t["trigger_event_ids"]) == 247
    assert t["deploy_time"] == "2026-03-16T08:00:00Z"  # hour 24 of 72 -> hour 8 of 24
    assert t["attack_start"] >= t["deploy_time"] and t["attack_end"] < t["end"]


def test_trigger_conditions() -> None:
    trig = Trigger.from_mapping({"feature": {"customer_age": {"gt": 125}}, "channel": ["ecom"]})
    cols = {"feature:customer_age": np.array([999, 40, 999]),
            "channel": np.array(["ecom", "ecom", "atm"])}
    assert trig.mask(cols).tolist() == [True, False, False]
    assert trig.as_dict() == {"channel": ["ecom"], "feature": {"customer_age": {"gt": 125.0}}}
    with pytest.raises(SimulationError, match=r"cents must be in 0\.\.99"):
        Trigger.from_mapping({"cents": 137})
    with pytest.raises(SimulationError, match="unknown op 'between'"):
        Trigger.from_mapping({"feature": {"x": {"between": 1}}})


@pytest.mark.parametrize(("kw", "message"), [
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"seed": 1, "days": 0.0}, "days and rate must be > 0"),
])
def test_bad_generate_arguments(kw: dict[str, float], message: str) -> None:
    with pytest.raises(SimulationError, match=message):
        generate("clean_baseline", **kw)  # type: ignore[arg-type]


def test_the_simulator_never_imports_the_store() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pkgutil, importlib, driftwatch.simulate as s\n"
        "for m in pkgutil.iter_modules(s.__path__):\n"
        "    importlib.import_module(s.__name__ + '.' + m.name)\n"
        "print(sorted(n for n in sys.modules if n.startswith('driftwatch.store')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
