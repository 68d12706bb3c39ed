"""``received_max``: a window keyed by the receiver (the payee) and read by the sender,
worked by hand, its type errors, and a brute-force oracle on random streams."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.events import ScoredTransaction, epoch_ms
from driftwatch.rules import typed as t
from driftwatch.rules.checker import RuleTypeError, check_condition
from driftwatch.rules.live import LiveEvaluator
from driftwatch.rules.pack import rule_from_text
from driftwatch.rules.parser import parse as parse_rule
from tests.unit.rules.helpers import DAY_MS, event, parse

MIN = 60_000
HOUR = 60 * MIN
AGG = ('received_max(amount_minor, by=card_id, payee=beneficiary_name, prefix="ACCT ", '
       'within=3h)')


def received(dicts: Sequence[dict[str, Any]], agg: str = AGG) -> dict[str, Any]:
    """The aggregate's value at every event (None: nothing received / no key)."""
    rule = rule_from_text("r", f"{agg} >= 0 or not ({agg} >= 0)")
    hits = LiveEvaluator([rule], horizon_ms=DAY_MS).process(parse(dicts))
    (label,) = [a.text for a in t.aggregates(rule.expr)]
    return {h.event.event_id: h.evidence[label] for h in hits}


def pay(i: int, ms: int, card: str, to: str, amount: str) -> dict[str, Any]:
    return event(i, ms, card_id=card, beneficiary_name=to, amount=amount, channel="transfer")


def test_largest_amount_received_by_the_sender() -> None:
    got = received([
        pay(0, 0, "c-v1", "ACCT c-a", "100.00"),
        pay(1, 10 * MIN, "c-v2", "ACCT c-a", "300.00"),
        pay(2, 15 * MIN, "c-v3", "ACCT c-b", "900.00"),  # to someone else
        pay(3, 20 * MIN, "c-a", "ACCT c-c", "290.00"),
    ])
    # c-a received 100.00 and 300.00; c-b's 900.00 is not c-a's; the senders received nothing
    assert got == {"e000000": None, "e000001": None, "e000002": None, "e000003": 30_000}


def test_window_ends_are_inclusive() -> None:
    base = [pay(0, 0, "c-v", "ACCT c-a", "50.00")]
    assert received([*base, pay(1, 3 * HOUR, "c-a", "x", "1.00")])["e000001"] == 5000
    assert received([*base, pay(1, 3 * HOUR + 1, "c-a", "x", "1.00")])["e000001"] is None
    # a receipt in the same millisecond counts, whichever arrived first
    assert received([pay(1, 0, "c-a", "x", "1.00"), *base])["e000001"] == 5000


def test_only_payees_with_the_prefix_and_a_name_after_it_count() -> None:
    got = received([
        pay(0, 0, "c-v", "acct c-a", "10.00"),  # case matters
        pay(1, 1, "c-v", "ACCT ", "20.00"),  # nothing after the prefix: never a key
        pay(2, 2, "c-v", "Ann Lee 7", "30.00"),
        pay(3, 3, "c-a", "x", "1.00"),
    ])
    assert got["e000003"] is None


def test_a_self_transfer_counts_for_itself() -> None:
    assert received([pay(0, 0, "c-a", "ACCT c-a", "7.00")]) == {"e000000": 700}


def test_where_filters_the_receipts_and_no_prefix_matches_whole_payees() -> None:
    agg = ("received_max(amount_minor, by=card_id, payee=beneficiary_name, within=1h, "
           "where=amount_minor < 10000)")
    got = received([
        pay(0, 0, "c-v", "c-a", "50.00"),
        pay(1, 1, "c-v", "c-a", "500.00"),  # not < 100.00: not counted
        pay(2, 2, "c-a", "x", "1.00"),
    ], agg)
    assert got["e000002"] == 5000


def test_pass_through_rule_by_hand() -> None:
    when = (f"channel == 'transfer' and amount_minor * 10 >= {AGG} * 9 "
            f"and amount_minor <= {AGG}")
    rule = rule_from_text("r", when)
    dicts = [
        pay(0, 0, "c-v", "ACCT c-m1", "5000.00"),
        pay(1, 40 * MIN, "c-m1", "ACCT c-m2", "4850.00"),  # 97 %: hit
        pay(2, 80 * MIN, "c-m2", "ACCT c-m3", "4300.00"),  # 88.7 % of 4850: miss
        pay(3, 90 * MIN, "c-m2", "ACCT c-m3", "4850.01"),  # more than received: miss
    ]
    hits = LiveEvaluator([rule], horizon_ms=DAY_MS).process(parse(dicts))
    assert [h.event.event_id for h in hits] == ["e000001"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("received_max(amount_minor, by=card_id, within=1h) > 1", "needs payee="),
        ("received_max(mcc, by=card_id, payee=beneficiary_name, within=1h) > 1",
         "must be a number"),
        ("received_max(amount, by=[card_id, ip], payee=beneficiary_name, within=1h) > 1",
         "one string field"),
        ("received_max(amount, by=amount_minor, payee=beneficiary_name, within=1h) > 1",
         "one string field"),
        ("received_max(amount, by=card_id, payee=amount_minor, within=1h) > 1",
         "payee= must be a string"),
        ("received_max(amount, by=card_id, payee=beneficiary_name, prefix=mcc, within=1h) > 1",
         "string literal"),
        ("received_max(amount, by=card_id, payee=beneficiary_name, within=2d) > 1",
         "state horizon"),
        ("received_max(amount, by=card_id, payee=beneficiary_name, within=1h, n=2) > 1",
         "no argument 'n'"),
    ],
)
def test_type_errors(text: str, message: str) -> None:
    with pytest.raises(RuleTypeError, match=message):
        check_condition(parse_rule(text), DAY_MS, text)


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 40))
    cards = ["c1", "c2", "c3"]
    payees = ["ACCT c1", "ACCT c2", "ACCT c3", "ACCT ", "ACCTc1", "Ann Lee 1", ""]
    out, clock = [], 0
    for i in range(n):
        clock += draw(st.sampled_from([0, 0, 1, 1000, 20 * MIN, 50 * MIN]))
        out.append(pay(i, clock, draw(st.sampled_from(cards)), draw(st.sampled_from(payees)),
                       f"{draw(st.integers(1, 9000))}.{draw(st.integers(0, 99)):02d}"))
    order = draw(st.permutations(range(n)))
    return [out[i] for i in order]


def _oracle(evs: Sequence[ScoredTransaction]) -> dict[str, Any]:
    ms = {e.event_id: epoch_ms(e.event_time) for e in evs}
    out: dict[str, Any] = {}
    for e in evs:
        now = ms[e.event_id]
        vals = [x.amount_minor for x in evs if x.beneficiary_name == f"ACCT {e.card_id}"
                and now - 3 * HOUR <= ms[x.event_id] <= now]
        out[e.event_id] = max(vals) if vals else None
    return out


@settings(max_examples=60, deadline=None)
@given(streams())
def test_matches_a_brute_force_oracle(dicts: list[dict[str, Any]]) -> None:
    assert received(dicts) == _oracle(parse(dicts))
