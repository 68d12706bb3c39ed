"""The group writer: batches written together, in order, each future told the outcome.

Timing is never asserted as a bound that a slow machine could miss: a "not waited for"
case uses a 60 s delay and expects the write within a few seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future

import pytest

from driftwatch.errors import StoreError
from driftwatch.streaming.held import merge_held
from driftwatch.streaming.writer import GroupWriter

LONG = 60.0


class Recorder:
    """A ``write`` that records its groups; can be made to fail or to block."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.fail: Exception | None = None
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, items: list[str]) -> None:
        self.gate.wait(LONG)
        if self.fail is not None:
            raise self.fail
        self.groups.append(list(items))


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def writer(rec: Recorder) -> Iterator[GroupWriter[str]]:
    w = GroupWriter(rec, rows=len, max_rows=10, max_delay_s=LONG)
    yield w
    w.close(timeout=10)


def wait_all(futures: list[Future[None]]) -> list[None]:
    return [f.result(timeout=10) for f in futures]


def test_items_within_the_delay_are_one_group_in_order(
    writer: GroupWriter[str], rec: Recorder
) -> None:
    futures = [writer.submit(x) for x in ("a", "bb", "c")]
    assert writer.waiting == 4
    assert not any(f.done() for f in futures)  # the delay (60 s) has not passed
    writer.flush()
    wait_all(futures)
    assert rec.groups == [["a", "bb", "c"]]
    assert writer.waiting == 0 and writer.groups == 1


def test_the_delay_ends_a_group_by_itself(rec: Recorder) -> None:
    w = GroupWriter(rec, rows=len, max_rows=1000, max_delay_s=0.05)
    try:
        wait_all([w.submit("x"), w.submit("y")])
    finally:
        w.close(timeout=10)
    assert [x for g in rec.groups for x in g] == ["x", "y"]


def test_max_rows_writes_at_once_and_bounds_each_group(
    writer: GroupWriter[str], rec: Recorder
) -> None:
    rec.gate.clear()  # hold the thread in its first write while the rest queues up
    first = writer.submit("0123456789")  # 10 rows = max_rows: due at once
    futures = [writer.submit(x) for x in ("aaaa", "bbbb", "cccc", "dddd")]
    big = writer.submit("x" * 25)  # larger than max_rows: a group of its own
    rec.gate.set()
    wait_all([first, *futures, big])  # 16 + 25 rows queued: due without the delay
    assert rec.groups == [
        ["0123456789"], ["aaaa", "bbbb"], ["cccc", "dddd"], ["x" * 25]
    ]
    assert all(sum(map(len, g)) <= 10 for g in rec.groups[:-1])


def test_a_failed_write_fails_its_group_and_the_writer_goes_on(
    writer: GroupWriter[str], rec: Recorder
) -> None:
    rec.fail = StoreError("ClickHouse is down")
    failed = [writer.submit("a"), writer.submit("b")]
    writer.flush()
    for f in failed:
        with pytest.raises(StoreError, match="down"):
            f.result(timeout=10)
    rec.fail = None
    retried = [writer.submit("a"), writer.submit("b")]
    writer.flush()
    wait_all(retried)
    assert rec.groups == [["a", "b"]]


def test_close_writes_what_waits_then_refuses_more(rec: Recorder) -> None:
    w = GroupWriter(rec, rows=len, max_rows=100, max_delay_s=LONG)
    futures = [w.submit("a"), w.submit("b")]
    w.close(timeout=10)
    wait_all(futures)
    assert rec.groups == [["a", "b"]]
    with pytest.raises(RuntimeError, match="closed"):
        w.submit("c")
    w.close(timeout=10)  # idempotent


def test_a_cancelled_item_is_not_written(writer: GroupWriter[str], rec: Recorder) -> None:
    keep, drop = writer.submit("keep"), writer.submit("drop")
    assert drop.cancel()
    writer.flush()
    keep.result(timeout=10)
    with pytest.raises(CancelledError):
        drop.result(timeout=0)
    assert rec.groups == [["keep"]]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_rows": 0, "max_delay_s": 1.0}, "max_rows must be >= 1, got 0"),
    ({"max_rows": 1, "max_delay_s": -0.5}, "max_delay_s must be >= 0, got -0.5"),
    ({"max_rows": 1, "max_delay_s": float("nan")}, "max_delay_s must be >= 0, got nan"),
])
def test_bad_arguments_are_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GroupWriter(print, rows=len, **kwargs)


def test_merge_held_concatenates_per_table_and_column_list() -> None:
    a = [("rule_hits", {"event_id": ["e1"], "rule_id": ["r1"]})]
    b = [("rule_hits", {"event_id": ["e2", "e3"], "rule_id": ["r2", "r3"]}),
         ("rule_hits", {"event_id": ["e4"]})]  # another column list: another insert
    assert merge_held([a, [], b]) == [
        ("rule_hits", {"event_id": ["e1", "e2", "e3"], "rule_id": ["r1", "r2", "r3"]}),
        ("rule_hits", {"event_id": ["e4"]}),
    ]
    assert merge_held([]) == []


class Fatal(BaseException):
    """Not an Exception: ends the writer's thread."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_writer_thread_fails_what_waits_and_refuses_more(rec: Recorder) -> None:
    rec.gate.clear()
    rec.fail = Fatal()
    w = GroupWriter(rec, rows=len, max_rows=1, max_delay_s=LONG)
    first = w.submit("a")  # due at once: the thread waits at the gate in its write
    queued = w.submit("b")
    rec.gate.set()
    with pytest.raises(Fatal):
        first.result(timeout=10)
    with pytest.raises(RuntimeError, match="writer thread stopped"):
        queued.result(timeout=10)
    with pytest.raises(RuntimeError, match="closed"):
        w.submit("c")
    w.close(timeout=10)
