"""The shipped packs on traffic that carries only the contract's required fields + ip + features.

Issue 27's acceptance: no device, no coordinates, no channel, no merchant country.
A takeover (5-8 steps, each x1.2-1.3, within 2 h, same merchant and IP) is hit by its
4th event and alerted naming the card; card testing on one card (10-30 tiny charges
in 10 minutes) is alerted naming the card by its 8th event; a 20-60-card campaign
from one IP by its 10th. The injected cases ride on the simulator's clean traffic,
stripped to the same fields, which on its own raises no warning or critical alert.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Sequence
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import pytest

from driftwatch.alerts.model import Finding
from driftwatch.events import parse_scored_batch
from driftwatch.rules.pack import load_rules
from driftwatch.rules.stage import CASE_ALERT, INCIDENT_ALERT, RuleStage
from driftwatch.simulate import generate, load_scenario

RULES = Path(__file__).resolve().parents[3] / "rules"
KEEP = ("event_id", "txn_id", "event_time", "amount", "currency", "mcc", "merchant_id",
        "card_id", "model", "ip", "features")
"""The contract's required fields, plus ``ip`` and ``features``."""
START = dt.datetime(2026, 3, 16, tzinfo=dt.UTC)
MODEL = {"name": "fraud-detect", "version": "v46", "score": 0.05, "threshold": 0.7}
LOUD = ("warning", "critical")


@functools.lru_cache(maxsize=2)
def clean_background(seed: int, days: float) -> tuple[dict[str, Any], ...]:
    """The simulator's clean traffic, stripped to :data:`KEEP`."""
    sim = generate(load_scenario("clean_baseline"), seed=seed, days=days)
    return tuple({k: v for k, v in json.loads(line).items() if k in KEEP}
                 for line in sim.events)


def _event(tag: str, i: int, at: dt.datetime, **fields: Any) -> dict[str, Any]:
    out = {
        "event_id": f"x-{tag}-{i}", "txn_id": f"tx-{tag}-{i}",
        "event_time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "currency": "USD", "mcc": "5999", "merchant_id": "m-offturf", "model": MODEL,
        "features": {"transactions_24h": i + 1},
    }
    out.update(fields)
    return out


def takeover(card: str, ip: str, start: dt.datetime, steps: int, factor: str
             ) -> list[dict[str, Any]]:
    """``steps`` payments from one IP at one merchant, each ``factor`` x the one before
    (rounded up to the cent), 15 minutes apart (8 steps: 105 minutes)."""
    amount, out = Decimal("80.00"), []
    for i in range(steps):
        out.append(_event(card, i, start + dt.timedelta(minutes=15 * i), card_id=card, ip=ip,
                          amount=str(amount)))
        amount = (amount * Decimal(factor)).quantize(Decimal("0.01"), rounding=ROUND_CEILING)
    return out


def card_testing(card: str, ip: str, start: dt.datetime, n: int) -> list[dict[str, Any]]:
    """``n`` charges of 0.50-2.99 on one card within 10 minutes."""
    every = dt.timedelta(seconds=590 / n)
    cents = [50 + (37 * i) % 250 for i in range(n)]
    return [_event(card, i, start + i * every, card_id=card, ip=ip,
                   amount=f"{c // 100}.{c % 100:02d}") for i, c in enumerate(cents)]


def campaign(ip: str, start: dt.datetime, cards: int) -> list[dict[str, Any]]:
    """One payment from each of ``cards`` cards through one IP, 90 s apart."""
    return [_event(f"{ip}-c{i}", 0, start + dt.timedelta(seconds=90 * i),
                   card_id=f"c-camp-{ip}-{i}", ip=ip, amount=f"{150 + 7 * i}.00")
            for i in range(cards)]


def run(events: Sequence[dict[str, Any]], batch: int = 500) -> tuple[RuleStage, list[Finding],
                                                                       dict[str, set[str]]]:
    """Every event through a fresh rule stage in event-time order; findings and hits."""
    stage = RuleStage(load_rules([RULES]))
    ordered = sorted(events, key=lambda e: (e["event_time"], e["event_id"]))
    raws = [json.dumps(e).encode() for e in ordered]
    findings: list[Finding] = []
    hits: dict[str, set[str]] = {}
    for i in range(0, len(raws), batch):
        parsed = parse_scored_batch(raws[i:i + batch])
        assert not parsed.rejected, parsed.rejected[:2]
        out = stage.on_events(parsed.events)
        findings.extend(out.findings)
        for row in out.rule_hits:
            hits.setdefault(row["event_id"], set()).add(row["rule_id"])
    return stage, findings, hits


def _time(event: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(event["event_time"].replace("Z", "+00:00"))


def _first(findings: Sequence[Finding], alertname: str, segment: str,
           severities: Sequence[str] = ("info", "warning", "critical")) -> Finding | None:
    named = [f for f in findings if f.alertname == alertname and f.segment == segment
             and f.severity in severities]
    return min(named, key=lambda f: f.event_time) if named else None


TAKEOVERS = [(5, "1.2"), (6, "1.25"), (7, "1.3"), (8, "1.3")]
CARD_TESTS = [10, 18, 30]
CAMPAIGNS = [20, 41, 60]


def _cases() -> dict[str, list[dict[str, Any]]]:
    """Every injected case by name, each on its own card or IP, spread over 4 hours."""
    out: dict[str, list[dict[str, Any]]] = {}
    for k, (steps, factor) in enumerate(TAKEOVERS):
        out[f"takeover-{steps}-{factor}"] = takeover(
            f"c-takeover-{k}", f"198.51.100.{20 + k}", START + dt.timedelta(hours=1 + k / 2),
            steps, factor)
    for k, n in enumerate(CARD_TESTS):
        out[f"testing-{n}"] = card_testing(f"c-tested-{k}", f"203.0.113.{70 + k}",
                                           START + dt.timedelta(hours=1.2 + k), n)
    for k, cards in enumerate(CAMPAIGNS):
        out[f"campaign-{cards}"] = campaign(f"192.0.2.{10 + k}",
                                            START + dt.timedelta(hours=1.5 + k), cards)
    return out


@functools.lru_cache(maxsize=1)
def mixed() -> tuple[dict[str, list[dict[str, Any]]], list[Finding], dict[str, set[str]]]:
    """The cases on 4.8 hours of stripped clean traffic, through one rule stage."""
    cases = _cases()
    _, findings, hits = run([*clean_background(1, 0.2), *(e for c in cases.values() for e in c)])
    return cases, findings, hits


@pytest.mark.parametrize(("steps", "factor"), TAKEOVERS)
def test_takeover_without_device_is_hit_by_its_fourth_event_and_alerted_naming_the_card(
    steps: int, factor: str,
) -> None:
    cases, findings, hits = mixed()
    case = cases[f"takeover-{steps}-{factor}"]
    card = case[0]["card_id"]
    assert {e["card_id"] for e in case} == {card} and len({e["ip"] for e in case}) == 1
    assert _time(case[-1]) - _time(case[0]) <= dt.timedelta(hours=2)
    hit_at = [i for i, e in enumerate(case)
              if "sequential_takeover_no_device" in hits.get(e["event_id"], ())]
    assert hit_at == list(range(3, steps))  # from the 4th event on, every step
    alert = _first(findings, CASE_ALERT, f"card_id={card}")
    assert alert is not None and alert.origin == "sequential_takeover_no_device"
    assert alert.event_time == _time(case[3]) and card in alert.summary
    assert alert.severity == "info"
    incident = _first(findings, INCIDENT_ALERT, f"card_id={card}", LOUD)
    assert (incident is not None) == (steps >= 6)  # 3 hits: the incident floor


@pytest.mark.parametrize("n", CARD_TESTS)
def test_card_testing_on_one_card_is_alerted_naming_the_card_by_its_eighth_event(n: int) -> None:
    cases, findings, _ = mixed()
    case = cases[f"testing-{n}"]
    card = case[0]["card_id"]
    assert len(case) == n and all(Decimal(e["amount"]) < 3 for e in case)
    assert _time(case[-1]) - _time(case[0]) < dt.timedelta(minutes=10)
    alert = _first(findings, CASE_ALERT, f"card_id={card}")
    assert alert is not None and alert.origin == "card_testing_velocity"
    assert alert.event_time <= _time(case[7]) and card in alert.summary


@pytest.mark.parametrize("cards", CAMPAIGNS)
def test_one_ip_campaign_is_alerted_by_its_tenth_event(cards: int) -> None:
    cases, findings, _ = mixed()
    case = cases[f"campaign-{cards}"]
    assert len({e["card_id"] for e in case}) == cards
    alert = _first(findings, INCIDENT_ALERT, f"ip={case[0]['ip']}", LOUD)
    assert alert is not None and alert.origin == "campaign_many_cards_one_ip"
    assert alert.event_time <= _time(case[9])


def test_injected_cases_are_the_only_loud_alerts() -> None:
    cases, findings, _ = mixed()
    loud = {(f.origin, f.segment) for f in findings if f.severity in LOUD}
    expected = {("campaign_many_cards_one_ip", f"ip={cases[f'campaign-{n}'][0]['ip']}")
                for n in CAMPAIGNS}
    expected |= {("sequential_takeover_no_device",
                  f"card_id={cases[f'takeover-{s}-{f}'][0]['card_id']}")
                 for s, f in TAKEOVERS if s >= 6}
    assert loud == expected


def test_case_alerts_can_be_turned_off() -> None:
    case = card_testing("c-off", "203.0.113.9", START, 12)
    stage = RuleStage(load_rules([RULES]), case_alerts=False)
    raws = [json.dumps(e).encode() for e in case]
    out = stage.on_events(parse_scored_batch(raws).events)
    assert len(out.rule_hits) == 10  # the 3rd to the 12th charge: still cases
    assert out.findings == []


@pytest.mark.slow
def test_clean_half_day_with_only_required_fields_raises_no_warning_or_critical() -> None:
    background = clean_background(2, 0.5)
    stage, findings, _ = run(background, batch=2000)
    assert len(background) > 80_000
    assert stage.coverage.events == -(-len(background) // 8)  # one event in 8 measured
    assert [f for f in findings if f.severity in LOUD] == []
    cases = [f for f in findings if f.alertname == CASE_ALERT]
    assert all(f.severity == "info" and f.segment.startswith("card_id=") for f in cases)
    # rules that need a device, coordinates or a registration date cannot evaluate here,
    # and say so; the fallbacks can
    share = {c.rule_id: c.share for c in stage.coverage.rules}
    assert share["sequential_takeover"] == 0.0 and share["impossible_travel"] == 0.0
    assert share["sequential_takeover_no_device"] == 1.0
    assert share["campaign_many_cards_one_ip"] == 1.0
    assert {"sequential_takeover", "impossible_travel"} <= stage.coverage.warned


@pytest.mark.slow
def test_demo_traffic_raises_no_campaign_alert_on_shared_ips() -> None:
    """The demo's defaults (sc013, seed 1, 1.5 days at 0.5 tx/s): the 24 h baseline keeps
    the per-IP campaign rule quiet on the attacker's camouflage networks, where the
    fixed floor of 8 cards alerted on 11 addresses, and on the clean part before it."""
    sim = generate(load_scenario("sc013_backdoor"), seed=1, days=1.5, rate=0.5)
    stage = RuleStage(load_rules([RULES / "coordinated_campaign.yaml"]))
    raws = list(sim.events)
    loud = []
    for i in range(0, len(raws), 2000):
        out = stage.on_events(parse_scored_batch(raws[i:i + 2000]).events)
        loud += [f for f in out.findings if f.origin == "campaign_many_cards_one_ip"]
    assert len(raws) > 50_000 and stage.coverage.events == -(-len(raws) // 8)
    assert loud == []
