"""Case alerts in a real Alertmanager (Debian's, with the deploy routes and inhibition).

A tested card is a ``RuleCase`` info alert naming the card; once its campaign's
``RuleHit`` fires (5 cards in one mcc within the hour), Alertmanager mutes the cases of
that campaign and keeps the incident active.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from driftwatch.alerts.alertmanager import AlertmanagerSink
from driftwatch.alerts.model import Alert
from driftwatch.events import parse_scored_batch
from driftwatch.rules.pack import load_rules
from driftwatch.rules.stage import CASE_ALERT, INCIDENT_ALERT, RuleStage
from driftwatch.store.client import Store
from tests.integration.alertmanager_proc import AlertmanagerProcess
from tests.unit.rules.helpers import event

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None, reason="no alertmanager"),
]
RULES = Path(__file__).resolve().parents[2] / "rules"


def _until(pred: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


def _tested(card: str, minute: int, first: int) -> list[dict[str, Any]]:
    """Three tiny charges on ``card`` (the card-testing rule hits the third)."""
    return [event(first + i, (minute * 60 + 40 * i) * 1000, card_id=card, amount="1.01",
                  event_id=f"{card}-{i}", ip=f"198.51.100.{first + i}") for i in range(3)]


def test_cases_reach_alertmanager_and_a_campaign_mutes_them(
    store: Store, alertmanager: AlertmanagerProcess
) -> None:
    stage = RuleStage(load_rules([RULES / "card_testing.yaml"]))
    sink = AlertmanagerSink(alertmanager.url, store=store, resend_s=60)

    def feed(events: list[dict[str, Any]]) -> list[Alert]:
        parsed = parse_scored_batch([json.dumps(e) for e in events]).events
        alerts = [Alert.from_finding(f) for f in stage.on_events(parsed).findings]
        sink.send(alerts)
        return alerts

    def states() -> dict[str, tuple[str, str]]:
        return {a["labels"].get("segment", ""): (a["labels"]["alertname"], a["status"]["state"])
                for a in alertmanager.alerts(filter='source="rule"')}

    first = feed(_tested("c-one", 0, 0))
    assert [(a.labels["alertname"], a.labels["severity"], a.labels["segment"])
            for a in first] == [(CASE_ALERT, "info", "card_id=c-one")]
    _until(lambda: states().get("card_id=c-one") == (CASE_ALERT, "active"))
    more = feed([e for k in range(1, 5) for e in _tested(f"c-{k}", 5 * k, 10 * k)])
    assert {a.labels["segment"] for a in more if a.labels["alertname"] == INCIDENT_ALERT} == {
        "mcc=5411"}
    _until(lambda: states().get("mcc=5411") == (INCIDENT_ALERT, "active")
           and all(v == (CASE_ALERT, "suppressed") for k, v in states().items()
                   if k.startswith("card_id=")))
    assert len([k for k in states() if k.startswith("card_id=")]) == 5
    sink.close()
