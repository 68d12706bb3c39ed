"""Rule warm-up per assigned partition: before the first batch of a partition this
worker was assigned, its rule windows are filled with the stored history of that
partition's cards."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2

from driftwatch.errors import StoreError
from driftwatch.events import ScoredTransaction
from driftwatch.rules.history import stored_events
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
    """

    def __init__(self, store: Store, stages: Sequence[RuleStage], topic: str) -> None:
        self.store = store
        self.stages = list(stages)
        self.topic = topic
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
        cold: dict[TopicPartition, list[bytes]] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            if tp not in self.warm:
                cold.setdefault(tp, []).append(r.value if r.value is not None else b"")
        return cold

    def partition_filter(
        self, parts: Iterable[TopicPartition], kafka: Any
    ) -> Callable[[ScoredTransaction], bool] | None:
        """Whether a stored event belongs to one of ``parts``: its ``card_id`` key
        through Kafka's default partitioner (the scored topic's contract: keyed by
        card). None (keep every event) when the partition count is unknown."""
        wanted = {tp.partition for tp in parts}
        counts = kafka.partitions_for_topic(self.topic) if kafka is not None else None
        if not counts:
            return None
        n = len(counts)

        def keep(e: ScoredTransaction) -> bool:
            return ((murmur2(e.card_id.encode()) & 0x7FFFFFFF) % n) in wanted

        return keep

    def warm_up(self, cold: Mapping[TopicPartition, Sequence[bytes]], kafka: Any) -> None:
        """Before the first batch of newly assigned partitions: fill the rule windows
        with the stored history of those partitions' cards *before* that batch
        (re-delivered events are then evaluated live, so their hits are produced again
        rather than taken as already seen). Reads the rule horizon in pages of
        ``stored_events`` (bounded memory) and feeds only the partitions' events;
        ``kafka`` (the aiokafka consumer) knows the partition count."""
        times = [t for raws in cold.values() for t in map(event_time_key, raws)
                 if t != -math.inf]
        if not times or not self.stages or self.store.max_event_time() is None:
            self.warm |= set(cold)  # nothing to warm up from
            return
        until = dt.datetime.fromtimestamp(min(times), dt.UTC)
        keep = self.partition_filter(cold, kafka)
        started = time.perf_counter()
        for stage in self.stages:
            start = until - dt.timedelta(milliseconds=stage.ruleset.horizon_ms)
            n = 0
            try:
                for batch in stored_events(self.store, start, until):
                    fed = batch if keep is None else [e for e in batch if keep(e)]
                    stage.evaluator.feed(fed)
                    n += len(fed)
                    self.events += len(fed)
            except StoreError:
                raise  # retried with the batch
            except Exception:  # a warm-up bug must not stop ingestion: start empty
                log.exception("rule warm-up failed; rule windows start empty")
                continue
            log.info(
                "rule windows warmed up from ClickHouse",
                extra={"events": n, "until": until.isoformat(),
                       "partitions": sorted(tp.partition for tp in cold),
                       "seconds": round(time.perf_counter() - started, 3)},
            )
        self.warm |= set(cold)
