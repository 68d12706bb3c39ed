"""Bounded decoding: deep nesting and duplicate keys never get through, nothing raises."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.decoding import MAX_DEPTH, structure_problem
from driftwatch.events import (
    EXAMPLE_EVENT,
    Label,
    ScoredTransaction,
    parse_label,
    parse_label_batch,
    parse_scored,
    parse_scored_batch,
)
from driftwatch.streaming.ordering import event_time_key

LABEL = b'{"txn_id": "t-1", "label": 1, "label_time": "2026-03-20T10:00:00Z"}'


def with_field(payload: bytes, text: bytes) -> bytes:
    """``payload`` with ``text`` (``"key": value``) inserted as its first member."""
    return b"{" + text + b", " + payload[1:]


# --- hand-worked cases ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[" * 1200 + b"]" * 1200, "too_deep"),
        (b'{"a":' * 1200 + b"1" + b"}" * 1200, "too_deep"),
        (with_field(EXAMPLE_EVENT, b'"x": ' + b"[" * 1200 + b"]" * 1200), "too_deep"),
        (EXAMPLE_EVENT, None),
        (
            EXAMPLE_EVENT.replace(b'"amount": "4892.37"',
                                  b'"amount": "99999.99", "amount": "1526.51"'),
            "duplicate_key:amount",
        ),
        (EXAMPLE_EVENT.replace(b'"score": 0.21', b'"score": 0.21, "score": 0.9'),
         "duplicate_key:model.score"),
        (EXAMPLE_EVENT.replace(b'"score": 0.88', b'"score": 0.88, "score": 0.1'),
         "duplicate_key:shadow[].score"),
        (EXAMPLE_EVENT.replace(b'"features": {', b'"features": {"a": 1, "a": 2, '),
         "duplicate_key:features.a"),
        # the same key spelled with an escape is the same key
        (with_field(EXAMPLE_EVENT, b'"\\u006dcc": "1234"'), "duplicate_key:mcc"),
        # duplicates inside a field nobody reads still count
        (with_field(EXAMPLE_EVENT, b'"x": {"k": 1, "k": 2}'), "duplicate_key:x.k"),
    ],
)
def test_structure_reasons(payload: bytes, reason: str | None) -> None:
    got = structure_problem(payload)
    assert (got[0] if got else None) == reason
    if reason is not None:
        rej = parse_scored(payload)
        assert not isinstance(rej, ScoredTransaction)
        assert rej.reason == reason
        assert parse_scored_batch([payload]).rejected[0].reason == reason
        assert event_time_key(payload) == event_time_key(payload)  # no raise


def test_depth_limit_is_exact() -> None:
    ok = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    deep = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
    assert structure_problem(ok) is None
    assert structure_problem(deep) == ("too_deep", f"nesting deeper than {MAX_DEPTH} levels")
    # brackets inside strings do not count as nesting
    texty = EXAMPLE_EVENT.replace(b"INTL-PAY-GLOBALSERV", b"[" * 40 + b"{" * 40)
    assert structure_problem(texty) is None
    assert isinstance(parse_scored(texty), ScoredTransaction)


def test_colons_in_strings_and_same_key_in_sibling_objects_pass() -> None:
    payload = EXAMPLE_EVENT.replace(b"INTL-PAY-GLOBALSERV", b"a:b:c")
    assert structure_problem(payload) is None
    assert structure_problem(b'[{"a": 1}, {"a": 2}, {"b": {"a": 3}}]') is None
    ev = parse_scored(payload)
    assert isinstance(ev, ScoredTransaction) and ev.beneficiary_name == "a:b:c"


def test_labels_bounded_too() -> None:
    assert isinstance(parse_label(LABEL), Label)
    dup = LABEL.replace(b'"label": 1', b'"label": 1, "label": 0')
    rej = parse_label(dup)
    assert not isinstance(rej, Label) and rej.reason == "duplicate_key:label"
    deep = b'{"txn_id": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    assert parse_label_batch([deep]).rejected[0].reason == "too_deep"


def test_text_that_is_not_utf8_is_rejected_not_raised() -> None:
    batch = parse_scored_batch(["\ud800"])
    assert [r.reason for r in batch.rejected] == ["invalid_utf8"]
    assert [r.reason for r in parse_label_batch(["\ud800"]).rejected] == ["invalid_utf8"]


# --- against a peer parser ------------------------------------------------------------
def _peer_duplicate(payload: bytes) -> bool:
    """Python's json with a pairs hook: True when some object holds a key twice."""
    found = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        if len({k for k, _ in pairs}) != len(pairs):
            found = True
        return dict(pairs)

    json.loads(payload, object_pairs_hook=hook)
    return found


keys = st.sampled_from(["a", "b", "amount", "score", "x:y", "\u00e9", ""])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)


def _render(value: Any, escape: bool) -> str:
    """JSON text of ``value``, where a list of pairs is an object (duplicates kept)."""
    if isinstance(value, tuple):
        inner = ", ".join(
            f"{json.dumps(k, ensure_ascii=escape)}: {_render(v, escape)}" for k, v in value
        )
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_render(v, escape) for v in value) + "]"
    return json.dumps(value, ensure_ascii=escape)


json_ish = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(st.tuples(keys, children), max_size=4).map(tuple),
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_ish, st.booleans())
def test_duplicates_found_exactly_as_a_peer_parser_finds_them(value: Any, escape: bool) -> None:
    payload = _render(value, escape).encode()
    got = structure_problem(payload)
    if got is not None and got[0] == "too_deep":
        return  # too deep for the bound; the peer would parse it
    assert (got is not None) == _peer_duplicate(payload)


# --- the property: nothing raises -----------------------------------------------------
def _nest(depth: int, core: bytes, obj: bool) -> bytes:
    if obj:
        return b'{"a":' * depth + core + b"}" * depth
    return b"[" * depth + core + b"]" * depth


hostile = st.one_of(
    st.binary(max_size=400),
    st.builds(lambda v, e: _render(v, e).encode(), json_ish, st.booleans()),
    st.builds(_nest, st.integers(0, 5000), st.sampled_from([b"1", b"", EXAMPLE_EVENT]),
              st.booleans()),
    st.builds(
        lambda depth, at, obj: EXAMPLE_EVENT[:at] + _nest(depth, b"", obj) + EXAMPLE_EVENT[at:],
        st.integers(0, 3000), st.integers(0, len(EXAMPLE_EVENT)), st.booleans(),
    ),
    st.builds(lambda k, v: with_field(EXAMPLE_EVENT, f'"{k}": {json.dumps(v)}'.encode()),
              st.sampled_from(["amount", "event_id", "model", "geo", "features", "zz"]),
              scalars),
)


@settings(max_examples=400, deadline=None)
@given(hostile)
def test_nothing_raises_from_the_decoder(payload: bytes) -> None:
    one = parse_scored(payload)
    batch = parse_scored_batch([payload, EXAMPLE_EVENT])
    assert len(batch.events) + len(batch.rejected) == 2
    assert isinstance(batch.events[-1], ScoredTransaction)  # the good one behind it
    if isinstance(one, ScoredTransaction):
        assert structure_problem(payload) is None
    else:
        assert one.reason
    parse_label(payload)
    parse_label_batch([payload.decode("utf-8", "replace")])
    event_time_key(payload)
