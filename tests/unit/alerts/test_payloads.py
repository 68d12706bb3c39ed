"""What goes on the wire: Alertmanager postable alerts and webhook bodies."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftwatch.alerts.alertmanager import AlertmanagerClient, AlertmanagerSink, to_alertmanager
from driftwatch.alerts.model import Alert, Finding
from driftwatch.alerts.outbox import DeliveryFailed
from driftwatch.alerts.webhook import WebhookSink, webhook_body
from tests.conftest import CONTRACTS

T0 = dt.datetime(2026, 3, 18, 14, 0, 3, tzinfo=dt.UTC)
SCHEMA = json.loads((CONTRACTS / "alert.schema.json").read_text())


def finding(**kw: object) -> Finding:
    base: dict[str, object] = dict(
        alertname="CentsDigitAnomaly", severity="critical", source="detector", origin="cents",
        segment="mcc=5967", event_time=T0, summary="6 of 9 end in .37", model_version="v47",
        value="6/9", threshold="p<0.01", evidence_sql="SELECT 1",
    )
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


def test_labels_and_annotations_map_one_to_one() -> None:
    a = Alert.from_finding(finding())
    now = T0 + dt.timedelta(minutes=3)
    p = to_alertmanager(a, now, resend_s=60)
    assert p["labels"] == a.labels
    assert {k: v for k, v in p["annotations"].items()
            if k not in ("fingerprint", "event_starts_at")} == a.annotations
    assert p["annotations"]["event_starts_at"] == "2026-03-18T14:00:03Z"
    assert p["startsAt"] == "2026-03-18T14:03:03Z"
    assert p["endsAt"] == "2026-03-18T14:07:03Z"  # now + 4 x resend_s
    assert "generatorURL" not in p


def test_invalid_label_names_and_empty_values_are_dropped() -> None:
    a = Alert("f", "firing", T0, {"alertname": "X", "bad-name": "1", "empty": ""}, {"s": ""})
    p = to_alertmanager(a, T0, 60, generator_url="https://dw.example/alerts/{fingerprint}")
    assert p["labels"] == {"alertname": "X"}
    assert "s" not in p["annotations"]
    assert p["generatorURL"] == "https://dw.example/alerts/f"


def test_resolved_wall_mode_ends_now_and_keeps_the_event_end() -> None:
    a = Alert.from_finding(finding()).resolved(T0 + dt.timedelta(hours=2))
    now = T0 + dt.timedelta(days=3)
    p = to_alertmanager(a, now, 60)
    assert p["startsAt"] == p["endsAt"] == "2026-03-21T14:00:03Z"
    assert p["annotations"]["event_ends_at"] == "2026-03-18T16:00:03Z"


def test_bad_clock_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="wall, event"):
        to_alertmanager(Alert.from_finding(finding()), T0, 60, starts_at="data")
    with pytest.raises(ValueError, match="wall, event"):
        AlertmanagerSink("http://127.0.0.1:1", starts_at="data")


times = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 1, 1),
    timezones=st.just(dt.UTC),
)


@given(start=times, end_delta=st.integers(0, 10**7), now=times, resolved=st.booleans(),
       mode=st.sampled_from(["wall", "event"]))
def test_alertmanager_never_gets_a_future_start_or_an_end_before_the_start(
    start: dt.datetime, end_delta: int, now: dt.datetime, resolved: bool, mode: str
) -> None:
    a = Alert.from_finding(finding(event_time=start))
    if resolved:
        a = a.resolved(start + dt.timedelta(seconds=end_delta))
    p = to_alertmanager(a, now, 60, starts_at=mode)

    def parse(s: str) -> dt.datetime:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))

    starts, ends = parse(p["startsAt"]), parse(p["endsAt"])
    assert starts <= now and starts <= ends
    assert (ends <= now) == resolved


def test_webhook_body_carries_contract_records() -> None:
    alerts = [Alert.from_finding(finding()), Alert.from_finding(
        finding(alertname="RuleHit", source="rule", origin="R-trigger")).resolved(T0)]
    body = webhook_body(alerts, T0)
    for record in body["alerts"]:
        jsonschema.validate(record, SCHEMA)
    assert [r["status"] for r in body["alerts"]] == ["firing", "resolved"]
    assert body["alerts"][1]["labels"]["rule_id"] == "R-trigger"


def _transport(status: int, seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, text="nope" if status >= 300 else "")

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(("status", "permanent"), [(500, False), (503, False), (429, False),
                                                   (401, False), (400, True), (422, True)])
def test_http_errors_are_classified(status: int, permanent: bool) -> None:
    seen: list[httpx.Request] = []
    client = AlertmanagerClient("http://am.test:9093", transport=_transport(status, seen))
    with pytest.raises(DeliveryFailed) as info:
        client.post_alerts([{"labels": {"alertname": "X"}}])
    assert info.value.permanent is permanent
    assert seen[0].url.path == "/api/v2/alerts"


def test_connection_errors_are_transient_and_urls_are_masked() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = AlertmanagerClient("http://u:hunter2@am.test:9093",
                                transport=httpx.MockTransport(refuse))
    with pytest.raises(DeliveryFailed) as info:
        client.post_alerts([])
    assert not info.value.permanent
    assert "hunter2" not in str(info.value) and "****" in str(info.value)
    with pytest.raises(ValueError, match="http"):
        AlertmanagerClient("am.test:9093")


def test_webhook_sends_bearer_token_and_json() -> None:
    seen: list[httpx.Request] = []
    sink = WebhookSink("https://hooks.test/dw", token="tok-123",
                       transport=_transport(204, seen))
    sink.send([Alert.from_finding(finding())])
    (req,) = seen
    assert req.headers["Authorization"] == "Bearer tok-123"
    body = json.loads(req.content)
    assert body["alerts"][0]["labels"]["alertname"] == "CentsDigitAnomaly"
    assert sink.delivered == 1
    sink.close()
