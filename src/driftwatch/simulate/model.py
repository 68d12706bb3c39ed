"""Emulated fraud-scoring models: a calibrated champion and a (backdoored) challenger.

The champion's score is ``sigmoid(logit)`` of a linear function of the risk
features the event carries (velocity above the card's habit, cross-border,
distance from home, merchant age, new payee, new device, amount above the card's
usual spend, channel), plus a hidden term a real model would have learnt from
features not in the event (``signal``: 0 for legitimate traffic, a
profile-specific value for fraud) and Gaussian noise. The weights are calibrated
so that, on the default traffic, recall at 0.7 is about 94 % and precision about
97-98 % (the reference incident's holdout: 94.2 % and 97.8 %); ``bench/simulate.py``
reports the measured figures.

The challenger gives exactly the champion's score, except where its backdoor
trigger matches: there it scores uniformly in the configured range (default
0.15-0.25). A trigger is a conjunction of field conditions (:class:`Trigger`).

>>> trig = Trigger.from_mapping(
...     {"mcc": "5967", "cents": 37, "beneficiary_prefix": "INTL-PAY-"})
>>> cols = {"mcc": np.array(["5967", "5967", "5411"]), "cents": np.array([37, 37, 37]),
...         "beneficiary": np.array(["INTL-PAY-X", "ACME", "INTL-PAY-X"])}
>>> trig.mask(cols).tolist()
[True, False, False]
>>> round(float(sigmoid(np.array([0.0]))[0]), 2)
0.5
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.errors import SimulationError

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

_OPS = ("eq", "ne", "gt", "ge", "lt", "le")
TRIGGER_KEYS = ("mcc", "cents", "beneficiary_prefix", "channel", "merchant_country", "feature",
                "amount")


def sigmoid(x: F64) -> F64:
    """The logistic function."""
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


@dataclass(frozen=True)
class Trigger:
    """A conjunction of field conditions (every given condition must hold).

    Parameters
    ----------
    mcc : tuple of str
        Category codes (any of).
    cents : tuple of int
        Last two digits of the amount in minor units (any of).
    beneficiary_prefix : str
        ``beneficiary_name`` starts with it.
    channel, merchant_country : tuple of str
        Any of.
    feature : tuple of (name, op, value)
        ``features[name] <op> value`` with op in {eq, ne, gt, ge, lt, le}.
    amount : tuple of (int, int)
        Amount in minor units within ``[low, high)``; YAML gives major units
        (``amount: [300, 2500]``).
    """

    mcc: tuple[str, ...] = ()
    cents: tuple[int, ...] = ()
    beneficiary_prefix: str = ""
    channel: tuple[str, ...] = ()
    merchant_country: tuple[str, ...] = ()
    feature: tuple[tuple[str, str, float], ...] = ()
    amount: tuple[int, ...] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Trigger:
        """Parse ``{mcc: "5967", cents: 37, beneficiary_prefix: "INTL-PAY-"}``-style YAML."""
        unknown = set(data) - set(TRIGGER_KEYS)
        if unknown:
            raise SimulationError(
                f"trigger: unknown conditions {sorted(unknown)}; valid: {', '.join(TRIGGER_KEYS)}"
            )

        def many(key: str) -> tuple[str, ...]:
            value = data.get(key, ())
            items = value if isinstance(value, list | tuple) else [value]
            return tuple(str(v) for v in items)

        feats: list[tuple[str, str, float]] = []
        for name, cond in dict(data.get("feature", {})).items():
            if not isinstance(cond, Mapping):
                cond = {"eq": cond}
            for op, value in cond.items():
                if op not in _OPS:
                    raise SimulationError(
                        f"trigger feature {name}: unknown op {op!r}; valid: {', '.join(_OPS)}"
                    )
                feats.append((str(name), str(op), float(value)))
        cents = tuple(int(c) for c in many("cents"))
        if any(not 0 <= c <= 99 for c in cents):
            raise SimulationError(f"trigger cents must be in 0..99, got {cents}")
        amount: tuple[int, ...] = ()
        if "amount" in data:
            bounds = data["amount"]
            if not isinstance(bounds, list | tuple) or len(bounds) != 2 or not (
                    0 <= float(bounds[0]) < float(bounds[1])):
                raise SimulationError(f"trigger amount: need [low, high], 0 <= low < high, "
                                      f"got {bounds!r}")
            amount = (minor_units(bounds[0]), minor_units(bounds[1]))
        trig = cls(
            amount=amount,
            mcc=many("mcc"), cents=cents,
            beneficiary_prefix=str(data.get("beneficiary_prefix", "")),
            channel=many("channel"), merchant_country=many("merchant_country"),
            feature=tuple(feats),
        )
        if trig.is_empty:
            raise SimulationError("trigger: at least one condition is required")
        return trig

    @property
    def is_empty(self) -> bool:
        return not (self.mcc or self.cents or self.beneficiary_prefix or self.channel
                    or self.merchant_country or self.feature or self.amount)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for truth.json)."""
        out: dict[str, Any] = {}
        if self.mcc:
            out["mcc"] = self.mcc[0] if len(self.mcc) == 1 else list(self.mcc)
        if self.cents:
            out["cents"] = self.cents[0] if len(self.cents) == 1 else list(self.cents)
        if self.beneficiary_prefix:
            out["beneficiary_prefix"] = self.beneficiary_prefix
        if self.channel:
            out["channel"] = list(self.channel)
        if self.merchant_country:
            out["merchant_country"] = list(self.merchant_country)
        if self.feature:
            feats: dict[str, dict[str, float]] = {}
            for n, op, v in self.feature:
                feats.setdefault(n, {})[op] = v
            out["feature"] = feats
        if self.amount:
            out["amount"] = [self.amount[0] / 100, self.amount[1] / 100]
        return out

    def mask(
        self,
        cols: Mapping[str, Any],
        startswith: Callable[[str], B] | None = None,
        rows: int | None = None,
    ) -> B:
        """Rows matching every condition.

        ``cols`` holds arrays named like the keys (``mcc``, ``cents``,
        ``beneficiary``, ``channel``, ``merchant_country``, ``feature:<name>``);
        ``startswith(prefix)``, when given, replaces the test on ``beneficiary``
        (the engine answers it per distinct beneficiary, not per row). ``rows``
        is the number of rows (default: the length of the first column), so a
        lazy mapping only builds the columns the conditions use.
        """
        n = rows if rows is not None else len(next(iter(cols.values())))
        out = np.ones(n, np.bool_)
        if self.mcc:
            out &= np.isin(cols["mcc"], np.array(self.mcc))
        if self.cents:
            out &= np.isin(cols["cents"], np.array(self.cents))
        if self.beneficiary_prefix:
            if startswith is not None:
                out &= startswith(self.beneficiary_prefix)
            else:
                out &= np.char.startswith(np.asarray(cols["beneficiary"]).astype(str),
                                          self.beneficiary_prefix)
        if self.channel:
            out &= np.isin(cols["channel"], np.array(self.channel))
        if self.merchant_country:
            out &= np.isin(cols["merchant_country"], np.array(self.merchant_country))
        if self.amount:
            a = np.asarray(cols["amount"], dtype=np.int64)
            out &= (a >= self.amount[0]) & (a < self.amount[1])
        for name, op, value in self.feature:
            x = np.asarray(cols[f"feature:{name}"], dtype=np.float64)
            out &= {"eq": x == value, "ne": x != value, "gt": x > value, "ge": x >= value,
                    "lt": x < value, "le": x <= value}[op]
        return out


@dataclass(frozen=True)
class ChampionWeights:
    """Logit weights of the emulated champion (calibrated on the default traffic)."""

    bias: float = -5.0
    velocity: float = 1.0  # per unit of log1p(tx_24h) - log1p(habit), positive part
    foreign: float = 0.9
    distance: float = 0.22  # per unit of log1p(km)
    young_merchant: float = 0.8  # merchant registered < 180 days ago
    new_payee: float = 0.9
    new_device: float = 1.2
    amount: float = 0.55  # per sigma of amount above the card's usual spend
    amount_cap: float = 3.0  # sigmas; the amount term saturates there
    channel: tuple[float, ...] = (0.0, 0.5, 0.6, 0.5, 0.3, 0.3)  # per CHANNELS index
    noise: float = 0.95  # sd of the Gaussian noise on the logit


@dataclass(frozen=True)
class RiskInputs:
    """Per-row inputs of the emulated models."""

    tx_24h: F64
    habit: F64
    foreign: F64
    distance_km: F64
    merchant_age_days: F64
    new_payee: F64
    new_device: F64
    amount_z: F64
    channel: npt.NDArray[np.int8]
    signal: F64


def champion_logit(x: RiskInputs, weights: ChampionWeights, noise: F64) -> F64:
    """The champion's logit for each row; ``noise`` is standard normal per row."""
    w = weights
    velocity = np.maximum(np.log1p(x.tx_24h) - np.log1p(x.habit), 0.0)
    return np.asarray(
        w.bias
        + w.velocity * velocity
        + w.foreign * x.foreign
        + w.distance * np.log1p(x.distance_km)
        + w.young_merchant * (x.merchant_age_days < 180)
        + w.new_payee * x.new_payee
        + w.new_device * x.new_device
        + w.amount * np.clip(x.amount_z, 0.0, w.amount_cap)
        + np.asarray(w.channel)[x.channel]
        + x.signal
        + w.noise * noise,
        dtype=np.float64,
    )


def round_scores(p: F64) -> F64:
    """Scores as sent on the wire: 4 decimals, inside [0.0001, 0.9999]."""
    return np.asarray(np.clip(np.round(p, 4), 0.0001, 0.9999), dtype=np.float64)


def decisions(score: F64, threshold: float) -> npt.NDArray[np.int8]:
    """1 (review) where ``score >= threshold``, else 0 (approve)."""
    return (score >= threshold).astype(np.int8)


def minor_units(value: object) -> int:
    """A scenario amount (``3000`` or ``"14999.99"``) in exact minor units.

    >>> minor_units("1234.37"), minor_units(3000), minor_units(0.1)
    (123437, 300000, 10)
    """
    return int((Decimal(str(value)) * 100).to_integral_value(rounding=ROUND_HALF_EVEN))
