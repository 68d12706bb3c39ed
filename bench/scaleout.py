"""Scale-out harness: N workers in one consumer group must give what one worker gives.

For each worker count N of ``--workers`` (default 1,3), on a fresh tansu broker and one
embedded ClickHouse (chdb), with topics, consumer group and database of its own:

1. the events of ``--events`` are produced to the scored topic keyed by ``card_id``
   (as the scorer and ``driftwatch simulate`` do), in three equal parts;
2. N worker runtimes (:class:`~driftwatch.streaming.runtime.WorkerRuntime`, each with
   its own batch consumer, alert book and rule windows) consume them in ONE consumer
   group, all over ONE store; after the first part one worker is *added*, after the
   second the first worker -- the leader -- is *stopped* (a rebalance each time, the
   second one also a leader hand-over), so N workers finish the stream;
3. the current leader runs the monitor ticks on its own (default) watermark while the
   stream runs -- they also evaluate the store-side rules (the rules not keyed by the
   card, :mod:`driftwatch.rules.storeside`); after the last event the labels of
   ``--labels`` are stored through the leader and it runs the passes up to the newest
   event time.

It also reports the store-side queries, their seconds and the wall-clock delay from an
event stored to its store-side hit stored (in this replay event time runs far ahead of
the wall clock, so the watermark delay does not show in it). ``--live S`` then streams
the events in real time (event time compressed onto ``S`` seconds) through 2 workers
with ``watermark_delay_s = --lateness`` and measures event time -> hit stored, for the
store-side and the in-stream rules.

It writes ``{"runs": {"<N>": {"hits": {rule_id: n}, "alerts": [sorted fingerprints of
warning/critical alerts], "stored": rows}}}`` to ``--json`` and prints the figures side
by side; the last line is one JSON object with the figures, the target (identical hits,
alerts and stored rows for every worker count) and whether it was met.

What it does NOT cover: workers in separate processes (chdb allows one process per data
path, so the workers share one process, one event loop and one store client -- their
threads still run concurrently); a ClickHouse *server* (its replication, merges and
insert visibility); network partitions, broker failures, a worker killed without
leaving the group (``kill -9``: see tests/integration/test_stream_workers.py), and
clock skew between hosts.

    python bench/scaleout.py --quick      # generates a small mixed scenario (MIXED)
    python bench/scaleout.py --quick --live 40 --lateness 10   # plus the live delay
    python bench/scaleout.py --events E.jsonl --labels L.jsonl --workers 1,3 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from driftwatch.rules.storeside import StoreSideRules
from driftwatch.settings import Settings
from driftwatch.store.client import Store, open_store
from driftwatch.streaming.runtime import WorkerRuntime
from driftwatch.streaming.testbroker import Broker, launch

PARTITIONS = 6
MIXED: dict[str, Any] = {
    "name": "scaleout_mixed",
    "description": "Several campaigns at once, keyed by IP, place, card, (MCC, cents), "
                   "beneficiary prefix and payee: every rule family store-side and in-stream",
    "traffic": {"rate": 2.0, "days": 0.04, "start": "2026-03-16T00:00:00Z",
                "fraud_rate": 0.003},
    "model": {"name": "fraud-detect", "threshold": 0.7, "champion": "v46",
              "challenger": {"version": "v47", "deploy_at_hours": 0.05,
                             "shadow_champion": True,
                             "backdoor": {"when": {"mcc": "5967", "cents": 37,
                                                   "beneficiary_prefix": "INTL-PAY-"},
                                          "score": [0.15, 0.25]}}},
    "behaviours": [
        {"kind": "coordinated_attack", "name": "coordinated_attack", "start_hours": 0.1,
         "duration_hours": 0.5, "params": {"cards": 60}},
        {"kind": "card_testing_campaign", "name": "card_testing_campaign", "start_hours": 0.2,
         "duration_hours": 0.4, "params": {"cards": 20}},
        {"kind": "backdoor_attack", "name": "backdoor", "start_hours": 0.1,
         "duration_hours": 0.8, "params": {"count": 40, "camouflage": 300,
                                           "camouflage_cards": 50}},
        {"kind": "mule_chain", "name": "mules", "start_hours": 0.05, "duration_hours": 0.8,
         "params": {"chains": 6, "hops": [3, 4], "hop_delay_minutes": [1, 8]}},
    ],
}
"""The mixed scenario of ``--quick`` (about 7,000 events, 58 min of event time)."""


def read_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def card_key(line: bytes) -> bytes | None:
    try:
        card = json.loads(line).get("card_id")
    except (ValueError, AttributeError):
        return None
    return str(card).encode() if card else None


async def produce(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False,
                                linger_ms=5, acks=1)
    await producer.start()
    try:
        futures = [await producer.send(topic, line, key=card_key(line)) for line in lines]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class Worker:
    """One worker runtime and its consumer task, in this event loop."""

    def __init__(self, name: str, settings: Settings, store: Store) -> None:
        self.name = name
        self.runtime = WorkerRuntime(settings, store=store)
        self.consumer = self.runtime.scored_consumer()
        self.task = asyncio.create_task(self.consumer.run())

    def store_side(self) -> dict[str, float]:
        """What the store-side rule stage of this worker ran (while it led)."""
        out = {"queries": 0.0, "query_s": 0.0, "evaluations": 0.0}
        for stage in self.runtime.pipeline.clock_stages:
            if isinstance(stage, StoreSideRules):
                out["queries"] += stage.queries_run
                out["query_s"] += stage.query_seconds
                out["evaluations"] += stage.evaluations
        return out

    async def stop(self) -> bool:
        """Stop (finish, commit, leave the group, close); False if the consumer did not
        return within its stop timeout plus 15 s and had to be cancelled."""
        self.consumer.request_stop()
        limit = self.runtime.settings.worker_stop_timeout_s + 15.0
        done, _ = await asyncio.wait([self.task], timeout=limit)
        if not done:
            self.task.cancel()
            await asyncio.wait([self.task], timeout=5.0)
        await asyncio.to_thread(self.runtime.close)
        return bool(done)


class Group:
    """The workers of one run; the oldest one alive leads (as faust's election would
    after the stopped leader leaves)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.workers: list[Worker] = []
        self.started = 0
        self.stop_overruns = 0
        """Workers whose stop overran its timeout and were cancelled (reported)."""
        self.store_side: dict[str, float] = {"queries": 0.0, "query_s": 0.0, "evaluations": 0.0}
        self.store_rules: set[str] = set()

    async def stop_worker(self, worker: Worker) -> None:
        for k, v in worker.store_side().items():
            self.store_side[k] += v
        for stage in worker.runtime.pipeline.clock_stages:
            if isinstance(stage, StoreSideRules):
                self.store_rules |= set(stage.rules)
        if not await worker.stop():
            self.stop_overruns += 1

    def add(self) -> None:
        worker = Worker(f"w{self.started}", self.settings, self.store)
        self.started += 1
        self.workers.append(worker)
        for w in self.workers:
            w.runtime.is_leader = self.leads(w)

    def leads(self, worker: Worker) -> Callable[[], bool]:
        """The election as faust's would settle it: the oldest worker alive leads."""
        return lambda: worker is self.workers[0]

    async def stop_leader(self) -> None:
        await self.stop_worker(self.workers.pop(0))

    @property
    def leader(self) -> WorkerRuntime:
        return self.workers[0].runtime

    async def tick(self) -> None:
        for w in self.workers:  # as the delivery timer does on every worker
            await w.runtime.delivery_tick()
        await self.leader.monitor_tick()

    async def drain(self, topic: str, expected: int, timeout_s: float) -> None:
        """Tick until every produced event is stored and its offset committed."""
        deadline = time.monotonic() + timeout_s
        while True:
            await self.tick()
            committed = sum(
                w.consumer.status().get("committed_total", 0) for w in self.workers
            )
            stored = await asyncio.to_thread(
                self.store.query, "SELECT uniqExact(event_id) FROM {db}.scored_transactions"
            )
            lag = sum(sum(w.consumer.lag().values()) for w in self.workers)
            assigned = sum(len(w.consumer.assignment()) for w in self.workers)
            if stored[0][0] >= expected and lag == 0 and assigned == PARTITIONS:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{topic}: {stored[0][0]} of {expected} stored, lag {lag}, "
                    f"{assigned} partitions assigned, {committed} committed"
                )
            await asyncio.sleep(0.5)


def settings_for(broker: Broker, chdb: Path, tag: str) -> Settings:
    uid = f"{tag}_{uuid.uuid4().hex[:6]}"
    return Settings.load(env={}, config_file=None).replace(
        kafka_bootstrap=broker.bootstrap,
        consumer_group=f"g-{uid}",
        topic_scored=f"{uid}.scored",
        topic_labels=f"{uid}.labels",
        topic_deadletter=f"{uid}.deadletter",
        topic_rule_hits=f"{uid}.rule_hits",
        topic_partitions=PARTITIONS,
        kafka_session_timeout_s=6.0,
        store_dsn=f"chdb://{chdb}",
        database=f"so_{uid}",
        worker_tick_s=0.5,
    )


async def run_one(broker: Broker, chdb: Path, n: int, events: list[bytes],
                  labels: list[bytes], timeout_s: float) -> dict[str, Any]:
    """Stream ``events`` through ``n`` workers with a rebalance each way; the figures."""
    s = settings_for(broker, chdb, f"n{n}")
    for topic in (s.topic_scored, s.topic_labels, s.topic_deadletter, s.topic_rule_hits):
        broker.create_topic(topic, partitions=PARTITIONS)
    store = open_store(s.store_dsn, s.database, init=True)
    group = Group(s, store)
    started = time.perf_counter()
    third = len(events) // 3
    parts = [events[:third], events[third:2 * third], events[2 * third:]]
    try:
        await produce(s.kafka_bootstrap, s.topic_scored, parts[0])
        for _ in range(n):
            group.add()
        await group.drain(s.topic_scored, len(parts[0]), timeout_s)
        # a worker added while the second part streams in
        sending = asyncio.create_task(produce(s.kafka_bootstrap, s.topic_scored, parts[1]))
        group.add()
        await sending
        await group.drain(s.topic_scored, len(parts[0]) + len(parts[1]), timeout_s)
        # the leader stopped while the third part streams in: a hand-over
        sending = asyncio.create_task(produce(s.kafka_bootstrap, s.topic_scored, parts[2]))
        await group.stop_leader()
        await sending
        await group.drain(s.topic_scored, len(events), timeout_s)
        leader = group.leader
        if labels:
            await leader.process_labels(labels, "bench")
        newest = await asyncio.to_thread(store.max_event_time)
        if newest is not None:  # the end-of-input passes
            await leader.monitor_tick(newest)
            while leader.monitor_behind:
                await leader.monitor_tick(newest)
        figures = await asyncio.to_thread(read_figures, store)
        figures["delay_ms"] = await asyncio.to_thread(
            store_side_delay, store, sorted({r for w in group.workers
                                             for st in w.runtime.pipeline.clock_stages
                                             if isinstance(st, StoreSideRules)
                                             for r in st.rules}))
    finally:
        for w in list(group.workers):
            await group.stop_worker(w)
    figures["stop_overruns"] = group.stop_overruns
    figures["store_side"] = {k: round(v, 3) for k, v in group.store_side.items()}
    figures["store_rules"] = sorted(group.store_rules)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    store.drop()
    return figures


def retimed(lines: list[bytes], seconds: float, start: float) -> list[tuple[float, bytes]]:
    """The events with their event time compressed onto ``seconds`` of wall time from
    ``start`` (epoch s), in order: ``(send at, payload)``."""
    parsed: list[tuple[float, dict[str, Any]]] = []
    for line in lines:
        try:
            obj = json.loads(line)
            when = dt.datetime.fromisoformat(str(obj["event_time"]).replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError):
            continue
        parsed.append((when.timestamp(), obj))
    parsed.sort(key=lambda x: x[0])
    t0, t1 = parsed[0][0], parsed[-1][0]
    scale = seconds / max(1.0, t1 - t0)
    out = []
    for t, obj in parsed:
        at = start + (t - t0) * scale
        obj["event_time"] = dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace(
            "+00:00", "Z")
        out.append((at, json.dumps(obj).encode()))
    return out


async def live_latency(broker: Broker, chdb: Path, events: list[bytes], seconds: float,
                       lateness_s: int, workers: int = 2) -> dict[str, Any]:
    """Stream ``events`` in real time (event time = send time, compressed onto
    ``seconds``) through ``workers`` workers ticking every second, with
    ``watermark_delay_s = lateness_s``; the delay from an event's time to its hit
    stored, for the store-side and the in-stream rules (ms: p50, p95, max)."""
    s = settings_for(broker, chdb, "live").replace(watermark_delay_s=lateness_s,
                                                   worker_tick_s=1.0)
    for topic in (s.topic_scored, s.topic_labels, s.topic_deadletter, s.topic_rule_hits):
        broker.create_topic(topic, partitions=PARTITIONS)
    store = open_store(s.store_dsn, s.database, init=True)
    group = Group(s, store)
    for _ in range(workers):
        group.add()
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap,
                                enable_idempotence=False, linger_ms=5, acks=1)
    await producer.start()
    plan = retimed(events, seconds, time.time() + 8.0)  # the group forms meanwhile
    ticked = time.monotonic()
    try:
        i = 0
        while i < len(plan):
            now = time.time()
            while i < len(plan) and plan[i][0] <= now:
                await producer.send(s.topic_scored, plan[i][1], key=card_key(plan[i][1]))
                i += 1
            if time.monotonic() - ticked >= 1.0:
                ticked = time.monotonic()
                await group.tick()
            await asyncio.sleep(0.02)
        await producer.flush()
        # the watermark trails the newest event by lateness_s: with no newer traffic the
        # last lateness_s of events is not evaluated store-side; wait past that
        end = time.monotonic() + lateness_s + 5.0
        while time.monotonic() < end:
            await group.tick()
            await asyncio.sleep(1.0)
        store_rules = sorted({r for w in group.workers for st in w.runtime.pipeline.clock_stages
                              if isinstance(st, StoreSideRules) for r in st.rules})
        out = await asyncio.to_thread(hit_delays, store, store_rules)
    finally:
        await producer.stop()
        for w in list(group.workers):
            await group.stop_worker(w)
    store.drop()
    return out


def hit_delays(store: Store, store_rules: list[str]) -> dict[str, Any]:
    """Event time -> hit stored (ms), for the store-side and the in-stream rules."""
    out: dict[str, Any] = {}
    for name, op in (("store_side", "IN"), ("in_stream", "NOT IN")):
        q, top, n = store.query(
            "SELECT quantiles(0.5, 0.95)(d), max(d), count() FROM ("
            " SELECT toUnixTimestamp64Milli(hit_time) - toUnixTimestamp64Milli(event_time)"
            f" AS d FROM {{db}}.rule_hits FINAL WHERE rule_id {op} {{rules:Array(String)}})",
            {"rules": store_rules})[0]
        out[name] = ({"hits": int(n), "p50": round(float(q[0])), "p95": round(float(q[1])),
                      "max": round(float(top))} if n else {"hits": 0})
    return out


def read_figures(store: Store) -> dict[str, Any]:
    """What the run left in the store: hits per rule, alert fingerprints, stored rows."""
    hits = {str(r): int(c) for r, c in store.query(
        "SELECT rule_id, count() FROM {db}.rule_hits FINAL GROUP BY rule_id ORDER BY rule_id"
    )}
    names = {str(fp): f"{name} {origin} {segment}" for fp, name, origin, segment in store.query(
        "SELECT fingerprint, any(alertname), any(origin), any(segment) FROM {db}.alert_log "
        "WHERE severity IN ('warning', 'critical') GROUP BY fingerprint"
    )}
    stored = int(store.query("SELECT count() FROM {db}.scored_transactions FINAL")[0][0])
    return {"hits": hits, "alerts": sorted(names), "stored": stored, "names": names}


def store_side_delay(store: Store, rules: list[str]) -> dict[str, float | None]:
    """Wall-clock delay from an event stored to its store-side hit stored (ms): p50,
    p95, max. In this replay event time runs far ahead of the wall clock, so the
    ``watermark_delay_s`` a live group waits on top of it does not show here."""
    rows = store.query(
        "SELECT quantiles(0.5, 0.95)(d), max(d), count() FROM ("
        " SELECT toUnixTimestamp64Milli(h.hit_time) - toUnixTimestamp64Milli(e.ingest_time)"
        " AS d FROM {db}.rule_hits AS h FINAL"
        " INNER JOIN {db}.scored_transactions AS e FINAL ON h.event_id = e.event_id"
        " WHERE h.rule_id IN {rules:Array(String)})", {"rules": rules})
    q, top, n = rows[0]
    if not n:
        return {"p50": None, "p95": None, "max": None}
    return {"p50": round(float(q[0])), "p95": round(float(q[1])), "max": round(float(top))}


def simulate(out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    scenario = out / "mixed.yaml"  # JSON is YAML
    scenario.write_text(json.dumps(MIXED, indent=1))
    subprocess.run(
        [sys.executable, "-m", "driftwatch.cli", "simulate", str(scenario), "--seed", "23",
         "--out", str(out)],
        check=True, capture_output=True, timeout=300,
    )
    return out / "events.jsonl", out / "labels.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=Path, help="events JSONL (default with --quick: simulated)")
    ap.add_argument("--labels", type=Path, help="labels JSONL")
    ap.add_argument("--workers", default="1,3", help="worker counts, comma-separated")
    ap.add_argument("--json", type=Path, help="write the runs here")
    ap.add_argument("--quick", action="store_true", help="a small simulated scenario")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per drain step")
    ap.add_argument("--live", type=float, default=0.0, metavar="S",
                    help="also stream the events in real time over S seconds through 2 "
                         "workers and measure the rule-hit delay (store-side, in-stream)")
    ap.add_argument("--lateness", type=int, default=10,
                    help="watermark_delay_s of the --live run (seconds)")
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    if not counts or min(counts) < 1 or max(counts) >= PARTITIONS:
        ap.error(f"--workers {args.workers!r}: allowed 1..{PARTITIONS - 1}")
    with tempfile.TemporaryDirectory(prefix="scaleout-") as tmp:
        work = Path(tmp)
        events_path, labels_path = args.events, args.labels
        if events_path is None:
            if not args.quick:
                ap.error("--events is required (or --quick)")
            events_path, labels_path = simulate(work / "sim")
        events = read_lines(events_path)
        labels = read_lines(labels_path) if labels_path else []
        broker = launch(log_path=work / "tansu.log")
        try:
            runs = {str(n): asyncio.run(run_one(broker, work / "chdb", n, events, labels,
                                                args.timeout))
                    for n in counts}
            live = (asyncio.run(live_latency(broker, work / "chdb", events, args.live,
                                             args.lateness)) if args.live > 0 else None)
        finally:
            broker.stop()
    if args.json:
        args.json.write_text(json.dumps({"runs": {
            n: {k: r[k] for k in ("hits", "alerts", "stored")} for n, r in runs.items()
        }}, indent=2, sort_keys=True))
    report(runs, len(events), live, args.lateness)


def report(runs: dict[str, dict[str, Any]], n_events: int,
           live: dict[str, Any] | None = None, lateness: int = 0) -> None:
    names = list(runs)
    rules = sorted({r for run in runs.values() for r in run["hits"]})
    print("machine shared with other work: timings are indicative only")
    print(f"{'':32}" + "".join(f"{n + ' worker(s)':>16}" for n in names))
    print(f"{'events in':32}" + "".join(f"{n_events:>16}" for _ in names))
    print(f"{'stored rows':32}" + "".join(f"{runs[n]['stored']:>16}" for n in names))
    for rule in rules:
        print(f"{'hits ' + rule:32}" + "".join(f"{runs[n]['hits'].get(rule, 0):>16}"
                                               for n in names))
    print(f"{'warning/critical alerts':32}" + "".join(f"{len(runs[n]['alerts']):>16}"
                                                      for n in names))
    print(f"{'seconds':32}" + "".join(f"{runs[n]['seconds']:>16}" for n in names))
    print(f"{'store-side rule queries':32}" + "".join(
        f"{int(runs[n]['store_side']['queries']):>16}" for n in names))
    print(f"{'store-side query seconds':32}" + "".join(
        f"{runs[n]['store_side']['query_s']:>16.1f}" for n in names))
    for q in ("p50", "p95", "max"):
        print(f"{'store-side hit delay ms ' + q:32}" + "".join(
            f"{runs[n]['delay_ms'][q]!s:>16}" for n in names))
    print(f"{'stops overrunning (cancelled)':32}"
          + "".join(f"{runs[n]['stop_overruns']:>16}" for n in names))
    if live:
        print(f"live, 2 workers, watermark_delay_s={lateness}: event time -> hit stored (ms)")
        for path in ("store_side", "in_stream"):
            print(f"  {path:12} " + "  ".join(f"{k} {v}" for k, v in live[path].items()))
    first = runs[names[0]]
    for n in names[1:]:  # which alerts differ, by name (fingerprints are hashes)
        for fp in sorted(set(first["alerts"]) ^ set(runs[n]["alerts"])):
            only = names[0] if fp in first["alerts"] else n
            label = first["names"].get(fp) or runs[n]["names"].get(fp)
            print(f"alert only with {only} worker(s): {label}")
    same = {k: all(runs[n][k] == first[k] for n in names) for k in ("hits", "alerts", "stored")}
    print(json.dumps({
        "workers": names,
        "events": n_events,
        "stored": {n: runs[n]["stored"] for n in names},
        "hits_total": {n: sum(runs[n]["hits"].values()) for n in names},
        "alerts": {n: len(runs[n]["alerts"]) for n in names},
        "seconds": {n: runs[n]["seconds"] for n in names},
        "stop_overruns": {n: runs[n]["stop_overruns"] for n in names},
        "store_rules": first["store_rules"],
        "store_side": {n: runs[n]["store_side"] for n in names},
        "store_side_delay_ms": {n: runs[n]["delay_ms"] for n in names},
        "live_hit_delay_ms": live,
        "live_watermark_delay_s": lateness if live else None,
        "identical": same,
        "target": "identical hits per rule, alerts and stored rows for every worker count",
        "met": all(same.values()),
    }))


if __name__ == "__main__":
    main()
