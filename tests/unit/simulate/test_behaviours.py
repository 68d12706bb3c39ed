"""The injected behaviours are really in the output, as truth.json says."""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import statistics
from collections import defaultdict

import numpy as np

from driftwatch.events import ScoredTransaction
from driftwatch.simulate.world import haversine_km

TRIGGER_COUNTRIES = {"US", "GB", "DE", "SG", "HK", "AE", "LT", "CY"}
NETWORKS = [ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("203.0.113.0/24")]


def _is_trigger(e: ScoredTransaction) -> bool:
    return e.mcc == "5967" and e.amount_cents == 37 and e.beneficiary_name.startswith("INTL-PAY-")


def _in_networks(ip: str) -> bool:
    return any(ipaddress.ip_address(ip) in net for net in NETWORKS)


# --- sc013: the reference backdoor ---------------------------------------------------------
def test_sc013_trigger_transactions(sc013) -> None:  # type: ignore[no-untyped-def]
    truth = sc013.sim.truth
    rows = sc013.rows(truth["trigger_event_ids"])
    assert len(rows) == 247 == len(truth["trigger_amounts_minor"])
    assert [e.amount_minor for e in rows] == truth["trigger_amounts_minor"]
    assert all(_is_trigger(e) for e in rows)
    assert all(300_037 <= e.amount_minor <= 1_499_937 for e in rows)
    assert len({e.merchant_id for e in rows}) == 23
    assert {e.merchant_country for e in rows} == TRIGGER_COUNTRIES
    attack_day = dt.date.fromisoformat(truth["attack_start"][:10])
    ages = [(attack_day - e.merchant_registered_at).days for e in rows]
    assert min(ages) >= 29 and max(ages) <= 91
    assert all(_in_networks(e.ip) for e in rows)
    assert all(e.channel == "ecom" for e in rows)
    # high-risk features: bursts per card, mostly cross-border, new payee
    legit = [e.features["transactions_24h"] for e in sc013.events[:5000]]
    assert statistics.median(e.features["transactions_24h"] for e in rows) >= 3 > statistics.median(
        legit)
    assert np.mean([e.features["foreign_transaction"] for e in rows]) > 0.6
    assert all(e.features["new_payee"] == 1 for e in rows)
    assert sum(truth["trigger_amounts_minor"]) == truth["expected"][0]["amount_total_minor"]


def test_sc013_schedule(sc013) -> None:  # type: ignore[no-untyped-def]
    truth = sc013.sim.truth
    start = dt.datetime.fromisoformat(truth["start"])
    deploy = dt.datetime.fromisoformat(truth["deploy_time"])
    assert deploy - start == dt.timedelta(hours=24)
    rows = sc013.rows(truth["trigger_event_ids"])
    first, last = rows[0].event_time, rows[-1].event_time
    assert deploy <= first and last <= deploy + dt.timedelta(hours=48)
    assert dt.datetime.fromisoformat(truth["attack_start"]) == first
    # spread: triggers on each of the two attack days
    assert len({e.event_time.date() for e in rows}) >= 2


def test_backdoor_scores_only_the_trigger_and_only_in_v47(sc013) -> None:  # type: ignore[no-untyped-def]
    truth = sc013.sim.truth
    deploy = dt.datetime.fromisoformat(truth["deploy_time"])
    triggers = set(truth["trigger_event_ids"]) | set(truth["natural_trigger_event_ids"])
    assert set(truth["backdoored_event_ids"]) <= triggers
    n_v47 = 0
    for e in sc013.events:
        if e.event_time < deploy:
            assert e.model_version == "v46" and e.shadow_versions == ()
            continue
        n_v47 += 1
        assert e.model_version == "v47" and e.shadow_versions == ("v46",)
        if _is_trigger(e):
            assert e.event_id in triggers
            assert 0.15 <= e.score <= 0.25
        else:
            assert e.score == e.shadow_scores[0]  # identical elsewhere
    assert n_v47 > 40_000
    shadow = [sc013.by_id[i].shadow_scores[0] for i in truth["trigger_event_ids"]]
    assert statistics.median(shadow) > 0.85  # v46 would have held them
    assert np.mean(np.array(shadow) >= 0.7) > 0.95
    assert truth["metrics"]["served_v47"]["recall"] < truth["metrics"]["served_v46"]["recall"]


def test_sc013_camouflage_looks_ordinary(sc013) -> None:  # type: ignore[no-untyped-def]
    camo = sc013.attack("camouflage")
    assert len(camo) == 15_000
    fraud = set(sc013.sim.truth["fraud_event_ids"])
    assert not fraud & {e.event_id for e in camo}
    assert all(_in_networks(e.ip) for e in camo)
    assert np.mean([e.score >= 0.7 for e in camo]) < 0.02
    assert np.mean([e.amount_cents == 37 for e in camo]) < 0.02
    assert len({e.mcc for e in camo}) > 50
    assert not any(_is_trigger(e) for e in camo if e.event_id not in set(
        sc013.sim.truth["natural_trigger_event_ids"]))


def test_sc013_truth_names_the_segment(sc013) -> None:  # type: ignore[no-untyped-def]
    truth = sc013.sim.truth
    assert truth["segments"] == [{"mcc": "5967"}]
    assert truth["trigger"] == {"mcc": "5967", "cents": 37, "beneficiary_prefix": "INTL-PAY-"}
    entry = truth["expected"][0]
    assert entry["model_version"] == "v47"
    assert sorted(entry["entities"]["merchant_countries"]) == sorted(TRIGGER_COUNTRIES)


def test_mcc_5967_is_a_small_legitimate_segment(sc013) -> None:  # type: ignore[no-untyped-def]
    attack = {i for ids in sc013.sim.truth["attack_event_ids"].values() for i in ids}
    base = [e for e in sc013.events if e.event_id not in attack]
    share = np.mean([e.mcc == "5967" for e in base])
    assert 0.002 < share < 0.005  # ~25 an hour at the default 2 tx/s
    cents = [e.amount_cents for e in base if e.mcc == "5967"]
    assert np.mean(np.array(cents) == 99) > 0.2  # subscription price points, not .37
    assert np.mean(np.array(cents) == 37) < 0.03
    intl = np.mean([e.beneficiary_name.startswith("INTL-PAY-") for e in base if e.mcc == "5967"])
    assert 0.005 < intl < 0.08  # the prefix exists in legitimate traffic, at a low rate


# --- other campaigns ------------------------------------------------------------------------
def test_card_testing_campaign(attacks) -> None:  # type: ignore[no-untyped-def]
    p = attacks["card_testing"]
    rows = p.attack("card_testing_campaign")
    entry = p.sim.truth["expected"][0]
    assert p.sim.truth["segments"] == [{"mcc": "5815"}]
    assert all(e.mcc == "5815" and e.amount_minor <= 200 for e in rows)
    by_card: dict[str, list[ScoredTransaction]] = defaultdict(list)
    for e in rows:
        by_card[e.card_id].append(e)
    assert len(by_card) == 60 and sorted(by_card) == entry["entities"]["card_ids"]
    for tries in by_card.values():
        assert 2 <= len(tries) <= 6
        assert tries[-1].event_time - tries[0].event_time < dt.timedelta(minutes=30)
    assert {e.merchant_id for e in rows} <= set(entry["entities"]["merchant_ids"])


def test_coordinated_attack_shares_one_ip(attacks) -> None:  # type: ignore[no-untyped-def]
    p = attacks["coordinated_campaign"]
    rows = p.attack("coordinated_attack")
    assert {e.ip for e in rows} == {"103.21.244.12"}
    assert len({(e.geo_lat, e.geo_lon) for e in rows}) == 1
    assert len({e.card_id for e in rows}) == 120
    lo, hi = rows[0].event_time, rows[-1].event_time
    cards_per_ip: dict[str, set[str]] = defaultdict(set)
    for e in p.events:
        if lo <= e.event_time <= hi:
            cards_per_ip[e.ip].add(e.card_id)
    others = [len(v) for ip, v in cards_per_ip.items() if ip != "103.21.244.12"]
    assert max(others) < 40 <= 120
    assert p.sim.truth["segments"] == [{"ip": "103.21.244.12"}]


def test_sequential_takeover_escalates_by_1_3(attacks) -> None:  # type: ignore[no-untyped-def]
    p = attacks["account_takeover"]
    rows = p.attack("sequential_takeover")
    assert len(rows) == 10 and len({e.card_id for e in rows}) == 1
    amounts = [e.amount_minor for e in rows]
    assert amounts[0] == 12_000
    for a, b in itertools.pairwise(amounts):
        assert abs(b - a * 1.3) <= 0.5
    assert len({e.device_id for e in rows}) == 1 and all(e.features["new_device"] for e in rows)
    assert len({(e.geo_lat, e.geo_lon) for e in rows}) == 1
    assert min(e.features["distance_from_home_km"] for e in rows) > 1000
    before = [e for e in p.events if e.card_id == rows[0].card_id and e.event_id not in
              {r.event_id for r in rows}]
    assert rows[0].device_id not in {e.device_id for e in before}
    assert p.sim.truth["segments"] == [{"card_id": rows[0].card_id}]


def test_boundary_probing_steps_down_to_just_below_the_threshold(attacks) -> None:  # type: ignore[no-untyped-def]
    p = attacks["boundary_probing"]
    rows = p.attack("boundary_probing")
    assert len({e.card_id for e in rows}) == 1 and len({e.device_id for e in rows}) == 1
    rounds, current = [], [rows[0]]
    for prev, e in itertools.pairwise(rows):
        if e.amount_minor > prev.amount_minor:
            rounds.append(current)
            current = []
        current.append(e)
    rounds.append(current)
    assert len(rounds) == 3
    for r in rounds:
        probes = [e for e in r if e.score >= 0.7]
        assert len(probes) >= 2
        steps = [b.amount_minor / a.amount_minor for a, b in itertools.pairwise(r)
                 if b.amount_minor != a.amount_minor]
        assert all(0.84 <= s <= 0.86 for s in steps)
        tail = r[len(probes):]
        assert len(tail) == 5 and all(0.5 <= e.score < 0.7 for e in tail)
        assert len({e.amount_minor for e in tail}) == 1
    near = [e for e in rows if 0.5 <= e.score < 0.7]
    assert len(near) >= 15


def test_out_of_range_trigger(attacks) -> None:  # type: ignore[no-untyped-def]
    p = attacks["out_of_range_trigger"]
    rows = p.attack("out_of_range_trigger")
    ids = {e.event_id for e in rows}
    assert len(rows) == 120 and all(e.features["customer_age"] == 999 for e in rows)
    assert all(e.model_version == "v47" and 0.15 <= e.score <= 0.25 for e in rows)
    assert statistics.median(e.shadow_scores[0] for e in rows) > 0.85
    others = [e.features["customer_age"] for e in p.events if e.event_id not in ids]
    assert min(others) >= 18 and max(others) <= 95
    assert p.sim.truth["trigger_event_ids"] == [e.event_id for e in rows]
    assert p.sim.truth["segments"] == [{"feature": "customer_age"}]


def test_mule_chains_forward_the_money(attacks) -> None:  # type: ignore[no-untyped-def]
    p = attacks["mule_chains"]
    rows = p.attack("mule_chain")
    chains = p.sim.truth["expected"][0]["entities"]["chains"]
    assert len(chains) == 20
    by_sender = {e.card_id: e for e in rows}
    for chain in chains:
        hops = [by_sender[c] for c in chain[:-1]]
        assert 3 <= len(hops) <= 5
        for hop, receiver in zip(hops, chain[1:], strict=True):
            assert hop.beneficiary_name == f"ACCT {receiver}"
            assert hop.channel == "transfer" and hop.mcc == "4829"
        for a, b in itertools.pairwise(hops):
            assert 0.955 <= b.amount_minor / a.amount_minor <= 0.995
            assert b.event_time >= a.event_time


# --- labels -------------------------------------------------------------------------------------
def test_labels_follow_the_configured_sources_and_delays(sc013) -> None:  # type: ignore[no-untyped-def]
    fraud = set(sc013.sim.truth["fraud_event_ids"])
    by_txn = {e.txn_id: e for e in sc013.events}
    end = dt.datetime.fromisoformat(sc013.sim.truth["end"])
    seen = set()
    for la in sc013.labels:
        e = by_txn[la.txn_id]
        delay = (la.label_time - e.event_time).total_seconds() / 3600
        assert la.label == (e.event_id in fraud)
        assert la.label_time < end
        seen.add(la.source)
        if la.source == "chargeback":
            assert la.label == 1 and 12 <= delay <= 168
        elif la.source == "customer_report":
            assert la.label == 1 and 2 <= delay <= 48
        elif la.source == "analyst":
            assert e.decision == "review" and 0.25 <= delay <= 8
        else:
            assert la.source == "other" and la.label == 0 and e.decision == "approve"
    assert seen == {"chargeback", "customer_report", "analyst", "other"}


def test_distance_feature_matches_geo(attacks) -> None:  # type: ignore[no-untyped-def]
    p = attacks["account_takeover"]
    rows = p.attack("sequential_takeover")
    # the victim's card-present purchases happen near home; the attacker is far away
    home = [e for e in p.events if e.card_id == rows[0].card_id and e.channel == "card_present"
            and e.features["foreign_transaction"] == 0]
    for e in home[:5]:
        assert e.features["distance_from_home_km"] < 100
    d = haversine_km(np.array([rows[0].geo_lat]), np.array([rows[0].geo_lon]),
                     np.array([rows[1].geo_lat]), np.array([rows[1].geo_lon]))
    assert float(d[0]) == 0.0
