"""Adversarial scenarios: every shipped file parses; perturbations are exact; the
direction of the score decides, relative to the champion."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from driftwatch.gate import scenarios as scen
from driftwatch.gate.errors import GateError

SHIPPED = {"split_amount", "hour_shift", "velocity_burst", "geo_jump", "device_change",
           "mcc_reclassification", "beneficiary_rename", "missing_optional_fields"}
EVENT = {"event_time": "2026-03-18T22:30:00Z", "amount": "900.10", "mcc": "5812",
         "device_id": "d-1", "ip": "10.0.0.1", "merchant_registered_at": "2020-01-01",
         "features": {"transactions_24h": 2, "new_device": 0, "merchant_age_days": 2000},
         "model": {"score": 0.9}}


def test_shipped_scenarios() -> None:
    loaded = {s.name: s for s in scen.load()}
    assert set(loaded) == SHIPPED
    split = loaded["split_amount"].perturb(EVENT)
    assert split["amount"] == "225.02" and split["features"]["transactions_24h"] == 5
    assert "model" not in split and EVENT["amount"] == "900.10"  # input untouched
    assert loaded["hour_shift"].perturb(EVENT)["event_time"] == "2026-03-19T06:30:00Z"
    missing = loaded["missing_optional_fields"].perturb(EVENT)
    assert not {"device_id", "ip", "merchant_registered_at"} & set(missing)
    assert "merchant_age_days" not in missing["features"]
    assert loaded["missing_optional_fields"].expect == "prefer_review"


@pytest.mark.parametrize(("doc", "message"), [
    ([], "a scenario is a mapping"),
    ({"name": "x", "change": {"mcc": {"set": "1"}}, "expect": "up"}, "expect='up'"),
    ({"name": "x", "change": {}, "expect": "not_lower"}, "non-empty mapping"),
    ({"name": "x", "change": {"amount": {"mul": "two"}}, "expect": "not_lower"},
     "mul needs a number"),
    ({"name": "x", "change": {"mcc": {"shift_hours": 1}}, "expect": "not_lower"},
     "event_time only"),
    ({"name": "x", "change": {"mcc": {"set": 1, "add": 2}}, "expect": "not_lower"},
     "one operation"),
    ({"name": "x", "change": {"mcc": {"set": 1}}, "expect": "not_lower", "run": "rm"},
     "unknown keys"),
])
def test_invalid_scenarios_are_rejected_with_a_reason(doc: Any, message: str) -> None:
    with pytest.raises(GateError, match=message):
        scen.parse(doc, "s.yaml")


def _velocity_scorer(sign: float) -> Any:
    def score(events: list[dict[str, Any]]) -> np.ndarray:
        v = np.array([e["features"]["transactions_24h"] for e in events], dtype=float)
        return np.clip(0.8 + sign * 0.01 * v, 0, 1)

    return score


def test_direction_blocks_a_regression_and_warns_on_a_shared_weakness() -> None:
    velocity = next(s for s in scen.load() if s.name == "velocity_burst")
    fixtures = [EVENT] * 10
    up, down = _velocity_scorer(+1), _velocity_scorer(-1)

    def pair(champ: Any, chall: Any) -> Any:
        return lambda ev: (champ(ev), chall(ev))

    f, rows, probes = scen.run([velocity], fixtures, pair(up, down), threshold=0.7)
    assert [(x.severity, x.blocking) for x in f] == [("critical", True)]
    assert rows[0]["challenger_delta"] == pytest.approx(-0.12)
    assert rows[0]["champion_delta"] == pytest.approx(0.12) and probes == 20
    f, _, _ = scen.run([velocity], fixtures, pair(down, down), threshold=0.7)
    assert [(x.severity, x.blocking) for x in f] == [("warning", False)]
    f, rows, _ = scen.run([velocity], fixtures, pair(up, up), threshold=0.7)
    assert f == [] and rows[0]["challenger_violations"] == 0
