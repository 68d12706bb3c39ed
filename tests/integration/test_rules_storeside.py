"""Store-side rules (issue 23): the rules not keyed by the card, evaluated incrementally
in ClickHouse (chdb) by the leader over what every worker stored, hit exactly what one
worker evaluating every rule in-stream hits -- through ticks, catch-up, a leader change
and a span evaluated twice -- and raise the same rule alerts."""

from __future__ import annotations

import datetime as dt

import pytest
from aiokafka.partitioner import murmur2

from driftwatch.alerts.model import Finding
from driftwatch.assemble import build_pipeline
from driftwatch.events import ScoredTransaction
from driftwatch.rules.stage import RuleStage
from driftwatch.rules.storeside import MS, StoreSideRules, card_local, split_rules
from driftwatch.settings import Settings
from driftwatch.store.client import Store
from tests.integration.rules_fixture import RULES, fixture_events, shipped_rules

pytestmark = pytest.mark.integration

PARTITIONS, WORKERS, STEPS = 6, 3, 7


def worker_of(e: ScoredTransaction) -> int:
    """The worker that stores ``e``: its card's partition (Kafka's default partitioner),
    partitions dealt round-robin to the workers."""
    return ((murmur2(e.card_id.encode()) & 0x7FFFFFFF) % PARTITIONS) % WORKERS


def fingerprints(findings: list[Finding]) -> set[tuple[str, str, str]]:
    return {(f.fingerprint, f.severity, f.origin) for f in findings}


def test_split_puts_rules_keyed_off_the_card_store_side() -> None:
    ruleset = shipped_rules()
    in_stream, store_side = split_rules(ruleset)
    assert {r.id for r in in_stream.rules} | {r.id for r in store_side.rules} == {
        r.id for r in ruleset.rules}
    assert not {r.id for r in in_stream.rules} & {r.id for r in store_side.rules}
    assert all(card_local(r) for r in in_stream.rules)
    ids = {r.id for r in store_side.rules}
    assert any("campaign" in i for i in ids), ids  # keyed by IP / coordinates
    whole, none = split_rules(ruleset, "stream")
    assert whole == ruleset and not none.rules
    with pytest.raises(ValueError, match="rule_placement"):
        split_rules(ruleset, "sideways")


def test_store_side_hits_and_alerts_equal_one_worker_in_stream(store: Store) -> None:
    _, store_side = split_rules(shipped_rules())
    events = sorted(fixture_events(), key=lambda e: (e.event_time, e.event_id))
    # one worker, every rule in-stream, over every event: the reference
    reference = RuleStage(store_side, None)
    ref = reference.on_events(events)
    expected = {(h["rule_id"], h["event_id"]) for h in ref.rule_hits}
    assert len({r for r, _ in expected}) >= 2, "parity would be vacuous"

    # three workers store their partitions' events step by step; the leader evaluates
    # at each step; after step 3 the leader changes, and the new one re-evaluates the
    # last span (its predecessor stored those hits but not its marks)
    first, last = events[0].event_time, events[-1].event_time
    cuts = [first + (last - first) * (i + 1) / STEPS for i in range(STEPS)]
    span_s = (last - first).total_seconds() / STEPS * 0.6  # catch-up at every step
    leader = StoreSideRules(store_side, store, max_span_s=span_s, start=first)
    findings: list[Finding] = []
    stored = 0
    previous_marks: dict[str, dt.datetime] = {}
    for step, cut in enumerate(cuts):
        chunk = [e for e in events[stored:] if e.event_time <= cut]
        for w in range(WORKERS):  # each worker's insert, in its own order
            store.insert_scored([e for e in chunk if worker_of(e) == w])
        stored += len(chunk)
        if step == 3:
            leader = StoreSideRules(store_side, store, max_span_s=span_s)
            leader.take_over()
            leader.marks = dict(previous_marks)  # the last marks were never written
        previous_marks = dict(leader.marks or {})
        findings.extend(leader.on_watermark(cut).findings)
        while leader.behind(cut):  # more than max_span since the last step: catch up
            findings.extend(leader.on_watermark(cut).findings)
    assert stored == len(events)

    got = set(store.query("SELECT rule_id, event_id FROM {db}.rule_hits FINAL"))
    assert got == expected, (sorted(expected - got)[:5], sorted(got - expected)[:5])
    # each (rule, event) stored as one row after the collapse, and the marks at the end
    assert store.query("SELECT count() FROM {db}.rule_hits FINAL")[0][0] == len(expected)
    assert leader.behind(last) == 0
    # the same alert mapping: the same rule alert fingerprints and severities
    assert ref.findings, "no rule alert in the fixture: the comparison would be vacuous"
    assert fingerprints(findings) == fingerprints(ref.findings)


def test_a_new_leader_resumes_at_the_stored_marks(store: Store) -> None:
    _, store_side = split_rules(shipped_rules())
    events = sorted(fixture_events(), key=lambda e: (e.event_time, e.event_id))
    store.insert_scored(events)
    mid = events[len(events) // 2].event_time
    one = StoreSideRules(store_side, store, max_span_s=10**9, start=events[0].event_time)
    one.on_watermark(mid)
    two = StoreSideRules(store_side, store, max_span_s=10**9)
    two.take_over()
    assert two.marks == one.marks and two.marks
    assert two.behind(mid) == 0
    two.on_watermark(mid)  # nothing new: no query
    assert two.queries_run == 0
    two.on_watermark(events[-1].event_time)
    assert two.queries_run == len(store_side.rules)



def test_a_worker_pipeline_places_the_rules_by_their_key(store: Store) -> None:
    base = Settings.load(env={}, config_file=None).replace(
        rules_dirs=str(RULES), monitor_detectors="none")
    one = build_pipeline(base, store)  # replay, one process: every rule in-stream
    assert [s.name for s in one.event_stages] == ["rules"] and not one.clock_stages
    worker = build_pipeline(base, store, workers=True)
    (in_stream,) = worker.event_stages
    (store_side,) = worker.clock_stages
    assert isinstance(in_stream, RuleStage) and isinstance(store_side, StoreSideRules)
    assert all(card_local(r) for r in in_stream.ruleset.rules)
    assert {r.id for r in in_stream.ruleset.rules} | set(store_side.rules) == {
        r.id for r in shipped_rules().rules}
    forced = build_pipeline(base.replace(rule_placement="stream"), store, workers=True)
    assert not forced.clock_stages
    assert len(forced.event_stages[0].ruleset.rules) == len(shipped_rules().rules)


def test_the_leader_runtime_evaluates_store_side_rules_at_its_monitor_tick(
    store: Store, chdb_dsn: str
) -> None:
    """A worker runtime (no Kafka): its store-side rules run at the leader's monitor
    tick, after the take-over, and their hits are counted for the rule-hits topic."""
    import asyncio

    from driftwatch.streaming.runtime import WorkerRuntime

    s = Settings.load(env={}, config_file=None).replace(
        store_dsn=chdb_dsn, database=store.database, rules_dirs=str(RULES),
        monitor_detectors="none")
    events = sorted(fixture_events(), key=lambda e: (e.event_time, e.event_id))
    day = [e for e in events if e.event_time < events[0].event_time + dt.timedelta(hours=23)]
    _, store_side = split_rules(shipped_rules())
    expected = {(h["rule_id"], h["event_id"])
                for h in RuleStage(store_side, None).on_events(day).rule_hits}
    assert expected
    rt = WorkerRuntime(s, store=store)
    try:
        store.insert_scored(day)
        stage = rt.pipeline.clock_stages[0]
        assert isinstance(stage, StoreSideRules)
        asyncio.run(rt.monitor_tick(day[-1].event_time))
        while rt.monitor_behind:  # more than rule_store_max_span_s: catch up
            asyncio.run(rt.monitor_tick(day[-1].event_time))
        assert rt.leading and stage.marks
        got = set(store.query("SELECT rule_id, event_id FROM {db}.rule_hits FINAL"))
        assert got == expected
        assert stage.take_hits() == []  # handed to the topic step (no consumer here)
        counted = sum(rt.metrics.registry.get_sample_value(
            "driftwatch_rule_hits_total", {"rule_id": r}) or 0 for r in stage.rules)
        assert counted == len(expected)
    finally:
        rt.close()


def test_a_rule_that_does_not_compile_to_sql_stays_in_stream(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from driftwatch.errors import RuleError
    from driftwatch.rules import storeside

    ruleset = shipped_rules()
    _, store_side = split_rules(ruleset)
    victim = store_side.rules[0].id
    real = storeside.compile_rule

    def refuse(rule, prefix=None):  # type: ignore[no-untyped-def]
        if rule.id == victim:
            raise RuleError("no SQL for this one")
        return real(rule, prefix)

    monkeypatch.setattr(storeside, "compile_rule", refuse)
    in_stream, store_side = split_rules(ruleset)
    assert victim in {r.id for r in in_stream.rules}
    assert victim not in {r.id for r in store_side.rules} and store_side.rules
    assert f"rule {victim} cannot run store-side" in caplog.text


def test_an_idle_group_evaluates_the_store_side_rules_up_to_the_newest_event(
    store: Store, chdb_dsn: str
) -> None:
    """No partition reports progress (all idle): the default tick evaluates the
    store-side rules up to the newest stored event, not the watermark trailing it by
    the allowed lateness -- the last events of a quiet stream are not left unevaluated;
    while a partition is active they wait for the watermark."""
    import asyncio

    from driftwatch.streaming.runtime import WorkerRuntime

    s = Settings.load(env={}, config_file=None).replace(
        store_dsn=chdb_dsn, database=store.database, rules_dirs=str(RULES),
        monitor_detectors="none", watermark_delay_s=3600)
    events = sorted(fixture_events(), key=lambda e: (e.event_time, e.event_id))
    day = [e for e in events if e.event_time < events[0].event_time + dt.timedelta(hours=23)]
    newest = day[-1].event_time
    rt = WorkerRuntime(s, store=store)
    try:
        store.insert_scored(day)
        stage = rt.pipeline.clock_stages[0]
        assert isinstance(stage, StoreSideRules)
        store.insert_columns("partition_progress", {  # partition 3 active, an hour back
            "consumer_group": [s.consumer_group], "topic": [s.topic_scored],
            "partition": [3], "event_time": [newest - dt.timedelta(hours=1)], "lag": [0],
            "worker": ["other"], "updated_at": [dt.datetime.now(dt.UTC)]})
        asyncio.run(rt.monitor_tick())
        while rt.monitor_behind:
            asyncio.run(rt.monitor_tick())
        assert stage.marks
        held = max(stage.marks.values())
        assert held <= newest - dt.timedelta(hours=2) + MS  # the bound minus lateness
        store.insert_columns("partition_progress", {  # now idle: no event time reported
            "consumer_group": [s.consumer_group], "topic": [s.topic_scored],
            "partition": [3], "event_time": [None], "lag": [0],
            "worker": ["other"], "updated_at": [dt.datetime.now(dt.UTC)]})
        asyncio.run(rt.monitor_tick())
        while rt.monitor_behind:
            asyncio.run(rt.monitor_tick())
        assert min(stage.marks.values()) == newest + MS
    finally:
        rt.close()
