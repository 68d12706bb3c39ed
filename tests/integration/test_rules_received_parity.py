"""``received_max`` live and compiled to SQL give the same values on a seeded stream of
account-to-account payments (same-millisecond receipts, window edges, payees that are
only the prefix, payees of other shapes), alone and next to an ordinary window."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from driftwatch.rules.live import LiveEvaluator
from driftwatch.rules.pack import rule_from_text
from driftwatch.rules.sql import compile_rule
from driftwatch.store.client import Store
from tests.unit.rules.helpers import T0, event, parse

pytestmark = pytest.mark.integration

AGG = ('received_max(amount_minor, by=card_id, payee=beneficiary_name, prefix="ACCT ", '
       'within=1h)')
WHEN = [
    f"{AGG} >= 0 or not ({AGG} >= 0)",  # every event, with the value as evidence
    f"amount_minor * 10 >= {AGG} * 9 and amount_minor <= {AGG} "
    "and count(by=card_id, within=2h) >= 2",
    "received_max(amount, by=card_id, payee=beneficiary_name, within=30m, "
    "where=amount_minor > 500000) > 0",
    f"present({AGG}) and received_max(amount, by=card_id, payee=beneficiary_name, "
    "within=30m) > 1000",  # two different receivers' windows joined in one query
]


def _stream(seed: int, n: int = 400) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    cards = [f"c-{i}" for i in range(8)]
    payees = [*(f"ACCT {c}" for c in cards), *cards, "ACCT ", "Ann Lee 3"]
    out, clock = [], 0
    for i in range(n):
        clock += rng.choice([0, 0, 1, 1000, 60_000, 600_000, 1_800_000, 3_600_000])
        out.append(event(i, clock, card_id=rng.choice(cards), channel="transfer",
                         beneficiary_name=rng.choice(payees),
                         amount=f"{rng.randint(1, 9000)}.{rng.randint(0, 99):02d}"))
    return out


def test_received_max_live_equals_sql(store: Store) -> None:
    events = parse(_stream(7))
    store.insert_scored(events)
    since = T0 + dt.timedelta(hours=2)  # the SQL reads the history before `since`
    until = max(e.event_time for e in events) + dt.timedelta(milliseconds=1)
    for k, when in enumerate(WHEN):
        rule = rule_from_text(f"r{k}", when)
        live = {h.event.event_id: h.evidence
                for h in LiveEvaluator([rule], horizon_ms=86_400_000).process(events)
                if h.event.event_time >= since}
        q = compile_rule(rule)
        cols = store.query_columns(q.sql, q.bind(since, until))
        sql = {eid: {label: cols[f"_e{j}"][i] for j, label in enumerate(q.evidence)}
               for i, eid in enumerate(cols["event_id"])}
        assert live, when
        assert set(sql) == set(live), when
        for eid, evidence in live.items():
            for label, value in evidence.items():
                got = sql[eid][label]
                assert (value is None and got is None) or value == got, (when, eid, label)
