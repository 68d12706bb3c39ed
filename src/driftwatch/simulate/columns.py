"""Row-aligned wire fragments of the events for the event encoder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.simulate.encode import (
    EventColumns,
    concat,
    feature_heads,
    ip_texts,
    lookup,
    lookup_unique,
    zpad,
)
from driftwatch.simulate.frame import CH_ATM, CH_CARD_PRESENT, CHANNELS
from driftwatch.simulate.run import I64, Benef, Features, Scores, Traffic
from driftwatch.simulate.world import DEVICE_TERMINAL_BASE


def event_columns(tr: Traffic, x: Features, s: Scores, benef: Benef) -> EventColumns:
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
