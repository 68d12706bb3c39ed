"""The read-only HTTP API against real ClickHouse (chdb) on a real local port.

Acceptance of issue 8: no token -> 401; bad token -> 401; bad parameters -> 422 with a
message; SQL-injection strings in every parameter change nothing and return 4xx or
empty results. Figures are checked against an independent pandas computation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from aiohttp import web

from driftwatch.alerts.model import Alert
from driftwatch.api.app import create_app
from driftwatch.api.openapi import spec
from driftwatch.api.params import ALERT_PARAMS, SEGMENT_PARAMS, SHOW_PARAMS
from driftwatch.errors import ConfigError
from driftwatch.settings import Settings
from driftwatch.store.client import Store, open_store
from tests.integration.alert_rows import finding, persist
from tests.integration.alertmanager_proc import free_port
from tests.integration.analyst_data import DAY2, Loaded, load

pytestmark = pytest.mark.integration

TOKEN = "tok-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Api:
    url: str
    store: Store
    loaded: Loaded
    alerts: list[Alert]

    def get(self, path: str, params: object = None, token: str | None = TOKEN,
            **headers: str) -> httpx.Response:
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        return httpx.get(self.url + path, params=params, headers=headers,  # type: ignore[arg-type]
                         timeout=30)


class _Server:
    """The aiohttp app on a free port, in a thread with its own event loop."""

    def __init__(self, app: web.Application) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, access_log=None)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        self.loop.run_until_complete(site.start())
        self.ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def api(chdb_dsn: str) -> Iterator[Api]:
    store = open_store(chdb_dsn, f"t_api_{uuid.uuid4().hex[:8]}", init=True)
    loaded = load(store)
    at = DAY2 + dt.timedelta(hours=16)
    alerts = [
        Alert.from_finding(finding(at=at)),
        Alert.from_finding(finding("RuleHit", source="rule", origin="R-trigger",
                                   severity="warning", at=at)),
        Alert.from_finding(finding("RecallDrop", origin="recall", severity="warning",
                                   segment="mcc=5411", at=at)),
    ]
    persist(store, alerts)
    persist(store, [alerts[2].resolved(at + dt.timedelta(hours=2))])
    # No rate limit here: these tests fire many requests at once from one address
    # (the limit has its own tests in test_api_ratelimit.py).
    settings = Settings.load(env={}, config_file=None).replace(api_token=TOKEN,
                                                               http_rate_per_s=0.0)
    server = _Server(create_app(store, settings))
    try:
        yield Api(f"http://127.0.0.1:{server.port}", store, loaded, alerts)
    finally:
        server.close()
        store.drop()


# --- authentication -----------------------------------------------------------------------
PROTECTED = ["/alerts", "/segments", "/metrics", "/openapi.json", "/alerts/0123456789abcdef",
             "/nope"]


def test_healthz_needs_no_token(api: Api) -> None:
    r = api.get("/healthz", token=None)
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "clickhouse": True}


@pytest.mark.parametrize("path", PROTECTED)
def test_no_token_is_401(api: Api, path: str) -> None:
    r = api.get(path, token=None)
    assert r.status_code == 401
    assert r.json() == {"error": "missing bearer token"}
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", "Bearer wrong", f"Basic {TOKEN}",
                                    "Bearer", f"bearer {TOKEN[:-1]}"])
def test_bad_token_is_401(api: Api, path: str, header: str) -> None:
    r = api.get(path, token=None, Authorization=header)
    assert r.status_code == 401
    assert "alerts" not in r.text and "segments" not in r.text


def test_token_opens_everything_read_only(api: Api) -> None:
    for path in ("/alerts", "/segments", "/metrics", "/openapi.json",
                 f"/alerts/{api.alerts[0].fingerprint}"):
        assert api.get(path).status_code == 200, path
    r = httpx.post(api.url + "/alerts", headers=AUTH, json={})
    assert r.status_code == 405
    assert api.get("/nope").status_code == 404


def test_sql_endpoint_reads_and_never_writes(api: Api) -> None:
    db = api.store.database
    url = api.url + "/sql"
    assert httpx.post(url, json={"sql": "SELECT 1"}).status_code == 401
    r = httpx.post(url, headers=AUTH, json={
        "sql": f"SELECT mcc, count() AS n FROM {db}.scored_transactions GROUP BY mcc"
               " ORDER BY n DESC, mcc", "max_rows": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"] == ["mcc", "n"] and len(body["rows"]) == 2 and body["truncated"]
    total = api.store.count("scored_transactions")
    top = api.store.query(f"SELECT mcc, count() AS n FROM {db}.scored_transactions "
                          "GROUP BY mcc ORDER BY n DESC, mcc LIMIT 2")
    assert [tuple(row) for row in body["rows"]] == [tuple(t) for t in top]
    for bad in (f"DROP TABLE {db}.labels", f"INSERT INTO {db}.labels (txn_id) VALUES ('x')",
                "SELECT 1; SELECT 2", "SELECT 1 SETTINGS readonly=0"):
        r = httpx.post(url, headers=AUTH, json={"sql": bad})
        assert r.status_code == 422 and r.json()["parameter"] == "sql", bad
    r = httpx.post(url, headers=AUTH, json={"sql": "SELECT * FROM file('/etc/passwd')"})
    assert r.status_code == 400 and "readonly" in r.json()["error"]
    assert httpx.post(url, headers=AUTH, content=b"{").status_code == 422
    assert httpx.post(url, headers=AUTH, json={"sql": "SELECT 1", "max_rows": 0}
                      ).status_code == 422
    assert api.store.count("scored_transactions") == total
    assert api.store.query(f"EXISTS TABLE {db}.labels") == [(1,)]


def test_refuses_to_start_without_a_token(api: Api) -> None:
    settings = Settings.load(env={}, config_file=None)
    with pytest.raises(ConfigError, match="DRIFTWATCH_API_TOKEN"):
        create_app(api.store, settings)
    create_app(api.store, settings, insecure_no_auth=True)  # only when asked explicitly


# --- validation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "params", "name", "text"),
    [
        ("/alerts", {"limit": "0"}, "limit", "must be >= 1"),
        ("/alerts", {"limit": "many"}, "limit", "not an integer"),
        ("/alerts", {"limit": "5000"}, "limit", "must be <= 1000"),
        ("/alerts", {"status": "open"}, "status", "valid: firing, resolved, all"),
        ("/alerts", {"severity": "high"}, "severity", "valid: info, warning, critical"),
        ("/alerts", {"since": "yesterday"}, "since", "not an RFC 3339 time"),
        ("/alerts", {"segment": "5967"}, "segment", "does not match"),
        ("/alerts", {"colour": "red"}, "colour", "unknown parameter; valid: status"),
        ("/alerts", [("limit", "1"), ("limit", "2")], "limit", "given more than once"),
        ("/segments", {"mcc": "59"}, "mcc", "does not match ^[0-9]{4}$"),
        ("/segments", {"by": "merchant_id"}, "by", "valid: mcc, merchant_country"),
        ("/segments", {"bucket": "week"}, "bucket", "valid: none, hour, day"),
        ("/segments", {"since": "2026-03-19", "until": "2026-03-18"}, "until",
         "must be after since"),
        ("/segments", {"since": "1999-01-01"}, "since", "outside 2000-01-01"),
        ("/segments", {"mcc": ",".join(["5967"] * 51)}, "mcc", "at most 50 values"),
        ("/segments", {"channel": "pos"}, "channel", "valid: card_present"),
        ("/alerts/XYZ", None, "fingerprint", "16 lowercase hex digits"),
        (f"/alerts/{'a' * 16}", {"evidence_limit": "-1"}, "evidence_limit", "must be >= 0"),
    ],
)
def test_bad_parameters_are_422_with_a_message(
    api: Api, path: str, params: object, name: str, text: str
) -> None:
    r = api.get(path, params)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["parameter"] == name
    assert text in body["error"] and body["error"].startswith(f"{name}: ")


INJECTIONS = [
    "' OR 1=1 --",
    "5967' OR '1'='1",
    "5967); DROP TABLE scored_transactions; --",
    "x\\' UNION SELECT * FROM system.users --",
    "{db}.alerts",
    "1; SELECT sleep(3)",
    "mcc=5967' OR 1=1 --",
    "\u0000",
    "%' AND 1=0 UNION ALL SELECT name FROM system.tables --",
]


def _counts(store: Store) -> dict[str, int]:
    return {t: store.count(t, final=False) for t in ("scored_transactions", "labels", "alerts",
                                                      "alert_log", "alert_deliveries")}


@pytest.mark.parametrize(
    ("path", "names"),
    [("/alerts", [p.name for p in ALERT_PARAMS]),
     ("/segments", [p.name for p in SEGMENT_PARAMS]),
     ("/alerts/{fp}", [p.name for p in SHOW_PARAMS] + ["<path>"])],
)
def test_sql_injection_in_every_parameter_changes_nothing(
    api: Api, path: str, names: list[str]
) -> None:
    before = _counts(api.store)
    for name in names:
        for attack in INJECTIONS:
            if name == "<path>":
                r = api.get("/alerts/" + quote(attack, safe=""))
            else:
                r = api.get(path.replace("{fp}", api.alerts[0].fingerprint), {name: attack})
            assert r.status_code in (400, 404, 422) or (
                r.status_code == 200 and _empty(r.json())
            ), (name, attack, r.status_code, r.text[:200])
    assert _counts(api.store) == before
    assert api.get("/alerts").json()["count"] == 3


def _empty(body: dict[str, object]) -> bool:
    return body.get("count") == 0


def test_injection_in_segment_value_is_a_plain_empty_match(api: Api) -> None:
    r = api.get("/alerts", {"segment": "mcc=5967' OR 1"})
    assert r.status_code == 200 and r.json() == {"count": 0, "alerts": []}


def test_logs_carry_no_token(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="driftwatch.api"):
        api.get("/alerts", {"status": "firing"})
        api.get("/alerts", token="wrong-" + TOKEN)
        api.get("/segments", {"mcc": "59"})
    records = [r for r in caplog.records if r.name == "driftwatch.api"]
    assert len(records) == 3
    assert [getattr(r, "status", None) for r in records] == [200, 401, 422]
    text = " ".join(json.dumps(r.__dict__, default=str) for r in records)
    assert TOKEN not in text and "Authorization" not in text
    assert getattr(records[0], "params", None) == ["status"]


# --- content ------------------------------------------------------------------------------
def test_alerts_lists_current_states_with_filters(api: Api) -> None:
    body = api.get("/alerts").json()
    assert body["count"] == 3
    by_name = {a["labels"]["alertname"]: a for a in body["alerts"]}
    assert by_name["RecallDrop"]["status"] == "resolved"
    assert by_name["RecallDrop"]["ends_at"] == "2026-03-18T18:00:00Z"
    firing = api.get("/alerts", {"status": "firing"}).json()
    assert {a["labels"]["alertname"] for a in firing["alerts"]} == {"CentsDigitAnomaly",
                                                                    "RuleHit"}
    assert api.get("/alerts", {"source": "rule"}).json()["count"] == 1
    assert api.get("/alerts", {"segment": "mcc=5411"}).json()["count"] == 1
    assert api.get("/alerts", {"severity": "critical,warning", "limit": "2"}).json()["count"] == 2
    assert api.get("/alerts", {"since": "2026-03-19"}).json()["count"] == 0


def test_alert_detail_has_history_and_evidence_rows(api: Api) -> None:
    fp = api.alerts[0].fingerprint
    body = api.get(f"/alerts/{fp}", {"evidence_limit": "50"}).json()
    assert body["alert"]["fingerprint"] == fp
    assert [h["status"] for h in body["history"]] == ["firing"]
    ev = body["evidence"]
    assert ev["filters"] == {"mcc": "5967", "model_version": "v47"}
    rows = ev["rows"]
    assert rows and all(r["mcc"] == "5967" and r["model_version"] == "v47" for r in rows)
    assert all("2026-03-18T15:00:00Z" <= r["event_time"] <= "2026-03-18T16:00:00Z" for r in rows)
    assert any(r["amount_minor"] % 100 == 37 and r["label"] == 1 for r in rows)
    resolved = api.get(f"/alerts/{api.alerts[2].fingerprint}").json()
    assert [h["status"] for h in resolved["history"]] == ["firing", "resolved"]
    assert api.get(f"/alerts/{'0' * 16}").status_code == 404


def test_segment_figures_match_an_independent_computation(api: Api) -> None:
    r = api.get("/segments", {"by": "mcc,model_version", "since": "2026-03-17",
                              "until": "2026-03-19", "sort": "n", "limit": "50"})
    assert r.status_code == 200
    rows = {(s["mcc"], s["model_version"]): s for s in r.json()["segments"]}
    df = api.store.query_df(
        "SELECT s.mcc AS mcc, s.model_version AS mv, s.score AS score,"
        " s.threshold AS thr, s.decision AS decision, s.amount_minor AS amount,"
        " l.label AS label, l.txn_id != '' AS has_label"
        " FROM {db}.scored_transactions AS s FINAL"
        " LEFT JOIN {db}.labels AS l FINAL ON l.txn_id = s.txn_id"
    )
    assert len(rows) == 6 and sum(s["n"] for s in rows.values()) == api.loaded.events
    for (mcc, mv), g in df.groupby(["mcc", "mv"]):
        got = rows[(mcc, mv)]
        lab = g[g.has_label.astype(bool)]
        fraud = lab[lab.label == 1]
        flagged = lab[lab.score >= lab.thr]
        assert got["n"] == len(g)
        assert got["amount_minor"] == int(g.amount.sum())
        assert got["labelled"] == len(lab) and got["fraud"] == len(fraud)
        assert got["score_mean"] == pytest.approx(g.score.mean())
        assert got["score_p50"] == pytest.approx(np.quantile(g.score, 0.5), abs=0.02)
        assert got["approve_rate"] == pytest.approx((g.decision == "approve").mean())
        assert got["recall"] == pytest.approx((fraud.score >= fraud.thr).mean())
        assert got["precision"] == pytest.approx((flagged.label == 1).mean())
    # the attack: v47 misses the .37 transactions in MCC 5967 (12 of 25 fraud missed)
    assert rows[("5967", "v47")]["recall"] == pytest.approx(13 / 25)
    assert rows[("5967", "v46")]["recall"] == 1.0


def test_segment_buckets_filters_and_relative_times(api: Api) -> None:
    body = api.get("/segments", {"by": "mcc", "mcc": "5967", "bucket": "day",
                                 "since": "3d"}).json()
    assert [(s["bucket"], s["n"]) for s in sorted(body["segments"], key=lambda s: s["bucket"])] \
        == [("2026-03-17T00:00:00Z", 72), ("2026-03-18T00:00:00Z",
                                            api.loaded.per_mcc_day2["5967"])]
    hourly = api.get("/segments", {"by": "channel", "bucket": "hour", "channel": "transfer",
                                   "since": "2026-03-18", "limit": "100"}).json()
    assert sum(s["n"] for s in hourly["segments"]) == api.loaded.attack
    assert {s["bucket"][11:13] for s in hourly["segments"]} == {f"{h}" for h in range(12, 18)}
    default = api.get("/segments").json()  # default: last 24h of event time, by mcc
    assert default["since"] == "2026-03-18T00:00:00Z" or default["since"] > "2026-03-17"


def test_metrics_and_openapi(api: Api) -> None:
    text = api.get("/metrics").text
    assert "driftwatch_api_requests_total" in text
    doc = api.get("/openapi.json").json()
    assert doc == json.loads(json.dumps(spec()))
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    seg = {p["name"] for p in doc["paths"]["/segments"]["get"]["parameters"]}
    assert seg == {p.name for p in SEGMENT_PARAMS}


def test_deploy_openapi_copy_is_current() -> None:
    copy = json.loads((ROOT / "deploy" / "openapi.json").read_text())
    assert copy == json.loads(json.dumps(spec())), (
        "regenerate: python -m driftwatch.api.openapi > deploy/openapi.json"
    )
