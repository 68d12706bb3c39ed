"""The group-wide low watermark (issue 23): the leader's monitor waits for the slowest
partition of the whole group, from the progress every worker writes to the store."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest

from driftwatch.settings import Settings
from driftwatch.store.client import Store
from driftwatch.streaming.runtime import WorkerRuntime
from tests.integration.kafka_tools import START, make_events

pytestmark = pytest.mark.integration


def progress(store: Store, s: Settings, rows: list[tuple[int, dt.datetime | None, int, float]]
             ) -> None:
    """Progress rows ``(partition, newest event time, lag, age in seconds)``, as the
    workers owning them would write them."""
    now = dt.datetime.now(dt.UTC)
    cols: dict[str, list[Any]] = {
        "consumer_group": [s.consumer_group] * len(rows),
        "topic": [s.topic_scored] * len(rows),
        "partition": [p for p, _, _, _ in rows],
        "event_time": [t for _, t, _, _ in rows],
        "lag": [lag for _, _, lag, _ in rows],
        "worker": ["other"] * len(rows),
        "updated_at": [now - dt.timedelta(seconds=age) for _, _, _, age in rows],
    }
    store.insert_columns("partition_progress", cols)


def test_the_leader_waits_for_the_slowest_partition_of_the_group(
    store: Store, chdb_dsn: str
) -> None:
    s = Settings.load(env={}, config_file=None).replace(
        store_dsn=chdb_dsn, database=store.database, progress_idle_s=30.0)
    events = make_events(600, seed=7)  # 09:00:00 .. 09:01:59.8, 200 ms apart
    rt = WorkerRuntime(s, store=store)
    try:
        rt.pipeline.store_events(rt.pipeline.parse_events([v for _, v in events]), "t")
        newest = store.max_event_time()
        assert newest == START + dt.timedelta(milliseconds=599 * 200)
        lateness = rt.pipeline.lateness
        slow = START + dt.timedelta(seconds=30)

        seen: list[dt.datetime] = []
        advance = rt.pipeline.advance

        def watched(watermark: dt.datetime | None = None) -> Any:
            assert watermark is not None
            seen.append(watermark)
            return advance(watermark)

        rt.pipeline.advance = watched  # type: ignore[method-assign]

        async def tick() -> dt.datetime | None:
            """The watermark the monitors were advanced to by one tick (None: none)."""
            seen.clear()
            await rt.monitor_tick()
            return seen[-1] if seen else None

        # another worker's partition 2 has a backlog and no stored progress yet: wait
        # (rows of one partition replace each other by their write time: ages shrink)
        progress(store, s, [(0, newest, 0, 3.0), (2, None, 40, 3.0)])
        assert asyncio.run(tick()) is None
        # it stored up to 09:00:30 and still lags: the watermark waits there
        progress(store, s, [(2, slow, 12, 2.0)])
        assert asyncio.run(tick()) == slow - lateness
        assert rt.group_bound() == (True, slow.timestamp())
        # partition 2 caught up but still active (its owner reports its progress): the
        # watermark stays there, the partition may deliver more any moment
        progress(store, s, [(2, slow, 0, 1.5)])
        assert rt.group_bound() == (True, slow.timestamp())
        # partition 2 idle (its owner reports no time once idle for progress_idle_s:
        # holds nothing back); partition 5's owner has not reported for longer than
        # progress_idle_s (it left or stalled): it holds nothing back either, whatever
        # its lag
        progress(store, s, [(2, None, 0, 1.0), (5, START, 12, 31.0)])
        # what remains is partition 0, caught up and active at the newest event
        assert rt.group_bound() == (True, newest.timestamp())
        assert asyncio.run(tick()) == newest - lateness
    finally:
        rt.close()


def test_rows_landing_after_a_pass_are_counted_by_the_next_pass_not_a_rerun(
    store: Store, chdb_dsn: str
) -> None:
    """The stated rule for a pass run before a partition's rows landed (its owner was
    idle past ``progress_idle_s``): the pass is not re-run; the late rows are counted
    by the next passes whose windows (``monitor_window_s``, 1 h) still cover them."""
    s = Settings.load(env={}, config_file=None).replace(
        store_dsn=chdb_dsn, database=store.database)
    events = make_events(9000, seed=3, spacing_ms=1000)  # 09:00:00 .. 11:29:59, 1/s
    late_from, late_to = START + dt.timedelta(minutes=100), START + dt.timedelta(minutes=115)
    first, late = [], []
    for _, v in events:
        at = dt.datetime.fromisoformat(json.loads(v)["event_time"].replace("Z", "+00:00"))
        (late if late_from <= at < late_to else first).append(v)
    assert len(late) == 900
    rt = WorkerRuntime(s, store=store)
    t1, t2 = START + dt.timedelta(hours=2), START + dt.timedelta(hours=2, minutes=5)

    async def passes(until: dt.datetime) -> None:
        await rt.monitor_tick(until)
        while rt.monitor_behind:
            await rt.monitor_tick(until)

    def n_at(end: dt.datetime) -> int:
        (row,) = store.query(
            "SELECT n FROM {db}.drift_results FINAL WHERE detector = 'score_drift' "
            "AND test = 'ks' AND segment = 'model_version=v47' "
            "AND window_end = {t:DateTime64(3, 'UTC')}", {"t": end})
        return int(row[0])

    try:
        rt.pipeline.store_events(rt.pipeline.parse_events(first), "on time")
        asyncio.run(passes(t1))  # 10:40-10:55 missing: the 10:00-11:00 window is short
        assert n_at(t1) == 3600 - 900
        rt.pipeline.store_events(rt.pipeline.parse_events(late), "late")
        asyncio.run(passes(t2))
        assert n_at(t2) == 3600  # 10:05-11:05: the late rows are counted
        assert n_at(t1) == 3600 - 900  # the 11:00 pass was not re-run
    finally:
        rt.close()
