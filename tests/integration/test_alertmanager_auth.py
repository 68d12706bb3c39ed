"""Alertmanager behind basic auth (issue 30): Debian's ``prometheus-alertmanager`` started
with the web config ``driftwatch secure web-config`` writes (bcrypt) answers 401 without
or with wrong credentials — on the API, the UI and silence creation — and 200 with them;
driftwatch's own client delivers with the credentials in ``DRIFTWATCH_ALERTMANAGER_URL``
and never shows the password."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator

import httpx
import pytest
import yaml
from click.testing import CliRunner

from driftwatch.alerts.alertmanager import AlertmanagerClient
from driftwatch.alerts.outbox import DeliveryFailed
from driftwatch.cli import main
from tests.integration.alertmanager_proc import (
    BINARY,
    AlertmanagerProcess,
    WebhookReceiver,
    am_test_config,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BINARY is None, reason="prometheus-alertmanager not installed"),
]

USER = "driftwatch"
PASSWORD = secrets.token_hex(16)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerProcess]:
    tmp_path = tmp_path_factory.mktemp("am_auth")
    web = tmp_path / "auth" / "web.yml"
    out = CliRunner().invoke(main, ["secure", "web-config", "--user", USER, "--out", str(web)],
                             env={"ALERTMANAGER_PASSWORD": PASSWORD})
    assert out.exit_code == 0, out.output
    assert PASSWORD not in web.read_text()
    hashed = yaml.safe_load(web.read_text())["basic_auth_users"][USER]
    assert hashed.startswith("$2")
    receiver = WebhookReceiver()
    am = AlertmanagerProcess(tmp_path / "am", am_test_config(receiver.url),
                             web_config=web, auth=(USER, PASSWORD))
    try:
        am.start()
        yield am
    finally:
        am.stop()
        receiver.close()


def _silence(by: str = "test") -> dict[str, object]:
    now = dt.datetime.now(dt.UTC)
    return {
        "matchers": [{"name": "source", "value": "detector", "isRegex": False}],
        "startsAt": now.isoformat(), "endsAt": (now + dt.timedelta(hours=1)).isoformat(),
        "createdBy": by, "comment": "mute the SOC",
    }


@pytest.mark.parametrize("auth", [None, (USER, "wrong-" + PASSWORD), ("admin", PASSWORD),
                                  (USER, "")])
def test_without_the_password_everything_is_401(
    secured: AlertmanagerProcess, auth: tuple[str, str] | None
) -> None:
    for path in ("/", "/api/v2/status", "/api/v2/alerts", "/api/v2/silences", "/metrics"):
        r = httpx.get(secured.url + path, auth=auth, timeout=5)
        assert r.status_code == 401, (path, r.status_code)
    r = httpx.post(secured.url + "/api/v2/silences", json=_silence("test-" + str(auth)),
                   auth=auth, timeout=5)
    assert r.status_code == 401
    # nothing got through: no silence from this comment, read with the password
    ok = httpx.get(secured.url + "/api/v2/silences", auth=(USER, PASSWORD), timeout=5)
    assert ok.status_code == 200
    assert [x for x in ok.json() if x["createdBy"] == "test-" + str(auth)] == []


def test_with_the_password_it_answers(secured: AlertmanagerProcess) -> None:
    auth = (USER, PASSWORD)
    for path in ("/", "/api/v2/status", "/api/v2/alerts", "/-/ready"):
        assert httpx.get(secured.url + path, auth=auth, timeout=5).status_code == 200, path
    r = httpx.post(secured.url + "/api/v2/silences", json=_silence(), auth=auth, timeout=5)
    assert r.status_code == 200 and "silenceID" in r.json()


def test_driftwatch_delivers_with_credentials_in_the_url(
    secured: AlertmanagerProcess
) -> None:
    alert = {"labels": {"alertname": "AuthProbe", "source": "detector", "severity": "info"},
             "annotations": {"summary": "probe"}}
    host = secured.url.removeprefix("http://")
    anonymous = AlertmanagerClient(secured.url)
    with pytest.raises(DeliveryFailed, match="HTTP 401"):
        anonymous.post_alerts([alert])
    assert not anonymous.ready()
    wrong = AlertmanagerClient(f"http://{USER}:not-{PASSWORD}@{host}")
    with pytest.raises(DeliveryFailed) as failed:
        wrong.post_alerts([alert])
    assert "HTTP 401" in str(failed.value) and PASSWORD not in str(failed.value)
    client = AlertmanagerClient(f"http://{USER}:{PASSWORD}@{host}")
    assert client.ready()
    client.post_alerts([alert])
    names = [a["labels"]["alertname"] for a in client.alerts(filters=['alertname="AuthProbe"'])]
    assert names == ["AuthProbe"]
    assert PASSWORD not in client.shown
    for c in (anonymous, wrong, client):
        c.close()
