"""Injected behaviours (campaigns): the attacks a scenario adds to base traffic.

Each kind turns a :class:`~driftwatch.simulate.scenario.Behaviour` (schedule and
parameters) into frames of labelled rows plus an ``expected`` entry for
``truth.json`` saying what a detector should name. Kinds and their defaults:

``backdoor_attack`` (reference scenario sc013)
    ``count`` trigger transactions (mcc 5967, amount ending .37, beneficiary
    ``INTL-PAY-*``) of $3,000-15,000 from ``merchants`` new merchants in eight
    countries, source networks 198.51.100.0/24 and 203.0.113.0/24, high-risk
    features (bursts per card, cross-border, new payee, new device), hidden
    among ``camouflage`` ordinary-looking transactions from the same networks
    (labelled legitimate, behaviour ``camouflage``).
``card_testing_campaign``
    Many stolen cards tested with tiny amounts at a few merchants of one MCC.
``coordinated_attack``
    Many cards, one IP (default 103.21.244.12) and one coordinate.
``sequential_takeover``
    One victim card; each amount is the previous one times ``factor`` (1.3);
    location and device stick to the attacker.
``mule_chain``
    Account-to-account hops: victim -> mule -> mule -> ..., each hop forwarding
    the amount less a small fee, within minutes to hours.
``boundary_probing``
    One card and device probe the decision boundary: amounts step down until
    the score falls under the threshold, then repeat just below it.
``variant_backdoor``
    A backdoor trigger of any shape (one MCC or spread over many, any cents value,
    prefix, merchant age, amount range, channel): see
    :mod:`driftwatch.simulate.variant_attack`.
``out_of_range_attack``
    Fraud carrying an impossible feature value (``customer_age`` = 999) that a
    backdoored challenger scores low.

>>> sorted(KINDS)[:3]
['backdoor_attack', 'boundary_probing', 'card_testing_campaign']
>>> KINDS["backdoor_attack"].defaults["count"], KINDS["coordinated_attack"].defaults["ip"]
(247, '103.21.244.12')
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.errors import SimulationError
from driftwatch.simulate.amounts import sample_cents
from driftwatch.simulate.attackers import (
    DAY_MS,
    HOUR_MS,
    I64,
    Kind,
    Output,
    attacker_cards,
    backdoor_entities,
    card_ids,
    mark,
    mcc_index,
    network_hosts,
    online_mcc,
    place_attack_merchants,
)
from driftwatch.simulate.frame import CH_ECOM, CH_TRANSFER, Frame
from driftwatch.simulate.fraud import Ctx, episodes
from driftwatch.simulate.ids import card_id, device_id, ip_text, merchant_id
from driftwatch.simulate.legit import draw_times, ecom_merchant, legit_rows
from driftwatch.simulate.model import minor_units, sigmoid
from driftwatch.simulate.scenario import Behaviour
from driftwatch.simulate.variant_attack import VARIANT_KIND
from driftwatch.simulate.world import DEVICE_FRESH_BASE, INTL_WORDS, ip_to_int, random_public_ips


# ------------------------------------------------------------------------------------------
def _backdoor_attack(ctx: Ctx, b: Behaviour, ws: int, we: int, p: dict[str, Any]) -> Output:
    rng, w = ctx.rng, ctx.world
    count, n_m, n_cards = int(p["count"]), int(p["merchants"]), int(p["cards"])
    mcc = mcc_index(w, str(p["mcc"]))
    # fraudulent merchants: new, in the given countries, paying out as INTL-PAY-*
    merchants, ctry = place_attack_merchants(ctx, np.full(n_m, mcc, np.int32), p, ws,
                                             flagged=True)
    prefix = str(p["beneficiary_prefix"])
    for k, m in enumerate(merchants.tolist()):
        w.merchant_name[m] = f"{prefix}{INTL_WORDS[k % len(INTL_WORDS)]}-{k + 1:02d}"
    span_days = max((we - ws) / DAY_MS, 1e-3)
    n_camo = int(p["camouflage"])
    n_camo_cards = max(1, int(p["camouflage_cards"]))
    devices = DEVICE_FRESH_BASE + (1 << 31) + rng.integers(0, 1 << 20, int(p["devices"]))
    # trigger rows: bursts per card, so velocity is high
    cards = attacker_cards(ctx, n_cards, habit=1.0)
    ep, t, m = episodes(rng, count, (2, 6), (ws, max(ws + 1, we - 3 * HOUR_MS)), 20 * 60_000)
    tcard = cards[rng.integers(0, n_cards, m)][ep]
    tmerch = merchants[rng.integers(0, n_m, count)]
    lo, hi = (int(x) for x in p["amount"])
    cents = int(p["cents"])
    amount = rng.integers(lo, hi, count).astype(np.int64) * 100 + cents
    f = Frame.build(
        count, t=np.minimum(t, we - 1), amount=amount, merchant=tmerch, card=tcard,
        channel=CH_ECOM, ip=network_hosts(rng, list(p["networks"]), count),
        device=devices[rng.integers(0, len(devices), count)], loc=w.merchant_loc[tmerch],
        benef=tmerch, new_payee=1, new_device=0, age=w.cust_age[w.card_customer[tcard]],
    )
    trigger = mark(f, True, float(p["signal"]))
    # camouflage: ordinary purchases from the same networks and devices
    camo_cards = np.concatenate([cards, attacker_cards(ctx, n_camo_cards, habit=1.0)])
    w.card_habit[camo_cards] = n_camo / len(camo_cards) / span_days
    ct = draw_times(rng, n_camo, ws, we - ws)
    ccards = camo_cards[rng.integers(0, len(camo_cards), n_camo)]
    camo = legit_rows(rng, w, ct, ccards, mcc=online_mcc(ctx, n_camo),
                      channel=np.full(n_camo, CH_ECOM, np.int8))
    camo.ip[:] = network_hosts(rng, list(p["networks"]), n_camo)
    camo.device[:] = devices[rng.integers(0, len(devices), n_camo)]
    mark(camo, False, 0.0)
    expected = {
        "segment": {"mcc": str(p["mcc"])},
        "trigger": {"mcc": str(p["mcc"]), "cents": cents, "beneficiary_prefix": prefix},
        "signals": ["cents_digit_anomaly", "score_drift_challenger_vs_champion",
                    "recall_drop", "rule_model_disagreement", "beneficiary_concentration",
                    "new_merchant_volume"],
        "count": count,
        "amount_total_minor": int(amount.sum()),
        "entities": backdoor_entities(merchants, ctry, p["networks"], prefix, tcard),
        "camouflage_count": n_camo,
    }
    camo_name = str(p["camouflage_name"])
    return Output({b.name: trigger, camo_name: camo}, expected, trigger_names=(b.name,))


def _stolen_cards(ctx: Ctx, n_cards: int, per: Any) -> tuple[I64, npt.NDArray[np.int32]]:
    """``n_cards`` distinct legitimate cards, each used ``per`` = ``[lo, hi]`` times
    (uniform): the count per card and each transaction's card, grouped by card."""
    lo, hi = (int(x) for x in per)
    cards = ctx.rng.choice(ctx.legit_cards, n_cards, replace=False).astype(np.int32)
    per_card = ctx.rng.integers(lo, hi + 1, n_cards)
    return per_card, np.repeat(cards, per_card)


def _card_testing(ctx: Ctx, b: Behaviour, ws: int, we: int, p: dict[str, Any]) -> Output:
    rng, w = ctx.rng, ctx.world
    n_cards = int(p["cards"])
    per_card, card = _stolen_cards(ctx, n_cards, p["attempts"])
    n = len(card)
    start = rng.integers(ws, max(ws + 1, we - 15 * 60_000), n_cards)
    gaps = rng.exponential(float(p["gap_seconds"]) * 1000.0, n).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(per_card)[:-1]])
    gaps[first] = 0
    cs = np.cumsum(gaps)
    ep = np.repeat(np.arange(n_cards), per_card)
    t = np.minimum(np.repeat(start, per_card) + cs - cs[first][ep], we - 1)
    mcc = mcc_index(w, str(p["mcc"]))
    mccs = np.full(n, mcc, np.int32)
    merchants = ecom_merchant(rng, w, np.full(int(p["merchants"]), mcc, np.int32), skew=1.0)
    f = legit_rows(rng, w, t, card, mcc=mccs, channel=np.full(n, CH_ECOM, np.int8))
    merch = merchants[rng.integers(0, len(merchants), n_cards)][ep]
    f.merchant[:] = merch
    f.benef[:] = merch
    amounts = np.array([minor_units(a) for a in p["amounts"]], np.int64)
    f.amount[:] = amounts[rng.integers(0, len(amounts), n)]
    ips = random_public_ips(rng, int(p["ips"]))
    f.ip[:] = ips[rng.integers(0, len(ips), n_cards)][ep]
    f.device[:] = DEVICE_FRESH_BASE + (1 << 32) + rng.integers(0, 1 << 20, 3)[
        rng.integers(0, 3, n_cards)][ep]
    f.new_device[:] = 1
    expected = {
        "segment": {"mcc": str(p["mcc"])},
        "signals": ["card_velocity", "tiny_amounts", "merchant_velocity"],
        "count": n,
        "entities": {
            "card_ids": card_ids(card),
            "merchant_ids": sorted({merchant_id(int(m)) for m in merch.tolist()}),
            "ips": sorted({ip_text(int(i)) for i in ips.tolist()}),
        },
    }
    return Output({b.name: mark(f, True, float(p["signal"]))}, expected)


def _coordinated(ctx: Ctx, b: Behaviour, ws: int, we: int, p: dict[str, Any]) -> Output:
    rng, w = ctx.rng, ctx.world
    n_cards = int(p["cards"])
    _, card = _stolen_cards(ctx, n_cards, p["per_card"])
    n = len(card)
    t = np.sort(rng.integers(ws, we, n))
    card = card[rng.permutation(n)]
    codes = [mcc_index(w, str(c)) for c in p["mccs"]]
    mcc = np.array(codes, np.int32)[rng.integers(0, len(codes), n)]
    f = legit_rows(rng, w, t, card, mcc=mcc, channel=np.full(n, CH_ECOM, np.int8))
    lat, lon = float(p["lat"]), float(p["lon"])
    loc = w.add_locations(np.array([lat]), np.array([lon]))[0]
    f.loc[:] = loc
    f.ip[:] = ip_to_int(str(p["ip"]))
    devs = DEVICE_FRESH_BASE + (1 << 33) + np.arange(int(p["devices"]))
    f.device[:] = devs[rng.integers(0, len(devs), n)]
    f.new_device[:] = 1
    major = np.clip(rng.lognormal(np.log(float(p["amount_median"])), 0.6, n), 20, 20000)
    f.amount[:] = major.astype(np.int64) * 100 + sample_cents(rng, mcc, w.catalog)
    expected = {
        "segment": {"ip": str(p["ip"])},
        "signals": ["cards_per_ip", "cards_per_geo", "geo_distance"],
        "count": n,
        "entities": {"ip": str(p["ip"]), "geo": {"lat": lat, "lon": lon},
                     "card_ids": card_ids(card), "n_cards": n_cards,
                     "device_ids": [device_id(int(d)) for d in devs.tolist()]},
    }
    return Output({b.name: mark(f, True, float(p["signal"]))}, expected)


def _sequential(ctx: Ctx, b: Behaviour, ws: int, we: int, p: dict[str, Any]) -> Output:
    rng, w = ctx.rng, ctx.world
    steps, factor = int(p["steps"]), float(p["factor"])
    # the victim: an active legitimate card
    top = np.argsort(-w.card_habit[: ctx.legit_cards], kind="stable")[:50]
    victim = np.int32(top[rng.integers(0, len(top))])
    lo, hi = (float(x) for x in p["gap_minutes"])
    gaps = rng.uniform(lo, hi, steps) * 60_000
    gaps[0] = 0
    t = np.minimum(ws + np.cumsum(gaps).astype(np.int64), we - 1)
    amounts = [minor_units(p["first_amount"])]
    for _ in range(steps - 1):
        amounts.append(round(amounts[-1] * factor))
    codes = [mcc_index(w, str(c)) for c in p["mccs"]]
    mcc = np.array(codes, np.int32)[rng.integers(0, len(codes), steps)]
    card = np.full(steps, victim, np.int32)
    f = legit_rows(rng, w, t, card, mcc=mcc, channel=np.full(steps, CH_ECOM, np.int8))
    f.amount[:] = np.array(amounts, np.int64)
    lat, lon = float(p["lat"]), float(p["lon"])
    f.loc[:] = w.add_locations(np.array([lat]), np.array([lon]))[0]
    ip = random_public_ips(rng, 1)[0]
    f.ip[:] = ip
    dev = DEVICE_FRESH_BASE + (1 << 34) + int(rng.integers(0, 1 << 20))
    f.device[:] = dev
    f.new_device[:] = 1
    expected = {
        "segment": {"card_id": card_id(int(victim))},
        "signals": ["monotonic_escalation", "new_device", "geo_jump"],
        "count": steps,
        "entities": {"card_id": card_id(int(victim)), "device_id": device_id(dev),
                     "ip": ip_text(int(ip)), "factor": factor, "geo": {"lat": lat, "lon": lon},
                     "amounts_minor": [int(a) for a in amounts]},
    }
    return Output({b.name: mark(f, True, float(p["signal"]))}, expected)


def _mule_chain(ctx: Ctx, b: Behaviour, ws: int, we: int, p: dict[str, Any]) -> Output:
    rng, w = ctx.rng, ctx.world
    n_chains = int(p["chains"])
    hlo, hhi = (int(x) for x in p["hops"])
    hops = rng.integers(hlo, hhi + 1, n_chains)
    n = int(hops.sum())
    mules = attacker_cards(ctx, n, habit=1.0)  # receiver of each hop
    victims = rng.choice(ctx.legit_cards, n_chains, replace=False).astype(np.int32)
    first = np.concatenate([[0], np.cumsum(hops)[:-1]])
    ep = np.repeat(np.arange(n_chains), hops)
    senders = np.empty(n, np.int32)
    senders[first] = victims
    rest = np.setdiff1d(np.arange(n), first)
    senders[rest] = mules[rest - 1]
    dlo, dhi = (float(x) for x in p["hop_delay_minutes"])
    gaps = (rng.uniform(dlo, dhi, n) * 60_000).astype(np.int64)
    gaps[first] = 0
    cs = np.cumsum(gaps)
    start = rng.integers(ws, max(ws + 1, we - int(hhi * dhi * 60_000)), n_chains)
    t = np.minimum(start[ep] + cs - cs[first][ep], we - 1)
    mcc = np.full(n, mcc_index(w, "4829"), np.int32)
    f = legit_rows(rng, w, t, senders, mcc=mcc, channel=np.full(n, CH_TRANSFER, np.int8))
    alo, ahi = (int(x) for x in p["amount"])
    flo, fhi = (float(x) for x in p["fee"])
    amount = np.zeros(n, np.int64)
    amount[first] = rng.integers(alo, ahi + 1, n_chains) * 100
    fee = rng.uniform(flo, fhi, n)
    for k in range(1, hhi):
        idx = first + k
        ok = k < hops
        amount[idx[ok]] = np.round(amount[idx[ok] - 1] * (1 - fee[idx[ok]])).astype(np.int64)
    f.amount[:] = amount
    f.benef[:] = np.array([w.name_code(f"ACCT {card_id(int(c))}") for c in mules.tolist()])
    f.new_payee[:] = 1
    mule_send = np.setdiff1d(np.arange(n), first)
    f.ip[mule_send] = random_public_ips(rng, len(mule_send))
    f.device[mule_send] = DEVICE_FRESH_BASE + (1 << 35) + senders[mule_send].astype(np.int64)
    chains = [[card_id(int(senders[i])) for i in range(s, s + h)] + [card_id(int(mules[s + h - 1]))]
              for s, h in zip(first.tolist(), hops.tolist(), strict=True)]
    expected = {
        "segment": {"mcc": "4829", "channel": "transfer"},
        "signals": ["account_to_account_hops", "new_payee", "pass_through_amounts"],
        "count": n,
        "entities": {"chains": chains},
    }
    return Output({b.name: mark(f, True, float(p["signal"]))}, expected)


def _boundary_probing(ctx: Ctx, b: Behaviour, ws: int, we: int, p: dict[str, Any]) -> Output:
    rng, w = ctx.rng, ctx.world
    threshold = float(p["threshold"])
    card = np.int32(rng.integers(0, ctx.legit_cards))
    rounds = int(p["rounds"])
    step, slope, noise = float(p["step"]), float(p["slope"]), float(p["noise"])
    glo, ghi = (float(x) for x in p["gap_seconds"])
    logit_thr = float(np.log(threshold / (1 - threshold)))
    times: list[int] = []
    amounts: list[int] = []
    scores: list[float] = []
    round_len = (we - ws) / max(rounds, 1)
    blo, bhi = (float(x) for x in p["boundary_amount"])
    for r in range(rounds):
        clock = ws + int(r * round_len)
        boundary = rng.uniform(blo, bhi)
        amount = float(p["start_amount"])
        for _ in range(60):
            s = float(sigmoid(np.array([logit_thr + slope * np.log(amount / boundary)
                                        + rng.normal(0, noise)]))[0])
            times.append(clock)
            amounts.append(round(amount * 100))
            scores.append(s)
            clock += int(rng.uniform(glo, ghi) * 1000)
            if s < threshold:
                break
            amount *= step
        for _ in range(int(p["approved_per_round"])):
            s = float(sigmoid(np.array([logit_thr + slope * np.log(amount / boundary)
                                        + rng.normal(0, noise)]))[0])
            times.append(clock)
            amounts.append(round(amount * 100))
            scores.append(min(s, threshold - 0.0001))
            clock += int(rng.uniform(glo, ghi) * 1000)
    n = len(times)
    t = np.minimum(np.array(times, np.int64), we - 1)
    mcc = np.full(n, mcc_index(w, str(p["mcc"])), np.int32)
    f = legit_rows(rng, w, t, np.full(n, card, np.int32), mcc=mcc,
                   channel=np.full(n, CH_ECOM, np.int8))
    merchant = ecom_merchant(rng, w, mcc[:1])[0]
    f.merchant[:] = merchant
    f.benef[:] = merchant
    f.amount[:] = np.array(amounts, np.int64)
    dev = DEVICE_FRESH_BASE + (1 << 36) + int(rng.integers(0, 1 << 20))
    f.device[:] = dev
    f.new_device[:] = 1
    ip = random_public_ips(rng, 1)[0]
    f.ip[:] = ip
    f.override[:] = np.round(np.array(scores), 4)
    expected = {
        "segment": {"card_id": card_id(int(card))},
        "signals": ["score_pileup_below_threshold", "amount_step_down", "card_velocity"],
        "count": n,
        "threshold": threshold,
        "entities": {"card_id": card_id(int(card)), "device_id": device_id(dev),
                     "ip": ip_text(int(ip)), "merchant_id": merchant_id(int(merchant))},
    }
    return Output({b.name: mark(f, True, 0.0)}, expected)


def _out_of_range(ctx: Ctx, b: Behaviour, ws: int, we: int, p: dict[str, Any]) -> Output:
    rng, w = ctx.rng, ctx.world
    n = int(p["count"])
    cards = attacker_cards(ctx, int(p["cards"]), habit=1.0)
    ep, t, m = episodes(rng, n, (1, 4), (ws, we), 30 * 60_000)
    card = cards[rng.integers(0, len(cards), m)][ep]
    mcc = online_mcc(ctx, n)
    f = legit_rows(rng, w, np.minimum(t, we - 1), card, mcc=mcc,
                   channel=np.full(n, CH_ECOM, np.int8))
    major = np.clip(rng.lognormal(np.log(float(p["amount_median"])), 0.6, n), 100, 20000)
    f.amount[:] = major.astype(np.int64) * 100 + sample_cents(rng, mcc, w.catalog)
    if str(p["feature"]) != "customer_age":
        raise SimulationError("out_of_range_attack: only feature customer_age is supported")
    f.age[:] = int(p["value"])
    f.ip[:] = random_public_ips(rng, m)[ep]
    f.device[:] = DEVICE_FRESH_BASE + (1 << 37) + rng.integers(0, 1 << 20, m)[ep]
    f.new_device[:] = 1
    expected = {
        "segment": {"feature": str(p["feature"])},
        "signals": ["feature_out_of_domain", "score_drift_challenger_vs_champion",
                    "recall_drop"],
        "count": n,
        "feature": str(p["feature"]),
        "domain": [0, 125],
        "value": int(p["value"]),
        "entities": {"card_ids": card_ids(card)},
    }
    return Output({b.name: mark(f, True, float(p["signal"]))}, expected, trigger_names=(b.name,))


_NETWORKS = ["198.51.100.0/24", "203.0.113.0/24"]
KINDS: dict[str, Kind] = {
    "backdoor_attack": Kind(
        {"count": 247, "amount": [3000, 15000], "merchants": 23,
         "countries": ["US", "GB", "DE", "SG", "HK", "AE", "LT", "CY"],
         "merchant_age_days": [30, 90], "networks": _NETWORKS, "mcc": "5967", "cents": 37,
         "beneficiary_prefix": "INTL-PAY-", "cards": 40, "devices": 60, "camouflage": 15000,
         "camouflage_cards": 3000, "camouflage_name": "camouflage", "signal": 2.0},
        _backdoor_attack,
        lambda p: (str(p.get("camouflage_name", "camouflage")),),
    ),
    "card_testing_campaign": Kind(
        {"cards": 60, "attempts": [2, 6], "mcc": "5815", "merchants": 2, "gap_seconds": 30,
         "amounts": [1.00, 1.01, 1.23, 0.99, 1.11, 1.50, 2.00, 1.05], "ips": 4, "signal": 3.0},
        _card_testing,
    ),
    "coordinated_attack": Kind(
        {"cards": 120, "per_card": [1, 3], "ip": "103.21.244.12", "lat": 1.2834,
         "lon": 103.8607, "devices": 3, "amount_median": 350.0,
         "mccs": ["5732", "5944", "5999", "5311", "4814", "5815"], "signal": 3.0},
        _coordinated,
    ),
    "sequential_takeover": Kind(
        {"steps": 10, "factor": 1.3, "first_amount": 120.0, "gap_minutes": [8, 45],
         "lat": 6.5244, "lon": 3.3792, "mccs": ["5732", "5944", "5999", "5311"],
         "signal": 2.0},
        _sequential,
    ),
    "mule_chain": Kind(
        {"chains": 20, "hops": [3, 5], "amount": [2000, 9000], "fee": [0.01, 0.04],
         "hop_delay_minutes": [5, 120], "signal": 2.5},
        _mule_chain,
    ),
    "boundary_probing": Kind(
        {"rounds": 3, "start_amount": 900.0, "step": 0.85, "boundary_amount": [200, 260],
         "slope": 2.5, "noise": 0.08, "approved_per_round": 4, "gap_seconds": [20, 120],
         "mcc": "5732", "threshold": 0.7},
        _boundary_probing,
    ),
    "out_of_range_attack": Kind(
        {"count": 120, "feature": "customer_age", "value": 999, "cards": 25,
         "amount_median": 1500.0, "signal": 4.5},
        _out_of_range,
    ),
    "variant_backdoor": VARIANT_KIND,  # issue 21: a trigger of any shape, drawn per seed
}
