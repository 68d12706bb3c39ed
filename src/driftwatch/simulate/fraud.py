"""Ordinary fraud profiles, present at a low rate in all traffic (about 0.3 %).

Each profile is a labelled behaviour built on top of legitimate-looking rows of
a victim card, then changed where that kind of fraud differs:

``upi_scam``
    Victims pushed to pay scammers: bursts of 3-8 UPI transfers to a few
    scammer handles, small-to-medium amounts (about 1,500-20,000 INR, sent here
    as 18-240 USD), 90 % from far away.
``account_takeover``
    A new device, a channel change (online or transfer), high value; 40 % from
    the attacker's city.
``card_testing``
    Velocity abuse: 3-10 tiny "test" amounts (1.00, 1.01, 1.23 ...) within
    minutes at a digital-goods merchant; 10 % geo anomaly.
``card_not_present``
    Online, foreign merchants more likely, medium-high amounts; 30 % geo anomaly.
``friendly_fraud``
    The customer's own purchase, later disputed: looks legitimate (no geo
    anomaly, own device), so the model mostly misses it.

``signal`` is each profile's hidden evidence for the emulated model (logit
units): it sets how often the champion catches that profile.

>>> from driftwatch.simulate.world import build_world
>>> rng = np.random.default_rng(3)
>>> w = build_world(rng, n_customers=400, start_day=20528)
>>> ctx = Ctx(rng, w, w.n_cards, 20528 * 86_400_000, 20529 * 86_400_000)
>>> f = card_testing(ctx, 40, code=3)
>>> len(f), bool(f.fraud.all()), bool((f.amount < 300).all())
(40, True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from driftwatch.simulate.amounts import sample_amounts, sample_cents
from driftwatch.simulate.catalog import CITIES
from driftwatch.simulate.frame import CH_ECOM, CH_TRANSFER, CH_UPI, Frame
from driftwatch.simulate.legit import draw_cards, draw_times, ecom_merchant, legit_rows
from driftwatch.simulate.world import (
    DEVICE_FRESH_BASE,
    PAYEE_BASE,
    World,
    random_public_ips,
)

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

SIGNAL: dict[str, float] = {
    "upi_scam": 5.0,
    "account_takeover": 4.6,
    "card_testing": 5.6,
    "card_not_present": 5.8,
    "friendly_fraud": 3.3,
}
TEST_AMOUNTS = np.array([100, 101, 123, 99, 111, 150, 200, 105, 50, 199, 112, 134])


@dataclass
class Ctx:
    """What every generator needs: randomness, the world, the run window."""

    rng: np.random.Generator
    world: World
    legit_cards: int  # cards [0, legit_cards) belong to legitimate customers
    t0: int  # run start, ms
    t1: int  # run end (exclusive), ms


def episodes(
    rng: np.random.Generator,
    n_rows: int,
    k: tuple[int, int],
    start: tuple[int, int],
    gap_ms: float,
) -> tuple[I64, I64, int]:
    """Split ``n_rows`` into bursts of ``k[0]..k[1]`` rows.

    Returns (episode of each row, sorted-within-episode times, number of
    episodes). Bursts start in ``[start[0], start[1])`` following the daily
    traffic curve (fraud rides on ordinary traffic, so the fraud share does not
    depend on the hour); rows inside a burst are separated by exponential gaps
    of mean ``gap_ms``.
    """
    if n_rows <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    lo, hi = k
    m = int(n_rows / lo) + 2
    sizes = rng.integers(lo, hi + 1, m)
    cum = np.cumsum(sizes)
    m = int(np.searchsorted(cum, n_rows)) + 1
    sizes = sizes[:m]
    sizes[-1] -= int(cum[m - 1]) - n_rows
    ep = np.repeat(np.arange(m, dtype=np.int64), sizes)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    gaps = rng.exponential(gap_ms, n_rows)
    gaps[first] = 0.0
    cs = np.cumsum(gaps)
    offs = (cs - cs[first][ep]).astype(np.int64)
    starts = draw_times(rng, m, start[0], max(1, start[1] - start[0]))
    return ep, starts[ep] + offs, m


def far_locations(rng: np.random.Generator, w: World, home_city: I32) -> I32:
    """A location in a random other city for each row (a geo anomaly)."""
    n = len(home_city)
    city = rng.integers(0, len(CITIES), n)
    city = np.where(city == home_city, (city + 7) % len(CITIES), city)
    return w.place_in(rng, city)


def _finish(ctx: Ctx, f: Frame, code: int, signal: float) -> Frame:
    f.behaviour[:] = code
    f.fraud[:] = True
    f.signal[:] = signal
    np.minimum(f.t, ctx.t1 - 1, out=f.t)
    return f


def _mcc_rows(w: World, codes: list[str], rng: np.random.Generator, n: int) -> I32:
    idx = np.array([w.catalog.index[c] for c in codes], np.int32)
    return idx[rng.integers(0, len(idx), n)]


def upi_scam(ctx: Ctx, n: int, code: int) -> Frame:
    """Authorised push-payment scams over UPI (see the module docstring)."""
    rng, w = ctx.rng, ctx.world
    ep, t, m = episodes(rng, n, (3, 8), (ctx.t0, ctx.t1), 8 * 60_000)
    victims = rng.integers(0, ctx.legit_cards, m).astype(np.int32)[ep]
    mcc = np.full(n, w.catalog.index["4829"], np.int32)
    f = legit_rows(rng, w, t, victims, mcc=mcc, channel=np.full(n, CH_UPI, np.int8))
    handles = np.array([w.name_code(f"UPI-PAY-{i:03d}@OKBANK") for i in range(40)])
    f.benef[:] = handles[rng.integers(0, len(handles), m)][ep]
    f.new_payee[:] = 1
    major = np.exp(rng.uniform(np.log(18), np.log(240), n)).astype(np.int64)
    f.amount[:] = major * 100 + sample_cents(rng, mcc, w.catalog)
    remote = (rng.random(m) < 0.9)[ep]
    cust = w.card_customer[victims]
    far = far_locations(rng, w, w.cust_home_city[cust])
    f.loc[:] = np.where(remote, far, f.loc)
    f.ip[:] = np.where(remote, random_public_ips(rng, m)[ep], f.ip)
    return _finish(ctx, f, code, SIGNAL["upi_scam"])


def account_takeover(ctx: Ctx, n: int, code: int) -> Frame:
    """A stranger in the account: new device, channel change, high value."""
    rng, w = ctx.rng, ctx.world
    ep, t, m = episodes(rng, n, (1, 4), (ctx.t0, ctx.t1), 25 * 60_000)
    victims = draw_cards(rng, w, m, legit_cards=ctx.legit_cards)[ep]
    transfer = (rng.random(m) < 0.4)[ep]
    mcc = np.where(transfer, w.catalog.index["4829"],
                   _mcc_rows(w, ["5732", "5944", "5999", "5311", "5045", "4814"], rng, n))
    channel = np.where(transfer, CH_TRANSFER, CH_ECOM).astype(np.int8)
    f = legit_rows(rng, w, t, victims, mcc=mcc.astype(np.int32), channel=channel)
    f.merchant[:] = ecom_merchant(rng, w, mcc.astype(np.int32))
    f.benef[:] = np.where(transfer, PAYEE_BASE + rng.integers(0, w.n_payees, m)[ep],
                          f.merchant)
    f.new_payee[:] = transfer.astype(np.int8)
    f.device[:] = DEVICE_FRESH_BASE + rng.integers(0, 1 << 30, m)[ep]
    f.new_device[:] = 1
    f.ip[:] = random_public_ips(rng, m)[ep]
    away = (rng.random(m) < 0.4)[ep]
    cust = w.card_customer[victims]
    f.loc[:] = np.where(away, far_locations(rng, w, w.cust_home_city[cust]),
                        w.cust_home_loc[cust])
    major = np.clip(rng.lognormal(np.log(900), 0.7, n), 200, 9000).astype(np.int64)
    f.amount[:] = major * 100 + sample_cents(rng, mcc.astype(np.int32), w.catalog)
    return _finish(ctx, f, code, SIGNAL["account_takeover"])


def card_testing(ctx: Ctx, n: int, code: int) -> Frame:
    """Velocity abuse: rapid tiny test amounts on stolen cards."""
    rng, w = ctx.rng, ctx.world
    ep, t, m = episodes(rng, n, (3, 10), (ctx.t0, ctx.t1), 40_000)
    cards = rng.integers(0, ctx.legit_cards, m).astype(np.int32)[ep]
    mcc = _mcc_rows(w, ["5815", "5816", "5818", "5999"], rng, m)
    merchant = ecom_merchant(rng, w, mcc)
    f = legit_rows(rng, w, t, cards, mcc=mcc[ep], channel=np.full(n, CH_ECOM, np.int8))
    f.merchant[:] = merchant[ep]
    f.benef[:] = merchant[ep]
    f.amount[:] = TEST_AMOUNTS[rng.integers(0, len(TEST_AMOUNTS), n)]
    f.device[:] = DEVICE_FRESH_BASE + rng.integers(0, 1 << 30, m)[ep]
    f.new_device[:] = 1
    f.ip[:] = random_public_ips(rng, m)[ep]
    away = (rng.random(m) < 0.1)[ep]
    cust = w.card_customer[cards]
    f.loc[:] = np.where(away, far_locations(rng, w, w.cust_home_city[cust]), f.loc)
    return _finish(ctx, f, code, SIGNAL["card_testing"])


def card_not_present(ctx: Ctx, n: int, code: int) -> Frame:
    """Stolen card details used online."""
    rng, w = ctx.rng, ctx.world
    ep, t, m = episodes(rng, n, (1, 3), (ctx.t0, ctx.t1), 2 * 3_600_000)
    cards = rng.integers(0, ctx.legit_cards, m).astype(np.int32)[ep]
    cat = w.catalog
    online = np.flatnonzero((cat.ecom_share >= 0.3) & (np.array(cat.mode) == "mixed"))
    weights = cat.share[online] * cat.ecom_share[online]
    mcc = online[np.searchsorted(np.cumsum(weights), rng.random(n) * weights.sum())]
    mcc = mcc.astype(np.int32)
    f = legit_rows(rng, w, t, cards, mcc=mcc, channel=np.full(n, CH_ECOM, np.int8))
    cust = w.card_customer[cards]
    f.amount[:] = sample_amounts(rng, mcc, w.cust_spend[cust], cat, scale=3.0)
    stranger = (rng.random(m) < 0.5)[ep]
    f.device[:] = np.where(stranger, DEVICE_FRESH_BASE + rng.integers(0, 1 << 30, m)[ep],
                           f.device)
    f.new_device[:] = np.maximum(f.new_device, stranger.astype(np.int8))
    f.ip[:] = np.where(stranger, random_public_ips(rng, m)[ep], f.ip)
    away = (rng.random(m) < 0.3)[ep]
    f.loc[:] = np.where(away, far_locations(rng, w, w.cust_home_city[cust]), f.loc)
    return _finish(ctx, f, code, SIGNAL["card_not_present"])


def friendly_fraud(ctx: Ctx, n: int, code: int) -> Frame:
    """The customer's own purchase, disputed later."""
    rng, w = ctx.rng, ctx.world
    t = draw_times(rng, n, ctx.t0, ctx.t1 - ctx.t0)
    cards = draw_cards(rng, w, n, legit_cards=ctx.legit_cards)
    f = legit_rows(rng, w, t, cards)
    return _finish(ctx, f, code, SIGNAL["friendly_fraud"])


PROFILES: dict[str, Callable[[Ctx, int, int], Frame]] = {
    "upi_scam": upi_scam,
    "account_takeover": account_takeover,
    "card_testing": card_testing,
    "card_not_present": card_not_present,
    "friendly_fraud": friendly_fraud,
}
