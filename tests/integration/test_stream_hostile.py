"""Hostile input never stops the service (issue 20), on the real broker and embedded
ClickHouse, with the worker runtime and its batch consumer running in this process.

Among normal traffic: deep nesting at the top level and inside fields, a duplicate
key, events dated 2099 and 2001, a rule that raises on one event; Alertmanager is a
black hole (accepts connections, never answers). The worker stays up, stores every
valid event exactly once, rejects every bad payload with its reason, keeps evaluating
current data, a card-keyed rule window spanning the bad events still hits, and the
worker stops within its stop timeout. ``HOSTILE_FIGURES`` printed at the end are the
figures of the run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftwatch.rules.stage import RuleStage
from driftwatch.settings import Settings
from driftwatch.store.client import Store
from driftwatch.streaming.runtime import WorkerRuntime
from driftwatch.streaming.testbroker import free_port
from tests.integration.kafka_tools import (
    START,
    WorkerProcess,
    all_committed,
    event_ids,
    make_events,
    offsets_async,
    produce,
    produce_async,
    read_topic,
    snapshot,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CARD = "c-hostile"


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An HTTP URL whose server accepts connections and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def _event(i: int, at: dt.datetime, amount: str, **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = json.loads(make_events(1, seed=900 + i)[0][1])
    ev.update(event_id=f"h-{i}", txn_id=f"ht-{i}", card_id=CARD, amount=amount,
              event_time=at.isoformat().replace("+00:00", "Z"), **extra)
    return ev


def hostile_items(t0: dt.datetime) -> tuple[list[tuple[bytes, bytes]], dict[str, str], list[str]]:
    """Payloads (key = card), the expected reason of each bad one by event id (or tag),
    and the event ids of the good ones (a card-testing triple around the bad ones)."""
    def enc(ev: dict[str, Any]) -> bytes:
        return json.dumps(ev).encode()

    key = CARD.encode()
    triple = [_event(i, t0 + dt.timedelta(seconds=40 * i), "1.01") for i in range(3)]
    far = _event(10, dt.datetime(2099, 1, 1, tzinfo=dt.UTC), "1.02")
    old = _event(11, dt.datetime(2001, 1, 1, tzinfo=dt.UTC), "1.03")
    dup = enc(_event(12, t0, "2.00")).replace(
        b'"amount": "2.00"', b'"amount": "99999.99", "amount": "1526.51"'
    )
    deep_field = enc(_event(13, t0, "5.00", x=[])).replace(
        b'"x": []', b'"x": ' + b"[" * 1200 + b"]" * 1200
    )
    deep_geo = enc(_event(14, t0, "5.00", geo={"lat": 1, "lon": 2})).replace(
        b'"lat": 1', b'"lat": ' + b'{"a":' * 1000 + b"1" + b"}" * 1000
    )
    deep_top = b"[" * 12000 + b"]" * 12000  # 24 KB of brackets, under the 64 KB cap
    raises = _event(15, t0 + dt.timedelta(seconds=10), "7.00")
    items = [
        (key, enc(triple[0])), (key, enc(far)), (key, deep_top), (key, enc(old)),
        (key, enc(triple[1])), (key, dup), (key, deep_field), (key, deep_geo),
        (key, enc(raises)), (key, enc(triple[2])),
    ]
    bad = {
        "h-10": "event_time:too_far_ahead", "h-11": "event_time:too_old",
        "h-12": "duplicate_key:amount", "h-13": "too_deep", "h-14": "too_deep",
        "deep_top": "too_deep",
    }
    good = [e["event_id"] for e in triple] + ["h-15"]
    return items, bad, good


def make_one_rule_raise(runtime: WorkerRuntime, event_id: str) -> str:
    """Make the first compiled rule raise on one event; return that rule's id.

    Its lane (:class:`driftwatch.rules.guards.Lane`) is replaced by one without guards,
    column guards or window narrowing (either could skip the event before the condition
    runs) whose condition is the rule's whole condition, raising on ``event_id``.
    """
    stage = next(s for s in runtime.pipeline.event_stages if isinstance(s, RuleStage))
    ev = stage.evaluator
    lanes = ev._lanes.lanes
    whole = lanes[0].whole

    def broken(e: Any) -> bool:
        if e.event_id == event_id:
            raise ZeroDivisionError("injected")
        return bool(whole(e))

    lanes[0] = dataclasses.replace(lanes[0], first=None, more=None, rest=broken, whole=broken,
                                   narrow=None, also=())
    return ev.rules[0].id


class BrokenDetector:
    """A detector that raises on every pass (the others must still run)."""

    name = "broken"
    needs_history = False

    def due(self, at: dt.datetime) -> bool:
        return True

    def evaluate(self, ctx: Any) -> list[Any]:
        raise ArithmeticError("injected detector failure")


def test_hostile_input_never_stops_the_worker(
    stream_settings: Settings, store: Store, black_hole: str
) -> None:
    s = stream_settings.replace(alertmanager_url=black_hole, outbox_backlog=0,
                                worker_stop_timeout_s=10.0)
    before = make_events(1500, seed=31, trigger_every=40)
    t_mid = START + dt.timedelta(milliseconds=1500 * 200)
    after = make_events(1500, seed=32, trigger_every=40, start=t_mid + dt.timedelta(seconds=1))
    hostile, bad, good = hostile_items(t_mid + dt.timedelta(seconds=2))
    figures: dict[str, Any] = {}

    async def consumed(total: int) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            offs = await offsets_async(s.kafka_bootstrap, s.consumer_group, s.topic_scored)
            if offs and sum(c for c, _ in offs.values()) == total:
                return
            await asyncio.sleep(0.25)
        raise TimeoutError(f"not all {total} records committed")

    async def scenario() -> None:
        runtime = WorkerRuntime(s, store=store)
        rule_id = make_one_rule_raise(runtime, "h-15")
        runtime.pipeline.clock_stages[0].detectors.append(BrokenDetector())  # type: ignore[attr-defined]
        figures["raising_rule"] = rule_id
        consumer = runtime.scored_consumer()
        runtime.start_delivery()
        task = asyncio.create_task(consumer.run())
        try:
            await produce_async(s.kafka_bootstrap, s.topic_scored, before)
            await consumed(len(before))
            for _ in range(4):  # the worker's timers: progress (delivery tick), monitor
                await runtime.delivery_tick()
                await runtime.monitor_tick()
            figures["monitor_passes_before"] = runtime._monitor_passes()
            figures["watermark_before"] = runtime.last_watermark.isoformat() \
                if runtime.last_watermark else None

            started = time.monotonic()
            await produce_async(s.kafka_bootstrap, s.topic_scored, hostile + after)
            await consumed(len(before) + len(hostile) + len(after))
            figures["seconds_to_store_after_hostile"] = round(time.monotonic() - started, 2)
            for _ in range(4):  # the worker's timers: progress (delivery tick), monitor
                await runtime.delivery_tick()
                await runtime.monitor_tick()
            figures["monitor_passes_after"] = runtime._monitor_passes()
            figures["monitor_behind_passes"] = runtime.monitor_behind
            monitor = runtime.pipeline.clock_stages[0]
            last_pass = getattr(monitor, "last_pass", None)
            assert last_pass is not None
            figures["last_pass_after"] = last_pass.isoformat()
            # the monitor follows current data: not 2099, and not left behind
            newest = t_mid + dt.timedelta(seconds=1 + 300)
            assert newest - dt.timedelta(seconds=900) <= last_pass <= newest
            assert runtime.monitor_behind == 0
            assert figures["monitor_passes_after"] > figures["monitor_passes_before"]

            status, body = await runtime.health()
            figures["health"] = {"status": body["status"], "problems": body["problems"],
                                 "outbox_pending": body["outbox_pending"]}
            assert status == 200 and body["consumer"]["state"] == "running"
            if body["outbox_pending"] > 0:  # the black hole holds the rule alerts
                assert "outbox_backlog" in body["problems"]
                assert body["status"] == "degraded"
            text = runtime.metrics_text().decode()
            assert f'driftwatch_stage_errors_total{{reason="rule_error:{rule_id}"}} 1.0' in text
            broken = f'driftwatch_stage_errors_total{{reason="detector_error:broken"}} ' \
                f'{float(figures["monitor_passes_after"])}'
            assert broken in text  # every pass recorded it, and every pass still ran
        finally:
            stop = time.monotonic()
            consumer.request_stop()
            await asyncio.wait_for(task, 30)
            await asyncio.to_thread(runtime.close)
            figures["shutdown_seconds"] = round(time.monotonic() - stop, 2)

    asyncio.run(scenario())
    assert figures["shutdown_seconds"] < s.worker_stop_timeout_s

    snap = snapshot(store)
    valid = event_ids(before) + event_ids(after) + good
    figures["events_stored"] = snap["raw_rows"]
    assert snap["raw_rows"] == snap["unique_ids"] == len(valid)  # every valid one, once
    assert sorted(r[0] for r in snap["rows"]) == sorted(valid)

    reasons = Counter(reason for reason, _ in snap["rejected"])
    figures["rejected_by_reason"] = dict(sorted(reasons.items()))
    expected = Counter(bad.values()) + Counter({f"rule_error:{figures['raising_rule']}": 1})
    assert reasons == expected

    letters = [json.loads(r.value) for r in read_topic(s.kafka_bootstrap, s.topic_deadletter)]
    assert Counter(x["reason"] for x in letters) == expected
    by_id = {x["event_id"]: x["reason"] for x in letters if x["event_id"]}
    for event_id, reason in bad.items():
        if event_id.startswith("h-") and reason != "too_deep":
            assert by_id[event_id] == reason
    assert by_id["h-15"] == f"rule_error:{figures['raising_rule']}"

    # the card-testing triple spans the 2099 and 2001 events and still hits
    hits = store.query(
        "SELECT rule_id, event_id FROM {db}.rule_hits FINAL WHERE startsWith(event_id, 'h-')"
    )
    assert ("card_testing_velocity", "h-2") in {(r, e) for r, e in hits}
    print("HOSTILE_FIGURES", json.dumps(figures, sort_keys=True))


def test_sigterm_stops_a_catching_up_worker_within_its_timeout(
    stream_settings: Settings, tmp_path: Path, black_hole: str
) -> None:
    """A ``driftwatch worker`` process whose monitor is far behind (one pass per tick,
    ~180 passes due) and whose Alertmanager never answers: ``/healthz`` says so, and
    SIGTERM still stops it within ``worker_stop_timeout_s`` (plus process teardown)."""
    s = stream_settings.replace(
        store_dsn=f"chdb://{tmp_path / 'chdb'}", database="dw", worker_web_port=free_port(),
        alertmanager_url=black_hole, monitor_interval_s=60, monitor_max_passes_per_tick=1,
        monitor_behind_passes=5, worker_stop_timeout_s=8.0,
    )
    worker = WorkerProcess("hostile", s, tmp_path / "w").start()
    try:
        worker.wait_assigned()
        first = make_events(300, seed=41, trigger_every=40)
        produce(s.kafka_bootstrap, s.topic_scored, first)
        wait_for(lambda: all_committed(s.kafka_bootstrap, s.consumer_group, s.topic_scored),
                 90, what="first part committed")
        later = make_events(300, seed=42, trigger_every=40,
                            start=START + dt.timedelta(hours=3))
        far = json.loads(later[0][1]) | {"event_id": "far", "txn_id": "far",
                                         "event_time": "2099-01-01T00:00:00Z"}
        produce(s.kafka_bootstrap, s.topic_scored,
                [*later[:100], (b"k", json.dumps(far).encode()), *later[100:]])
        wait_for(lambda: all_committed(s.kafka_bootstrap, s.consumer_group, s.topic_scored),
                 90, what="second part committed")

        def behind() -> dict[str, Any] | None:
            worker.check_alive()
            h = worker.health()
            return h if h and "monitor_behind" in h.get("problems", []) else None

        health = wait_for(behind, 60, what="monitor reported behind")
        assert health["status"] == "degraded"
        assert health["monitor_behind_passes"] > s.monitor_behind_passes
        started = time.monotonic()
        worker.terminate(timeout=60)
        seconds = time.monotonic() - started
    finally:
        if worker.process is not None and worker.process.poll() is None:
            worker.kill()
    print("HOSTILE_SHUTDOWN", json.dumps({"seconds": round(seconds, 2),
                                          "behind": health["monitor_behind_passes"]}))
    assert seconds < s.worker_stop_timeout_s + 5.0, worker.tail()


def test_replay_of_old_data_quarantines_against_its_own_clock(
    store: Store, tmp_path: Path
) -> None:
    """A file of March traffic (months behind the wall clock) replays; its 2099 and 2001
    lines are quarantined and move neither the watermark nor the monitor."""
    from driftwatch.assemble import build_pipeline
    from driftwatch.sources.replay import replay

    events = make_events(2000, seed=51, trigger_every=40)
    far = json.loads(events[0][1]) | {"event_id": "far", "event_time": "2099-01-01T00:00:00Z"}
    old = json.loads(events[1][1]) | {"event_id": "old", "event_time": "2001-01-01T00:00:00Z"}
    lines = [v for _, v in events[:700]] + [json.dumps(far).encode()] + \
        [v for _, v in events[700:1400]] + [json.dumps(old).encode()] + \
        [v for _, v in events[1400:]]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    settings = Settings.load(env={}, config_file=None).replace(database=store.database)
    pipeline = build_pipeline(settings, store)
    try:
        replay(pipeline, path, batch_size=500)
    finally:
        pipeline.close()
    assert pipeline.stats.rejected == Counter(
        {"event_time:too_far_ahead": 1, "event_time:too_old": 1}
    )
    assert store.count("scored_transactions") == len(events)
    newest = START + dt.timedelta(milliseconds=200 * (len(events) - 1))
    assert pipeline.max_event_time == newest
    monitor = pipeline.clock_stages[0]
    last_pass = getattr(monitor, "last_pass", None)
    assert last_pass is not None and last_pass <= newest


def test_stop_while_the_store_is_stalled(stream_settings: Settings, store: Store) -> None:
    """Every insert hangs (a ClickHouse that stopped answering): a stop still returns
    within ``worker_stop_timeout_s``, and nothing that was not stored is committed."""
    s = stream_settings.replace(worker_stop_timeout_s=5.0)
    gate = threading.Event()

    async def scenario() -> tuple[float, dict[int, tuple[int, int]]]:
        runtime = WorkerRuntime(s, store=store)
        original = runtime.store.insert_scored_json

        def stalled(events: Any, source: str = "") -> int:
            gate.wait(120)  # held until the test lets go (after the stop)
            return original(events, source)

        runtime.store.insert_scored_json = stalled  # type: ignore[method-assign]
        consumer = runtime.scored_consumer()
        task = asyncio.create_task(consumer.run())
        await produce_async(s.kafka_bootstrap, s.topic_scored, make_events(500, seed=61))
        deadline = time.monotonic() + 60
        while consumer.status()["pending_records"] == 0:  # a batch waits for its insert
            assert time.monotonic() < deadline, "no batch reached the store"
            await asyncio.sleep(0.1)
        started = time.monotonic()
        consumer.request_stop()
        await asyncio.wait_for(task, s.worker_stop_timeout_s + 5)
        left = max(0.5, s.worker_stop_timeout_s - (time.monotonic() - started))
        await asyncio.to_thread(runtime.close, left)
        seconds = time.monotonic() - started
        offs = await offsets_async(s.kafka_bootstrap, s.consumer_group, s.topic_scored)
        return seconds, offs

    try:
        seconds, offs = asyncio.run(scenario())
    finally:
        gate.set()
    print("HOSTILE_STALLED_STORE_STOP", json.dumps({"seconds": round(seconds, 2)}))
    assert seconds < s.worker_stop_timeout_s + 1.0
    assert all(committed <= 0 for committed, _ in offs.values())  # nothing stored: none
