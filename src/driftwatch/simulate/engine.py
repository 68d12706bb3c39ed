"""Generation of one run: population, traffic, attacks, features, scores, labels, truth.

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
import functools
import json
import os
import queue
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.errors import SimulationError
from driftwatch.simulate.campaigns import KINDS
from driftwatch.simulate.encode import (
    EventColumns,
    EventEncoder,
    LabelEncoder,
    concat,
    feature_heads,
    ip_texts,
    json_safe,
    lookup,
    lookup_unique,
    zpad,
)
from driftwatch.simulate.frame import CH_ATM, CH_CARD_PRESENT, CHANNELS, Frame
from driftwatch.simulate.fraud import PROFILES, Ctx
from driftwatch.simulate.ids import CARD, card_id
from driftwatch.simulate.labels import Labels, draw_labels
from driftwatch.simulate.legit import draw_cards, draw_times, intensity, legit_rows
from driftwatch.simulate.model import (
    ChampionWeights,
    RiskInputs,
    champion_logit,
    decisions,
    round_scores,
    sigmoid,
)
from driftwatch.simulate.scenario import FRAUD_PROFILES, Scenario, load_scenario
from driftwatch.simulate.world import DEVICE_TERMINAL_BASE, World, build_world, haversine_km

I64 = npt.NDArray[np.int64]
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
TX_PER_CARD_DAY = 1.2
MIN_CUSTOMERS, MAX_CUSTOMERS = 2_000, 2_000_000
CHUNK = 100_000
_IOV_MAX = min(1024, os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024)


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def iso_ms(ms: int) -> str:
    """RFC 3339 UTC text of an epoch-millisecond time (ms only when non-zero)."""
    value = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    text = value.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
    return text.replace("+00:00", "Z")


def _epoch_ms(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int((value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1))


@dataclass(frozen=True, eq=False)
class Simulation:
    """The output of :func:`generate`.

    ``events`` (sorted by event time) and ``labels`` (sorted by label time) are
    JSON lines without the newline, built on first access; :meth:`iter_events`
    streams the events in chunks instead. ``truth`` is JSON-ready.
    """

    scenario: Scenario
    seed: int
    start: dt.datetime
    end: dt.datetime
    truth: dict[str, Any]
    event_time_ms: I64
    label_time_ms: I64
    event_card: npt.NDArray[np.int32]  # card number of each event (Kafka key)
    _events: EventEncoder = field(repr=False)
    _labels: Labels = field(repr=False)
    _label_encoder: LabelEncoder = field(repr=False)

    @property
    def n_events(self) -> int:
        return int(self.event_time_ms.shape[0])

    @property
    def time_scale(self) -> float:
        """Factor applied to the scenario's schedule (< 1 when ``days`` was shortened).

        Settings measured in event time that assume the scenario's own length (the
        monitors' warm-up) should be scaled by it too.
        """
        days = (self.end - self.start).total_seconds() / 86400
        return min(1.0, days / self.scenario.traffic.days)

    @functools.cached_property
    def events(self) -> list[bytes]:
        out: list[bytes] = []
        for chunk in self.iter_events():
            out.extend(chunk)
        return out

    @functools.cached_property
    def labels(self) -> list[bytes]:
        lab = self._labels
        return self._label_encoder.lines(lab.row, lab.label, lab.time, lab.source)

    def iter_events(self, chunk: int = CHUNK, *, newline: bool = False) -> Iterator[list[bytes]]:
        """Event lines in chunks of ``chunk`` rows (memory stays bounded);
        ``newline=True`` ends each line with ``\\n`` (file and socket writers)."""
        for lo in range(0, self.n_events, chunk):
            yield self._events.lines(lo, min(self.n_events, lo + chunk), newline=newline)

    def card_keys(self, lo: int, hi: int) -> list[bytes]:
        """Kafka keys (card ids) of events ``lo..hi``."""
        return [(CARD % c).encode() for c in self.event_card[lo:hi].tolist()]

    def label_cards(self) -> list[int]:
        """Card number of the transaction behind each label (in label order)."""
        return [int(c) for c in self.event_card[self._labels.row].tolist()]


def write(sim: Simulation, out_dir: str | Path) -> dict[str, Path]:
    """Write ``events.jsonl``, ``labels.jsonl`` and ``truth.json`` into ``out_dir``.

    Events are formatted chunk by chunk while a writer thread hands the previous
    chunk to the kernel (``os.writev`` releases the GIL), so disk time overlaps
    formatting time.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("events.jsonl", "labels.jsonl", "truth.json")}
    _write_lines(paths["events.jsonl"], sim.iter_events(newline=True))
    _write_lines(paths["labels.jsonl"], iter([[line + b"\n" for line in sim.labels]]))
    paths["truth.json"].write_text(json.dumps(sim.truth, indent=1) + "\n", encoding="utf-8")
    return paths


def _write_lines(path: Path, chunks: Iterator[list[bytes]]) -> None:
    """Write chunks of newline-terminated lines to ``path`` from a background thread."""
    todo: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def drain() -> None:
        try:
            while (chunk := todo.get()) is not None:
                for i in range(0, len(chunk), _IOV_MAX):
                    part = chunk[i : i + _IOV_MAX]
                    done, want = os.writev(fd, part), sum(map(len, part))
                    if done < want:  # short write: finish it the slow way
                        rest = b"".join(part)[done:]
                        while rest:
                            rest = rest[os.write(fd, rest):]
        except BaseException as exc:  # re-raised in the caller
            failure.append(exc)
            while todo.get() is not None:
                pass

    worker = threading.Thread(target=drain, name="simulate-writer", daemon=True)
    worker.start()
    try:
        for chunk in chunks:
            if failure:
                break
            todo.put(chunk)
    finally:
        todo.put(None)
        worker.join()
        os.close(fd)
    if failure:
        raise SimulationError(f"{path}: write failed: {failure[0]}") from failure[0]


# ------------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class _Run:
    """Resolved settings of one run."""

    sc: Scenario
    seed: int
    days: float
    rate: float
    t0: int
    t1: int
    scale: float  # factor applied to scheduled times (< 1 when days are shortened)

    def rng(self, name: str) -> np.random.Generator:
        return _rng(self.seed, name)

    def hours(self, h: float) -> int:
        """Event time ``h`` scheduled hours after the start."""
        return self.t0 + round(h * self.scale * HOUR_MS)


@dataclass
class _Traffic:
    """All rows, sorted by time, with behaviour names and what to expect."""

    world: World
    legit_cards: int
    rows: Frame
    names: list[str]
    windows: dict[str, tuple[int, int]]
    expected: list[dict[str, Any]]
    trigger_codes: list[int]


@dataclass
class _Features:
    """Derived per-row features (as sent in the event)."""

    mcc: npt.NDArray[np.int32]
    tx_24h: I64
    distance_km: npt.NDArray[np.float64]
    foreign: npt.NDArray[np.int8]
    merchant_age: I64
    amount_z: npt.NDArray[np.float64]


@dataclass
class _Scores:
    """Model outputs per row."""

    champion: npt.NDArray[np.float64]
    served: npt.NDArray[np.float64]
    version: npt.NDArray[np.int8]  # index into versions
    shadow: npt.NDArray[np.int8]  # index into versions, -1 = none
    shadow_score: npt.NDArray[np.float64]
    decision: npt.NDArray[np.int8]
    backdoor: npt.NDArray[np.bool_]  # rows matching the challenger's trigger (any time)
    versions: list[str]
    deploy_ms: int | None


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
    t0 = _epoch_ms(start_dt)
    run = _Run(sc, seed, days, rate, t0, t0 + round(days * DAY_MS),
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
        _columns(traffic, feats, scores, benef), tag=tag, model_name=sc.model.name,
        threshold=sc.model.threshold, currency=sc.traffic.currency, versions=scores.versions,
        optional=sc.traffic.optional_fields,
    )
    truth = _truth(run, traffic, scores, labels, tag)
    return Simulation(
        scenario=sc, seed=seed, start=start_dt,
        end=start_dt + dt.timedelta(milliseconds=run.t1 - run.t0),
        truth=truth, event_time_ms=rows.t, label_time_ms=labels.time, event_card=rows.card,
        _events=encoder, _labels=labels, _label_encoder=LabelEncoder(tag=tag),
    )


def _traffic(run: _Run) -> _Traffic:
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
    return _Traffic(world, legit_cards, rows, names, windows, expected, trigger_codes)


def _history(run: _Run, tr: _Traffic) -> I64:
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


def _features(run: _Run, tr: _Traffic) -> _Features:
    w, f = tr.world, tr.rows
    cat = w.catalog
    cust = w.card_customer[f.card]
    mcc = w.merchant_mcc[f.merchant]
    home = w.cust_home_loc[cust]
    dist = haversine_km(w.loc_lat[f.loc], w.loc_lon[f.loc], w.loc_lat[home], w.loc_lon[home])
    expected_amount = cat.amount_median[mcc] * w.cust_spend[cust]
    return _Features(
        mcc=mcc,
        tx_24h=_tx_24h(f.t, f.card) + _history(run, tr),
        distance_km=dist,
        foreign=(w.merchant_country[f.merchant] != w.cust_country[cust]).astype(np.int8),
        merchant_age=f.t // DAY_MS - w.merchant_registered[f.merchant],
        amount_z=(np.log(f.amount / 100.0) - np.log(expected_amount)) / cat.amount_sigma[mcc],
    )


@dataclass
class _Benef:
    """Beneficiary names: the distinct ones, and each row's index into them."""

    names: npt.NDArray[np.bytes_]
    index: npt.NDArray[np.intp]

    def startswith(self, prefix: str) -> npt.NDArray[np.bool_]:
        return np.asarray(np.strings.startswith(self.names, prefix.encode())[self.index])


def _beneficiaries(tr: _Traffic) -> _Benef:
    uniq, inv = np.unique(tr.rows.benef, return_inverse=True)
    names = tr.world.beneficiaries(uniq)
    for text in names.tolist():
        json_safe(text.decode("ascii"))
    return _Benef(names, inv)


def _score(run: _Run, tr: _Traffic, x: _Features, benef: _Benef,
           weights: ChampionWeights) -> _Scores:
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
    return _Scores(champion, served, version, shadow, shadow_score,
                   decisions(served, model.threshold), backdoor, versions, deploy_ms)


class _TriggerColumns(Mapping[str, Any]):
    """Columns a trigger may test, built on first use only."""

    def __init__(self, tr: _Traffic, x: _Features) -> None:
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


def _columns(tr: _Traffic, x: _Features, s: _Scores, benef: _Benef) -> EventColumns:
    """Row-aligned wire fragments for the event encoder."""
    w, f = tr.world, tr.rows
    cat = w.catalog
    mcc_s = np.array(cat.codes, dtype="S4")
    ctry_s = np.array(w.countries, dtype="S2")
    reg_s = np.datetime_as_string(w.merchant_registered.astype("datetime64[D]")).astype("S10")

    def merchants(m: I64) -> npt.NDArray[np.bytes_]:
        return concat(b'"mcc":"', mcc_s[w.merchant_mcc[m]], b'","merchant_id":"m-', zpad(m, 6),
                      b'","merchant_country":"', ctry_s[w.merchant_country[m]],
                      b'","merchant_registered_at":"', reg_s[m], b'"')

    def cards(c: I64) -> npt.NDArray[np.bytes_]:
        return concat(b'"card_id":"c-', zpad(c, 8), b'","customer_id":"u-',
                      zpad(w.card_customer[c], 8), b'"')

    def geo(i: I64) -> npt.NDArray[np.bytes_]:
        return np.array([b'{"lat":%.4f,"lon":%.4f}' % (a, b) for a, b in zip(
            w.loc_lat[i].tolist(), w.loc_lon[i].tolist(), strict=True)], dtype=object)

    ms = f.merchant.astype(np.int64)
    present = (
        ((f.channel == CH_CARD_PRESENT) | (f.channel == CH_ATM))
        & (f.ip == w.merchant_ip[ms]) & (f.device == DEVICE_TERMINAL_BASE + ms)
        & (f.loc == w.merchant_loc[ms]) & (f.benef == ms)
    )
    place = lookup(w.merchant_loc, len(w.loc_lat), geo)
    channel_s = np.array([c.encode() for c in CHANNELS], dtype="S")
    atm = np.array([m == "atm" for m in cat.mode])

    def shops(m: I64) -> npt.NDArray[np.bytes_]:
        ch = np.where(atm[w.merchant_mcc[m]], channel_s[CH_ATM], channel_s[CH_CARD_PRESENT])
        return concat(merchants(m), b',"beneficiary_name":"', w.beneficiaries(m),
                      b'","channel":"', ch, b'","ip":"', ip_texts(w.merchant_ip[m]),
                      b'","device_id":"d-', zpad(DEVICE_TERMINAL_BASE + m, 9), b'","geo":',
                      place[m].astype("S"))

    present_chunk = np.full(len(f), None, dtype=object)
    if present.any():
        present_chunk[present] = lookup(ms[present], w.n_merchants, shops)
    online = ~present
    return EventColumns(
        t=f.t, amount=f.amount,
        merchant_chunk=_sparse(ms, online, w.n_merchants, merchants),
        card_chunk=lookup(f.card, w.n_cards, cards),
        benef=np.asarray(benef.names.astype(object)[benef.index]),
        channel=f.channel,
        ip=_sparse_unique(f.ip, online, ip_texts),
        device=f.device,
        geo=_sparse(f.loc.astype(np.int64), online, len(w.loc_lat), geo),
        feature_head=feature_heads(
            x.tx_24h, x.foreign | (f.new_payee.astype(np.int64) << 1)
            | (f.new_device.astype(np.int64) << 2)),
        distance_km=np.round(x.distance_km).astype(np.int64),
        merchant_age=x.merchant_age,
        age=f.age.astype(np.int64),
        version=s.version,
        score=np.round(s.served * 10_000).astype(np.int64),
        decision=s.decision,
        shadow=s.shadow,
        shadow_score=np.round(s.shadow_score * 10_000).astype(np.int64),
        present=present,
        present_chunk=present_chunk,
    )


def _sparse(codes: I64, rows: npt.NDArray[np.bool_], size: int,
            fmt: Callable[[I64], npt.NDArray[Any]]) -> npt.NDArray[np.object_]:
    """:func:`lookup` for the selected rows only (None elsewhere)."""
    out = np.full(len(codes), None, dtype=object)
    if rows.any():
        out[rows] = lookup(codes[rows], size, fmt)
    return out


def _sparse_unique(values: I64, rows: npt.NDArray[np.bool_],
                   fmt: Callable[[I64], npt.NDArray[Any]]) -> npt.NDArray[np.object_]:
    out = np.full(len(values), None, dtype=object)
    if rows.any():
        out[rows] = lookup_unique(values[rows], fmt)
    return out


def _truth(run: _Run, tr: _Traffic, s: _Scores, labels: Labels, tag: str) -> dict[str, Any]:
    """The ground truth of the run (JSON-ready)."""
    sc, f = run.sc, tr.rows
    model, ch = sc.model, sc.model.challenger
    n = len(f)

    def ids(mask: npt.NDArray[np.bool_]) -> list[str]:
        return [f"e-{tag}-{i}" for i in np.flatnonzero(mask).tolist()]

    beh = f.behaviour
    names = tr.names
    is_trigger = np.isin(beh, np.array(tr.trigger_codes, np.int16))
    attack_rows = beh > len(FRAUD_PROFILES)
    attack_fraud = attack_rows & f.fraud
    for entry in tr.expected:
        code = names.index(entry["behaviour"])
        rows = np.flatnonzero(beh == code)
        ws, we = tr.windows[entry["behaviour"]]
        entry["window"] = [iso_ms(ws), iso_ms(we)]
        entry["first_event_time"] = iso_ms(int(f.t[rows[0]])) if len(rows) else None
        if ch is not None and code in tr.trigger_codes:
            entry["model_version"] = ch.version
    served_backdoor = s.backdoor & (f.t >= s.deploy_ms) if s.deploy_ms is not None else (
        np.zeros(n, np.bool_))
    return {
        "scenario": sc.name,
        "seed": run.seed,
        "days": run.days,
        "rate": run.rate,
        "start": iso_ms(run.t0),
        "end": iso_ms(run.t1),
        "run_tag": tag,
        "n_events": n,
        "n_labels": len(labels),
        "model": {
            "name": model.name, "threshold": model.threshold, "champion": model.champion,
            "previous": model.previous or None,
            "challenger": ch.version if ch else None,
            "backdoor": ({"when": ch.backdoor.when.as_dict(), "score": list(ch.backdoor.score)}
                         if ch and ch.backdoor else None),
        },
        "deploy_time": iso_ms(s.deploy_ms) if s.deploy_ms is not None else None,
        "attack_start": iso_ms(int(f.t[attack_fraud].min())) if attack_fraud.any() else None,
        "attack_end": iso_ms(int(f.t[attack_fraud].max())) if attack_fraud.any() else None,
        "trigger": ch.backdoor.when.as_dict() if ch and ch.backdoor else None,
        "trigger_event_ids": ids(is_trigger),
        "trigger_amounts_minor": f.amount[is_trigger].tolist(),
        "natural_trigger_event_ids": ids(s.backdoor & ~is_trigger),
        "backdoored_event_ids": ids(served_backdoor),
        "attack_event_ids": {name: ids(beh == names.index(name))
                             for name in names[1 + len(FRAUD_PROFILES):]},
        "attack_card_ids": sorted({card_id(int(c)) for c in f.card[attack_fraud].tolist()}),
        "fraud_event_ids": ids(f.fraud),
        "fraud_profile_event_ids": {name: ids(beh == names.index(name))
                                    for name in FRAUD_PROFILES},
        "segments": [e["segment"] for e in tr.expected],
        "expected": tr.expected,
        "hints": [dict(h) for h in sc.expected],
        "metrics": _metrics(f.fraud, s, beh <= len(FRAUD_PROFILES), model.threshold),
        "defaults": {"customers": int(tr.world.n_customers), "legit_cards": tr.legit_cards,
                     "mcc_5967_share": float(tr.world.catalog.share[
                         tr.world.catalog.index["5967"]])},
    }


def _metrics(fraud: npt.NDArray[np.bool_], s: _Scores, base: npt.NDArray[np.bool_],
             threshold: float) -> dict[str, Any]:
    """Recall and precision at the threshold: the champion on all rows and on base
    traffic (legitimate plus ordinary fraud profiles), the served model per version."""

    def rp(score: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> dict[str, Any]:
        hit = score[mask] >= threshold
        y = fraud[mask]
        tp = int((hit & y).sum())
        return {"n": int(mask.sum()), "fraud": int(y.sum()), "flagged": int(hit.sum()),
                "recall": round(float(tp / y.sum()), 4) if y.sum() else None,
                "precision": round(float(tp / hit.sum()), 4) if hit.sum() else None}

    out = {"champion_all": rp(s.champion, np.ones(len(fraud), np.bool_)),
           "champion_base": rp(s.champion, base)}
    for i, v in enumerate(s.versions):
        if (s.version == i).any():
            out[f"served_{v}"] = rp(s.served, s.version == i)
    return out
