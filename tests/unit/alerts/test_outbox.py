"""The outbox logic without a store: retry, back-off, bounded memory, periodic re-post.

The receiver here is an in-process recorder (a subclass implementing ``post``); the
real Alertmanager and ClickHouse are exercised in tests/integration.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftwatch.alerts.model import Alert
from driftwatch.alerts.outbox import DeliveryFailed, OutboxSink

T0 = dt.datetime(2026, 3, 18, 14, 0, tzinfo=dt.UTC)


def alert(i: int, status: str = "firing") -> Alert:
    a = Alert(f"fp{i:03d}", "firing", T0, {"alertname": "RuleHit", "severity": "warning",
                                          "source": "rule"}, {"summary": f"hit {i}"})
    return a.resolved(T0 + dt.timedelta(minutes=5)) if status == "resolved" else a


class Recorder(OutboxSink):
    def __init__(self, **kwargs: object) -> None:
        super().__init__("test", **kwargs)  # type: ignore[arg-type]
        self.calls: list[list[str]] = []
        self.down = False
        self.reject = False

    def post(self, alerts: Sequence[Alert], now: dt.datetime) -> None:
        if self.down:
            raise DeliveryFailed("connection refused")
        if self.reject:
            raise DeliveryFailed("HTTP 400: bad alert", permanent=True)
        self.calls.append([f"{a.fingerprint}:{a.status}" for a in alerts])


def test_send_posts_once_and_forgets_delivered_states() -> None:
    sink = Recorder()
    sink.send([alert(1), alert(2)])
    assert sink.calls == [["fp001:firing", "fp002:firing"]]
    assert sink.pending_count == 0 and sink.delivered == 2
    assert sink.tick(T0).posted == 0  # nothing due (no re-post without resend_s)


def test_failure_keeps_pending_backs_off_and_tick_delivers_later() -> None:
    sink = Recorder(retry_max_s=10.0)
    sink.down = True
    sink.send([alert(1)])
    assert sink.pending_count == 1 and sink.failures == 1
    sink.send([alert(2)])  # while backing off nothing is tried
    assert sink.failures == 1 and sink.pending_count == 2
    sink.down = False
    future = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=11)
    result = sink.tick(future)
    assert (result.posted, result.delivered, result.pending) == (2, 2, 0)
    assert sink.calls == [["fp001:firing", "fp002:firing"]]


def test_every_pending_state_is_delivered_in_order_one_per_post() -> None:
    sink = Recorder(retry_max_s=1.0)
    sink.down = True
    sink.send([alert(1)])
    sink.send([alert(1, "resolved"), alert(2)])
    assert sink.pending_count == 3
    sink.down = False
    sink.tick(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2))
    # the firing state is not lost behind the resolve, and never shares a post with it
    assert sink.calls == [["fp001:firing", "fp002:firing"], ["fp001:resolved"]]
    assert sink.pending_count == 0 and sink.delivered == 3


def test_a_repeat_of_a_pending_state_is_posted_once() -> None:
    sink = Recorder(retry_max_s=1.0)
    sink.down = True
    sink.send([alert(1)])
    sink.send([alert(1)])
    sink.down = False
    sink.tick(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2))
    assert sink.calls == [["fp001:firing"]]


def test_permanent_rejection_is_not_retried() -> None:
    sink = Recorder()
    sink.reject = True
    sink.send([alert(1)])
    assert sink.pending_count == 0
    sink.reject = False
    assert sink.tick(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).posted == 0


def test_memory_is_bounded() -> None:
    sink = Recorder(max_pending=5)
    sink.down = True
    sink.send([alert(i) for i in range(12)])
    assert sink.pending_count == 5
    sink.down = False
    sink.tick(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
    assert sink.calls == [[f"fp{i:03d}:firing" for i in range(7, 12)]]  # the newest kept


def test_firing_alerts_are_reposted_every_resend_s_and_resolved_ones_are_not() -> None:
    sink = Recorder(resend_s=60)
    now = dt.datetime.now(dt.UTC)
    sink.send([alert(1), alert(2)])
    assert sink.tick(now).posted == 2  # first tick: the re-post clock starts
    assert sink.tick(now + dt.timedelta(seconds=30)).posted == 0
    sink.send([alert(2, "resolved")])
    assert sink.tick(now + dt.timedelta(seconds=61)).posted == 1
    assert sink.calls[-1] == ["fp001:firing"]


def test_chunks_split_large_posts() -> None:
    sink = Recorder(chunk=4)
    sink.send([alert(i) for i in range(10)])
    assert [len(c) for c in sink.calls] == [4, 4, 2]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"resend_s": 0}, "resend_s"), ({"max_pending": 0}, "max_pending"),
     ({"chunk": 0}, "chunk")],
)
def test_sink_rejects_bad_values_by_name(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Recorder(**kwargs)


@given(st.lists(st.tuples(st.integers(0, 9), st.booleans(), st.booleans()), max_size=40))
def test_every_latest_state_is_delivered_exactly_when_the_receiver_is_back(
    steps: list[tuple[int, bool, bool]],
) -> None:
    """Whatever the sequence of outages and state changes, once the receiver answers
    again one tick delivers the newest state of every alert that was not delivered."""
    sink = Recorder(retry_max_s=1.0)
    latest: dict[str, str] = {}
    delivered: dict[str, str] = {}
    for i, resolved, down in steps:
        sink.down = down
        a = alert(i, "resolved" if resolved else "firing")
        latest[a.fingerprint] = a.status
        before = len(sink.calls)
        sink.send([a])
        for call in sink.calls[before:]:
            delivered.update(x.split(":") for x in call)  # type: ignore[misc]
    sink.down = False
    before = len(sink.calls)
    sink.tick(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5))
    for call in sink.calls[before:]:
        delivered.update(x.split(":") for x in call)  # type: ignore[misc]
    assert delivered == latest
    assert sink.pending_count == 0
