"""Parsing and validation of the input contracts (scored transaction, label).

The hot path of every worker: a batch of raw JSON payloads goes in, validated
events and rejections come out; nothing raises. Each rejection carries a
machine-readable ``reason`` (``<kind>:<field path>``, e.g. ``missing_field:card_id``
or ``amount:too_many_decimals``), a human ``detail`` and the raw payload, so it
can go to the dead-letter topic and the ``rejected_events`` table unchanged.

Amounts are parsed exactly from the JSON text (never through a binary float)
into integer minor units:

>>> batch = parse_scored_batch([EXAMPLE_EVENT])
>>> ev = batch.events[0]
>>> ev.amount_minor, ev.amount_cents, ev.event_time.isoformat()
(489237, 37, '2026-03-18T14:00:03+00:00')
>>> bad = parse_scored_batch([b'{"event_id": "e1"}']).rejected[0]
>>> bad.reason
'missing_field:txn_id'
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal

import msgspec

from driftwatch.amounts import AmountError, InvalidField, amount_from_raw
from driftwatch.decoding import reason_for, structure_problem

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_MS = dt.timedelta(milliseconds=1)
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_AMOUNT_MINOR = 10**12 * 100  # amounts above 1e12 major units are rejected
MIN_EVENT_TIME = dt.datetime(2000, 1, 1, tzinfo=UTC)
MAX_EVENT_TIME = dt.datetime(2100, 1, 1, tzinfo=UTC)
CHANNELS = ("card_present", "ecom", "upi", "transfer", "atm", "other")
DECISIONS = ("approve", "review", "decline")
LABEL_SOURCES = ("chargeback", "analyst", "customer_report", "other")

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Opt128 = Annotated[str, msgspec.Meta(max_length=128)]
Unit = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Channel = Literal["card_present", "ecom", "upi", "transfer", "atm", "other"]
Decision = Literal["approve", "review", "decline"]
FeatureValue = float | str | bool | None


# ---------------------------------------------------------------------------------------
# Wire shapes (exactly the JSON contracts; unknown fields are ignored). Decoded from JSON
# they can never be part of a reference cycle, so they are not GC-tracked (``gc=False``):
# tracking them made the cyclic collector run over every batch and cost ~30% of parsing.
# ---------------------------------------------------------------------------------------
class _Geo(msgspec.Struct, gc=False):
    lat: Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
    lon: Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]


class _Model(msgspec.Struct, gc=False):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    version: Annotated[str, msgspec.Meta(min_length=1)]
    score: Unit
    threshold: Unit = 0.7
    decision: Decision | msgspec.UnsetType = msgspec.UNSET


class _Shadow(msgspec.Struct, gc=False):
    version: str
    score: Unit


class _WireScored(msgspec.Struct, gc=False):
    event_id: Id
    txn_id: Id
    event_time: dt.datetime
    amount: msgspec.Raw
    currency: str  # ^[A-Z]{3}$, checked in _normalise (see _check_codes)
    mcc: str  # ^[0-9]{4}$
    merchant_id: Id
    card_id: Id
    model: _Model
    merchant_country: str | msgspec.UnsetType = msgspec.UNSET  # ^[A-Z]{2}$
    merchant_registered_at: dt.date | msgspec.UnsetType = msgspec.UNSET
    customer_id: Opt128 = ""
    beneficiary_name: Annotated[str, msgspec.Meta(max_length=256)] = ""
    channel: Channel | msgspec.UnsetType = msgspec.UNSET
    ip: str = ""
    device_id: Opt128 = ""
    geo: _Geo | msgspec.UnsetType = msgspec.UNSET
    features: dict[str, FeatureValue] = msgspec.field(default_factory=dict)
    shadow: list[_Shadow] = msgspec.field(default_factory=list)


class _WireLabel(msgspec.Struct, gc=False):
    txn_id: Id
    label: Literal[0, 1]
    label_time: dt.datetime
    source: Literal["chargeback", "analyst", "customer_report", "other"] = "other"


# ---------------------------------------------------------------------------------------
# Validated, normalised events
# ---------------------------------------------------------------------------------------
class ScoredTransaction(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One validated scored transaction, normalised (UTC time, amount in minor units).

    Optional contract fields that were absent are ``""`` (strings) or ``None``.
    ``decision`` is the scorer's decision, or derived from score and threshold
    (``review`` at or above the threshold, ``approve`` below) when absent.

    msgspec encodes it as a JSON array in field order (``array_like``): the embedded
    store's insert reads those arrays (half the bytes of objects, a third less work on
    both sides). :func:`scored_to_dict` gives the contract's object form.
    """

    event_id: str
    txn_id: str
    event_time: dt.datetime
    amount_minor: int
    currency: str
    mcc: str
    merchant_id: str
    merchant_country: str
    merchant_registered_at: dt.date | None
    card_id: str
    customer_id: str
    beneficiary_name: str
    channel: str
    ip: str
    device_id: str
    geo_lat: float | None
    geo_lon: float | None
    features: dict[str, FeatureValue]
    model_name: str
    model_version: str
    score: float
    threshold: float
    decision: str
    shadow_versions: tuple[str, ...]
    shadow_scores: tuple[float, ...]
    event_ms: int = 0
    """Event time as integer milliseconds since the Unix epoch (set by the parser)."""

    @property
    def amount_cents(self) -> int:
        """The last two digits of the amount in minor units (the cents value)."""
        return self.amount_minor % 100


class Label(msgspec.Struct, frozen=True, gc=False):
    """One validated ground-truth label (1 = fraud, 0 = legitimate)."""

    txn_id: str
    label: int
    label_time: dt.datetime
    source: str


class Rejection(msgspec.Struct, frozen=True):
    """A payload that failed parsing or validation, with why."""

    reason: str
    detail: str
    raw: bytes
    kind: str = "scored"
    event_id: str = ""


class ScoredBatch(msgspec.Struct):
    """Result of parsing one batch of scored-transaction payloads."""

    events: list[ScoredTransaction]
    rejected: list[Rejection]


class LabelBatch(msgspec.Struct):
    """Result of parsing one batch of label payloads."""

    labels: list[Label]
    rejected: list[Rejection]


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
"""Dotted-quad IPv4 exactly as :func:`ipaddress.ip_address` accepts it (no leading zeros)."""


def _valid_ip(text: str) -> bool:
    return _IPV4.fullmatch(text) is not None or _valid_ip_slow(text)


@functools.lru_cache(maxsize=65536)
def _valid_ip_slow(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------
# Batch parsing
# ---------------------------------------------------------------------------------------
_scored_decoder = msgspec.json.Decoder(_WireScored)
_label_decoder = msgspec.json.Decoder(_WireLabel)
_id_probe = msgspec.json.Decoder(dict[str, Any])


def _event_id_of(raw: bytes) -> str:
    try:
        obj = _id_probe.decode(raw)
    except Exception:  # any failure: no id (called only on bounded payloads)
        return ""
    value = obj.get("event_id")
    return value[:128] if isinstance(value, str) else ""


def _to_utc(value: dt.datetime, field: str) -> dt.datetime:
    if value.tzinfo is None:
        raise InvalidField(f"no_timezone:{field}", f"{field} has no UTC offset")
    utc = value.astimezone(UTC)
    if not MIN_EVENT_TIME <= utc < MAX_EVENT_TIME:
        raise InvalidField(
            f"out_of_range:{field}", f"{field} {utc.isoformat()} is outside 2000..2100"
        )
    return utc


_CODE_PATTERNS = {
    "currency": re.compile("^[A-Z]{3}$"),
    "mcc": re.compile("^[0-9]{4}$"),
    "merchant_country": re.compile("^[A-Z]{2}$"),
}
_GOOD_CODES: dict[str, set[str]] = {name: set() for name in _CODE_PATTERNS}
"""Values already seen to match their pattern. Each set is bounded by its pattern (at
most 2 x 26**3 currencies, 2 x 10**4 MCCs, 2 x 26**2 countries), so a lookup replaces
the regex search msgspec would run on every event (a quarter of the decode time)."""
_GOOD_CCY, _GOOD_MCC, _GOOD_COUNTRY = (_GOOD_CODES[k] for k in _CODE_PATTERNS)


def _check_codes(currency: str, mcc: str, country: str | msgspec.UnsetType) -> None:
    """Check the code fields against their patterns (``search``, as msgspec did)."""
    for name, value in (("currency", currency), ("mcc", mcc), ("merchant_country", country)):
        if value is msgspec.UNSET or value in _GOOD_CODES[name]:
            continue
        pattern = _CODE_PATTERNS[name]
        if not isinstance(value, str) or pattern.search(value) is None:
            raise InvalidField(
                f"bad_format:{name}",
                f"Expected `str` matching regex {pattern.pattern!r} - at `$.{name}`",
            )
        _GOOD_CODES[name].add(value)


_GOOD_FEATURE_NAMES: set[str] = set()
"""Feature names already checked (at most 10,000 kept: names repeat from event to event)."""


def _check_feature_names(features: dict[str, FeatureValue]) -> None:
    if min(map(len, features)) == 0 or max(map(len, features)) > 128:
        raise InvalidField("bad_format:features", "feature names must be 1..128 characters")
    if len(_GOOD_FEATURE_NAMES) < 10_000:
        _GOOD_FEATURE_NAMES.update(features)


_MIN_EVENT_MS = (MIN_EVENT_TIME - EPOCH) // _MS
_MAX_EVENT_MS = (MAX_EVENT_TIME - EPOCH) // _MS


def _normalise(w: _WireScored) -> ScoredTransaction:
    # The hot path: one call per event, so it avoids helper calls, keyword arguments and
    # generator expressions where a cheaper equivalent says the same thing.
    minor = amount_from_raw(w.amount)
    if minor > MAX_AMOUNT_MINOR:
        raise AmountError("amount:too_large", "amount exceeds 1e12")
    event_time = w.event_time
    if event_time.tzinfo is not UTC:
        event_time = _to_utc(event_time, "event_time")
    event_ms = (event_time - EPOCH) // _MS
    if not _MIN_EVENT_MS <= event_ms < _MAX_EVENT_MS:
        _to_utc(event_time, "event_time")  # raises out_of_range:event_time
    country = w.merchant_country
    if (
        w.currency not in _GOOD_CCY
        or w.mcc not in _GOOD_MCC
        or (country not in _GOOD_COUNTRY and country is not msgspec.UNSET)
    ):
        _check_codes(w.currency, w.mcc, country)
    ip = w.ip
    if ip and not _valid_ip(ip):
        raise InvalidField("bad_format:ip", f"ip is not an IPv4 or IPv6 address: {ip[:64]!r}")
    features = w.features
    if features and not features.keys() <= _GOOD_FEATURE_NAMES:
        _check_feature_names(features)
    m = w.model
    decision = m.decision
    if decision is msgspec.UNSET:
        decision = "review" if m.score >= m.threshold else "approve"
    geo = w.geo
    reg = w.merchant_registered_at
    channel = w.channel
    shadow = w.shadow
    if not shadow:
        versions: tuple[str, ...] = ()
        scores: tuple[float, ...] = ()
    elif len(shadow) == 1:  # the common case: one challenger
        versions, scores = (shadow[0].version,), (shadow[0].score,)
    else:
        versions = tuple([s.version for s in shadow])
        scores = tuple([s.score for s in shadow])
    return ScoredTransaction(
        w.event_id,
        w.txn_id,
        event_time,
        minor,
        w.currency,
        w.mcc,
        w.merchant_id,
        "" if country is msgspec.UNSET else country,
        None if reg is msgspec.UNSET else reg,
        w.card_id,
        w.customer_id,
        w.beneficiary_name,
        "" if channel is msgspec.UNSET else channel,
        ip,
        w.device_id,
        None if geo is msgspec.UNSET else geo.lat,
        None if geo is msgspec.UNSET else geo.lon,
        features,
        m.name,
        m.version,
        m.score,
        m.threshold,
        decision,
        versions,
        scores,
        event_ms,
    )


def parse_scored(raw: bytes) -> ScoredTransaction | Rejection:
    """Parse and validate one scored-transaction payload; never raises.

    Payloads over :data:`MAX_PAYLOAD_BYTES`, nested deeper than
    :data:`~driftwatch.decoding.MAX_DEPTH` or holding a key twice in one object are
    rejected before decoding (``payload_too_large``, ``too_deep``,
    ``duplicate_key:<path>``).
    """
    if len(raw) > MAX_PAYLOAD_BYTES:
        return Rejection("payload_too_large", f"{len(raw)} bytes > {MAX_PAYLOAD_BYTES}", raw)
    problem = structure_problem(raw)
    if problem is not None:
        reason, detail = problem
        event_id = "" if reason == "too_deep" else _event_id_of(raw)
        return Rejection(reason, detail, raw, "scored", event_id)
    try:
        return _normalise(_scored_decoder.decode(raw))
    except InvalidField as exc:
        return Rejection(exc.reason, str(exc), raw, "scored", _event_id_of(raw))
    except (msgspec.DecodeError, ValueError, TypeError) as exc:
        return Rejection(reason_for(exc), str(exc), raw, "scored", _event_id_of(raw))
    except Exception as exc:  # nothing may raise out of the decoder
        return Rejection("invalid", f"{type(exc).__name__}: {exc}"[:500], raw, "scored")


def _as_bytes(raw: bytes | str) -> bytes | Rejection:
    """A payload as bytes; a text that is not encodable (lone surrogates) is rejected."""
    if not isinstance(raw, str):
        return raw
    try:
        return raw.encode()
    except UnicodeEncodeError:
        return Rejection("invalid_utf8", "payload is not valid UTF-8",
                         raw.encode("utf-8", "replace"))


def parse_scored_batch(raws: Iterable[bytes | str]) -> ScoredBatch:
    """Parse a batch of scored-transaction payloads into events and rejections."""
    events: list[ScoredTransaction] = []
    rejected: list[Rejection] = []
    ok = events.append
    decode = _scored_decoder.decode
    for raw in raws:
        data = raw if isinstance(raw, bytes) else _as_bytes(raw)
        if isinstance(data, Rejection):
            rejected.append(data)
            continue
        try:
            if len(data) > MAX_PAYLOAD_BYTES or structure_problem(data) is not None:
                raise InvalidField("structure", "")
            ok(_normalise(decode(data)))
        except Exception:
            # Rare: redo it the slow way, which builds the rejection with its reason.
            result = parse_scored(data)
            if isinstance(result, Rejection):
                rejected.append(result)
            else:  # pragma: no cover - both paths run the same checks
                ok(result)
    return ScoredBatch(events, rejected)


def parse_label(raw: bytes) -> Label | Rejection:
    """Parse and validate one label payload; never raises (bounded as
    :func:`parse_scored`)."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        return Rejection("payload_too_large", f"{len(raw)} bytes", raw, "label")
    problem = structure_problem(raw)
    if problem is not None:
        return Rejection(problem[0], problem[1], raw, "label")
    try:
        w = _label_decoder.decode(raw)
        return Label(w.txn_id, int(w.label), _to_utc(w.label_time, "label_time"), w.source)
    except InvalidField as exc:
        return Rejection(exc.reason, str(exc), raw, "label")
    except (msgspec.DecodeError, ValueError, TypeError) as exc:
        return Rejection(reason_for(exc), str(exc), raw, "label")
    except Exception as exc:  # nothing may raise out of the decoder
        return Rejection("invalid", f"{type(exc).__name__}: {exc}"[:500], raw, "label")


def parse_label_batch(raws: Iterable[bytes | str]) -> LabelBatch:
    """Parse a batch of label payloads into labels and rejections."""
    labels: list[Label] = []
    rejected: list[Rejection] = []
    for raw in raws:
        data = _as_bytes(raw)
        result = parse_label(data) if isinstance(data, bytes) else replace_kind(data, "label")
        if isinstance(result, Label):
            labels.append(result)
        else:
            rejected.append(result)
    return LabelBatch(labels, rejected)


def replace_kind(rejection: Rejection, kind: str) -> Rejection:
    """The same rejection for another kind of payload."""
    return Rejection(rejection.reason, rejection.detail, rejection.raw, kind, rejection.event_id)


def epoch_ms(value: dt.datetime) -> int:
    """Integer milliseconds since the epoch of an aware datetime."""
    return (value - EPOCH) // dt.timedelta(milliseconds=1)


EXAMPLE_EVENT = (
    b'{"event_id": "e-0001", "txn_id": "t-0001", "event_time": "2026-03-18T14:00:03Z",'
    b' "amount": "4892.37", "currency": "USD", "mcc": "5967", "merchant_id": "m-417",'
    b' "merchant_country": "LT", "merchant_registered_at": "2026-01-20", "card_id": "c-99812",'
    b' "beneficiary_name": "INTL-PAY-GLOBALSERV", "channel": "ecom", "ip": "198.51.100.47",'
    b' "features": {"transactions_24h": 14, "foreign_transaction": 1},'
    b' "model": {"name": "fraud-detect", "version": "v47", "score": 0.21, "threshold": 0.7,'
    b' "decision": "approve"}, "shadow": [{"version": "v46", "score": 0.88}]}'
)
"""The contract's example event, used in docs and tests."""
