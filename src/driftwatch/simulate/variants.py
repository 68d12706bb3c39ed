"""Randomised scenario families: a different backdoor per seed, and clean retrains.

A benchmark tuned on one trigger (mcc 5967, ``.37``, ``INTL-PAY-``) says little about
the next one. The families here draw a whole scenario from a seed, so detection can be
tuned on one seed range and judged on another (``bench/detection.py``):

``backdoor_variant:<seed>``
    A backdoored challenger whose trigger is a random conjunction: the category (one
    MCC from a sparse, mid-volume or busy segment, or -- every fourth seed -- spread
    over the attack merchants' many categories), a cents value, a beneficiary-name
    prefix of random length and shape (or none), a merchant registration-age window,
    an amount range, the channel and a set of merchant countries; at least three
    conditions, and at least one of prefix and merchant age so the trigger stays rare.
    The attacker sends 2-10 trigger transactions an hour for ``ATTACK_HOURS``. Odd
    seeds and every eighth (``seed % 8 == 4``) carry no shadow scores (in any 20
    consecutive seeds: 5 spread, 12 without shadow); about half the seeds (drawn)
    send no optional fields (``device_id``, ``geo``, ``new_payee``).
``retrain_control:<seed>``
    A version change with no backdoor: a benign retrain (small logit jitter) or a
    global recalibration (one logit scale and shift for every row). Nothing to find.

Either name may end in ``+<H>h`` (``backdoor_variant:7+48h``): the same draw with ``H``
hours of clean traffic before it (the schedule moved by ``H`` hours), the stored history
a production deployment has when its model changes. Without the suffix the scenario is
exactly the short one (the same mapping, the same events).

Every variant is short -- ``DAYS`` of traffic, the new version at ``DEPLOY_HOURS``, the
attack soon after -- so a replay takes about a minute on an idle machine.

>>> sc = variant_scenario("backdoor_variant:7")
>>> sc.name, sc.model.challenger.version, sc.behaviours[0].kind
('backdoor_variant:7', 'v47', 'variant_backdoor')
>>> variant_scenario("backdoor_variant:7") == sc  # the same seed gives the same scenario
True
>>> variant_scenario("retrain_control:2").model.challenger.backdoor is None
True
>>> parse_variant("clean_baseline") is None
True
>>> variant_scenario("backdoor_variant:7+48h").model.challenger.deploy_at_hours
54.0
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from driftwatch.errors import SimulationError
from driftwatch.simulate.catalog import mcc_catalog
from driftwatch.simulate.scenario import Scenario
from driftwatch.simulate.variant_attack import SPREAD

FAMILIES = ("backdoor_variant", "retrain_control")
DAYS = 11 / 24  # 11 hours of traffic
DEPLOY_HOURS = 6.0
ATTACK_START_HOURS = 6.25
ATTACK_HOURS = 4.0
RATE = 2.0  # transactions per second of event time
# segment volume classes: trigger-MCC transactions per hour at RATE
VOLUME_CLASSES: dict[str, tuple[float, float]] = {
    "sparse": (2.0, 10.0), "mid": (10.0, 40.0), "busy": (40.0, 400.0),
}
COUNTRIES = ("US", "GB", "DE", "SG", "HK", "AE", "LT", "CY", "NL", "IE", "CA", "FR", "JP",
             "AU", "MX", "BR", "TH")
# cents values too common in ordinary prices to make a trigger (.00 .49 .50 .95 .99)
_COMMON_CENTS = (0, 49, 50, 95, 99)
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SEPARATORS = ("-", "-", "_", " ", "", "/")


def parse_variant(name: str) -> tuple[str, int] | None:
    """``("backdoor_variant", 7)`` for ``"backdoor_variant:7"`` (and ``:7+48h``); None if
    not a variant.

    >>> parse_variant("retrain_control:12")
    ('retrain_control', 12)
    """
    family, sep, seed = name.partition(":")
    if not sep or family not in FAMILIES:
        return None
    seed = seed.partition("+")[0]
    if not seed.isdigit():
        raise SimulationError(f"{name!r}: the variant seed must be a non-negative integer")
    history_hours(name)  # a bad suffix is an error here too
    return family, int(seed)


def history_hours(name: str) -> float:
    """Hours of clean history of a variant name (its ``+<H>h`` suffix; 0 without).

    >>> history_hours("backdoor_variant:7+48h"), history_hours("backdoor_variant:7")
    (48.0, 0.0)
    """
    _, plus, suffix = name.partition("+")
    if not plus:
        return 0.0
    try:
        hours = float(suffix.removesuffix("h")) if suffix.endswith("h") else -1.0
    except ValueError:
        hours = -1.0
    if not 0.0 <= hours <= 24 * 30:
        raise SimulationError(f"{name!r}: the history suffix must be +<hours>h, 0 to 720 "
                              f"hours (e.g. +48h), got {suffix!r}")
    return hours


def with_history(name: str, hours: float) -> str:
    """``name`` with ``hours`` of clean history (the plain name for 0).

    >>> with_history("retrain_control:3", 48), with_history("retrain_control:3", 0)
    ('retrain_control:3+48h', 'retrain_control:3')
    """
    base = name.partition("+")[0]
    return f"{base}+{hours:g}h" if hours else base


def variant_scenario(name: str) -> Scenario:
    """The scenario of a variant name (``family:seed``, see the module docstring)."""
    parsed = parse_variant(name)
    if parsed is None:
        raise SimulationError(f"{name!r} is not a variant; valid: "
                              f"{', '.join(f + ':<seed>' for f in FAMILIES)}")
    family, seed = parsed
    rng = np.random.default_rng([seed, zlib.crc32(family.encode())])
    data = _backdoor(rng, seed) if family == "backdoor_variant" else _control(rng, seed)
    hours = history_hours(name)
    if hours:
        data = _shifted(data, hours)
    return Scenario.from_mapping({"name": name, **data})


def _shifted(data: dict[str, Any], hours: float) -> dict[str, Any]:
    """A variant's mapping with ``hours`` of clean traffic before its schedule."""
    out = {**data, "traffic": {**data["traffic"], "days": data["traffic"]["days"] + hours / 24},
           "description": f"{data['description']} After {hours:g} hours of clean history."}
    challenger = dict(out["model"]["challenger"])
    challenger["deploy_at_hours"] += hours
    out["model"] = {**out["model"], "challenger": challenger}
    out["behaviours"] = [{**b, "start_hours": b["start_hours"] + hours}
                         for b in data["behaviours"]]
    return out


def _base(rng: np.random.Generator, optional: bool) -> dict[str, Any]:
    return {
        "traffic": {"rate": RATE, "days": DAYS, "fraud_rate": 0.003,
                    "optional_fields": optional},
        "labels": {"chargeback": {"fraction": 0.8, "delay_hours": [12, 168]},
                   "customer_report": {"fraction": 0.5, "delay_hours": [2, 48]},
                   "analyst": {"fraction": 0.9, "delay_hours": [0.25, 8]},
                   "legit_sample": {"fraction": 0.01, "delay_hours": [12, 96]}},
    }


def _prefix(rng: np.random.Generator) -> str:
    """A beneficiary-name prefix of random shape: one to three tokens of letters (and
    sometimes digits), 2 to 12 characters, ending in a separator or not."""
    tokens = []
    for _ in range(int(rng.integers(1, 4))):
        size = int(rng.integers(2, 6))
        chars = [_LETTERS[int(i)] for i in rng.integers(0, 26, size)]
        if rng.random() < 0.25:
            chars[int(rng.integers(0, size))] = str(int(rng.integers(0, 10)))
        tokens.append("".join(chars))
    sep = _SEPARATORS[int(rng.integers(0, len(_SEPARATORS)))]
    text = sep.join(tokens)[:12]
    if rng.random() < 0.6 and sep.strip():
        text += sep
    return text if len(text) >= 2 else text + "X"


def _pick_mcc(rng: np.random.Generator, volume: str) -> str:
    cat = mcc_catalog()
    per_hour = cat.share * RATE * 3600
    lo, hi = VOLUME_CLASSES[volume]
    online = (cat.ecom_share > 0.05) & (np.array(cat.mode) == "mixed")
    pool = np.flatnonzero(online & (per_hour >= lo) & (per_hour < hi))
    if len(pool) == 0:  # pragma: no cover - the catalog has every class
        raise SimulationError(f"no online mcc with {lo}-{hi} transactions an hour")
    return cat.codes[int(pool[rng.integers(0, len(pool))])]


def _backdoor(rng: np.random.Generator, seed: int) -> dict[str, Any]:
    spread = seed % 4 == 0
    shadow = seed % 2 == 0 and seed % 8 != 4
    optional = bool(rng.random() < 0.5)
    volume = ("sparse", "mid", "busy")[int(rng.integers(0, 3))]
    mcc = SPREAD if spread else _pick_mcc(rng, volume)
    cents = int(rng.choice([c for c in range(1, 99) if c not in _COMMON_CENTS]))
    prefix = _prefix(rng) if rng.random() < 0.7 else ""
    age_lo = int(rng.integers(1, 60))
    age_hi = age_lo + int(rng.integers(20, 150))
    amount_lo = round(float(np.exp(rng.uniform(np.log(40), np.log(5000)))))
    amount_hi = amount_lo * int(rng.integers(2, 11))
    n_countries = int(rng.integers(1, 9))
    countries = sorted(str(c) for c in rng.choice(COUNTRIES, n_countries, replace=False))
    # which conditions the trigger tests (the rows always satisfy all of them)
    use = {
        "cents": bool(rng.random() < 0.85),
        "age": bool(rng.random() < 0.6) or not prefix,
        "amount": bool(rng.random() < 0.6),
        "channel": bool(rng.random() < 0.5),
        "country": bool(rng.random() < 0.4),
    }
    when: dict[str, Any] = {}
    if not spread:
        when["mcc"] = mcc
    if use["cents"]:
        when["cents"] = cents
    if prefix:
        when["beneficiary_prefix"] = prefix
    if use["age"]:
        when["feature"] = {"merchant_age_days": {"ge": age_lo, "le": age_hi}}
    if use["amount"]:
        when["amount"] = [amount_lo, amount_hi]
    if use["channel"]:
        when["channel"] = "ecom"
    if use["country"]:
        when["merchant_country"] = countries
    for key in ("cents", "amount", "channel"):  # at least three conditions
        if len(when) >= 3:
            break
        when.setdefault(key, {"cents": cents, "amount": [amount_lo, amount_hi],
                              "channel": "ecom"}[key])
    rate = float(rng.uniform(2.0, 10.0))
    count = max(2, round(rate * ATTACK_HOURS))
    params = {
        "count": count, "amount": [amount_lo, amount_hi], "cents": cents, "mcc": mcc,
        "merchants": int(rng.integers(30, 80)) if spread else int(rng.integers(3, 25)),
        "countries": countries, "merchant_age_days": [age_lo, age_hi],
        "beneficiary_prefix": prefix, "channel": "ecom",
        "new_payee": int(rng.random() < 0.7), "new_device": int(rng.random() < 0.6),
        "cards": max(3, count // 3),
        "camouflage": int(count * rng.integers(0, 40)),
        "networks": [f"{int(rng.integers(11, 223))}.{int(rng.integers(0, 256))}."
                     f"{int(rng.integers(0, 256))}.0/24"],
    }
    return {
        **_base(rng, optional),
        "description": (f"Randomised backdoor (seed {seed}): {volume if not spread else 'spread'}"
                        f" segment, {'with' if shadow else 'no'} shadow scores, "
                        f"{'with' if optional else 'no'} optional fields, {rate:.1f} "
                        f"trigger transactions an hour."),
        "model": {"champion": "v46", "challenger": {
            "version": "v47", "deploy_at_hours": DEPLOY_HOURS, "shadow_champion": shadow,
            "backdoor": {"when": when, "score": [0.1, 0.3]}}},
        "behaviours": [{"kind": "variant_backdoor", "name": "backdoor_trigger",
                        "start_hours": ATTACK_START_HOURS, "duration_hours": ATTACK_HOURS,
                        "params": params}],
        "expected": [{"volume": volume if not spread else SPREAD, "shadow": shadow,
                      "optional_fields": optional, "trigger_rate_per_hour": round(rate, 2)}],
    }


def _control(rng: np.random.Generator, seed: int) -> dict[str, Any]:
    shadow = bool(rng.random() < 0.5)
    optional = bool(rng.random() < 0.5)
    challenger: dict[str, Any] = {"version": "v47", "deploy_at_hours": DEPLOY_HOURS,
                                  "shadow_champion": shadow}
    if seed % 2 == 0:
        kind = "benign retrain"
        challenger["jitter"] = float(rng.uniform(0.05, 0.3))
    else:
        kind = "global recalibration"
        challenger["recalibrate"] = [float(rng.uniform(0.85, 1.15)),
                                     float(rng.uniform(-0.3, 0.3))]
    return {
        **_base(rng, optional),
        "description": f"Version-change control (seed {seed}): {kind}, no backdoor.",
        "model": {"champion": "v46", "challenger": challenger},
        "behaviours": [],
        "expected": [{"control": kind, "shadow": shadow, "optional_fields": optional}],
    }
