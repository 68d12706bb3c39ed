"""Delivery to a real Alertmanager (Debian's 0.25) started by the test, with the deploy
routes and inhibition, and a local webhook receiver standing in for Slack/pager.

Covers the acceptance of issue 8: a detector alert appears in ``GET /api/v2/alerts``
with the contract labels; a burst is one grouped notification; resolve works; with
Alertmanager stopped the alerts are kept (pending in ClickHouse) and delivered after it
restarts, also by a freshly started sink.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from driftwatch.alerts.alertmanager import AlertmanagerSink
from driftwatch.alerts.deliveries import Outbox
from driftwatch.alerts.model import Alert
from driftwatch.store.client import Store
from tests.integration.alert_rows import finding, persist
from tests.integration.alertmanager_proc import DEPLOY_CONFIG, AlertmanagerProcess, WebhookReceiver

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None, reason="no alertmanager"),
]


def _until(pred: Callable[[], bool], timeout: float = 15.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(step)


def _deliveries(store: Store, sink: str = "alertmanager") -> list[tuple[object, ...]]:
    return store.query(
        "SELECT fingerprint, version, status, attempts, last_error"
        " FROM {db}.alert_deliveries FINAL WHERE sink = {s:String} ORDER BY fingerprint, version",
        {"s": sink},
    )


def test_detector_alert_appears_with_contract_labels(
    store: Store, alertmanager: AlertmanagerProcess
) -> None:
    alert = Alert.from_finding(finding())
    (version,) = persist(store, [alert])
    sink = AlertmanagerSink(alertmanager.url, store=store, resend_s=60)
    sink.send([alert])
    got = alertmanager.alerts(filter='alertname="CentsDigitAnomaly"')
    assert len(got) == 1
    am = got[0]
    assert am["labels"] == {
        "alertname": "CentsDigitAnomaly",
        "severity": "critical",
        "source": "detector",
        "detector": "cents",
        "segment": "mcc=5967",
        "model_version": "v47",
    }
    assert am["annotations"]["summary"] == "mcc=5967: 6 of 9 amounts end in .37"
    assert am["annotations"]["fingerprint"] == alert.fingerprint
    assert "amount_cents = 37" in am["annotations"]["evidence_sql"]
    assert am["status"]["state"] == "active"
    # critical detector alerts page the SOC (deploy routes)
    assert [r["name"] for r in am["receivers"]] == ["soc-pager"]
    ends = dt.datetime.fromisoformat(am["endsAt"].replace("Z", "+00:00"))
    assert ends > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)  # 4 x resend_s ahead
    assert _deliveries(store) == [(alert.fingerprint, version, "firing", 1, "")]
    assert Outbox(store, "alertmanager").pending(dt.datetime.now(dt.UTC)) == []
    sink.close()


def test_burst_is_one_grouped_notification(
    store: Store, alertmanager: AlertmanagerProcess, webhook_receiver: WebhookReceiver
) -> None:
    sink = AlertmanagerSink(alertmanager.url, store=store, resend_s=60)
    burst = [
        Alert.from_finding(finding("ScoreDriftKS", severity="warning", origin="ks",
                                   model_version=f"v{40 + i}"))
        for i in range(6)
    ]
    for alert in burst:  # six state changes in six batches, within group_wait
        persist(store, [alert])
        sink.send([alert])
    posts = webhook_receiver.wait_for(lambda p: len(p) >= 1)
    time.sleep(2.5)  # group_interval is 1s in the test config: any split would show
    posts = [p for p in webhook_receiver.posts if p["path"] == "/soc-triage"]
    assert len(posts) == 1, posts
    body = posts[0]["body"]
    assert body["status"] == "firing"
    assert body["groupLabels"] == {"alertname": "ScoreDriftKS", "segment": "mcc=5967"}
    assert sorted(a["labels"]["model_version"] for a in body["alerts"]) == [
        f"v{40 + i}" for i in range(6)
    ]
    assert len(webhook_receiver.posts) == 1  # warning detector alerts go to triage only
    sink.close()


def test_resolve_reaches_alertmanager_and_receiver(
    store: Store, alertmanager: AlertmanagerProcess, webhook_receiver: WebhookReceiver
) -> None:
    sink = AlertmanagerSink(alertmanager.url, store=store, resend_s=60)
    alert = Alert.from_finding(finding("RecallDrop", severity="warning", origin="recall"))
    persist(store, [alert])
    sink.send([alert])
    webhook_receiver.wait_for(lambda p: any(x["body"]["status"] == "firing" for x in p))
    assert len(alertmanager.alerts()) == 1
    resolved = alert.resolved(alert.starts_at + dt.timedelta(minutes=30))
    persist(store, [resolved])
    sink.send([resolved])
    _until(lambda: alertmanager.alerts() == [])
    posts = webhook_receiver.wait_for(
        lambda p: any(x["body"]["status"] == "resolved" for x in p)
    )
    done = next(x["body"] for x in posts if x["body"]["status"] == "resolved")
    (am_alert,) = done["alerts"]
    assert am_alert["status"] == "resolved"
    assert am_alert["labels"]["alertname"] == "RecallDrop"
    assert am_alert["annotations"]["event_ends_at"] == resolved.to_dict()["ends_at"]
    assert [r[2] for r in _deliveries(store)] == ["firing", "resolved"]
    sink.close()


def test_outage_keeps_alerts_and_delivers_after_restart(
    store: Store, alertmanager: AlertmanagerProcess, webhook_receiver: WebhookReceiver
) -> None:
    alertmanager.stop()
    sink = AlertmanagerSink(alertmanager.url, store=store, resend_s=60, retry_max_s=0.2,
                            timeout_s=1.0)
    first = Alert.from_finding(finding(segment="mcc=5967"))
    second = Alert.from_finding(finding("RuleHit", source="rule", origin="R-trigger",
                                        segment="mcc=5967,merchant_country=LT"))
    persist(store, [first])
    sink.send([first])  # refused: kept pending, no exception
    persist(store, [second])
    sink.send([second])  # backing off: not even tried, kept pending
    assert sink.pending_count == 2 and sink.failures >= 1
    assert _deliveries(store) == []
    outbox = Outbox(store, "alertmanager")
    assert {s.alert.fingerprint for s in outbox.pending(dt.datetime.now(dt.UTC))} == {
        first.fingerprint, second.fingerprint
    }
    time.sleep(0.3)
    assert sink.tick().error  # still down: the retry fails and backs off again
    assert sink.pending_count == 2

    alertmanager.start()  # same port, same storage; Alertmanager kept no alerts
    _until(lambda: (sink.tick(), sink.pending_count)[1] == 0, timeout=10)
    names = {a["labels"]["alertname"] for a in alertmanager.alerts()}
    assert names == {"CentsDigitAnomaly", "RuleHit"}
    rows = _deliveries(store)
    assert len(rows) == 2
    assert all(r[3] >= 2 and "ConnectError" in str(r[4]) for r in rows)  # attempts, error
    webhook_receiver.wait_for(lambda p: {x["path"] for x in p} >= {"/soc-pager"})
    sink.close()


def test_fresh_sink_delivers_what_a_dead_worker_left_pending(
    store: Store, alertmanager: AlertmanagerProcess
) -> None:
    alertmanager.stop()
    dead = AlertmanagerSink(alertmanager.url, store=store, resend_s=60, timeout_s=1.0)
    alert = Alert.from_finding(finding("BenfordFirstDigit", severity="warning",
                                       origin="benford"))
    persist(store, [alert])
    dead.send([alert])
    dead.close()  # the worker dies with the alert undelivered
    alertmanager.start()
    fresh = AlertmanagerSink(alertmanager.url, store=store, resend_s=60)
    first = fresh.tick()  # every worker re-posts the firing alerts ...
    assert (first.posted, first.delivered) == (1, 0)  # ... but leaves the delivery to its
    fresh.close()                                     # owner for grace_s (15 s)
    fresh = AlertmanagerSink(alertmanager.url, store=store, resend_s=60, grace_s=0)
    result = fresh.tick()
    assert result.delivered == 1 and result.error == ""
    assert [a["labels"]["alertname"] for a in alertmanager.alerts()] == ["BenfordFirstDigit"]
    assert fresh.tick().posted == 0  # nothing due: no pending, re-post not due yet
    fresh.close()


def test_firing_alerts_are_reposted_after_alertmanager_restart(
    store: Store, alertmanager: AlertmanagerProcess
) -> None:
    sink = AlertmanagerSink(alertmanager.url, store=store, resend_s=1, grace_s=0)
    alert = Alert.from_finding(finding())
    persist(store, [alert])
    sink.send([alert])
    resolved_one = Alert.from_finding(finding("RecallDrop", origin="recall"))
    persist(store, [resolved_one.resolved(resolved_one.starts_at)])
    alertmanager.stop()
    alertmanager.start()  # Alertmanager forgets every alert across a restart
    assert alertmanager.alerts() == []
    time.sleep(1.05)  # the re-post (every resend_s = 1 s) is due
    result = sink.tick()
    assert result.error == "" and result.posted == 2  # the firing one + the pending resolved
    assert result.delivered == 1
    assert [a["labels"]["alertname"] for a in alertmanager.alerts()] == ["CentsDigitAnomaly"]
    sink.close()


def test_inhibition_of_drift_alerts_and_per_card_alerts(
    store: Store, alertmanager: AlertmanagerProcess
) -> None:
    sink = AlertmanagerSink(alertmanager.url, store=store, resend_s=60)
    drift = Alert.from_finding(finding("ScoreDriftPSI", severity="warning", origin="psi"))
    down = Alert.from_finding(finding("ScoredStreamStalled", severity="critical",
                                      source="detector", origin="platform", segment=""))
    down = Alert(down.fingerprint, "firing", down.starts_at,
                 {**down.labels, "source": "platform"}, down.annotations)
    campaign = Alert.from_finding(finding("CampaignDetected", source="rule", origin="R-camp",
                                          segment="", scope="campaign", campaign="ip=1.2.3.4"))
    card = Alert.from_finding(finding("RuleHit", source="rule", origin="R-card",
                                      segment="", scope="card", campaign="ip=1.2.3.4"))
    other_card = Alert.from_finding(finding("RuleHit", source="rule", origin="R-card2",
                                            segment="", scope="card", campaign="ip=9.9.9.9"))
    sink.send([drift, down, campaign, card, other_card])

    def states() -> dict[str, str]:
        return {a["annotations"]["fingerprint"]: a["status"]["state"]
                for a in alertmanager.alerts()}

    _until(lambda: states().get(drift.fingerprint) == "suppressed"
           and states().get(card.fingerprint) == "suppressed")
    s = states()
    assert s[down.fingerprint] == "active" and s[campaign.fingerprint] == "active"
    assert s[other_card.fingerprint] == "active"  # another campaign: not inhibited
    sink.close()


# --- the deploy config itself ----------------------------------------------------------
AMTOOL = shutil.which("amtool")


@pytest.mark.skipif(AMTOOL is None, reason="no amtool")
def test_deploy_config_passes_amtool_check_config() -> None:
    out = subprocess.run([AMTOOL, "check-config", str(DEPLOY_CONFIG)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.skipif(AMTOOL is None, reason="no amtool")
@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ("severity=critical source=detector", "soc-pager"),
        ("severity=critical source=rule", "soc-pager,fraud-analysts"),
        ("severity=warning source=detector", "soc-triage"),
        ("severity=warning source=rule", "fraud-analysts"),
        ("severity=info source=detector", "analysts-digest"),
        ("severity=critical source=platform", "platform-oncall"),
    ],
)
def test_deploy_routes(labels: str, receivers: str) -> None:
    out = subprocess.run(
        [AMTOOL, "config", "routes", "test", f"--config.file={DEPLOY_CONFIG}", *labels.split()],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == receivers


@pytest.mark.skipif(AMTOOL is None, reason="no amtool")
def test_message_template_shows_summary_segment_value_and_evidence(tmp_path: Path) -> None:
    import json

    alert = Alert.from_finding(finding())
    from driftwatch.alerts.alertmanager import to_alertmanager

    posted = to_alertmanager(alert, dt.datetime.now(dt.UTC), 60)
    data = {
        "receiver": "soc-pager", "status": "firing", "externalURL": "http://am",
        "groupLabels": {"alertname": "CentsDigitAnomaly", "segment": "mcc=5967"},
        "commonLabels": posted["labels"], "commonAnnotations": {},
        "alerts": [{"status": "firing", "labels": posted["labels"],
                    "annotations": posted["annotations"], "startsAt": posted["startsAt"],
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
                    "fingerprint": "x"}],
    }
    (tmp_path / "data.json").write_text(json.dumps(data))
    out = subprocess.run(
        [AMTOOL, "template", "render",
         f"--template.glob={DEPLOY_CONFIG.parent / 'templates' / '*.tmpl'}",
         f"--template.data={tmp_path / 'data.json'}",
         '--template.text={{ template "driftwatch.title" . }}\n{{ template "driftwatch.text" . }}'],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("[FIRING:1] CentsDigitAnomaly · mcc=5967")
    assert "6 of 9 amounts end in .37" in text
    assert "segment: `mcc=5967`" in text
    assert "value: 6/9 (p=2.1e-09) vs threshold p_adj < 0.01" in text
    assert "amount_cents = 37" in text
    assert f"driftwatch alerts show {alert.fingerprint}" in text


# --- the generic webhook, the second channel -------------------------------------------
def test_webhook_sink_delivers_contract_records_and_retries(
    store: Store, webhook_receiver: WebhookReceiver
) -> None:
    import json

    import jsonschema

    from driftwatch.alerts.webhook import WebhookSink
    from tests.conftest import CONTRACTS

    schema = json.loads((CONTRACTS / "alert.schema.json").read_text())
    sink = WebhookSink(f"{webhook_receiver.url}/hook", token="wh-secret", store=store,
                       retry_max_s=0.2)
    alert = Alert.from_finding(finding())
    persist(store, [alert])
    webhook_receiver.status = 503  # the receiver is failing
    sink.send([alert])
    assert sink.pending_count == 1 and _deliveries(store, "webhook") == []
    webhook_receiver.status = 200
    _until(lambda: (sink.tick(), sink.pending_count)[1] == 0, timeout=5)
    posts = webhook_receiver.posts
    assert len(posts) == 2  # the failed post and the successful retry
    assert posts[-1]["headers"]["Authorization"] == "Bearer wh-secret"
    (record,) = posts[-1]["body"]["alerts"]
    jsonschema.validate(record, schema)
    assert record["fingerprint"] == alert.fingerprint
    assert [(r[0], r[3]) for r in _deliveries(store, "webhook")] == [(alert.fingerprint, 2)]
    sink.close()


# --- the whole path: pipeline -> alert book (persist) -> sink -> Alertmanager -------------
class _Detector:
    """A clock stage that reports one detector finding while ``active``; it closes each
    pass on the alert book's pass clock, as the real monitor does."""

    name = "cents"

    def __init__(self, book: object) -> None:
        self.book = book
        self.active = True

    def on_watermark(self, watermark: dt.datetime) -> object:
        from driftwatch.pipeline import StageOutput

        out = StageOutput(findings=[finding(at=watermark)] if self.active else [])
        self.book.passed(watermark)  # type: ignore[attr-defined]
        return out


def test_pipeline_alert_book_and_alertmanager_end_to_end(
    store: Store, alertmanager: AlertmanagerProcess, webhook_receiver: WebhookReceiver
) -> None:
    from driftwatch.alerts.lifecycle import StoreAlertBook
    from driftwatch.pipeline import Pipeline

    book = StoreAlertBook(store, interval_s=300, resolve_after=1)
    detector = _Detector(book)
    sink = AlertmanagerSink(alertmanager.url, store=store, resend_s=60, retry_max_s=0.2,
                            timeout_s=1.0)
    pipeline = Pipeline(store, clock_stages=[detector], alert_book=book, sinks=[sink])
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0)

    (fired,) = pipeline.advance(t0)  # the detector alert: persisted, then posted
    assert fired.status == "firing"
    (am,) = alertmanager.alerts()
    assert am["labels"]["alertname"] == "CentsDigitAnomaly"
    assert am["labels"]["detector"] == "cents" and am["labels"]["segment"] == "mcc=5967"
    assert pipeline.advance(t0 + dt.timedelta(minutes=2)) == []  # grows, no new state
    webhook_receiver.wait_for(lambda p: any(x["path"] == "/soc-pager" for x in p))

    alertmanager.stop()  # the SOC's Alertmanager goes down ...
    detector.active = False
    (resolved,) = pipeline.advance(t0 + dt.timedelta(minutes=15))  # ... while it resolves
    assert resolved.status == "resolved"
    assert sink.pending_count == 1
    stored = store.query("SELECT status FROM {db}.alerts FINAL")
    assert stored == [("resolved",)]  # kept: persisted before the failed post

    alertmanager.start()
    _until(lambda: (sink.tick(), sink.pending_count)[1] == 0, timeout=10)
    assert alertmanager.alerts() == []  # resolved there too
    assert [r[2] for r in _deliveries(store)] == ["firing", "resolved"]
    sink.close()
