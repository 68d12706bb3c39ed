"""Event parsing and validation: exactness, reasons, and round trips."""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import json
import re
from decimal import Decimal
from typing import Any

import jsonschema
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.amounts import AmountError, format_amount, parse_amount
from driftwatch.event_dicts import label_to_dict, scored_to_dict
from driftwatch.events import (
    EXAMPLE_EVENT,
    ScoredTransaction,
    parse_label,
    parse_label_batch,
    parse_scored,
    parse_scored_batch,
)
from tests.conftest import CONTRACTS

SCORED_SCHEMA = json.loads((CONTRACTS / "scored_transaction.schema.json").read_text())
LABEL_SCHEMA = json.loads((CONTRACTS / "label.schema.json").read_text())
BASE: dict[str, Any] = json.loads(EXAMPLE_EVENT)


def enc(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# --- amounts ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("4892.37", 489237),
        ("1234.37", 123437),
        ("0.01", 1),
        ("10", 1000),
        ("10.5", 1050),
        ("10.50", 1050),
        ("999999999999.99", 99999999999999),
        ("1e3", 100000),
        ("1.37E2", 13700),
        ("0010.37", 1037),
    ],
)
def test_amount_exact(text: str, minor: int) -> None:
    assert parse_amount(text) == minor


def test_amount_json_number_is_exact() -> None:
    """The float trap: int(1234.37 * 100) == 123436, driftwatch must say 123437."""
    assert int(1234.37 * 100) == 123436
    for literal in (b"1234.37", b"4892.37", b"0.29", b"1.15"):
        ev = parse_scored(EXAMPLE_EVENT.replace(b'"4892.37"', literal))
        assert isinstance(ev, ScoredTransaction)
        assert ev.amount_minor == parse_amount(literal)
    ev = parse_scored(EXAMPLE_EVENT.replace(b'"4892.37"', b"1234.37"))
    assert isinstance(ev, ScoredTransaction)
    assert (ev.amount_minor, ev.amount_cents) == (123437, 37)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1.234", "amount:too_many_decimals"),
        ("-5.00", "amount:negative"),
        ("0", "amount:zero"),
        ("0.00", "amount:zero"),
        ("NaN", "amount:not_finite"),
        ("Infinity", "amount:not_finite"),
        ("1e13", "amount:too_large"),
        ("12,50", "amount:not_a_number"),
        ("", "amount:not_a_number"),
        ("ten", "amount:not_a_number"),
    ],
)
def test_amount_rejections(text: str, reason: str) -> None:
    with pytest.raises(AmountError) as err:
        parse_amount(text)
    assert err.value.reason == reason


@given(st.integers(min_value=1, max_value=10**14))
def test_amount_format_roundtrip(minor: int) -> None:
    assert parse_amount(format_amount(minor)) == minor


# --- the contract example --------------------------------------------------------------
def test_example_event_normalised() -> None:
    ev = parse_scored(EXAMPLE_EVENT)
    assert isinstance(ev, ScoredTransaction)
    assert ev.event_time == dt.datetime(2026, 3, 18, 14, 0, 3, tzinfo=dt.UTC)
    assert ev.amount_minor == 489237 and ev.amount_cents == 37
    assert (ev.mcc, ev.merchant_country, ev.channel) == ("5967", "LT", "ecom")
    assert ev.merchant_registered_at == dt.date(2026, 1, 20)
    assert (ev.model_version, ev.score, ev.decision) == ("v47", 0.21, "approve")
    assert ev.shadow_versions == ("v46",) and ev.shadow_scores == (0.88,)
    assert ev.features == {"transactions_24h": 14, "foreign_transaction": 1}


def test_every_field_lands_in_its_named_attribute() -> None:
    """The parser builds events positionally (it is the hot path): check it by name."""
    expected = ScoredTransaction(
        event_id="e-0001", txn_id="t-0001",
        event_time=dt.datetime(2026, 3, 18, 14, 0, 3, tzinfo=dt.UTC), amount_minor=489237,
        currency="USD", mcc="5967", merchant_id="m-417", merchant_country="LT",
        merchant_registered_at=dt.date(2026, 1, 20), card_id="c-99812", customer_id="",
        beneficiary_name="INTL-PAY-GLOBALSERV", channel="ecom", ip="198.51.100.47",
        device_id="", geo_lat=None, geo_lon=None,
        features={"transactions_24h": 14.0, "foreign_transaction": 1.0},
        model_name="fraud-detect", model_version="v47", score=0.21, threshold=0.7,
        decision="approve", shadow_versions=("v46",), shadow_scores=(0.88,),
        event_ms=1_773_842_403_000,
    )
    assert parse_scored(EXAMPLE_EVENT) == expected
    d = copy.deepcopy(BASE)
    d.update(customer_id="u-1", device_id="d-1", geo={"lat": 1.5, "lon": -2.5})
    ev = parse_scored(enc(d))
    assert isinstance(ev, ScoredTransaction)
    assert (ev.customer_id, ev.device_id, ev.geo_lat, ev.geo_lon) == ("u-1", "d-1", 1.5, -2.5)


def test_offsets_normalised_to_utc() -> None:
    ev = parse_scored(EXAMPLE_EVENT.replace(b"2026-03-18T14:00:03Z", b"2026-03-18T16:00:03+02:00"))
    assert isinstance(ev, ScoredTransaction)
    assert ev.event_time == dt.datetime(2026, 3, 18, 14, 0, 3, tzinfo=dt.UTC)


def test_decision_derived_from_threshold() -> None:
    d = copy.deepcopy(BASE)
    d["model"] = {"name": "m", "version": "v1", "score": 0.7}
    ev = parse_scored(enc(d))
    assert isinstance(ev, ScoredTransaction) and ev.decision == "review"
    d["model"]["score"] = 0.69
    ev = parse_scored(enc(d))
    assert isinstance(ev, ScoredTransaction) and ev.decision == "approve"


def test_unknown_fields_are_ignored() -> None:
    d = copy.deepcopy(BASE)
    d["something_new"] = {"nested": [1, 2]}
    assert isinstance(parse_scored(enc(d)), ScoredTransaction)


# --- rejection reasons -----------------------------------------------------------------
def _mut(path: str, value: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    node = d
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k] if not k.isdigit() else node[int(k)]
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return d


_DELETE = object()

MUTATIONS: list[tuple[str, Any, str]] = [
    ("event_id", _DELETE, "missing_field:event_id"),
    ("txn_id", _DELETE, "missing_field:txn_id"),
    ("card_id", _DELETE, "missing_field:card_id"),
    ("model", _DELETE, "missing_field:model"),
    ("model.score", _DELETE, "missing_field:model.score"),
    ("event_id", "", "empty:event_id"),
    ("event_id", 12, "wrong_type:event_id"),
    ("event_id", "x" * 129, "too_long:event_id"),
    ("event_time", "yesterday", "bad_timestamp:event_time"),
    ("event_time", "2026-03-18T14:00:03", "no_timezone:event_time"),
    ("event_time", "1969-03-18T14:00:03Z", "out_of_range:event_time"),
    ("amount", "1.234", "amount:too_many_decimals"),
    ("amount", "-10.00", "amount:negative"),
    ("amount", -10, "amount:negative"),
    ("amount", "NaN", "amount:not_finite"),
    ("amount", "2e12", "amount:too_large"),
    ("amount", "abc", "amount:not_a_number"),
    ("amount", True, "wrong_type:amount"),
    ("amount", None, "wrong_type:amount"),
    ("amount", 0, "amount:zero"),
    ("currency", "usd", "bad_format:currency"),
    ("mcc", "59", "bad_format:mcc"),
    ("mcc", 5967, "wrong_type:mcc"),
    ("merchant_country", "LTU", "bad_format:merchant_country"),
    ("merchant_registered_at", "2026-02-30", "bad_date:merchant_registered_at"),
    ("channel", "fax", "bad_enum:channel"),
    ("ip", "999.1.1.1", "bad_format:ip"),
    ("geo", {"lat": 91, "lon": 0}, "out_of_range:geo.lat"),
    ("geo", {"lat": 10}, "missing_field:geo.lon"),
    ("features", {"x": [1]}, "wrong_type:features[]"),
    ("model.score", 1.5, "out_of_range:model.score"),
    ("model.score", "0.2", "wrong_type:model.score"),
    ("model.threshold", -0.1, "out_of_range:model.threshold"),
    ("model.decision", "block", "bad_enum:model.decision"),
    ("model.version", "", "empty:model.version"),
    ("shadow", [{"version": "v46", "score": 2}], "out_of_range:shadow[].score"),
    ("shadow", [{"score": 0.3}], "missing_field:shadow[].version"),
    ("beneficiary_name", "x" * 257, "too_long:beneficiary_name"),
]


@pytest.mark.parametrize(("path", "value", "reason"), MUTATIONS)
def test_rejection_reasons(path: str, value: Any, reason: str) -> None:
    raw = enc(_mut(path, value))
    result = parse_scored(raw)
    assert not isinstance(result, ScoredTransaction)
    assert result.reason == reason, result.detail
    assert result.raw == raw
    assert result.detail
    # the contract agrees that every one of these is invalid
    if not reason.startswith(("no_timezone", "out_of_range:event_time", "bad_timestamp",
                              "bad_date", "bad_format:ip", "amount:")):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(json.loads(raw), SCORED_SCHEMA)


def test_at_least_twenty_distinct_reasons() -> None:
    assert len({r for _, _, r in MUTATIONS}) >= 20


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "invalid_json"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"event"', "not_an_object"),
        (b"null", "not_an_object"),
        (b"{}", "missing_field:event_id"),
        (b"\xff\xfe{", "invalid_json"),
        (b" " * 70000, "payload_too_large"),
    ],
)
def test_garbage_payloads(raw: bytes, reason: str) -> None:
    result = parse_scored(raw)
    assert not isinstance(result, ScoredTransaction)
    assert result.reason == reason


def test_rejection_keeps_event_id_when_readable() -> None:
    result = parse_scored(enc(_mut("amount", "1.234")))
    assert not isinstance(result, ScoredTransaction)
    assert result.event_id == "e-0001"


def test_batch_splits_good_and_bad() -> None:
    batch = parse_scored_batch([EXAMPLE_EVENT, b"{}", EXAMPLE_EVENT.decode(), b"oops"])
    assert len(batch.events) == 2
    assert [r.reason for r in batch.rejected] == ["missing_field:event_id", "invalid_json"]


# --- labels ----------------------------------------------------------------------------
def test_labels() -> None:
    good = b'{"txn_id": "t-1", "label": 1, "label_time": "2026-03-25T09:12:00+01:00"}'
    label = parse_label(good)
    assert not hasattr(label, "reason")
    assert label_to_dict(label) == {  # type: ignore[arg-type]
        "txn_id": "t-1",
        "label": 1,
        "label_time": "2026-03-25T08:12:00Z",
        "source": "other",
    }
    bad = parse_label_batch(
        [
            b'{"txn_id": "t-1", "label": 2, "label_time": "2026-03-25T09:12:00Z"}',
            b'{"txn_id": "t-1", "label": true, "label_time": "2026-03-25T09:12:00Z"}',
            b'{"txn_id": "", "label": 1, "label_time": "2026-03-25T09:12:00Z"}',
            b'{"txn_id": "t-1", "label": 1}',
            b'{"txn_id": "t-1", "label": 1, "label_time": "2026-03-25T09:12:00"}',
            b'{"txn_id": "t-1", "label": 1, "label_time": "2026-03-25T09:12:00Z", "source": "x"}',
        ]
    ).rejected
    assert [r.reason for r in bad] == [
        "bad_enum:label",
        "wrong_type:label",
        "empty:txn_id",
        "missing_field:label_time",
        "no_timezone:label_time",
        "bad_enum:source",
    ]
    assert all(r.kind == "label" for r in bad)


# --- properties ------------------------------------------------------------------------
ids = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_categories=("Cs",)),
    min_size=1,
    max_size=40,
)
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
times = st.datetimes(
    min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2099, 1, 1),
    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                               dt.timezone(dt.timedelta(hours=-8))]),
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    minor = draw(st.integers(min_value=1, max_value=10**13))
    amount: Any = draw(st.sampled_from(["str", "num"]))
    amount = format_amount(minor) if amount == "str" else json.loads(format_amount(minor))
    ev: dict[str, Any] = {
        "event_id": draw(ids),
        "txn_id": draw(ids),
        "event_time": draw(times).isoformat(),
        "amount": amount,
        "currency": draw(st.from_regex(r"\A[A-Z]{3}\Z")),
        "mcc": draw(st.from_regex(r"\A[0-9]{4}\Z")),
        "merchant_id": draw(ids),
        "card_id": draw(ids),
        "model": {
            "name": draw(ids),
            "version": draw(ids),
            "score": draw(unit),
            "threshold": draw(unit),
        },
    }
    if draw(st.booleans()):
        ev["merchant_country"] = draw(st.from_regex(r"\A[A-Z]{2}\Z"))
        ev["channel"] = draw(st.sampled_from(["card_present", "ecom", "upi", "transfer"]))
        ev["beneficiary_name"] = draw(st.text(max_size=50))
        ev["ip"] = draw(st.sampled_from(["198.51.100.47", "2001:db8::1", "10.0.0.1"]))
        ev["geo"] = {"lat": draw(st.floats(-90, 90)), "lon": draw(st.floats(-180, 180))}
        ev["features"] = draw(
            st.dictionaries(
                st.text(min_size=1, max_size=10),
                st.one_of(st.integers(-1000, 1000), st.booleans(), st.text(max_size=5)),
                max_size=4,
            )
        )
        ev["shadow"] = [{"version": "v46", "score": draw(unit)}]
        ev["merchant_registered_at"] = draw(st.dates(dt.date(2001, 1, 1))).isoformat()
    return ev


@settings(max_examples=200, deadline=None)
@given(valid_events())
def test_valid_events_roundtrip(ev: dict[str, Any]) -> None:
    jsonschema.validate(ev, SCORED_SCHEMA)
    parsed = parse_scored(enc(ev))
    assert isinstance(parsed, ScoredTransaction), parsed
    again = parse_scored(msgspec.json.encode(scored_to_dict(parsed)))
    assert again == parsed
    assert parsed.amount_minor == parse_amount(str(ev["amount"]))
    assert parsed.event_time.utcoffset() == dt.timedelta(0)


@settings(max_examples=300, deadline=None)
@given(valid_events(), st.sampled_from(MUTATIONS))
def test_mutated_events_rejected_with_reason(
    ev: dict[str, Any], mutation: tuple[str, Any, str]
) -> None:
    path, value, _ = mutation
    d = copy.deepcopy(ev)
    d.setdefault("geo", {"lat": 0, "lon": 0})
    d.setdefault("features", {})
    d.setdefault("shadow", [{"version": "v", "score": 0.5}])
    d["model"].setdefault("decision", "approve")
    node = d
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    if value is _DELETE:
        node.pop(keys[-1], None)
        if keys[-1] not in ("event_id", "txn_id", "card_id", "model", "score"):
            return
    else:
        node[keys[-1]] = value
    result = parse_scored(enc(d))
    assert not isinstance(result, ScoredTransaction)
    assert ":" in result.reason or result.reason in ("invalid_json", "not_an_object")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    result = parse_scored(raw)
    assert isinstance(result, ScoredTransaction) or result.reason
    lab = parse_label(raw)
    assert hasattr(lab, "txn_id") or lab.reason  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(valid_events(), st.integers(min_value=0, max_value=2000), st.binary(min_size=1, max_size=3))
def test_byte_corruption_never_raises(ev: dict[str, Any], pos: int, junk: bytes) -> None:
    raw = enc(ev)
    pos = pos % len(raw)
    corrupted = raw[:pos] + junk + raw[pos + 1 :]
    result = parse_scored(corrupted)
    assert isinstance(result, ScoredTransaction) or (result.reason and result.raw == corrupted)


def test_invalid_utf8_inside_a_string_is_a_reason() -> None:
    raw = EXAMPLE_EVENT.replace(b'"m-417"', b'"m-\x80"')
    result = parse_scored(raw)
    assert not isinstance(result, ScoredTransaction)
    assert result.reason == "invalid_utf8"
    assert result.event_id == ""


# --- the fast paths agree with the slow, obviously-correct ones ------------------------
@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(valid_events(), st.integers(0, 2000), st.binary(max_size=2), st.booleans()),
        min_size=1,
        max_size=8,
    )
)
def test_batch_matches_one_by_one(items: list[tuple[dict[str, Any], int, bytes, bool]]) -> None:
    raws = []
    for ev, pos, junk, corrupt in items:
        raw = enc(ev)
        if corrupt:
            pos %= len(raw)
            raw = raw[:pos] + junk + raw[pos + 1 :]
        raws.append(raw)
    batch = parse_scored_batch(raws)
    singles = [parse_scored(r) for r in raws]
    assert batch.events == [x for x in singles if isinstance(x, ScoredTransaction)]
    assert batch.rejected == [x for x in singles if not isinstance(x, ScoredTransaction)]


amount_texts = st.from_regex(r"\A-?[0-9]{1,15}(\.[0-9]{0,4})?([eE][-+]?[0-9])?\Z")


@settings(max_examples=500, deadline=None)
@given(amount_texts, st.booleans())
def test_amount_fast_path_matches_decimal(text: str, quoted: bool) -> None:
    """Whatever path an amount takes, the result is Decimal's exact answer."""
    literal = json.dumps(text) if quoted else text
    try:
        json.loads(literal)
    except ValueError:
        return  # not a JSON number (e.g. "01"): the JSON itself is invalid
    raw = EXAMPLE_EVENT.replace(b'"4892.37"', literal.encode())
    result = parse_scored(raw)
    value = Decimal(text) * 100
    if value <= 0 or value != value.to_integral_value() or value > 10**14:
        assert not isinstance(result, ScoredTransaction)
        assert result.reason.startswith("amount:")
    else:
        assert isinstance(result, ScoredTransaction), result
        assert result.amount_minor == int(value)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["0", "00", "1", "01", "9", "10", "99", "100", "199", "200",
                                 "249", "250", "255", "256", "300", "", " 1", "1\n", "٣"]),
                min_size=3, max_size=5))
def test_ipv4_fast_path_matches_ipaddress(octets: list[str]) -> None:
    text = ".".join(octets)
    try:
        ipaddress.ip_address(text)
        valid = True
    except ValueError:
        valid = False
    result = parse_scored(EXAMPLE_EVENT.replace(b'"198.51.100.47"', json.dumps(text).encode()))
    assert isinstance(result, ScoredTransaction) is valid
    if not valid:
        assert not isinstance(result, ScoredTransaction)
        assert result.reason == "bad_format:ip"


@pytest.mark.parametrize(
    ("field", "pattern", "values"),
    [
        ("currency", "^[A-Z]{3}$", ["USD", "usd", "USD", "US", "EUR", "", "USDD", "EUR"]),
        ("mcc", "^[0-9]{4}$", ["5967", "596", "5967", "59a7", "0000", "٥٩٦٧"]),
        ("merchant_country", "^[A-Z]{2}$", ["LT", "lt", "LT", "", "LTU", "DE"]),
    ],
)
def test_code_fields_checked_the_same_after_caching(
    field: str, pattern: str, values: list[str]
) -> None:
    """Valid codes are remembered; an invalid one is still rejected every time."""
    for value in values * 2:
        d = copy.deepcopy(BASE)
        d[field] = value
        result = parse_scored(enc(d))
        if re.search(pattern, value):
            assert isinstance(result, ScoredTransaction)
            assert getattr(result, field) == value
        else:
            assert not isinstance(result, ScoredTransaction)
            assert result.reason == f"bad_format:{field}", result.detail


def test_feature_names_checked_the_same_after_caching() -> None:
    for features, ok in [({"a": 1}, True), ({"a": 1, "": 2}, False), ({"a": 2}, True),
                         ({"a": 1, "x" * 129: 1}, False), ({"x" * 128: 1}, True)]:
        d = copy.deepcopy(BASE)
        d["features"] = features
        result = parse_scored(enc(d))
        assert isinstance(result, ScoredTransaction) is ok
        if not ok:
            assert result.reason == "bad_format:features"  # type: ignore[union-attr]
