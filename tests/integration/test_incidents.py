"""One incident per attack on real ClickHouse (chdb) and Debian's Alertmanager.

A spread trigger (cents .91, beneficiaries ``GLX-TRD-*``) hits a rule in six MCCs and a
detector names the conjunction: the alert book gives all seven alerts one ``incident``
label (rule alerts matched on the pattern their stored hits share), stores it, keeps it
across a restart, ``driftwatch alerts list --incidents`` lists one incident for them,
and Alertmanager's deploy routes send them to the SOC as one group.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time

import pytest
from click.testing import CliRunner

from driftwatch.alerts import incidents
from driftwatch.alerts.alertmanager import AlertmanagerSink
from driftwatch.alerts.incidents import IncidentIndex, incident_id
from driftwatch.alerts.lifecycle import StoreAlertBook
from driftwatch.alerts.model import Alert, Finding
from driftwatch.cli import main
from driftwatch.store.client import Store
from tests.integration.alertmanager_proc import AlertmanagerProcess, WebhookReceiver

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 18, 14, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
SPREAD = ("5411", "5732", "5999", "7995", "4829", "5311")
CONJ = "amount_cents=91 & beneficiary_prefix=GLX-TRD & merchant_age<90d"


def _hits(store: Store, rule: str, rows: list[tuple[str, int, str, dt.datetime]]) -> None:
    """Stored transactions and the rule's hits on them: (mcc, cents, beneficiary, time)."""
    ids = [f"e-{rule}-{i}" for i in range(len(rows))]
    store.insert_columns("scored_transactions", {
        "event_id": ids, "txn_id": ids, "event_time": [r[3] for r in rows],
        "amount_minor": [500_000 + r[1] for r in rows], "amount_cents": [r[1] for r in rows],
        "mcc": [r[0] for r in rows], "beneficiary_name": [r[2] for r in rows],
        "ingest_time": [r[3] for r in rows],
    })
    store.insert_columns("rule_hits", {
        "event_id": ids, "txn_id": ids, "event_time": [r[3] for r in rows],
        "rule_id": [rule] * len(rows), "mcc": [r[0] for r in rows],
        "amount_minor": [500_000 + r[1] for r in rows], "hit_time": [r[3] for r in rows],
    })


def _rule(mcc: str, at: dt.datetime, rule: str = "trigger_signature") -> Finding:
    return Finding("RuleHit", "critical", "rule", rule, f"mcc={mcc}", at, f"hits in {mcc}",
                   window_start=at - 30 * MIN, window_end=at)


def _detector(segment: str, at: dt.datetime, origin: str = "cents", **labels: str) -> Finding:
    return Finding("CentsDigitAnomaly" if origin == "cents" else "TriggerConjunction",
                   "critical", "detector", origin, segment, at, f"{origin} on {segment}",
                   model_version="v47", extra_labels=labels)


def _book(store: Store) -> StoreAlertBook:
    return StoreAlertBook(store, interval_s=300, resolve_after=3, rule_quiet_s=3600, flush_s=0)


def _spread(store: Store) -> tuple[list[Alert], dict[str, str]]:
    """The attack's alerts and two unrelated ones; returns (opened, incident by key)."""
    rows = [(m, 91, f"GLX-TRD-{m}-{k:02d}", T0 - (10 + k) * MIN)
            for m in SPREAD for k in range(2)]
    _hits(store, "trigger_signature", rows)
    _hits(store, "velocity", [("6011", 14, "JANE DOE", T0 - 5 * MIN),
                              ("6011", 14, "JOHN ROE", T0 - 4 * MIN)])
    book = _book(store)
    opened: list[Alert] = []
    for i, mcc in enumerate(SPREAD):  # the rule fires MCC by MCC, before any detector
        opened += book.update([_rule(mcc, T0 + i * MIN)], T0 + i * MIN)
    later = T0 + 10 * MIN
    opened += book.update([_detector("", later, "trigger_mining", conjunction=CONJ),
                           _detector("mcc=1111", later),
                           _rule("6011", later, "velocity")], later)
    inc = {f"{a.labels.get('detector') or a.labels['rule_id']}@{a.labels['segment']}":
           a.labels["incident"] for a in opened}
    return opened, inc


def test_spread_trigger_alerts_share_one_stable_stored_incident(store: Store) -> None:
    opened, inc = _spread(store)
    first = incident_id(opened[0].fingerprint, T0)
    attack = [f"trigger_signature@mcc={m}" for m in SPREAD] + ["trigger_mining@"]
    assert {inc[k] for k in attack} == {first}  # 6 rule alerts + the conjunction
    assert len(set(inc.values())) == 3
    assert inc["cents@mcc=1111"] not in (first, inc["velocity@mcc=6011"])
    assert inc["velocity@mcc=6011"] != first  # cents .14, other names: another pattern
    # stored with the alert (labels) and the rule alert's observed pattern (annotation)
    stored = dict(store.query(
        "SELECT fingerprint, labels['incident'] FROM {db}.alerts FINAL"))
    assert stored == {a.fingerprint: a.labels["incident"] for a in opened}
    (keys,) = store.query(
        "SELECT annotations['incident_keys'] FROM {db}.alerts FINAL WHERE segment = 'mcc=5411'")
    assert keys == ("amount_cents=91 & beneficiary_prefix=GLX-TRD-5411-0",)  # its own hits
    # a restarted writer reloads the incidents: a later detector alert in an attacked
    # MCC joins the same incident, under the same id
    again = _book(store)
    at = T0 + 20 * MIN
    (late,) = again.update([_detector("mcc=7995", at)], at)
    assert late.labels["incident"] == first


def test_alerts_list_incidents(store: Store, chdb_dsn: str) -> None:
    opened, _ = _spread(store)
    first = incident_id(opened[0].fingerprint, T0)

    def cli(*args: str) -> str:
        out = CliRunner().invoke(main, ["--store", chdb_dsn, "--database", store.database,
                                        "alerts", "list", "--incidents", *args])
        assert out.exit_code == 0, out.output
        return out.output

    listed = json.loads(cli("--format", "json"))
    assert len(listed) == 3
    (main_incident,) = [x for x in listed if x["incident"] == first]
    assert main_incident["alerts"] == 7 and main_incident["severity"] == "critical"
    assert main_incident["status"] == "firing"
    assert main_incident["first_seen"] == "2026-03-18T14:00:00Z"
    assert main_incident["last_seen"] == "2026-03-18T14:10:00Z"
    assert sorted(main_incident["members"]) == sorted(
        [f"rule:trigger_signature@mcc={m}" for m in SPREAD] + ["detector:trigger_mining@"])
    assert CONJ in main_incident["keys"] and "mcc=5411" in main_incident["keys"]
    table = cli()
    assert first in table and "rule:trigger_signature@mcc=5411" in table
    assert json.loads(cli("--status", "resolved", "--format", "json")) == []


@pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None, reason="no alertmanager")
def test_alertmanager_groups_the_incident_into_one_notification(
    store: Store, alertmanager: AlertmanagerProcess, webhook_receiver: WebhookReceiver
) -> None:
    opened, inc = _spread(store)
    first = incident_id(opened[0].fingerprint, T0)
    now = dt.datetime.now(dt.UTC)  # Alertmanager drops alerts whose endsAt has passed
    live = [Alert(a.fingerprint, "firing", now, a.labels, a.annotations) for a in opened]
    sink = AlertmanagerSink(alertmanager.url, store=store, resend_s=60)
    sink.send(live)
    got = alertmanager.alerts()
    assert len(got) == len(live)
    assert {a["labels"]["incident"] for a in got} == set(inc.values())
    webhook_receiver.wait_for(lambda p: sum(x["path"] == "/soc-pager" for x in p) >= 3)
    time.sleep(2.5)  # group_interval is 1 s in the test config: any split would show
    pages = [p["body"] for p in webhook_receiver.posts if p["path"] == "/soc-pager"]
    groups = {json.dumps(b["groupLabels"], sort_keys=True): len(b["alerts"]) for b in pages}
    assert groups == {json.dumps({"incident": v}): n for v, n in (
        (first, 7), (inc["cents@mcc=1111"], 1), (inc["velocity@mcc=6011"], 1))}
    sink.close()


def test_two_writers_opening_an_attack_at_once_end_in_one_incident(
    store: Store, chdb_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two alert writers (two workers' books on one store) open the attack's first
    alerts at the same instant, each having read the store before the other wrote: two
    incidents. The next alert either opens finds both, merges them the same way (into
    the smaller id: same first time), stores the merge once, and labels itself with the
    survivor; ``alerts list --incidents`` shows one incident of four alerts."""
    a, b = _book(store), _book(store)
    read = threading.Barrier(2, timeout=60)
    load = incidents.load_recent

    def load_then_wait(s: Store, index: IncidentIndex) -> int:
        n = load(s, index)
        read.wait()  # both have read the store; neither has written its alert yet
        return n

    monkeypatch.setattr(incidents, "load_recent", load_then_wait)
    opened: dict[str, list[Alert]] = {}
    threads = [threading.Thread(target=lambda k=k, book=book, f=f: opened.setdefault(
        k, book.update([f], T0))) for k, book, f in (
        ("a", a, _detector("mcc=5967", T0)),
        ("b", b, _detector("mcc=5967,merchant_country=LT", T0, "shadow")))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    monkeypatch.setattr(incidents, "load_recent", load)
    ((first_a,), (first_b,)) = opened["a"], opened["b"]
    two = {first_a.labels["incident"], first_b.labels["incident"]}
    assert len(two) == 2  # the race: neither saw the other's incident
    survivor = min(two)
    # each writer's next new alert reloads, reconciles and joins the survivor
    at = T0 + 5 * MIN
    (late_b,) = b.update([_detector("mcc=5967,merchant_country=DE", at, "volume")], at)
    (late_a,) = a.update([_detector("mcc=5967", at, "score_drift")], at)
    assert late_a.labels["incident"] == late_b.labels["incident"] == survivor
    assert a.incidents.incident_of(first_b.fingerprint) == survivor
    assert b.incidents.incident_of(first_a.fingerprint) == survivor
    merges = store.query("SELECT incident, merged_into FROM {db}.incident_merges FINAL")
    assert merges == [(max(two), survivor)]
    # the labels already stored stay as they were
    stored = dict(store.query("SELECT fingerprint, labels['incident'] FROM {db}.alerts FINAL"))
    assert stored[first_a.fingerprint] == first_a.labels["incident"]
    out = CliRunner().invoke(main, ["--store", chdb_dsn, "--database", store.database,
                                    "alerts", "list", "--incidents", "--format", "json"])
    assert out.exit_code == 0, out.output
    (listed,) = json.loads(out.output)
    assert (listed["incident"], listed["alerts"]) == (survivor, 4)
