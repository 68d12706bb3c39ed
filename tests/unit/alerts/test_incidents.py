"""One incident per attack: correlation rules on hand-worked cases, stable ids, the
alert book's labels, and the listing summary."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from driftwatch.alerts.incident_list import summarise
from driftwatch.alerts.incidents import (
    IncidentIndex,
    incident_id,
    keys_of,
    parse_conjunction,
    related,
    signature,
)
from driftwatch.alerts.lifecycle import StoreAlertBook
from driftwatch.alerts.model import Finding

T0 = dt.datetime(2026, 3, 18, 14, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
CONJ = "amount_cents=91 & beneficiary_prefix=GLX-TRD & merchant_age<90d"


def seg(segment: str, **labels: str) -> dict[str, str]:
    return {"segment": segment, **labels}


# -- keys and the relation ---------------------------------------------------------
def test_conjunction_keeps_equalities_and_normalises_cents() -> None:
    assert parse_conjunction(CONJ) == {("amount_cents", "91"), ("beneficiary_prefix", "GLX-TRD")}
    assert parse_conjunction("amount_cents=07") == {("amount_cents", "7")}
    assert parse_conjunction("merchant_age<90d & amount>=3000") == frozenset()
    assert parse_conjunction("") == frozenset()


@pytest.mark.parametrize(("a", "b", "expected"), [
    (seg("mcc=5967"), seg("mcc=5967"), True),                          # same segment
    (seg("mcc=5967"), seg("mcc=5967,merchant_country=LT"), True),      # nested
    (seg("mcc=5967,merchant_country=LT"), seg("mcc=5967,merchant_country=DE"), False),
    (seg("mcc=5967"), seg("mcc=5411"), False),
    (seg("channel=ecom"), seg("channel=ecom"), False),                 # not identifying
    (seg("mcc=5967"), seg("", conjunction=f"mcc=5967 & {CONJ}"), True),  # segment in conj.
    (seg("mcc=5411"), seg("", conjunction=CONJ), False),               # no pattern seen
])
def test_slices_relate_when_nested_and_identifying(
    a: dict[str, str], b: dict[str, str], expected: bool
) -> None:
    assert related(keys_of(a), keys_of(b)) is expected
    assert related(keys_of(b), keys_of(a)) is expected  # symmetric


@pytest.mark.parametrize(("seen", "expected"), [
    ("amount_cents=91 & beneficiary_prefix=GLX-TRD-ACME-04", True),   # a longer name
    ("amount_cents=91 & beneficiary_prefix=GLX-", True),              # a shorter stem
    ("amount_cents=91 & beneficiary_prefix=ZZQ-TRD", False),          # other prefix
    ("amount_cents=12 & beneficiary_prefix=GLX-TRD", False),          # other cents
    ("amount_cents=91", True),    # hits without a shared prefix: the cents value they show
    ("beneficiary_prefix=GLX-TRD-9", True),
])
def test_rule_alert_joins_the_conjunction_on_its_observed_pattern(
    seen: str, expected: bool
) -> None:
    rule = keys_of(seg("mcc=5411", source="rule"), {"incident_keys": seen})
    assert related(keys_of(seg("", conjunction=CONJ)), rule) is expected


def test_two_rule_alerts_in_different_mccs_share_a_pattern() -> None:
    seen = "amount_cents=91 & beneficiary_prefix=GLX-TRD-"
    a = keys_of(seg("mcc=5411"), {"incident_keys": seen + "A"})
    b = keys_of(seg("mcc=7995"), {"incident_keys": seen + "B"})
    c = keys_of(seg("mcc=7995"), {"incident_keys": "amount_cents=91"})
    d = keys_of(seg("mcc=5999"), {"incident_keys": "amount_cents=91"})
    assert related(a, b)
    assert related(c, d)  # a trigger without prefix: the cents value alone, both sides


def test_signature_of_rule_hits() -> None:
    hits = [(91, "GLX-TRD-ACME-01"), (91, "GLX-TRD-BOLT-02"), (91, "GLX-TRD-ACME-01"),
            (14, "JANE DOE")]
    assert signature(hits) == "amount_cents=91 & beneficiary_prefix=GLX-TRD-"
    assert signature([(91, "")]) == "amount_cents=91"
    assert signature([(91, "A"), (12, "B"), (13, "C")]) == ""  # no majority value
    assert signature([(99, "GLX-1"), (99, "GLX-2")]) == ""     # a common price ending
    assert signature([]) == ""


# -- the index: stable ids, time overlap ----------------------------------------------
def test_id_is_the_first_members_and_never_changes_as_alerts_join() -> None:
    ix = IncidentIndex(gap_s=3600)
    first = ix.assign("fp-conj", seg("", conjunction=CONJ), {}, T0)
    assert first == incident_id("fp-conj", T0)
    for i, mcc in enumerate(("5411", "7995", "5999", "4829")):
        got = ix.assign(f"fp-rule-{mcc}", seg(f"mcc={mcc}", source="rule"),
                        {"incident_keys": f"amount_cents=91 & beneficiary_prefix=GLX-TRD-{i}"},
                        T0 + i * MIN)
        assert got == first
    cents = ix.assign("fp-cents-5411", seg("mcc=5411"), {}, T0 + 10 * MIN)  # via the rule
    assert cents == first
    assert ix.incident_of("fp-conj") == first


def test_spread_trigger_is_one_incident_whichever_alert_comes_first() -> None:
    ix = IncidentIndex(gap_s=3600)
    ids = {ix.assign(f"fp-{m}", seg(f"mcc={m}", source="rule"),
                     {"incident_keys": f"amount_cents=91 & beneficiary_prefix=GLX-TRD-{m}"},
                     T0 + i * MIN)
           for i, m in enumerate(str(5000 + k) for k in range(28))}
    ids.add(ix.assign("fp-conj", seg("", conjunction=CONJ), {}, T0 + 40 * MIN))
    assert len(ids) == 1


def test_related_alerts_far_apart_in_time_are_separate_incidents() -> None:
    ix = IncidentIndex(gap_s=3600)
    a = ix.assign("fp-a", seg("mcc=5967"), {}, T0)
    ix.seen("fp-a", T0 + 20 * MIN)
    ix.ended("fp-a", T0 + 30 * MIN)
    assert ix.assign("fp-b", seg("mcc=5967"), {}, T0 + 80 * MIN) == a  # within the gap
    ix.ended("fp-b", T0 + 90 * MIN)
    c = ix.assign("fp-c", seg("mcc=5967"), {}, T0 + 200 * MIN)  # gap passed
    assert c not in (a, "")
    ix.expire(T0 + 400 * MIN)
    assert ix.incident_of("fp-a") is None  # closed for longer than the gap: forgotten
    assert ix.incident_of("fp-c") == c     # still firing: kept


def test_joins_the_oldest_of_two_matching_incidents() -> None:
    ix = IncidentIndex(gap_s=3600)
    old = ix.assign("fp-1", seg("mcc=5967"), {}, T0)
    new = ix.assign("fp-2", seg("mcc=5411"), {}, T0 + MIN)
    both = ix.assign("fp-3", seg("", conjunction="mcc=5411 & mcc=5967"), {}, T0 + 2 * MIN)
    assert old != new and both == old
    # fp-3 links them: one attack, the newer merged into the older
    assert ix.new_merges == [(new, old)] and ix.canonical(new) == old
    assert ix.incident_of("fp-2") == old


def test_a_later_alert_linking_two_incidents_merges_them() -> None:
    """A slice alert and a pattern alert are unrelated; a conjunction on the slice that
    names the pattern relates to both: the younger incident is merged into the older,
    and a stored member of the merged one reloads into the older."""
    ix = IncidentIndex(gap_s=3600)
    pattern = "amount_cents=37 & beneficiary_prefix=INTL-PAY-"
    a = ix.assign("fp-slice", seg("mcc=5967"), {}, T0)
    b = ix.assign("fp-rule", seg("mcc=5411"), {"incident_keys": pattern}, T0 + MIN)
    assert a != b
    c = ix.assign("fp-conj", seg("mcc=5967", conjunction=pattern), {}, T0 + 2 * MIN)
    assert c == a and ix.merged == {b: a}
    assert {ix.incident_of(f) for f in ("fp-slice", "fp-rule", "fp-conj")} == {a}
    again = IncidentIndex(gap_s=3600)
    rows = [("fp-rule", "firing", T0 + MIN, None, T0 + MIN,
             {"segment": "mcc=5411", "incident": b}, {"incident_keys": pattern})]
    assert again.load(rows, ix.merged) == 1 and again.incident_of("fp-rule") == a


def test_concurrent_incidents_reconcile_to_the_same_one_in_every_writer() -> None:
    """Two writers opened an incident each for one attack's first alerts at the same
    instant; whichever order a reload reads them in, both merge the same way: into
    the smaller id (same first time), the merge recorded once."""
    rows = [("fp-cents", "firing", T0, None, T0,
             {"segment": "mcc=5967", "incident": incident_id("fp-cents", T0)}, {}),
            ("fp-rule", "firing", T0, None, T0,
             {"segment": "mcc=5967,merchant_country=LT",
              "incident": incident_id("fp-rule", T0)}, {}),
            ("fp-other", "firing", T0, None, T0,
             {"segment": "mcc=1111", "incident": "inc-other"}, {})]
    want = min(incident_id("fp-cents", T0), incident_id("fp-rule", T0))
    merges = []
    for order in (rows, rows[::-1]):
        ix = IncidentIndex(gap_s=3600)
        assert ix.load(order) == 2
        assert ix.incident_of("fp-cents") == ix.incident_of("fp-rule") == want
        assert ix.incident_of("fp-other") == "inc-other"
        merges.append(ix.new_merges)
    assert merges[0] == merges[1] and len(merges[0]) == 1 and merges[0][0][1] == want


def test_reload_puts_alerts_back_in_their_incidents() -> None:
    ix = IncidentIndex(gap_s=3600)
    rows = [("fp-a", "firing", T0, None, T0 + 5 * MIN, {"segment": "mcc=5967",
                                                        "incident": "inc-x"}, {}),
            ("fp-b", "resolved", T0, T0 + 9 * MIN, T0 + 5 * MIN, {"segment": "mcc=1",
                                                                  "incident": "inc-y"}, {}),
            ("fp-c", "firing", T0, None, T0, {"segment": "mcc=2"}, {})]  # no incident
    assert ix.load(rows) == 2
    assert ix.assign("fp-d", seg("mcc=5967"), {}, T0 + 30 * MIN) == "inc-x"
    assert ix.incident_of("fp-c") is None


def test_bad_gap() -> None:
    with pytest.raises(ValueError, match="gap_s"):
        IncidentIndex(gap_s=0)


# -- the alert book labels every alert it opens -----------------------------------------
def _finding(at: dt.datetime, **kw: str) -> Finding:
    base = {"alertname": "CentsDigitAnomaly", "severity": "warning", "source": "detector",
            "origin": "cents", "segment": "mcc=5967", "event_time": at, "summary": "s"}
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


def test_book_labels_related_alerts_with_one_incident() -> None:
    book = StoreAlertBook(None, interval_s=300, resolve_after=2, rule_quiet_s=3600)
    cents = _finding(T0)
    drift = _finding(T0, alertname="ScoreDriftKS", origin="score_drift")
    other = _finding(T0, segment="mcc=5411")
    rule = _finding(T0 + MIN, source="rule", origin="trigger_signature", alertname="RuleHit")
    opened = book.update([cents, drift, other], T0)
    opened += book.update([rule], T0 + MIN)
    inc = {a.labels["segment"] + "/" + a.labels["alertname"]: a.labels["incident"]
           for a in opened}
    assert inc["mcc=5967/CentsDigitAnomaly"] == inc["mcc=5967/ScoreDriftKS"] \
        == inc["mcc=5967/RuleHit"] == incident_id(cents.fingerprint, T0)
    assert inc["mcc=5411/CentsDigitAnomaly"] != inc["mcc=5967/CentsDigitAnomaly"]
    # growth keeps the label
    assert book.update([replace(cents, event_time=T0 + 5 * MIN, severity="critical")],
                       T0 + 5 * MIN)[0].labels["incident"] == inc["mcc=5967/RuleHit"]


# -- listing ----------------------------------------------------------------------------
def _rec(fp: str, status: str, starts: dt.datetime, seen: dt.datetime,
         labels: dict[str, str]) -> dict[str, object]:
    return {"fingerprint": fp, "status": status, "starts_at": starts.isoformat(),
            "updated_at": seen.isoformat(), "labels": labels}


def test_summary_counts_members_severity_and_keys() -> None:
    rows = [
        _rec("a", "resolved", T0, T0 + 5 * MIN, {"incident": "inc-1", "source": "detector",
                                                 "detector": "cents", "segment": "mcc=5967",
                                                 "severity": "warning"}),
        _rec("b", "firing", T0 + MIN, T0 + 9 * MIN, {"incident": "inc-1", "source": "rule",
                                                     "rule_id": "R1", "segment": "mcc=5411",
                                                     "severity": "critical"}),
        _rec("c", "firing", T0 + 2 * MIN, T0 + 3 * MIN, {"incident": "inc-1",
                                                         "source": "detector",
                                                         "detector": "trigger_mining",
                                                         "segment": "", "conjunction": CONJ,
                                                         "severity": "warning"}),
        _rec("d", "resolved", T0, T0, {"incident": "inc-2", "source": "detector",
                                       "detector": "volume", "segment": "mcc=1",
                                       "severity": "info"}),
        _rec("e", "firing", T0, T0, {"segment": "mcc=2"}),  # no incident: not listed
    ]
    got = summarise(rows)
    assert [s.incident for s in got] == ["inc-1", "inc-2"]
    one = got[0]
    assert (one.first_seen, one.last_seen, one.status, one.severity, one.alerts) == (
        T0, T0 + 9 * MIN, "firing", "critical", 3)
    assert one.members == ("detector:cents@mcc=5967", "rule:R1@mcc=5411",
                           "detector:trigger_mining@")
    assert one.keys == ("mcc=5967", "mcc=5411", CONJ)
    assert got[1].to_dict()["status"] == "resolved"
    # a stored merge shows inc-2 as part of inc-1
    (merged,) = summarise(rows, {"inc-2": "inc-1"})
    assert (merged.incident, merged.alerts, merged.first_seen) == ("inc-1", 4, T0)
    assert "detector:volume@mcc=1" in merged.members
