"""The ``incident_keys`` of many new rule alerts at once (see
:func:`~driftwatch.alerts.incidents.rule_signature`, one alert per query).

An update of the alert book may open many rule alerts together: at the start of a
stream a rule that hits in every MCC opens one alert per MCC within seconds (160 in
``bench/stream.py``), and each alert's pattern was one query, 5-30 ms on the embedded
engine, on the worker's commit path. Here the alerts of one update share two queries:
the hits of their rules over the union of their windows (with the segment columns the
hits carry), and the amounts and names of those transactions; each alert then takes
its own hits in Python, with the conditions the single query applies (rule, window,
segment columns), so the keys are the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from driftwatch.alerts.incidents import _HIT_DIMS, HIT_WINDOW, _utc, segment_atoms, signature
from driftwatch.events import EPOCH, epoch_ms
from driftwatch.store.client import Store

_MS = dt.timedelta(milliseconds=1)
_COLUMNS = ("rule_id", *_HIT_DIMS)


class SignatureRequest(NamedTuple):
    """One alert's pattern to read: its rule, segment and window (inclusive)."""

    rule_id: str
    segment: str
    since: dt.datetime
    until: dt.datetime


def _ms(t: dt.datetime) -> int:
    """Epoch milliseconds, truncated as a ``DateTime64(3)`` parameter is."""
    return epoch_ms(_utc(t))


def rule_signatures(store: Store, requests: Sequence[SignatureRequest]) -> list[str]:
    """:func:`~driftwatch.alerts.incidents.rule_signature` of each request, in order,
    with two queries whatever their number."""
    if not requests:
        return []
    lo = min(_ms(r.since) for r in requests)
    hi = max(_ms(r.until) for r in requests)
    params = {"rules": sorted({r.rule_id for r in requests}),
              "lo": EPOCH + lo * _MS, "hi": EPOCH + hi * _MS}
    window = HIT_WINDOW
    hits = store.query(
        f"SELECT event_id, toUnixTimestamp64Milli(event_time), {', '.join(_COLUMNS)} "
        f"FROM {{db}}.rule_hits WHERE rule_id IN {{rules:Array(String)}} AND {window}",
        params,
    )
    rows = store.query(
        "SELECT event_id, toUnixTimestamp64Milli(event_time), amount_cents, "
        f"beneficiary_name FROM {{db}}.scored_transactions WHERE {window} AND event_id IN "
        f"(SELECT event_id FROM {{db}}.rule_hits WHERE rule_id IN {{rules:Array(String)}} "
        f"AND {window})",
        params,
    )
    out = []
    for r in requests:
        r_lo, r_hi = _ms(r.since), _ms(r.until)
        atoms = [(3 + _HIT_DIMS.index(name), value)
                 for name, value in sorted(segment_atoms(r.segment)) if name in _HIT_DIMS]
        ids = {
            h[0] for h in hits
            if h[2] == r.rule_id and r_lo <= h[1] <= r_hi
            and all(str(h[i]) == value for i, value in atoms)
        }
        mine = [(int(c), str(n)) for eid, t, c, n in rows
                if eid in ids and r_lo <= t <= r_hi][:1000]
        out.append(signature(mine))
    return out
