"""Several alert books on one store (embedded ClickHouse): one writer of detector
alerts, rule alerts merged through the store, and the leader hand-over (issue 23)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from driftwatch.alerts.lifecycle import StoreAlertBook
from driftwatch.alerts.model import Finding
from driftwatch.settings import Settings
from driftwatch.store.client import Store
from driftwatch.streaming.runtime import WorkerRuntime

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 18, 14, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)


def detector(at: dt.datetime) -> Finding:
    return Finding("CentsDigitAnomaly", "warning", "detector", "cents", "mcc=5967", at,
                   f"at {at:%H:%M}")


def rule(at: dt.datetime, severity: str = "warning") -> Finding:
    return Finding("RuleHit", severity, "rule", "coordinated_campaign", "merchant=m1", at,
                   f"at {at:%H:%M}")


def book(store: Store, leads: bool) -> StoreAlertBook:
    b = StoreAlertBook(store, interval_s=300, resolve_after=3, rule_quiet_s=3600, flush_s=0)
    b.leads = lambda: leads
    return b


def versions(store: Store, fp: str) -> list[tuple[int, str]]:
    return [(int(v), str(s)) for v, s in store.query(
        "SELECT version, status FROM {db}.alert_log WHERE fingerprint = {fp:String} "
        "ORDER BY version", {"fp": fp})]


def current(store: Store, fp: str) -> tuple[str, int, int]:
    (row,) = store.query(
        "SELECT status, version, findings FROM {db}.alerts FINAL "
        "WHERE fingerprint = {fp:String}", {"fp": fp})
    return str(row[0]), int(row[1]), int(row[2])


def test_a_non_leader_never_resolves_a_reloaded_detector_alert(store: Store) -> None:
    leader = book(store, leads=True)
    assert [a.status for a in leader.update([detector(T0)], T0)] == ["firing"]
    fp = detector(T0).fingerprint
    other = book(store, leads=False)  # a worker starting later reloads it
    assert fp in other.firing
    # hours of rule findings on the non-leader: before issue 23 its clock (no pass
    # clock) resolved the detector alert 15 minutes after its last finding
    late = T0 + 180 * MIN
    changes = other.update([rule(late)], late)
    assert [a.labels["source"] for a in changes] == ["rule"]
    assert other.update([detector(late)], late) == []  # not its to write
    assert current(store, fp) == ("firing", 1, 1)
    assert versions(store, fp) == [(1, "firing")]


def test_leader_hand_over_reloads_and_the_new_leader_resolves(store: Store) -> None:
    old = book(store, leads=True)
    new = book(store, leads=False)
    fp = detector(T0).fingerprint
    old.passed(T0)
    old.update([detector(T0)], T0)
    old.passed(T0 + 5 * MIN)
    old.update([detector(T0 + 5 * MIN)], T0 + 5 * MIN)
    old.flush()
    assert fp not in new.firing  # started before the alert opened
    # hand-over: the new leader reloads; the old one stops writing detector alerts
    old.leads = lambda: False
    new.leads = lambda: True
    assert new.take_over() == 1
    assert new.firing[fp].annotations["summary"] == "at 14:05"
    old.passed(T0 + 60 * MIN)
    assert old.update([], T0 + 60 * MIN) == []  # the old leader resolves nothing
    new.passed(T0 + 15 * MIN)
    assert new.update([], T0 + 15 * MIN) == []  # 2 clean passes of 3
    new.passed(T0 + 20 * MIN)
    (resolved,) = new.update([], T0 + 20 * MIN)
    assert resolved.status == "resolved" and resolved.ends_at == T0 + 20 * MIN
    assert versions(store, fp) == [(1, "firing"), (2, "resolved")]
    assert current(store, fp)[:2] == ("resolved", 2)


def test_two_workers_raising_one_rule_alert_merge_through_the_store(store: Store) -> None:
    a, b = book(store, leads=True), book(store, leads=False)
    fp = rule(T0).fingerprint
    assert [x.status for x in a.update([rule(T0)], T0)] == ["firing"]
    # the second worker's hit on the same key: adopted, not a second "firing"
    assert b.update([rule(T0 + 10 * MIN)], T0 + 10 * MIN) == []
    b.flush()
    assert current(store, fp) == ("firing", 1, 2)  # findings counted on, not reset
    # the first worker's quiet period ends, but the second saw a later hit: no resolve
    assert a.update([], T0 + 65 * MIN) == []
    # a severity rise on the first worker: the next version after the stored one
    (up,) = a.update([rule(T0 + 66 * MIN, "critical")], T0 + 66 * MIN)
    assert up.labels["severity"] == "critical"
    # quiet after the last hit: resolved once, by whichever book sees it first
    late = T0 + 66 * MIN + 61 * MIN
    (gone,) = b.update([], late)
    assert gone.status == "resolved"
    assert a.update([], late) == []  # already resolved in the store: dropped quietly
    assert versions(store, fp) == [(1, "firing"), (2, "firing"), (3, "resolved")]
    # a new hit after the resolution opens version 4, whichever worker sees it
    (again,) = a.update([rule(late + MIN)], late + MIN)
    assert again.status == "firing"
    assert current(store, fp)[:2] == ("firing", 4)


def test_the_first_monitor_tick_takes_the_alert_state_over(
    store: Store, chdb_dsn: str
) -> None:
    settings = Settings.load(env={}, config_file=None).replace(
        store_dsn=chdb_dsn, database=store.database)
    first = book(store, leads=True)
    first.update([detector(T0)], T0)
    rt = WorkerRuntime(settings, store=store)
    try:
        assert rt.book is not None and not rt.leading
        rt.book._state.clear()  # as if the worker started before the alert opened
        assert rt.book.update([], T0 + 600 * MIN) == []
        asyncio.run(rt.monitor_tick(T0))
        assert rt.leading and detector(T0).fingerprint in rt.book.firing
        rt.is_leader = lambda: False  # the group elected another worker
        assert rt.check_leadership() is False and not rt.book.leads()
    finally:
        rt.close()


def test_after_take_over_only_the_new_leaders_passes_resolve_detector_alerts(
    store: Store,
) -> None:
    old = book(store, leads=True)
    old.passed(T0)
    old.update([detector(T0)], T0)
    new = book(store, leads=True)
    assert new.take_over() == 1
    # a rule batch hours later, before the new leader's first pass: nothing resolves
    late = T0 + 180 * MIN
    assert [a.labels["source"] for a in new.update([rule(late)], late)] == ["rule"]
    assert detector(T0).fingerprint in new.firing
    new.passed(late)
    (gone,) = new.update([], late)
    assert gone.status == "resolved" and gone.ends_at == T0 + 15 * MIN
