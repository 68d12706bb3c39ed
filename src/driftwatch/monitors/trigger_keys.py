"""The trigger miner's grouped SQL and its keys: the mined fields, their buckets, a
row's model-independent risk flags, and conjunctions over the keys
(:mod:`driftwatch.monitors.trigger_mining`)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from driftwatch.monitors.base import SCORED, WINDOW

SEP = "\x1e"
"""Field separator of a reference key (not ``\\x1f``: each key is its own segment)."""
FIELDS = ("mcc", "amount_cents", "beneficiary_name", "merchant_age", "merchant_country",
          "channel", "amount_band")
"""The grouped columns, in key order."""
ATTRIBUTES = ("amount_cents", "beneficiary_prefix", "merchant_age", "amount_band",
              "merchant_country", "channel", "mcc")
"""The mined attributes, in search order (the most selective first)."""
AGE_EDGES = (0, 30, 90, 180, 365, 730)
"""Merchant-age buckets in days (as the training scan's), labelled ``30..89``."""
BAND_EDGES = (0, 1_000, 10_000, 100_000, 1_000_000)
"""Amount bands in minor units, labelled in major units (``100..999``)."""

AGE_SQL = ("if(mapContains(features_num, 'merchant_age_days'), features_num['merchant_age_days'], "
        "if(isNull(merchant_registered_at), -1, "
        "toFloat64(dateDiff('day', assumeNotNull(merchant_registered_at), toDate(event_time)))))")


def buckets_sql(expr: str, edges: tuple[int, ...], scale: int) -> str:
    """A ``multiIf`` of ``expr`` into labelled ranges (``''`` below the first edge)."""
    parts = [f"{expr} < {edges[0]}, ''"]
    for lo, hi in itertools.pairwise(edges):
        parts.append(f"{expr} < {hi}, '{lo // scale}..{hi // scale - 1}'")
    return f"multiIf({', '.join(parts)}, '{edges[-1] // scale}..')"


def bucket_label(value: float, edges: tuple[int, ...], scale: int = 1) -> str:
    """The label :func:`buckets_sql` gives ``value`` (Python side, for tests and evidence).

    >>> bucket_label(45, AGE_EDGES), bucket_label(123456, BAND_EDGES, 100)
    ('30..89', '1000..9999')
    """
    if value < edges[0]:
        return ""
    for lo, hi in itertools.pairwise(edges):
        if value < hi:
            return f"{lo // scale}..{hi // scale - 1}"
    return f"{edges[-1] // scale}.."


def flags_sql(shadow_gap: float) -> str:
    """The number of model-independent risk flags of a row (SQL)."""
    return (
        "(features_num['transactions_24h'] >= 5) + (features_num['foreign_transaction'] = 1)"
        " + (features_num['new_payee'] = 1)"
        f" + (age_days >= 0 AND age_days < 180) + (amount_minor >= 100000)"
        f" + 2 * (length(shadow_scores) > 0 AND arrayMax(shadow_scores) - score >= {shadow_gap!r})"
    )


def window_sql(min_flags: int, shadow_gap: float, cards: bool) -> str:
    """The one GROUP BY of a window: suspicious rows per attribute combination, every
    other row in the group whose fields are all empty."""
    def text(col: str) -> str:  # the separator never comes from the data
        return f"replaceAll({col}, char(30), ' ')"

    fields = {
        "mcc": text("mcc"), "amount_cents": "toString(amount_cents)",
        "beneficiary_name": text("beneficiary_name"),
        "merchant_age": buckets_sql("age_days", AGE_EDGES, 1),
        "merchant_country": text("merchant_country"), "channel": text("channel"),
        "amount_band": buckets_sql("amount_minor", BAND_EDGES, 100),
    }
    key = f"if(sus, concatWithSeparator(char(30), {', '.join(fields[f] for f in FIELDS)}), '')"
    extra = ", groupUniqArrayIf(card_id, sus) AS cards" if cards else ""
    return (
        f"SELECT {key} AS key, count() AS n, countIf(sus) AS k{extra} FROM ("
        f"SELECT *, {AGE_SQL} AS age_days, "
        f"({flags_sql(shadow_gap)}) >= {int(min_flags)} AND score < threshold AS sus "
        f"FROM {SCORED} WHERE {WINDOW}) GROUP BY key"
    )


def parse_key(key: str) -> dict[str, str]:
    """A reference key back to its fields.

    >>> parse_key(SEP.join(["5967", "37", "INTL-PAY-X", "30..89", "LT", "ecom", "1000..9999"]))[
    ...     "beneficiary_name"]
    'INTL-PAY-X'
    """
    return dict(zip(FIELDS, key.split(SEP), strict=True))


def matches(conj: Mapping[str, Any], fields: Mapping[str, str]) -> bool:
    """Whether a row's fields fall in the conjunction.

    >>> matches({"beneficiary_prefix": "GLX-", "amount_cents": 91},
    ...         {"beneficiary_name": "GLX-TRD 4", "amount_cents": "91"})
    True
    """
    for attr, value in conj.items():
        if attr == "beneficiary_prefix":
            if not fields.get("beneficiary_name", "").startswith(str(value)):
                return False
        elif fields.get(attr) != str(value):
            return False
    return True


def conjunction_text(conj: Mapping[str, Any]) -> str:
    """The label: items in search order, the MCC left out (it has its own label).

    >>> conjunction_text({"mcc": "5967", "amount_cents": 91, "beneficiary_prefix": "GLX-TRD",
    ...                   "merchant_age": "30..89"})
    'amount_cents=91 & beneficiary_prefix=GLX-TRD & merchant_age=30..89'
    """
    return " & ".join(f"{a}={conj[a]}" for a in ATTRIBUTES if a in conj and a != "mcc")
