"""What a batch publishes before it is committed, and publishing it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

_PARTITIONER = DefaultPartitioner()
"""Where ``AIOKafkaProducer.send`` puts a message (the producers here keep the default)."""


@dataclass(frozen=True)
class OutMessage:
    """A message to publish before the batch that produced it is committed."""

    topic: str
    value: bytes
    key: bytes | None = None


@dataclass(frozen=True)
class Processed:
    """A batch processed up to its durable step.

    ``messages`` are published at once; ``durable()`` (retried until it succeeds,
    so it must be idempotent) makes the batch durable, and the offsets are committed
    only after it returned.
    """

    messages: list[OutMessage]
    durable: Callable[[], Awaitable[None]]


Process = Callable[[list[Any]], Awaitable[list[OutMessage] | Processed]]
"""Turns a batch of aiokafka ``ConsumerRecord`` into messages to publish (or a
:class:`Processed`); raises a retryable error (e.g. StoreError) when nothing may be
committed."""


async def publish(producer: AIOKafkaProducer, out: list[OutMessage]) -> None:
    """Publish ``out`` and wait until Kafka acknowledged all of it (:func:`enqueue`,
    then its acknowledgements)."""
    await asyncio.gather(*await enqueue(producer, out))


async def enqueue(producer: AIOKafkaProducer, out: list[OutMessage]) -> list[asyncio.Future[Any]]:
    """Hand ``out`` to the producer; return the futures of its acknowledgements.

    The messages go as record batches, one open batch per partition, chosen by the
    producer's default partitioner (murmur2 of the key; no key: any partition), so
    they land where ``producer.send`` would put them, with one future per batch
    instead of one per message. Their record timestamps are taken here.
    """
    parts: dict[str, list[int]] = {}
    open_: dict[tuple[str, int], Any] = {}
    sent: list[asyncio.Future[Any]] = []
    for m in out:
        where = parts.get(m.topic)
        if where is None:
            where = parts[m.topic] = sorted(await producer.partitions_for(m.topic))
        tp = (m.topic, _PARTITIONER(m.key, where, where))
        batch = open_.get(tp)
        if batch is None:
            batch = open_[tp] = producer.create_batch()
        if batch.append(key=m.key, value=m.value, timestamp=None) is None:  # full
            sent.append(await producer.send_batch(batch, tp[0], partition=tp[1]))
            batch = open_[tp] = producer.create_batch()
            batch.append(key=m.key, value=m.value, timestamp=None)  # a first one fits
    for (topic, partition), batch in open_.items():
        sent.append(await producer.send_batch(batch, topic, partition=partition))
    return sent
