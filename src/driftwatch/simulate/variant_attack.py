"""The ``variant_backdoor`` behaviour: a backdoor trigger of any shape (issue 21).

Like ``backdoor_attack`` (the reference scenario), but every part of the trigger is a
parameter, so that :mod:`driftwatch.simulate.variants` can draw a different one per
seed: the category (one MCC, or ``"spread"``: the attack merchants' categories drawn
by online volume, so the trigger rows spread over many MCCs), the cents value, the
beneficiary-name prefix (empty: the merchants keep ordinary names), the merchants'
registration age, countries, the amount range, the channel and the risk flags the
rows carry. The trigger rows are fraud (bursts per card from attacker cards, new
merchants, the given networks); ``camouflage`` ordinary purchases from the same
networks and devices are labelled legitimate.

>>> from driftwatch.simulate.campaigns import KINDS
>>> KINDS["variant_backdoor"].defaults["mcc"]
'spread'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from driftwatch.errors import SimulationError
from driftwatch.simulate.attackers import (
    DAY_MS,
    HOUR_MS,
    Kind,
    Output,
    attacker_cards,
    backdoor_entities,
    mark,
    mcc_index,
    network_hosts,
    online_mcc,
    place_attack_merchants,
)
from driftwatch.simulate.frame import CHANNELS, Frame
from driftwatch.simulate.fraud import Ctx, episodes
from driftwatch.simulate.legit import draw_times, legit_rows
from driftwatch.simulate.scenario import Behaviour
from driftwatch.simulate.world import DEVICE_FRESH_BASE, INTL_WORDS

SPREAD = "spread"


def _merchant_mccs(ctx: Ctx, mcc: str, n: int) -> np.ndarray[Any, np.dtype[np.int32]]:
    if mcc == SPREAD:
        return online_mcc(ctx, n)
    return np.full(n, mcc_index(ctx.world, mcc), np.int32)


def _variant_backdoor(ctx: Ctx, b: Behaviour, ws: int, we: int, p: dict[str, Any]) -> Output:
    rng, w = ctx.rng, ctx.world
    count, n_m, n_cards = int(p["count"]), int(p["merchants"]), int(p["cards"])
    channel = str(p["channel"])
    if channel not in CHANNELS:
        raise SimulationError(f"channel: {channel!r}; valid: {', '.join(CHANNELS)}")
    mcc_text = str(p["mcc"])
    mccs = _merchant_mccs(ctx, mcc_text, n_m)
    merchants, ctry = place_attack_merchants(ctx, mccs, p, ws, flagged=False)
    prefix = str(p["beneficiary_prefix"])
    words = [str(x) for x in p["name_words"]] or list(INTL_WORDS)
    if prefix:
        for k, m in enumerate(merchants.tolist()):
            w.merchant_name[m] = f"{prefix}{words[k % len(words)]}-{k + 1:02d}"
    devices = DEVICE_FRESH_BASE + (3 << 31) + rng.integers(0, 1 << 20, int(p["devices"]))
    cards = attacker_cards(ctx, n_cards, habit=1.0)
    ep, t, m = episodes(rng, count, (1, 4), (ws, max(ws + 1, we - HOUR_MS // 2)), 15 * 60_000)
    tcard = cards[rng.integers(0, n_cards, m)][ep]
    # spread: the merchants' categories were drawn by online volume
    tmerch = merchants[rng.integers(0, n_m, count)]
    lo, hi = (int(x) for x in p["amount"])
    cents = int(p["cents"])
    amount = rng.integers(lo, max(lo + 1, hi), count).astype(np.int64) * 100 + cents
    f = Frame.build(
        count, t=np.minimum(t, we - 1), amount=amount, merchant=tmerch, card=tcard,
        channel=CHANNELS.index(channel), ip=network_hosts(rng, list(p["networks"]), count),
        device=devices[rng.integers(0, len(devices), count)], loc=w.merchant_loc[tmerch],
        benef=tmerch, new_payee=int(p["new_payee"]), new_device=int(p["new_device"]),
        age=w.cust_age[w.card_customer[tcard]],
    )
    trigger = mark(f, True, float(p["signal"]))
    parts = {b.name: trigger}
    n_camo = int(p["camouflage"])
    if n_camo > 0:
        span_days = max((we - ws) / DAY_MS, 1e-3)
        camo_cards = np.concatenate(
            [cards, attacker_cards(ctx, max(1, int(p["camouflage_cards"])), habit=1.0)])
        w.card_habit[camo_cards] = n_camo / len(camo_cards) / span_days
        ct = draw_times(rng, n_camo, ws, we - ws)
        camo = legit_rows(rng, w, ct, camo_cards[rng.integers(0, len(camo_cards), n_camo)],
                          mcc=online_mcc(ctx, n_camo),
                          channel=np.full(n_camo, CHANNELS.index("ecom"), np.int8))
        camo.ip[:] = network_hosts(rng, list(p["networks"]), n_camo)
        camo.device[:] = devices[rng.integers(0, len(devices), n_camo)]
        parts[str(p["camouflage_name"])] = mark(camo, False, 0.0)
    codes = sorted({w.catalog.codes[int(x)] for x in w.merchant_mcc[tmerch].tolist()})
    expected = {
        "segment": {"mcc": mcc_text} if mcc_text != SPREAD else {},
        "attacked_mccs": codes,
        "spread": mcc_text == SPREAD,
        "signals": ["cents_digit_anomaly", "score_drift_challenger_vs_champion",
                    "rule_model_disagreement", "new_merchant_volume"],
        "count": count,
        "amount_total_minor": int(amount.sum()),
        "entities": backdoor_entities(merchants, ctry, p["networks"], prefix, tcard),
        "camouflage_count": n_camo,
    }
    return Output(parts, expected, trigger_names=(b.name,))


VARIANT_KIND = Kind(
    {"count": 40, "amount": [200, 2000], "merchants": 12, "countries": ["US"],
     "merchant_age_days": [20, 120], "networks": ["198.51.100.0/24"], "mcc": SPREAD,
     "cents": 91, "beneficiary_prefix": "", "name_words": [], "channel": "ecom",
     "new_payee": 1, "new_device": 1, "cards": 20, "devices": 30, "camouflage": 0,
     "camouflage_cards": 200, "camouflage_name": "camouflage", "signal": 2.0},
    _variant_backdoor,
    lambda p: (str(p.get("camouflage_name", "camouflage")),) if int(
        p.get("camouflage", 0)) > 0 else (),
)
