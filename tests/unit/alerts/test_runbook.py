"""Every alert name has a runbook section and a first step, and alerts link to them."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from driftwatch.alerts.model import Alert, Finding
from driftwatch.alerts.runbook import FIRST_STEPS, RUNBOOK_DOC, runbook_link
from driftwatch.monitors import registry

ROOT = Path(__file__).resolve().parents[3]


def _alertnames() -> set[str]:
    from driftwatch.rules.stage import CASE_ALERT, INCIDENT_ALERT

    registry.load_builtin()
    names = {INCIDENT_ALERT, CASE_ALERT}
    for name in registry.names():
        names.update(registry.get(name).tests.values())
    return names


def _sections() -> dict[str, str]:
    doc = (ROOT / RUNBOOK_DOC).read_text()
    parts = re.split(r"^## (\w+)\n", doc, flags=re.M)
    return {parts[i]: " ".join(parts[i + 1].split()) for i in range(1, len(parts), 2)}


def test_every_alertname_has_a_section_and_its_first_step() -> None:
    sections = _sections()
    names = _alertnames()
    assert len(names) >= 15
    assert names <= set(FIRST_STEPS), names - set(FIRST_STEPS)
    assert names <= set(sections), names - set(sections)
    for name in names:
        assert f"**First step.** {FIRST_STEPS[name]}" in sections[name], name
        assert "**What it means.**" in sections[name], name


def test_findings_carry_runbook_and_next_steps() -> None:
    at = dt.datetime(2026, 3, 18, 14, tzinfo=dt.UTC)
    f = Finding(alertname="CentsDigitAnomaly", severity="warning", source="detector",
                origin="cents", segment="mcc=5967", event_time=at, summary="s")
    ann = f.annotations()
    assert ann["runbook"] == "docs/runbooks.md#centsdigitanomaly"
    assert ann["next_steps"] == FIRST_STEPS["CentsDigitAnomaly"]
    alert = Alert.from_finding(f, "https://soc.example/rb/")
    assert alert.annotations["runbook"] == "https://soc.example/rb#centsdigitanomaly"
    own = Finding(alertname="RuleHit", severity="warning", source="rule", origin="R1",
                  segment="", event_time=at, summary="s", runbook="rules/x.yaml")
    assert own.annotations()["runbook"] == "rules/x.yaml"


def test_link_without_and_with_base() -> None:
    assert runbook_link("RecallDrop") == "docs/runbooks.md#recalldrop"
    assert runbook_link("RecallDrop", "http://h/runbooks.html") == "http://h/runbooks.html#recalldrop"
