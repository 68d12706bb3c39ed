"""Rule warm-up per assigned partition: before the first batch of a partition this
worker was assigned, its rule windows are filled with the stored history of that
partition's cards.

The history is read in the events table's sort order, ``(mcc, event_time, event_id)``
(``store/ddl/0001_core.sql``): one keyset-paged cursor per MCC, each a primary-key
range read in order by ClickHouse, merged by event time in Python (the live windows
are fed in event-time order). Only the cold partitions' cards are read -- the store
filters them with ``kafkaMurmurHash(card_id) % partitions``, Kafka's default
partitioner -- and only the rule horizon before the first batch. Memory is bounded
by ``page`` events over all cursors; time by ``max_s``: past it the warm-up stops
and the windows start with what was fed (logged and counted).
"""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2

from driftwatch.errors import StoreError
from driftwatch.events import ScoredTransaction
from driftwatch.rules.history import _COLUMNS, _event  # the stored-event row format
from driftwatch.rules.stage import RuleStage
from driftwatch.store.client import Store
from driftwatch.streaming.ordering import event_time_key

log = logging.getLogger(__name__)


class PartitionWarmUp:
    """Which assigned partitions are warm, and warming the cold ones.

    Parameters
    ----------
    store : Store
        Where the events are stored.
    stages : sequence of RuleStage
        The rule stages whose windows are warmed.
    topic : str
        The scored topic (keyed by card).
    page : int
        Most events held in memory (over all read cursors).
    max_s : float
        Longest a warm-up reads.
    """

    def __init__(self, store: Store, stages: Sequence[RuleStage], topic: str, *,
                 page: int = 50_000, max_s: float = 120.0) -> None:
        if page < 1 or max_s <= 0:
            raise ValueError(f"page must be >= 1 and max_s > 0, got {page}, {max_s}")
        self.store = store
        self.stages = list(stages)
        self.topic = topic
        self.page = page
        self.max_s = max_s
        self.cut_short = 0
        """Warm-ups stopped at ``max_s`` (their windows started partial)."""
        self.warm: set[TopicPartition] = set()
        self.events = 0
        """Stored events fed into the rule windows by warm-ups so far."""

    def cold(
        self, records: list[Any], assigned: Iterable[TopicPartition] | None
    ) -> dict[TopicPartition, list[bytes]]:
        """The records of partitions not warmed since they were ``assigned`` (every
        partition, on the first batch; None: the assignment is unknown)."""
        if assigned is not None:  # revoked partitions are warmed again if they return
            self.warm &= set(assigned)
        # the common case, every partition warm, without a TopicPartition per record (a
        # TopicPartition is a named tuple: a plain (topic, partition) tuple finds it)
        if all(tp in self.warm for tp in {(r.topic, r.partition) for r in records}):
            return {}
        cold: dict[TopicPartition, list[bytes]] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            if tp not in self.warm:
                cold.setdefault(tp, []).append(r.value if r.value is not None else b"")
        return cold

    def warm_up(self, cold: Mapping[TopicPartition, Sequence[bytes]], kafka: Any) -> None:
        """Before the first batch of newly assigned partitions: fill the rule windows
        with the stored history of those partitions' cards *before* that batch
        (re-delivered events are then evaluated live, so their hits are produced again
        rather than taken as already seen); ``kafka`` (the aiokafka consumer) knows the
        partition count (unknown: every stored event is read)."""
        firsts = {tp.partition: min(ts) for tp, raws in cold.items()
                  if (ts := [t for t in map(event_time_key, raws) if t != -math.inf])}
        if not firsts or not self.stages or self.store.max_event_time() is None:
            self.warm |= set(cold)  # nothing to warm up from
            return
        counts = kafka.partitions_for_topic(self.topic) if kafka is not None else None
        n_parts = len(counts) if counts else 0
        parts = (n_parts, sorted(tp.partition for tp in cold)) if n_parts else None
        # each partition's cards up to that partition's first record in this batch
        # (one partition's first record may be far later than another's)
        untils = {p: dt.datetime.fromtimestamp(t, dt.UTC) for p, t in firsts.items()}
        low = min(untils.values()) if parts is None else None
        until = max(untils.values()) if parts is not None else min(untils.values())
        horizons = [dt.timedelta(milliseconds=s.ruleset.horizon_ms) for s in self.stages]
        started = time.perf_counter()
        n = 0
        try:
            for batch in self.history(min(untils.values()) - max(horizons), until, parts,
                                      started + self.max_s):
                ends = [low if low is not None
                        else untils.get(_partition(e.card_id, n_parts), until)
                        for e in batch]
                fed = [e for e, end in zip(batch, ends, strict=True)
                       if end - max(horizons) <= e.event_time < end]
                for stage, horizon in zip(self.stages, horizons, strict=True):
                    stage.evaluator.feed([
                        e for e, end in zip(batch, ends, strict=True)
                        if end - horizon <= e.event_time < end])
                n += len(fed)
                self.events += len(fed)
        except StoreError:
            raise  # retried with the batch
        except Exception:  # a warm-up bug must not stop ingestion: start as far as fed
            log.exception("rule warm-up failed; rule windows start with what was read")
        seconds = time.perf_counter() - started
        if seconds > self.max_s:
            self.cut_short += 1
            log.warning("rule warm-up stopped at its time bound; windows start partial",
                        extra={"events": n, "max_s": self.max_s})
        log.info(
            "rule windows warmed up from ClickHouse",
            extra={"events": n, "until": {p: u.isoformat() for p, u in untils.items()},
                   "partitions": sorted(tp.partition for tp in cold),
                   "seconds": round(seconds, 3)},
        )
        self.warm |= set(cold)

    def history(
        self, start: dt.datetime, until: dt.datetime, parts: tuple[int, list[int]] | None,
        deadline: float,
    ) -> Iterator[list[ScoredTransaction]]:
        """Stored events with ``start <= event_time < until`` of the cards of ``parts``
        (partition count, partitions; None: all), in event-time order, in batches:
        one cursor per MCC in the table's sort order, merged; stops at ``deadline``."""
        where = ("event_time >= {start:DateTime64(3, 'UTC')} "
                 "AND event_time < {until:DateTime64(3, 'UTC')}")
        params: dict[str, Any] = {"start": start, "until": until}
        if parts is not None:
            where += " AND kafkaMurmurHash(card_id) % {n:UInt32} IN {parts:Array(UInt32)}"
            params.update(n=parts[0], parts=parts[1])
        mccs = [str(r[0]) for r in self.store.query(
            f"SELECT DISTINCT mcc FROM {{db}}.scored_transactions WHERE {where} ORDER BY mcc",
            params)]
        if not mccs:
            return
        page = max(100, self.page // len(mccs))
        cursors = [self._cursor(where, params, mcc, page, deadline) for mcc in mccs]
        batch: list[ScoredTransaction] = []
        for event in heapq.merge(*cursors, key=lambda e: (e.event_time, e.event_id)):
            batch.append(event)
            if len(batch) >= page:
                yield batch
                batch = []
        if batch:
            yield batch

    def _cursor(self, where: str, params: Mapping[str, Any], mcc: str, page: int,
                deadline: float) -> Iterator[ScoredTransaction]:
        """One MCC's events in sort order, ``page`` at a time (keyset pagination)."""
        sql = (f"SELECT {', '.join(_COLUMNS)} FROM {{db}}.scored_transactions FINAL "
               f"WHERE mcc = {{mcc:String}} AND {where} "
               "AND (event_time, event_id) > ({after_t:DateTime64(3, 'UTC')}, {after_id:String}) "
               "ORDER BY mcc, event_time, event_id LIMIT {limit:UInt32}")
        after_t, after_id = params["start"] - dt.timedelta(milliseconds=1), ""
        while time.perf_counter() < deadline:
            cols = self.store.query_columns(sql, {**params, "mcc": mcc, "after_t": after_t,
                                                  "after_id": after_id, "limit": page})
            n = len(cols.get("event_id", ()))
            events = [_event({c: cols[c][i] for c in _COLUMNS}) for i in range(n)]
            yield from events
            if n < page:
                return
            after_t, after_id = events[-1].event_time, events[-1].event_id


def _partition(card_id: str, partitions: int) -> int:
    """The scored topic's partition of a card (Kafka's default partitioner)."""
    return int((murmur2(card_id.encode()) & 0x7FFFFFFF) % partitions)
