"""A flapping alert (firing, firing critical, resolved, firing, resolved) reaches a real
webhook receiver state by state, in order, exactly as stored — also when the receiver
was down through all five changes, and for a sink that only finds them in ClickHouse
(issue 28: "only the two resolves were delivered")."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from driftwatch.alerts.model import Alert
from driftwatch.alerts.webhook import WebhookSink
from driftwatch.store.client import Store
from tests.integration.alert_rows import finding, persist
from tests.integration.alertmanager_proc import WebhookReceiver

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 18, 14, tzinfo=dt.UTC)


def _flapping() -> list[Alert]:
    first = Alert.from_finding(finding(severity="warning", at=T0))
    critical = dataclasses.replace(first, labels={**first.labels, "severity": "critical"},
                                   updated_at=T0 + dt.timedelta(minutes=5))
    gone = critical.resolved(T0 + dt.timedelta(minutes=20))
    again = Alert.from_finding(finding(at=T0 + dt.timedelta(minutes=40)))
    return [first, critical, gone, again, again.resolved(T0 + dt.timedelta(minutes=55))]


def _seen(receiver: WebhookReceiver) -> list[tuple[str, str]]:
    return [(a["status"], a["labels"]["severity"])
            for post in receiver.posts for a in post["body"]["alerts"]]


EXPECTED = [("firing", "warning"), ("firing", "critical"), ("resolved", "critical"),
            ("firing", "critical"), ("resolved", "critical")]


def test_down_receiver_gets_every_state_in_order_from_memory(
    store: Store, webhook_receiver: WebhookReceiver
) -> None:
    sink = WebhookSink(webhook_receiver.url, store=store, retry_max_s=0.2, grace_s=3600)
    webhook_receiver.status = 503
    states = _flapping()
    for a in states:
        persist(store, [a])
        sink.send([a])
    webhook_receiver.posts.clear()
    webhook_receiver.status = 200
    sink.tick(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5))
    assert _seen(webhook_receiver) == EXPECTED
    assert all(len(p["body"]["alerts"]) == 1 for p in webhook_receiver.posts)
    delivered = store.query("SELECT version, status FROM {db}.alert_deliveries FINAL"
                            " WHERE sink = 'webhook' ORDER BY version")
    assert [s for _, s in delivered] == [s for s, _ in EXPECTED]
    sink.close()


def test_a_restarted_sink_delivers_every_stored_state_in_order(
    store: Store, webhook_receiver: WebhookReceiver
) -> None:
    for a in _flapping():  # written by a worker that died before delivering any
        persist(store, [a])
    sink = WebhookSink(webhook_receiver.url, store=store, grace_s=0)
    sink.tick(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    assert _seen(webhook_receiver) == EXPECTED
    # delivered once: nothing is pending any more, nothing is posted again
    before = len(webhook_receiver.posts)
    sink.tick(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2))
    assert len(webhook_receiver.posts) == before
    sink.close()


def test_states_older_than_a_delivered_one_are_not_posted_late(
    store: Store, webhook_receiver: WebhookReceiver
) -> None:
    states = _flapping()
    versions = [persist(store, [a])[0] for a in states]
    # another worker delivered up to the first resolve
    store.insert_columns("alert_deliveries", {
        "sink": ["webhook"], "fingerprint": [states[2].fingerprint], "version": [versions[2]],
        "status": ["resolved"], "delivered_at": [dt.datetime.now(dt.UTC)], "attempts": [1],
        "last_error": [""],
    })
    sink = WebhookSink(webhook_receiver.url, store=store, grace_s=0)
    sink.tick(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    assert _seen(webhook_receiver) == EXPECTED[3:]
    sink.close()
