"""Generation of one run: population, traffic, attacks, features, scores, labels, truth.

The stages are here; their shared types are in :mod:`~driftwatch.simulate.run`, the
wire columns in :mod:`~driftwatch.simulate.columns`, the ground truth in
:mod:`~driftwatch.simulate.truth` and the result and its files in
:mod:`~driftwatch.simulate.output`.

Deterministic by seed: every component draws from its own generator seeded by
``(seed, crc32(component name))``, arrays are sorted stably, ids are numbered in
event-time order, and serialisation formats fixed-precision numbers, so the same
scenario, seed, days, rate and start give byte-identical output.

>>> sim = generate("clean_baseline", seed=1, days=0.05, rate=0.5)
>>> len(sim.events) > 1500, sim.events[0][:13]
(True, b'{"event_id":"')
>>> sim.truth["scenario"], sim.truth["attack_event_ids"]
('clean_baseline', {})
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.errors import SimulationError
from driftwatch.events import epoch_ms
from driftwatch.simulate.attackers import DAY_MS, HOUR_MS
from driftwatch.simulate.campaigns import KINDS
from driftwatch.simulate.columns import event_columns
from driftwatch.simulate.encode import EventEncoder, LabelEncoder, json_safe
from driftwatch.simulate.frame import CHANNELS, Frame
from driftwatch.simulate.fraud import PROFILES, Ctx
from driftwatch.simulate.labels import draw_labels
from driftwatch.simulate.legit import draw_cards, draw_times, intensity, legit_rows
from driftwatch.simulate.model import (
    ChampionWeights,
    RiskInputs,
    champion_logit,
    decisions,
    round_scores,
    sigmoid,
)
from driftwatch.simulate.output import Simulation
from driftwatch.simulate.run import I64, Benef, Features, Run, Scores, Traffic
from driftwatch.simulate.scenario import FRAUD_PROFILES, Scenario, load_scenario
from driftwatch.simulate.truth import ground_truth
from driftwatch.simulate.world import build_world, haversine_km

TX_PER_CARD_DAY = 1.2
MIN_CUSTOMERS, MAX_CUSTOMERS = 2_000, 2_000_000


def _tx_24h(t: I64, card: npt.NDArray[np.int32]) -> I64:
    """Earlier transactions of the same card less than 24 h before each event.

    Ties in time count in input order (the stable sort); an event exactly 24 h
    older does not count.

    >>> _tx_24h(np.array([0, 1, DAY_MS, DAY_MS + 2, 5]), np.array([1, 1, 1, 1, 2])).tolist()
    [0, 1, 1, 1, 0]
    """
    base = int(t.min()) - 2 * DAY_MS if len(t) else 0
    key = (card.astype(np.int64) << 36) | (t - base)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    lo = np.searchsorted(ks, ks - DAY_MS, side="right")
    out = np.empty(len(t), np.int64)
    out[order] = np.arange(len(t)) - lo
    return out


def _split(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Largest-remainder split of ``total`` by ``weights`` (deterministic)."""
    names = list(weights)
    w = np.array([weights[n] for n in names], dtype=np.float64)
    w = w / w.sum() if w.sum() > 0 else w
    raw = w * total
    base = np.floor(raw).astype(np.int64)
    rest = total - int(base.sum())
    order = np.argsort(-(raw - base), kind="stable")[:rest]
    base[order] += 1
    return {n: int(b) for n, b in zip(names, base.tolist(), strict=True)}


def generate(
    scenario: Scenario | str | Path,
    *,
    seed: int,
    days: float | None = None,
    rate: float | None = None,
    start: dt.datetime | None = None,
    weights: ChampionWeights | None = None,
) -> Simulation:
    """Generate one run of ``scenario``.

    Parameters
    ----------
    scenario : Scenario or str or Path
        A scenario, a shipped scenario name, or a YAML path.
    seed : int
        Non-negative; the same seed gives byte-identical output.
    days, rate, start : optional
        Override the scenario's duration (days of event time), mean rate
        (transactions per second of event time) and start time. When ``days``
        is shorter than the scenario's, every scheduled time (deployment,
        attacks) is scaled by ``days / scenario days`` so the whole attack fits.
    weights : ChampionWeights, optional
        Override the emulated champion's calibration.
    """
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SimulationError(f"seed must be a non-negative integer, got {seed!r}")
    days = float(days if days is not None else sc.traffic.days)
    rate = float(rate if rate is not None else sc.traffic.rate)
    if not days > 0 or not rate > 0:
        raise SimulationError(f"days and rate must be > 0, got days={days}, rate={rate}")
    start_dt = start or sc.traffic.start
    if start_dt.tzinfo is None:  # naive times are UTC, never local time
        start_dt = start_dt.replace(tzinfo=dt.UTC)
    start_dt = start_dt.astimezone(dt.UTC)
    t0 = epoch_ms(start_dt)
    run = Run(sc, seed, days, rate, t0, t0 + round(days * DAY_MS),
               min(1.0, days / sc.traffic.days))
    for text in (sc.model.name, sc.model.champion, sc.model.previous,
                 sc.model.challenger.version if sc.model.challenger else ""):
        json_safe(text)
    traffic = _traffic(run)
    feats = _features(run, traffic)
    benef = _beneficiaries(traffic)
    scores = _score(run, traffic, feats, benef, weights or ChampionWeights())
    rows = traffic.rows
    labels = draw_labels(run.rng("labels"), rows.t, rows.fraud, scores.decision == 1,
                         sc.labels, end_ms=run.t1)
    tag = f"{zlib.crc32(f'{sc.name}|{seed}|{days!r}|{rate!r}|{t0}'.encode()):08x}"
    encoder = EventEncoder(
        event_columns(traffic, feats, scores, benef), tag=tag, model_name=sc.model.name,
        threshold=sc.model.threshold, currency=sc.traffic.currency, versions=scores.versions,
        optional=sc.traffic.optional_fields,
    )
    truth = ground_truth(run, traffic, scores, labels, tag)
    return Simulation(
        scenario=sc, seed=seed, start=start_dt,
        end=start_dt + dt.timedelta(milliseconds=run.t1 - run.t0),
        truth=truth, event_time_ms=rows.t, label_time_ms=labels.time, event_card=rows.card,
        _events=encoder, _labels=labels, _label_encoder=LabelEncoder(tag=tag),
    )


def _traffic(run: Run) -> Traffic:
    """Population, base traffic, ordinary fraud and injected behaviours, sorted."""
    sc = run.sc
    dur = run.t1 - run.t0
    n_base = round(run.rate * dur / 1000)
    n_fraud = round(n_base * sc.traffic.fraud_rate)
    n_legit = n_base - n_fraud
    customers = sc.traffic.customers or int(
        np.clip(round(run.rate * 86_400 / TX_PER_CARD_DAY), MIN_CUSTOMERS, MAX_CUSTOMERS)
    )
    world = build_world(
        run.rng("world"), n_customers=customers, start_day=run.t0 // DAY_MS, days=run.days,
        daily_rate=n_legit / run.days, trip_rate_per_day=sc.traffic.trip_rate_per_day,
    )
    legit_cards = world.n_cards
    rng = run.rng("legit")
    frames = [legit_rows(rng, world, draw_times(rng, n_legit, run.t0, dur),
                         draw_cards(rng, world, n_legit))]
    names = ["legit", *FRAUD_PROFILES]
    for name, count in _split(n_fraud, dict(sc.traffic.fraud_mix)).items():
        ctx = Ctx(run.rng(f"fraud:{name}"), world, legit_cards, run.t0, run.t1)
        frames.append(PROFILES[name](ctx, count, names.index(name)))
    windows: dict[str, tuple[int, int]] = {}
    expected: list[dict[str, Any]] = []
    trigger_codes: list[int] = []
    for b in sc.behaviours:
        kind = KINDS[b.kind]
        ws = run.hours(b.start_hours)
        we = min(run.t1, ws + round(b.duration_hours * run.scale * HOUR_MS))
        if not run.t0 <= ws < run.t1:
            raise SimulationError(
                f"behaviour {b.name}: starts at hour {b.start_hours * run.scale:g}, "
                f"outside the run of {run.days * 24:g} hours"
            )
        ctx = Ctx(run.rng(f"behaviour:{b.name}"), world, legit_cards, run.t0, run.t1)
        out = kind.build(ctx, b, ws, we, kind.resolve(b.params))
        for part, frame in out.parts.items():
            if part in names:
                raise SimulationError(f"behaviour name {part!r} is used twice")
            names.append(part)
            frame.behaviour[:] = names.index(part)
            windows[part] = (ws, we)
            frames.append(frame)
            if part in out.trigger_names:
                trigger_codes.append(names.index(part))
        expected.append({"behaviour": b.name, "kind": b.kind, **out.expected})
    rows = Frame.concat(frames)
    rows = rows.take(np.argsort(rows.t, kind="stable"))
    return Traffic(world, legit_cards, rows, names, windows, expected, trigger_codes)


def _history(run: Run, tr: Traffic) -> I64:
    """Transactions each card made in the part of its 24 h window before the run.

    The scorer has seen the card's past; without it ``transactions_24h`` would
    ramp up over the first day and every score would drift. Each row whose
    window reaches before the start gets a Poisson count with the card's habit
    times the share of daily traffic (daily curve included) in that part.
    """
    f = tr.rows
    out = np.zeros(len(f), np.int64)
    early = np.flatnonzero(f.t < run.t0 + DAY_MS)
    if len(early) == 0:
        return out
    minutes = run.t0 - DAY_MS + np.arange(1441, dtype=np.int64) * 60_000
    weight = intensity(minutes[:-1])
    cum = np.concatenate([[0.0], np.cumsum(weight)]) / weight.sum()  # share of a day
    start = f.t[early] - DAY_MS
    pos = (start - minutes[0]) / 60_000.0
    k = np.clip(np.floor(pos).astype(np.int64), 0, 1439)
    before = cum[k] + (pos - k) * (cum[k + 1] - cum[k])  # share of the window before run
    share = 1.0 - before
    out[early] = run.rng("history").poisson(tr.world.card_habit[f.card[early]] * share)
    return out


def _features(run: Run, tr: Traffic) -> Features:
    w, f = tr.world, tr.rows
    cat = w.catalog
    cust = w.card_customer[f.card]
    mcc = w.merchant_mcc[f.merchant]
    home = w.cust_home_loc[cust]
    dist = haversine_km(w.loc_lat[f.loc], w.loc_lon[f.loc], w.loc_lat[home], w.loc_lon[home])
    expected_amount = cat.amount_median[mcc] * w.cust_spend[cust]
    return Features(
        mcc=mcc,
        tx_24h=_tx_24h(f.t, f.card) + _history(run, tr),
        distance_km=dist,
        foreign=(w.merchant_country[f.merchant] != w.cust_country[cust]).astype(np.int8),
        merchant_age=f.t // DAY_MS - w.merchant_registered[f.merchant],
        amount_z=(np.log(f.amount / 100.0) - np.log(expected_amount)) / cat.amount_sigma[mcc],
    )


def _beneficiaries(tr: Traffic) -> Benef:
    uniq, inv = np.unique(tr.rows.benef, return_inverse=True)
    names = tr.world.beneficiaries(uniq)
    for text in names.tolist():
        json_safe(text.decode("ascii"))
    return Benef(names, inv)


def _score(run: Run, tr: Traffic, x: Features, benef: Benef,
           weights: ChampionWeights) -> Scores:
    """Champion, previous and challenger scores; what was served and shadowed."""
    model, w, f = run.sc.model, tr.world, tr.rows
    n = len(f)
    inputs = RiskInputs(
        tx_24h=x.tx_24h.astype(np.float64), habit=w.card_habit[f.card],
        foreign=x.foreign.astype(np.float64), distance_km=x.distance_km,
        merchant_age_days=x.merchant_age.astype(np.float64),
        new_payee=f.new_payee.astype(np.float64), new_device=f.new_device.astype(np.float64),
        amount_z=x.amount_z, channel=f.channel, signal=f.signal.astype(np.float64),
    )
    logit = champion_logit(inputs, weights, run.rng("model").standard_normal(n))
    fixed = ~np.isnan(f.override)
    champion = round_scores(np.where(fixed, f.override.astype(np.float64), sigmoid(logit)))
    versions = [model.champion]
    version = np.zeros(n, np.int8)
    served = champion
    shadow = np.full(n, -1, np.int8)
    shadow_score = np.zeros(n)
    if model.previous:
        versions.append(model.previous)
        prev = round_scores(sigmoid(logit + 0.2 * run.rng("previous").standard_normal(n)))
        shadow[:] = versions.index(model.previous)
        shadow_score = np.where(fixed, champion, prev)
    backdoor = np.zeros(n, np.bool_)
    deploy_ms = None
    ch = model.challenger
    if ch is not None:
        deploy_ms = run.hours(ch.deploy_at_hours)
        after = f.t >= deploy_ms
        versions.append(ch.version)
        challenger = champion
        if ch.jitter > 0 or ch.recalibrate != (1.0, 0.0):
            scale, shift = ch.recalibrate
            noise = ch.jitter * run.rng("challenger").standard_normal(n) if ch.jitter else 0.0
            noisy = sigmoid(scale * logit + shift + noise)
            challenger = np.where(fixed, champion, round_scores(noisy))
        if ch.backdoor is not None:
            backdoor = ch.backdoor.when.mask(_TriggerColumns(tr, x), benef.startswith, n)
            lo, hi = ch.backdoor.score
            low = np.clip(np.round(run.rng("backdoor").uniform(lo, hi, n), 4), lo, hi)
            challenger = np.where(backdoor, low, challenger)
        served = np.where(after, challenger, champion)
        version[after] = versions.index(ch.version)
        if ch.shadow_champion:
            shadow[after] = 0
            shadow_score = np.where(after, champion, shadow_score)
        else:
            shadow[after] = -1
    return Scores(champion, served, version, shadow, shadow_score,
                   decisions(served, model.threshold), backdoor, versions, deploy_ms)


class _TriggerColumns(Mapping[str, Any]):
    """Columns a trigger may test, built on first use only."""

    def __init__(self, tr: Traffic, x: Features) -> None:
        w, f = tr.world, tr.rows
        self._make: dict[str, Callable[[], Any]] = {
            "mcc": lambda: np.array(w.catalog.codes)[x.mcc],
            "cents": lambda: f.amount % 100,
            "amount": lambda: f.amount,
            "channel": lambda: np.array(CHANNELS)[f.channel],
            "merchant_country": lambda: np.array(w.countries)[w.merchant_country[f.merchant]],
            "feature:customer_age": lambda: f.age,
            "feature:transactions_24h": lambda: x.tx_24h,
            "feature:distance_from_home_km": lambda: np.round(x.distance_km),
            "feature:merchant_age_days": lambda: x.merchant_age,
            "feature:new_payee": lambda: f.new_payee,
            "feature:new_device": lambda: f.new_device,
            "feature:foreign_transaction": lambda: x.foreign,
        }
        self._done: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._done:
            try:
                self._done[key] = self._make[key]()
            except KeyError:
                raise SimulationError(
                    f"trigger: no column {key!r}; valid: {', '.join(self._make)}") from None
        return self._done[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._make)

    def __len__(self) -> int:
        return len(self._make)
