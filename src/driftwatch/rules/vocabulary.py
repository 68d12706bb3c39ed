"""The closed vocabulary of the rule language: what the type checker accepts.

Model outputs (``score``, ``decision``, ``model_version``, shadow scores) are not
in the vocabulary on purpose: the rule layer is model-independent.

Fields
    Every contract field except the model's: ``event_id txn_id amount_minor
    amount_cents amount currency mcc merchant_id merchant_country
    merchant_registered_at card_id customer_id beneficiary_name channel ip
    device_id geo_lat geo_lon``; ``features.<name>`` (numeric, null if absent or
    not a number; booleans read as 1/0) and ``features_str.<name>`` (string).
    ``amount_minor`` and ``amount_cents`` are exact integers; ``amount`` is the
    float ``amount_minor / 100``.
Scalar functions
    ``starts_with(s, "x")``, ``ends_with``, ``contains``, ``matches(s, "re")``
    (bounded regex, :mod:`~driftwatch.rules.regex_guard`), ``prefix(s, n)``,
    ``length(s)``, ``age_days(merchant_registered_at)``, ``hour_of_day()``,
    ``day_of_week()`` (1 = Monday, UTC), ``abs(x)``, ``present(x)`` (not null and,
    for strings, not empty), ``distance_km(lat1, lon1, lat2, lon2)``.
Windowed aggregates (keyed by ``by=``, window ``within=``, optional ``where=``)
    ``count()``, ``sum(x)``, ``count_distinct(x)`` (nulls and empty strings not
    counted), ``min(x)``, ``max(x)``, ``first_seen(key, within=)``,
    ``monotonic_increase(x, by=, n=, within=, factor>=f)``,
    ``monotonic_decrease(x, by=, n=, within=, factor<=f)``,
    ``travel_km(by=, within=)``, ``travel_speed_kmh(by=, within=, slack_km=, slack_h=)``,
    ``received_max(x, by=, payee=, prefix=, within=)`` (the largest ``x`` of the
    window's events whose ``payee`` is ``prefix`` + this event's ``by`` key).

>>> format_ms(5_400_000), "card_id" in FIELDS, "score" in MODEL_FIELDS
('90m', True, True)
"""

from __future__ import annotations

import difflib

from driftwatch.rules.typed import Ty

FIELDS: dict[str, tuple[Ty, bool]] = {
    "event_id": (Ty.STR, False),
    "txn_id": (Ty.STR, False),
    "amount_minor": (Ty.INT, False),
    "amount_cents": (Ty.INT, False),
    "amount": (Ty.FLOAT, False),
    "currency": (Ty.STR, False),
    "mcc": (Ty.STR, False),
    "merchant_id": (Ty.STR, False),
    "merchant_country": (Ty.STR, False),
    "merchant_registered_at": (Ty.DATE, True),
    "card_id": (Ty.STR, False),
    "customer_id": (Ty.STR, False),
    "beneficiary_name": (Ty.STR, False),
    "channel": (Ty.STR, False),
    "ip": (Ty.STR, False),
    "device_id": (Ty.STR, False),
    "geo_lat": (Ty.FLOAT, True),
    "geo_lon": (Ty.FLOAT, True),
}
"""Every field a rule may read: name -> (type, nullable)."""

MODEL_FIELDS = frozenset(
    {"score", "threshold", "decision", "model", "model_name", "model_version", "shadow",
     "shadow_scores", "shadow_versions", "shadow_score"}
)
"""Fields that are model outputs and therefore never allowed in a rule."""

SCALAR_FUNCTIONS = (
    "starts_with", "ends_with", "contains", "matches", "prefix", "length", "age_days",
    "hour_of_day", "day_of_week", "abs", "present", "distance_km",
)
WINDOW_FUNCTIONS = ("count", "sum", "count_distinct", "min", "max")
SEQUENCE_FUNCTIONS = ("monotonic_increase", "monotonic_decrease")
TRAVEL_FUNCTIONS = ("travel_km", "travel_speed_kmh")
RECEIVED_FUNCTIONS = ("received_max",)
AGGREGATES = (*WINDOW_FUNCTIONS, "first_seen", *SEQUENCE_FUNCTIONS, *TRAVEL_FUNCTIONS,
              *RECEIVED_FUNCTIONS)
MAX_IN_LIST = 1000
MAX_SEQUENCE = 50
MAX_PREFIX = 256


def format_ms(ms: int) -> str:
    """A duration in the largest unit that divides it (``90s``, ``2h``, ``15ms``)."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def suggest(word: str, options: list[str]) -> str:
    """``; did you mean ...?`` for the closest option, else the valid options."""
    close = difflib.get_close_matches(word, options, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(options)}"
