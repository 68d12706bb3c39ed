"""Field coverage: the optional fields a rule needs, and the share of events carrying them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from driftwatch.rules.coverage import (
    FieldCoverage,
    coverage_table,
    field_needs,
    fields_read,
    needs_text,
)
from driftwatch.rules.pack import load_rules, rule_from_text
from driftwatch.streaming.metrics import WorkerMetrics
from tests.unit.rules.helpers import event, parse

RULES = Path(__file__).resolve().parents[3] / "rules"


def needs(when: str) -> list[list[str]]:
    return [sorted(a) for a in field_needs(rule_from_text("r", when))]


@pytest.mark.parametrize(("when", "expected"), [
    ("amount_minor > 100 and mcc == \"5411\"", [[]]),  # required fields only
    ("ip == \"1.2.3.4\"", [["ip"]]),
    ("features.age > 3 or features.customer_age > 3",
     [["features.age"], ["features.customer_age"]]),
    ("features.a > 1 and (ip == \"x\" or device_id == \"d\")",
     [["device_id", "features.a"], ["features.a", "ip"]]),
    ("present(device_id) or amount_minor > 5", [[]]),
    ("not present(device_id) and ip != \"\"", [["ip"]]),
    ("channel not in [\"atm\"]", [[]]),  # an absent channel is not "atm"
    ("channel in [\"atm\"]", [["channel"]]),
    ("features_str.kind == \"x\"", [["features_str.kind"]]),
    ("count(by=[card_id, ip], within=1h, where=features.z == 1) >= 2", [["ip"]]),
    ("count_distinct(device_id, by=card_id, within=1h) >= 2", [[]]),
    ("travel_km(by=card_id, within=1h) > 5", [["geo_lat", "geo_lon"]]),
    ("monotonic_increase(amount_minor, by=[card_id, device_id], n=3, within=1h, factor>=1.2)",
     [["device_id"]]),
    ("(ip == \"x\" or amount_minor > 1) and device_id == \"d\"", [["device_id"]]),
])
def test_needs_by_hand(when: str, expected: list[list[str]]) -> None:
    assert needs(when) == expected


def test_needs_of_shipped_rules() -> None:
    ruleset = load_rules([RULES])
    got = {r.id: needs_text(r) for r in ruleset.rules}
    assert got["card_testing_velocity"] == "-"
    assert got["sequential_takeover_no_device"] == "-"
    assert got["campaign_many_cards_one_ip"] == "ip"
    assert got["impossible_travel"] == "geo_lat + geo_lon"
    assert got["sequential_takeover"] == "device_id + features.new_device"
    assert "geo_lat" in fields_read(ruleset.rule("sequential_takeover"))


def _events(specs: list[dict[str, Any]]) -> list[Any]:
    return parse([event(i, i * 1000, **s) for i, s in enumerate(specs)])


def test_counts_against_a_hand_count() -> None:
    rules = [rule_from_text("a", "ip == \"x\" or features.age > 1"),
             rule_from_text("b", "travel_km(by=card_id, within=1h) > 1"),
             rule_from_text("c", "amount_minor > 1"),
             rule_from_text("d", "features.age > 1 or ip == \"y\"")]  # same needs as a
    specs: list[dict[str, Any]] = [
        {"ip": "1.1.1.1"}, {"features": {"age": 30}}, {"geo": {"lat": 1.0, "lon": 2.0}},
        {}, {"ip": "2.2.2.2", "geo": {"lat": 0.0, "lon": 0.0}}, {"features": {"other": 1}},
    ]
    cov = FieldCoverage(rules, warn_below=0.0).update(_events(specs))
    by_rule = {c.rule_id: (c.events, c.evaluable) for c in cov.rules}
    assert by_rule == {"a": (6, 3), "b": (6, 2), "c": (6, 6), "d": (6, 3)}
    assert cov.rule("b").share == pytest.approx(2 / 6)
    cov.update(_events([{"ip": "3.3.3.3"}]))
    assert (cov.rule("a").events, cov.rule("a").evaluable) == (7, 4)


def test_warns_once_per_rule_after_enough_events(caplog: pytest.LogCaptureFixture) -> None:
    rules = [rule_from_text("needs_geo", "travel_km(by=card_id, within=1h) > 1"),
             rule_from_text("always", "amount_minor > 1")]
    cov = FieldCoverage(rules, warn_below=0.5, warn_after=10)
    with caplog.at_level(logging.WARNING, logger="driftwatch.rules.coverage"):
        cov.update(_events([{}] * 9))
        assert not caplog.records  # not judged before warn_after events
        cov.update(_events([{}] * 5))
        cov.update(_events([{}] * 5))
    warned = [r for r in caplog.records if "needs_geo" in r.getMessage()]
    assert len(warned) == 1 and "geo_lat + geo_lon" in warned[0].getMessage()
    assert cov.warned == frozenset({"needs_geo"})


def test_no_warning_when_coverage_is_good(caplog: pytest.LogCaptureFixture) -> None:
    cov = FieldCoverage([rule_from_text("r", "ip == \"x\"")], warn_below=0.5, warn_after=4)
    with caplog.at_level(logging.WARNING, logger="driftwatch.rules.coverage"):
        cov.update(_events([{"ip": "1.1.1.1"}] * 3 + [{}]))
    assert not caplog.records and cov.rule("r").share == 0.75


def test_sampling_measures_one_event_in_k_across_batches() -> None:
    rules = [rule_from_text("r", "ip == \"x\"")]
    specs: list[dict[str, Any]] = [{"ip": "1.1.1.1"} if i % 3 == 0 else {} for i in range(23)]
    events = _events(specs)
    whole = FieldCoverage(rules, sample=1).update(events)
    sampled = FieldCoverage(rules, sample=4)
    for a, b in [(0, 5), (5, 6), (6, 13), (13, 23)]:  # uneven batches
        sampled.update(events[a:b])
    picked = events[::4]  # indexes 0, 4, 8, ... of the stream, whatever the batches
    assert sampled.rule("r").events == len(picked) == 6
    assert sampled.rule("r").evaluable == sum(1 for e in picked if e.ip)
    assert whole.rule("r").evaluable == 8


@pytest.mark.parametrize(("kwargs", "name"), [({"warn_below": 1.5}, "warn_below"),
                                              ({"warn_after": 0}, "warn_after"),
                                              ({"sample": 0}, "sample")])
def test_bad_parameters(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        FieldCoverage([], **kwargs)


def test_table_and_metric() -> None:
    rules = [rule_from_text("geo_rule", "travel_km(by=card_id, within=1h) > 1")]
    cov = FieldCoverage(rules, warn_below=0.0).update(_events([{}, {}, {"geo": {"lat": 1.0,
                                                                              "lon": 1.0}}]))
    table = coverage_table(cov.rules, warn_below=0.5)
    assert "geo_rule" in table and "33.3%" in table and "LOW" in table
    metrics = WorkerMetrics()
    metrics.set_rule_coverage(cov.rules)
    text = metrics.render().decode()
    assert 'driftwatch_rule_field_coverage{rule_id="geo_rule"} 0.333' in text
