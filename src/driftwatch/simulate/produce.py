"""Produce a simulation to Kafka: a time-compressed replay of event time.

Events go to the scored topic keyed by ``card_id``; labels go to the labels
topic, keyed by the ``card_id`` of the labelled transaction, interleaved by
``label_time``: a label is produced just before the first event whose event
time is later than its label time (labels after the last event go last). The
pace is ``rate`` events per second of wall time (0: as fast as possible), so
event time is compressed by ``rate / simulated rate``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftwatch.errors import SimulationError
from driftwatch.simulate.ids import CARD
from driftwatch.simulate.output import Simulation

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ProduceResult:
    """Totals of one produce run."""

    events: int
    labels: int
    seconds: float

    @property
    def rate(self) -> float:
        """Events per second of wall time."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


def label_slots(event_time_ms: np.ndarray[Any, Any], label_time_ms: np.ndarray[Any, Any]
                ) -> np.ndarray[Any, Any]:
    """For each label, the index of the event it is produced before.

    >>> label_slots(np.array([10, 20, 30]), np.array([5, 20, 25, 99])).tolist()
    [0, 2, 2, 3]
    """
    return np.searchsorted(event_time_ms, label_time_ms, side="right")


def produce(
    sim: Simulation,
    bootstrap: str,
    *,
    topic_events: str,
    topic_labels: str,
    rate: float = 0.0,
    chunk: int = 10_000,
    progress: Progress | None = None,
    producer: Any = None,
) -> ProduceResult:
    """Produce ``sim`` to Kafka with kafka-python.

    Parameters
    ----------
    sim : Simulation
    bootstrap : str
        ``HOST:PORT[,HOST:PORT...]``.
    topic_events, topic_labels : str
        Target topics (the settings ``topic_scored`` and ``topic_labels``).
    rate : float
        Events per second of wall time; 0 produces as fast as possible.
    producer : kafka.KafkaProducer, optional
        An existing producer (it is flushed, not closed).
    """
    if rate < 0:
        raise SimulationError(f"produce rate must be >= 0, got {rate}")
    own = producer is None
    if own:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            producer = KafkaProducer(
                bootstrap_servers=bootstrap.split(","), acks=1, linger_ms=20,
                batch_size=512 * 1024, max_request_size=8 * 1024 * 1024,
                client_id="driftwatch-simulate",
            )
        except KafkaError as exc:
            raise SimulationError(f"cannot connect to Kafka at {bootstrap}: {exc}") from exc
    labels = sim.labels
    slots = label_slots(sim.event_time_ms, sim.label_time_ms)
    label_cards = sim.label_cards()
    n = sim.n_events
    started = time.monotonic()
    sent_labels = 0
    step = max(1, int(rate // 20)) if rate > 0 else chunk
    try:
        pos = 0
        for lines in sim.iter_events(chunk):
            keys = sim.card_keys(pos, pos + len(lines))
            for k, (line, key) in enumerate(zip(lines, keys, strict=True)):
                i = pos + k
                while sent_labels < len(labels) and slots[sent_labels] <= i:
                    producer.send(topic_labels, value=labels[sent_labels],
                                  key=(CARD % label_cards[sent_labels]).encode())
                    sent_labels += 1
                producer.send(topic_events, value=line, key=key)
                if rate > 0 and (i + 1) % step == 0:
                    ahead = (i + 1) / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            pos += len(lines)
            if progress is not None:
                progress(pos, n)
        while sent_labels < len(labels):
            producer.send(topic_labels, value=labels[sent_labels],
                          key=(CARD % label_cards[sent_labels]).encode())
            sent_labels += 1
        producer.flush()
    finally:
        if own:
            producer.close()
    return ProduceResult(n, sent_labels, time.monotonic() - started)
