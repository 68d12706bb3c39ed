"""Scenarios: a base traffic profile, a model setup, label delays and behaviours.

Scenarios are YAML files shipped in ``driftwatch/simulate/scenarios/``; a path
to any other YAML file works too. Unknown keys are errors that list the valid
ones, so a typo never silently falls back to a default.

>>> sc = load_scenario("sc013_backdoor")
>>> sc.name, sc.model.champion, sc.model.challenger.version
('sc013_backdoor', 'v46', 'v47')
>>> sc.model.challenger.backdoor.when.as_dict()
{'mcc': '5967', 'cents': 37, 'beneficiary_prefix': 'INTL-PAY-'}
>>> "clean_baseline" in list_scenarios()
True
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from driftwatch.errors import SimulationError
from driftwatch.simulate.model import Trigger

FRAUD_PROFILES = ("upi_scam", "account_takeover", "card_testing", "card_not_present",
                  "friendly_fraud")
DEFAULT_FRAUD_MIX: dict[str, float] = {
    "upi_scam": 0.15, "account_takeover": 0.25, "card_testing": 0.10,
    "card_not_present": 0.45, "friendly_fraud": 0.05,
}
DEFAULT_START = dt.datetime(2026, 3, 16, tzinfo=dt.UTC)  # a Monday


def _check_keys(where: str, data: Mapping[str, Any], valid: tuple[str, ...]) -> None:
    unknown = set(data) - set(valid)
    if unknown:
        raise SimulationError(f"{where}: unknown keys {sorted(unknown)}; valid: {', '.join(valid)}")


def _mapping(where: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SimulationError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _range(where: str, value: Any, default: tuple[float, float]) -> tuple[float, float]:
    if value is None:
        return default
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise SimulationError(f"{where}: expected [low, high], got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not 0 <= lo <= hi:
        raise SimulationError(f"{where}: need 0 <= low <= high, got {value!r}")
    return lo, hi


def _positive(where: str, value: Any) -> float:
    x = float(value)
    if not x > 0:
        raise SimulationError(f"{where}: must be > 0, got {value!r}")
    return x


def parse_time(value: Any) -> dt.datetime:
    """An aware UTC datetime from a YAML timestamp or an RFC 3339 string."""
    if isinstance(value, dt.datetime):
        out = value
    else:
        try:
            out = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise SimulationError(f"start: not an RFC 3339 time: {value!r}") from None
    if out.tzinfo is None:
        out = out.replace(tzinfo=dt.UTC)
    return out.astimezone(dt.UTC)


@dataclass(frozen=True)
class Traffic:
    """Base traffic profile (legitimate traffic plus ordinary fraud)."""

    rate: float = 2.0  # mean transactions per second of event time
    days: float = 3.0
    start: dt.datetime = DEFAULT_START
    fraud_rate: float = 0.003  # share of base traffic that is ordinary fraud
    fraud_mix: tuple[tuple[str, float], ...] = tuple(DEFAULT_FRAUD_MIX.items())
    customers: int = 0  # 0: derived from the rate (about 1.2 transactions per card-day)
    trip_rate_per_day: float = 0.005
    currency: str = "USD"
    optional_fields: bool = True  # False: events carry no device_id, geo, new_payee

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Traffic:
        keys = ("rate", "days", "start", "fraud_rate", "fraud_mix", "customers",
                "trip_rate_per_day", "currency", "optional_fields")
        _check_keys("traffic", data, keys)
        mix = dict(DEFAULT_FRAUD_MIX)
        given = _mapping("traffic.fraud_mix", data.get("fraud_mix"))
        if given:
            _check_keys("traffic.fraud_mix", given, FRAUD_PROFILES)
            mix = {k: float(given.get(k, 0.0)) for k in FRAUD_PROFILES}
        if sum(mix.values()) <= 0:
            raise SimulationError("traffic.fraud_mix: weights must sum to > 0")
        fraud_rate = float(data.get("fraud_rate", cls.fraud_rate))
        if not 0 <= fraud_rate < 0.5:
            raise SimulationError(f"traffic.fraud_rate: must be in [0, 0.5), got {fraud_rate}")
        currency = str(data.get("currency", cls.currency))
        if len(currency) != 3 or not currency.isupper():
            raise SimulationError(f"traffic.currency: ISO 4217 code expected, got {currency!r}")
        return cls(
            rate=_positive("traffic.rate", data.get("rate", cls.rate)),
            days=_positive("traffic.days", data.get("days", cls.days)),
            start=parse_time(data["start"]) if "start" in data else DEFAULT_START,
            fraud_rate=fraud_rate,
            fraud_mix=tuple(mix.items()),
            customers=int(data.get("customers", 0)),
            trip_rate_per_day=float(data.get("trip_rate_per_day", cls.trip_rate_per_day)),
            currency=currency,
            optional_fields=bool(data.get("optional_fields", True)),
        )


@dataclass(frozen=True)
class Backdoor:
    """The challenger's backdoor: matching rows score uniformly in ``score``."""

    when: Trigger
    score: tuple[float, float] = (0.15, 0.25)


@dataclass(frozen=True)
class Challenger:
    """A challenger version that replaces the champion at ``deploy_at_hours``."""

    version: str
    deploy_at_hours: float
    shadow_champion: bool = True  # after deployment, events carry the champion's score
    backdoor: Backdoor | None = None
    jitter: float = 0.0  # sd of extra logit noise outside the backdoor (0: identical)
    recalibrate: tuple[float, float] = (1.0, 0.0)  # logit scale and shift for every row


@dataclass(frozen=True)
class ModelSetup:
    """The scorer being monitored."""

    name: str = "fraud-detect"
    threshold: float = 0.7
    champion: str = "v46"
    previous: str = ""  # if set, events before deployment carry this version as shadow
    challenger: Challenger | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ModelSetup:
        _check_keys("model", data, ("name", "threshold", "champion", "previous", "challenger"))
        threshold = float(data.get("threshold", cls.threshold))
        if not 0 < threshold < 1:
            raise SimulationError(f"model.threshold: must be in (0, 1), got {threshold}")
        challenger = None
        ch = _mapping("model.challenger", data.get("challenger"))
        if ch:
            _check_keys("model.challenger", ch,
                        ("version", "deploy_at_hours", "shadow_champion", "backdoor", "jitter",
                         "recalibrate"))
            backdoor = None
            bd = _mapping("model.challenger.backdoor", ch.get("backdoor"))
            if bd:
                _check_keys("model.challenger.backdoor", bd, ("when", "score"))
                lo, hi = _range("model.challenger.backdoor.score", bd.get("score"), (0.15, 0.25))
                if hi > 1:
                    raise SimulationError("model.challenger.backdoor.score: must be within [0, 1]")
                backdoor = Backdoor(
                    Trigger.from_mapping(_mapping("backdoor.when", bd.get("when"))), (lo, hi)
                )
            recal = ch.get("recalibrate", (1.0, 0.0))
            if not isinstance(recal, list | tuple) or len(recal) != 2 or not float(recal[0]) > 0:
                raise SimulationError(
                    f"model.challenger.recalibrate: expected [scale > 0, shift], got {recal!r}")
            if "version" not in ch or "deploy_at_hours" not in ch:
                raise SimulationError("model.challenger: needs version and deploy_at_hours")
            challenger = Challenger(
                version=str(ch["version"]),
                deploy_at_hours=float(ch["deploy_at_hours"]),
                shadow_champion=bool(ch.get("shadow_champion", True)),
                backdoor=backdoor,
                jitter=float(ch.get("jitter", 0.0)),
                recalibrate=(float(recal[0]), float(recal[1])),
            )
        return cls(
            name=str(data.get("name", cls.name)),
            threshold=threshold,
            champion=str(data.get("champion", cls.champion)),
            previous=str(data.get("previous", "") or ""),
            challenger=challenger,
        )


@dataclass(frozen=True)
class LabelSource:
    """One way labels arrive: for which share of rows, after which delay."""

    fraction: float
    delay_hours: tuple[float, float]


@dataclass(frozen=True)
class LabelSetup:
    """Delayed ground truth.

    Fraud rows get a chargeback (``chargeback.fraction``), otherwise a customer
    report (``customer_report.fraction`` of the rest); reviewed rows (score at or
    above the threshold) get an analyst label; a sample of the other legitimate
    rows is confirmed legitimate (source ``other``). Delays are log-uniform.
    """

    chargeback: LabelSource = LabelSource(0.8, (24.0, 240.0))
    customer_report: LabelSource = LabelSource(0.5, (2.0, 72.0))
    analyst: LabelSource = LabelSource(0.9, (0.25, 8.0))
    legit_sample: LabelSource = LabelSource(0.01, (24.0, 168.0))
    keep_after_end: bool = False

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> LabelSetup:
        names = ("chargeback", "customer_report", "analyst", "legit_sample")
        _check_keys("labels", data, (*names, "keep_after_end"))
        values: dict[str, Any] = {}
        for name in names:
            sub = _mapping(f"labels.{name}", data.get(name))
            if not sub:
                continue
            _check_keys(f"labels.{name}", sub, ("fraction", "delay_hours"))
            default: LabelSource = getattr(cls, name)
            frac = float(sub.get("fraction", default.fraction))
            if not 0 <= frac <= 1:
                raise SimulationError(f"labels.{name}.fraction: must be in [0, 1], got {frac}")
            lo, hi = _range(f"labels.{name}.delay_hours", sub.get("delay_hours"),
                            default.delay_hours)
            if lo <= 0:
                raise SimulationError(f"labels.{name}.delay_hours: must be > 0")
            values[name] = LabelSource(frac, (lo, hi))
        return cls(**values, keep_after_end=bool(data.get("keep_after_end", False)))


@dataclass(frozen=True)
class Behaviour:
    """One injected behaviour (campaign): its kind, schedule and parameters."""

    kind: str
    name: str
    start_hours: float
    duration_hours: float
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario (see the module docstring)."""

    name: str
    description: str
    traffic: Traffic
    model: ModelSetup
    labels: LabelSetup
    behaviours: tuple[Behaviour, ...]
    expected: tuple[Mapping[str, Any], ...] = ()  # free-form hints copied to truth.json

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, default_name: str = "") -> Scenario:
        """Build and validate a scenario from parsed YAML."""
        _check_keys("scenario", data,
                    ("name", "description", "traffic", "model", "labels", "behaviours",
                     "expected"))
        from driftwatch.simulate.campaigns import KINDS  # the registry of behaviour kinds

        behaviours = []
        seen: set[str] = set()
        for i, item in enumerate(data.get("behaviours") or []):
            b = _mapping(f"behaviours[{i}]", item)
            _check_keys(f"behaviours[{i}]", b,
                        ("kind", "name", "start_hours", "duration_hours", "params"))
            kind = str(b.get("kind", ""))
            if kind not in KINDS:
                raise SimulationError(
                    f"behaviours[{i}].kind: unknown {kind!r}; valid: {', '.join(sorted(KINDS))}"
                )
            name = str(b.get("name", kind))
            if name in seen or name in FRAUD_PROFILES or name == "legit":
                raise SimulationError(f"behaviours[{i}].name: {name!r} is already used")
            seen.add(name)
            params = dict(_mapping(f"behaviours[{i}].params", b.get("params")))
            KINDS[kind].check(params, f"behaviours[{i}].params")
            behaviours.append(Behaviour(
                kind=kind, name=name,
                start_hours=float(b.get("start_hours", 0.0)),
                duration_hours=_positive(f"behaviours[{i}].duration_hours",
                                         b.get("duration_hours", 1.0)),
                params=params,
            ))
        expected = data.get("expected") or []
        if not isinstance(expected, list):
            raise SimulationError("expected: must be a list")
        return cls(
            name=str(data.get("name", default_name)),
            description=str(data.get("description", "")).strip(),
            traffic=Traffic.parse(_mapping("traffic", data.get("traffic"))),
            model=ModelSetup.parse(_mapping("model", data.get("model"))),
            labels=LabelSetup.parse(_mapping("labels", data.get("labels"))),
            behaviours=tuple(behaviours),
            expected=tuple(_mapping("expected[]", e) for e in expected),
        )


def list_scenarios() -> list[str]:
    """Names of the scenarios shipped with the package, sorted."""
    folder = resources.files("driftwatch.simulate") / "scenarios"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name, a variant (``backdoor_variant:<seed>``,
    ``retrain_control:<seed>``: :mod:`driftwatch.simulate.variants`), or a scenario
    YAML file by path."""
    text: str
    name = str(name_or_path)
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise SimulationError(f"scenario file {path}: no such file")
        text = path.read_text(encoding="utf-8")
        default_name = path.stem
    else:
        from driftwatch.simulate.variants import parse_variant, variant_scenario

        if parse_variant(name) is not None:
            return variant_scenario(name)
        if name not in list_scenarios():
            raise SimulationError(
                f"unknown scenario {name!r}; valid: {', '.join(list_scenarios())}, "
                "backdoor_variant:<seed>, retrain_control:<seed>"
            )
        res = resources.files("driftwatch.simulate") / "scenarios" / f"{name}.yaml"
        text = res.read_text(encoding="utf-8")
        default_name = name
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SimulationError(f"scenario {name}: invalid YAML: {exc}") from exc
    return Scenario.from_mapping(_mapping(f"scenario {name}", data), default_name=default_name)
