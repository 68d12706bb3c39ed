"""Legitimate traffic: who buys what, where, when, from which device.

Event times follow a daily curve (quiet at night, peaks at lunch and in the
evening) and a weekly one; each event picks a card in proportion to its habitual
activity, a category from the MCC mix, then a channel from the category's
e-commerce share. Card-present purchases happen at a merchant of the card
holder's current city (home, or the trip destination while travelling);
online ones carry the customer's own location, device and IP (home line,
mobile carrier, or the hotel line while travelling). Transfers go to the
customer's regular payees, now and then a new one.

>>> from driftwatch.simulate.world import build_world
>>> rng = np.random.default_rng(1)
>>> w = build_world(rng, n_customers=300, start_day=20528)
>>> t = draw_times(rng, 1000, 20528 * 86_400_000, 86_400_000)
>>> f = legit_rows(rng, w, t, draw_cards(rng, w, 1000))
>>> len(f), bool(np.all(np.diff(f.t) >= 0)), int(f.fraud.sum())
(1000, True, 0)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from driftwatch.simulate.amounts import sample_amounts
from driftwatch.simulate.frame import (
    CH_ATM,
    CH_CARD_PRESENT,
    CH_ECOM,
    CH_TRANSFER,
    CH_UPI,
    Frame,
)
from driftwatch.simulate.world import DEVICE_FRESH_BASE, DEVICE_TERMINAL_BASE, PAYEE_BASE, World

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

# Share of the daily volume per hour of the day (UTC) and per weekday (Mon..Sun).
HOURLY = np.array([0.35, 0.25, 0.18, 0.15, 0.15, 0.2, 0.35, 0.6, 0.85, 1.0, 1.1, 1.2, 1.3,
                   1.25, 1.15, 1.1, 1.15, 1.25, 1.35, 1.3, 1.15, 0.95, 0.7, 0.5])
WEEKDAY = np.array([0.95, 0.95, 0.97, 1.0, 1.1, 1.12, 0.91])
NEW_DEVICE_RATE = 0.004
NEW_PAYEE_RATE = 0.08
MOBILE_SHARE = 0.4
UPI_SHARE_IN = 0.5  # Indian customers pay online via UPI this often


def intensity(minute_ms: I64) -> npt.NDArray[np.float64]:
    """Relative traffic intensity at the given minute starts (ms since epoch)."""
    hours = (minute_ms // 60_000) % 1440 / 60.0
    lo = np.floor(hours).astype(np.int64) % 24
    frac = hours - np.floor(hours)
    hourly = HOURLY[lo] * (1 - frac) + HOURLY[(lo + 1) % 24] * frac
    weekday = ((minute_ms // 86_400_000) + 3) % 7  # 1970-01-01 was a Thursday
    return np.asarray(hourly * WEEKDAY[weekday], dtype=np.float64)


def draw_times(rng: np.random.Generator, n: int, t0: int, duration_ms: int) -> I64:
    """``n`` sorted event times in ``[t0, t0 + duration)`` following :func:`intensity`."""
    minutes = max(1, -(-duration_ms // 60_000))
    starts = t0 + np.arange(minutes, dtype=np.int64) * 60_000
    weights = intensity(starts)
    weights[-1] *= (duration_ms - (minutes - 1) * 60_000) / 60_000
    cum = np.cumsum(weights)
    minute = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
    minute = np.minimum(minute, minutes - 1)
    t = starts[minute] + rng.integers(0, 60_000, n)
    t = np.minimum(t, t0 + duration_ms - 1)
    t.sort()
    return np.asarray(t, dtype=np.int64)


def draw_cards(rng: np.random.Generator, w: World, n: int, *, legit_cards: int | None = None
               ) -> I32:
    """``n`` cards in proportion to their habitual activity (legitimate cards only).

    Multinomial counts per card, repeated and shuffled: O(n + cards), no search.
    """
    k = legit_cards if legit_cards is not None else w.n_cards
    p = w.card_habit[:k] / w.card_habit[:k].sum()
    counts = rng.multinomial(n, p)
    cards = np.repeat(np.arange(k, dtype=np.int32), counts)
    rng.shuffle(cards)
    return cards


def draw_mcc(rng: np.random.Generator, w: World, n: int) -> I32:
    """Categories from the catalog's volume mix."""
    cum = np.cumsum(w.catalog.share)
    pos = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
    return np.asarray(np.minimum(pos, len(cum) - 1), dtype=np.int32)


def ecom_merchant(rng: np.random.Generator, w: World, mcc: I32, skew: float = 2.0) -> I64:
    """An online merchant of each category (popular ones first)."""
    u = rng.random(len(mcc)) ** skew
    return (w.ecom_start[mcc] + np.floor(u * w.ecom_count[mcc])).astype(np.int64)


def legit_rows(
    rng: np.random.Generator,
    w: World,
    t: I64,
    cards: I32,
    *,
    mcc: I32 | None = None,
    channel: npt.NDArray[np.int8] | None = None,
) -> Frame:
    """Legitimate-looking transactions of ``cards`` at times ``t``.

    ``mcc`` and ``channel`` may be forced (e.g. friendly fraud, camouflage).
    """
    n = len(t)
    cat = w.catalog
    cust = w.card_customer[cards]
    if mcc is None:
        mcc = draw_mcc(rng, w, n)
    mode = cat.mode_code[mcc]
    if channel is None:
        online = rng.random(n) < cat.ecom_share[mcc]
        channel = np.where(online, CH_ECOM, CH_CARD_PRESENT).astype(np.int8)
        channel[mode == 1] = CH_TRANSFER
        channel[mode == 2] = CH_ATM
        india = w.cust_country[cust] == w.country("IN")
        upi = india & ((channel == CH_TRANSFER) | ((channel == CH_ECOM)
                                                    & (rng.random(n) < UPI_SHARE_IN)))
        channel[upi] = CH_UPI
    present = (channel == CH_CARD_PRESENT) | (channel == CH_ATM)
    # a card-present purchase needs a merchant with a shop: fall back to online
    no_shop = present & (w.cell_count[mcc, 0] == 0)
    channel[no_shop] = CH_ECOM
    present &= ~no_shop
    shop_rows = np.flatnonzero(present)
    own_rows = np.flatnonzero(~present)
    on_trip = (t >= w.trip_start[cust]) & (t < w.trip_end[cust])
    # card present: a shop of the current city; its place, terminal and network
    c_s, m_s, trip_s = cust[shop_rows], mcc[shop_rows], on_trip[shop_rows]
    city = np.where(trip_s, w.trip_city[c_s], w.cust_home_city[c_s])
    u = rng.random(len(shop_rows)) ** 1.6
    shop = (w.cell_start[m_s, city] + np.floor(u * w.cell_count[m_s, city])).astype(np.int64)
    merchant = np.empty(n, np.int64)
    loc = np.empty(n, np.int32)
    ip = np.empty(n, np.int64)
    device = np.empty(n, np.int64)
    merchant[shop_rows] = shop
    loc[shop_rows] = w.merchant_loc[shop]
    ip[shop_rows] = w.merchant_ip[shop]
    device[shop_rows] = DEVICE_TERMINAL_BASE + shop
    # online: the customer's own place, line and devices
    k = len(own_rows)
    c_o, trip_o = cust[own_rows], on_trip[own_rows]
    merchant[own_rows] = ecom_merchant(rng, w, mcc[own_rows])
    loc[own_rows] = np.where(trip_o, w.trip_loc[c_o], w.cust_home_loc[c_o])
    mobile = rng.random(k) < MOBILE_SHARE
    ip[own_rows] = np.where(trip_o, w.trip_ip[c_o],
                            np.where(mobile, w.cust_mobile_ip[c_o], w.cust_home_ip[c_o]))
    fresh = rng.random(k) < NEW_DEVICE_RATE
    known = w.device_of(cards[own_rows], rng.integers(0, 3, k))
    device[own_rows] = np.where(fresh, DEVICE_FRESH_BASE + rng.integers(0, 1 << 30, k), known)
    new_device = np.zeros(n, np.int8)
    new_device[own_rows] = fresh
    # beneficiary: the merchant, or a payee for person-to-person transfers
    benef = merchant.copy()
    new_payee = np.zeros(n, np.int8)
    p2p = np.flatnonzero(mode == 1)
    if len(p2p):
        new = rng.random(len(p2p)) < NEW_PAYEE_RATE
        regular = (cust[p2p].astype(np.int64) * 3 + rng.integers(0, 3, len(p2p))) % w.n_payees
        benef[p2p] = PAYEE_BASE + np.where(new, rng.integers(0, w.n_payees, len(p2p)), regular)
        new_payee[p2p] = new
    amount = sample_amounts(rng, mcc, w.cust_spend[cust], cat)
    return Frame.build(
        n, t=t, amount=amount, merchant=merchant, card=cards, channel=channel, ip=ip,
        device=device, loc=loc, benef=benef, new_payee=new_payee, new_device=new_device,
        age=w.cust_age[cust],
    )
