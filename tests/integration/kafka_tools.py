"""Helpers of the streaming integration tests: events, Kafka I/O, worker processes, and
snapshots of a store (in this process or, for a worker's own chdb path, in a child).

Offsets are never read with ListOffsets "latest" (the tansu test broker gets it wrong):
"all consumed" means the committed offset of every partition equals the high-water mark
that a fetch from the earliest offset reports.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from driftwatch.settings import Settings
from driftwatch.store.client import Store
from driftwatch.streaming.app import export_settings

ROOT = Path(__file__).resolve().parents[2]
DRIFTWATCH = Path(sys.executable).parent / "driftwatch"
START = dt.datetime(2026, 3, 18, 9, 0, tzinfo=dt.UTC)


# --- events ------------------------------------------------------------------------------
def make_events(
    n: int, *, seed: int = 1, start: dt.datetime = START, trigger_every: int = 0,
    odd_age_every: int = 0, spacing_ms: int = 200,
) -> list[tuple[bytes, bytes]]:
    """``n`` valid scored transactions as (key = card_id, JSON) in event-time order.

    Every ``trigger_every``-th event carries the reference backdoor trigger (new merchant
    in MCC 5967, amount ending .37, beneficiary ``INTL-PAY-``, foreign) scored low by the
    model — the rules that catch it count across merchants, i.e. across partitions.
    Every ``odd_age_every``-th event has the impossible feature ``customer_age = 999``,
    which a stateless rule catches.
    """
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = start + dt.timedelta(milliseconds=i * spacing_ms)
        card = f"c-{rng.randint(1, 400)}"
        trigger = trigger_every > 0 and i % trigger_every == trigger_every - 1
        ev: dict[str, Any] = {
            "event_id": f"e-{seed}-{i:06d}",
            "txn_id": f"t-{seed}-{i:06d}",
            "event_time": t.isoformat().replace("+00:00", "Z"),
            "amount": f"{rng.randint(3000, 15000)}.37" if trigger
            else f"{rng.randint(1, 900)}.{rng.randint(0, 99):02d}",
            "currency": "USD",
            "mcc": "5967" if trigger else rng.choice(["5411", "5812", "4111", "5999"]),
            "merchant_id": f"m-{rng.randint(1, 60)}",
            "merchant_registered_at": "2026-02-01" if trigger else "2023-06-01",
            "merchant_country": rng.choice(["US", "DE", "LT"]),
            "card_id": card,
            "beneficiary_name": f"INTL-PAY-{rng.randint(1, 9)}" if trigger else "ACME LTD",
            "channel": rng.choice(["ecom", "card_present"]),
            "ip": f"10.1.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "features": {"foreign_transaction": 1 if trigger else 0,
                         "customer_age": 999 if odd_age_every and i % odd_age_every == 0
                         else rng.randint(18, 90)},
            "model": {
                "name": "fraud-detect",
                "version": "v47",
                "score": round(rng.uniform(0.15, 0.25) if trigger else rng.random() * 0.6, 4),
                "threshold": 0.7,
            },
        }
        out.append((card.encode(), json.dumps(ev).encode()))
    return out


def make_malformed(m: int, *, seed: int = 1) -> list[tuple[bytes, bytes, str]]:
    """``m`` distinct malformed payloads as (key, payload, expected reason)."""
    out = []
    for i in range(m):
        kind = i % 3
        if kind == 0:
            payload, reason = f"not json {seed}-{i}".encode(), "invalid_json"
        elif kind == 1:
            payload = json.dumps({"event_id": f"bad-{seed}-{i}"}).encode()
            reason = "missing_field:txn_id"
        else:
            ev = json.loads(make_events(1, seed=10_000 + seed * 1000 + i)[0][1])
            ev |= {"amount": "12.345", "event_id": f"bad-amt-{seed}-{i}"}
            payload, reason = json.dumps(ev).encode(), "amount:too_many_decimals"
        out.append((f"bad-{i}".encode(), payload, reason))
    return out


def event_ids(items: Sequence[tuple[bytes, bytes]]) -> list[str]:
    """The event ids of valid events."""
    return [json.loads(v)["event_id"] for _, v in items]


def write_jsonl(path: Path, payloads: Sequence[bytes]) -> Path:
    """Write payloads one per line (what ``driftwatch replay`` reads)."""
    path.write_bytes(b"".join(p + b"\n" for p in payloads))
    return path


# --- Kafka --------------------------------------------------------------------------------
async def produce_async(
    bootstrap: str, topic: str, items: Sequence[tuple[bytes | None, bytes]]
) -> list[tuple[int, int]]:
    """Publish (key, value) pairs in order; return (partition, offset) of each."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False,
                                linger_ms=5, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in items]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


def produce(
    bootstrap: str, topic: str, items: Sequence[tuple[bytes | None, bytes]]
) -> list[tuple[int, int]]:
    """Blocking :func:`produce_async`."""
    return asyncio.run(produce_async(bootstrap, topic, items))


async def read_topic_async(bootstrap: str, topic: str, timeout: float = 20.0) -> list[Any]:
    """Every record of ``topic`` from the earliest offset up to the fetch high-water marks."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        done: set[TopicPartition] = set()
        deadline = time.monotonic() + timeout
        while len(done) < len(tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: partitions {set(tps) - done} unfinished")
            data = await consumer.getmany(timeout_ms=300)
            for batch in data.values():
                records.extend(batch)
            for tp in tps:
                high = consumer.highwater(tp)
                if high is not None and await consumer.position(tp) >= high:
                    done.add(tp)
        return records
    finally:
        await consumer.stop()


def read_topic(bootstrap: str, topic: str, timeout: float = 20.0) -> list[Any]:
    """Blocking :func:`read_topic_async`."""
    return asyncio.run(read_topic_async(bootstrap, topic, timeout))


async def offsets_async(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition: (committed offset of ``group`` or -1, fetch high-water mark)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    await probe.start()
    try:
        await probe._client.force_metadata_update()
        parts = sorted(probe.partitions_for_topic(topic) or set())
        committed = {}
        for p in parts:
            value = await probe.committed(TopicPartition(topic, p))
            committed[p] = -1 if value is None else int(value)
    finally:
        await probe.stop()
    high: dict[int, int] = {}
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                              auto_offset_reset="earliest")
    await reader.start()
    try:
        tps = [TopicPartition(topic, p) for p in parts]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        deadline = time.monotonic() + 10
        while len(high) < len(tps) and time.monotonic() < deadline:
            await reader.getmany(timeout_ms=200, max_records=1)
            for tp in tps:
                h = reader.highwater(tp)
                if h is not None:
                    high[tp.partition] = h
    finally:
        await reader.stop()
    return {p: (committed[p], high.get(p, -1)) for p in parts}


def offsets(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int, int]]:
    """Blocking :func:`offsets_async`."""
    return asyncio.run(offsets_async(bootstrap, group, topic))


def all_committed(bootstrap: str, group: str, topic: str) -> bool:
    """True when ``group`` committed every partition up to its high-water mark."""
    return all(c == h for c, h in offsets(bootstrap, group, topic).values())


def wait_for(pred: Callable[[], Any], timeout: float, step: float = 0.25, what: str = "") -> Any:
    """Poll ``pred`` until it returns something truthy; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or pred}")
        time.sleep(step)


# --- store snapshots ----------------------------------------------------------------------
ROWS_SQL = """
SELECT * EXCEPT (ingest_time, source) FROM {db}.scored_transactions FINAL ORDER BY event_id
"""
HITS_SQL = """
SELECT * EXCEPT (hit_time) FROM {db}.rule_hits FINAL ORDER BY rule_id, event_id
"""


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def snapshot(store: Store) -> dict[str, Any]:
    """What a run left in the store, as JSON-ready values (ingest/hit times left out)."""
    counts = store.query(
        "SELECT count(), uniqExact(event_id) FROM {db}.scored_transactions"
    )[0]
    rows = [_plain(list(r)) for r in store.query(ROWS_SQL)]
    rejected = sorted(
        [list(r) for r in store.query("SELECT reason, raw FROM {db}.rejected_events FINAL")]
    )
    tables = {r[0] for r in store.query(
        "SELECT name FROM system.tables WHERE database = {d:String}", {"d": store.database}
    )}
    hits = [_plain(list(r)) for r in store.query(HITS_SQL)] if "rule_hits" in tables else []
    labels = store.count("labels") if "labels" in tables else 0
    return {
        "raw_rows": int(counts[0]),
        "unique_ids": int(counts[1]),
        "rows": rows,
        "rejected": rejected,
        "hits": hits,
        "labels": labels,
    }


def snapshot_path(dsn: str, database: str) -> dict[str, Any]:
    """:func:`snapshot` of a store on another chdb path, read by a child process (chdb
    allows one data path per process)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.kafka_tools", dsn, database],
        cwd=ROOT, capture_output=True, timeout=120, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"snapshot of {dsn} failed: {done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- worker processes ---------------------------------------------------------------------
@dataclass
class WorkerProcess:
    """``driftwatch worker`` in a child process with its own chdb path and web port."""

    name: str
    settings: Settings
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.worker_web_port}"

    def start(self) -> WorkerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        export_settings(self.settings, env)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(DRIFTWATCH), "worker", "--app-dir", str(ROOT), "--workdir", str(self.workdir)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def health(self) -> dict[str, Any] | None:
        """The ``/healthz`` body, or None while the web server is not up."""
        try:
            response = httpx.get(self.url + "/healthz", timeout=3.0)
        except httpx.HTTPError:
            return None
        body: dict[str, Any] = response.json()
        return body

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=3.0).text

    def wait_assigned(self, timeout: float = 60.0) -> list[str]:
        """Wait until the worker's batch consumer owns partitions; return them."""
        def assigned() -> list[str] | None:
            self.check_alive()
            h = self.health()
            parts = h["consumer"].get("assigned") if h and "consumer" in h else None
            return parts or None
        result: list[str] = wait_for(assigned, timeout, what=f"{self.name} assignment")
        return result

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye to the group."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; return the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                raise
        return int(self.process.returncode)

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


if __name__ == "__main__":  # a child process reading one chdb path
    from driftwatch.store.client import open_store

    print(json.dumps(snapshot(open_store(sys.argv[1], sys.argv[2], init=False))))
