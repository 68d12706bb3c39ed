"""The analyst queries behind ``driftwatch segments``/``alerts`` and the HTTP API.

Every statement is fixed text plus fragments chosen from closed lists (dimension
columns, sort keys, bucket functions); every value is a server-side parameter
``{name:Type}``. Input has been validated by :mod:`driftwatch.api.params` before it
gets here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from driftwatch.alerts.deliveries import alert_from_row
from driftwatch.alerts.model import iso
from driftwatch.api.params import DIMENSIONS, SEGMENT_SORTS, RelativeTime
from driftwatch.errors import StoreError
from driftwatch.monitors.segments import parse_segment
from driftwatch.store.client import Store

_BUCKETS = {"hour": "toStartOfHour(s.event_time)", "day": "toStartOfDay(s.event_time)"}

# Per-segment figures. `flagged` is the model's positive call (score >= threshold);
# recall and precision only count labelled transactions (labels FINAL: latest wins).
SEGMENT_METRICS = """
    count() AS n,
    sum(s.amount_minor) AS amount_minor,
    avg(s.score) AS score_mean,
    quantile(0.5)(s.score) AS score_p50,
    quantile(0.9)(s.score) AS score_p90,
    quantile(0.99)(s.score) AS score_p99,
    countIf(s.decision = 'approve') / n AS approve_rate,
    countIf(s.decision = 'review') / n AS review_rate,
    countIf(s.decision = 'decline') / n AS decline_rate,
    countIf(l.txn_id != '') AS labelled,
    countIf(l.txn_id != '' AND l.label = 1) AS fraud,
    fraud / nullIf(labelled, 0) AS fraud_rate,
    countIf(l.label = 1 AND s.score >= s.threshold) AS tp,
    countIf(l.txn_id != '' AND l.label = 0 AND s.score >= s.threshold) AS fp,
    tp / nullIf(fraud, 0) AS recall,
    tp / nullIf(tp + fp, 0) AS precision"""

SEGMENT_FROM = """
FROM {db}.scored_transactions AS s FINAL
LEFT JOIN (SELECT txn_id, label FROM {db}.labels FINAL) AS l ON l.txn_id = s.txn_id"""


def clean(value: Any) -> Any:
    """JSON-ready scalars: datetimes to RFC 3339, NaN/inf to None, maps to dicts."""
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def records(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Column lists to a list of JSON-ready row dicts."""
    names = list(columns)
    n = len(columns[names[0]]) if names else 0
    return [{c: clean(columns[c][i]) for c in names} for i in range(n)]


def resolve_time(store: Store, value: dt.datetime | RelativeTime | None) -> dt.datetime | None:
    """A relative duration counted back from the newest stored event time."""
    if not isinstance(value, RelativeTime):
        return value
    newest = store.max_event_time() or dt.datetime.now(dt.UTC)
    return newest - dt.timedelta(seconds=value.seconds)


@dataclass(frozen=True)
class Built:
    """A statement and its parameters."""

    sql: str
    parameters: dict[str, Any]


def segment_sql(p: Mapping[str, Any], since: dt.datetime | None,
                until: dt.datetime | None) -> Built:
    """The segment breakdown for validated parameters ``p`` (see SEGMENT_PARAMS)."""
    by = [d for d in DIMENSIONS if d in p["by"]]  # closed list, fixed order
    keys = [f"s.{d} AS {d}" for d in by]
    group = list(by)
    if p["bucket"] in _BUCKETS:
        keys.insert(0, f"{_BUCKETS[p['bucket']]} AS bucket")
        group.insert(0, "bucket")
    where = ["1"]
    params: dict[str, Any] = {"min_count": p["min_count"], "limit": p["limit"]}
    for dim in DIMENSIONS:
        if p.get(dim):
            where.append(f"s.{dim} IN {{{dim}:Array(String)}}")
            params[dim] = list(p[dim])
    if since is not None:
        where.append("s.event_time >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since
    if until is not None:
        where.append("s.event_time < {until:DateTime64(3, 'UTC')}")
        params["until"] = until
    sort = p["sort"] if p["sort"] in SEGMENT_SORTS else "n"
    sort = "amount_minor" if sort == "amount" else sort
    direction = "ASC" if p.get("order") == "asc" else "DESC"
    # time buckets come out in time order; the sort key orders rows within a bucket
    order = (["bucket"] if "bucket" in group else []) + [f"{sort} {direction}"] + by
    sql = (
        "SELECT " + ", ".join([*keys, SEGMENT_METRICS.strip()]) + SEGMENT_FROM
        + "\nWHERE " + " AND ".join(where)
        + ("\nGROUP BY " + ", ".join(group) if group else "")
        + "\nHAVING n >= {min_count:UInt64}"
        + "\nORDER BY " + ", ".join(order)
        + "\nLIMIT {limit:UInt32}"
    )
    return Built(sql, params)


def segments(store: Store, p: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Run the segment breakdown; rows as JSON-ready dicts."""
    built = segment_sql(p, resolve_time(store, p["since"]), resolve_time(store, p["until"]))
    return records(store.query_columns(built.sql, built.parameters))


ALERT_COLUMNS = (
    "fingerprint, version, status, starts_at, ends_at, updated_at, labels, annotations"
)


def alert_list_sql(p: Mapping[str, Any], since: dt.datetime | None,
                   until: dt.datetime | None) -> Built:
    """Current alert states matching validated parameters ``p`` (see ALERT_PARAMS)."""
    where = ["1"]
    params: dict[str, Any] = {"limit": p["limit"], "offset": p["offset"]}
    if p["status"] in ("firing", "resolved"):
        where.append("status = {status:String}")
        params["status"] = p["status"]
    for name in ("severity", "source", "alertname", "model_version"):
        if p.get(name):
            where.append(f"{name} IN {{{name}:Array(String)}}")
            params[name] = list(p[name])
    if p.get("segment"):
        where.append("segment = {segment:String}")
        params["segment"] = p["segment"]
    if since is not None:
        where.append("updated_at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since
    if until is not None:
        where.append("updated_at < {until:DateTime64(3, 'UTC')}")
        params["until"] = until
    sql = (
        f"SELECT {ALERT_COLUMNS}, findings, written_at FROM {{db}}.alerts FINAL\n"
        "WHERE " + " AND ".join(where)
        + "\nORDER BY updated_at DESC, fingerprint LIMIT {limit:UInt32} OFFSET {offset:UInt32}"
    )
    return Built(sql, params)


def _alert_record(row: tuple[Any, ...]) -> dict[str, Any]:
    stored = alert_from_row(row[:8])
    out = stored.alert.to_dict()
    out["version"] = stored.version
    out["updated_at"] = iso(stored.alert.updated_at) if stored.alert.updated_at else None
    if len(row) > 8:
        out["findings"] = int(row[8])
        out["written_at"] = clean(row[9])
    return out


def alerts(store: Store, p: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Current alert states (contract records plus version and times)."""
    built = alert_list_sql(p, resolve_time(store, p["since"]), resolve_time(store, p["until"]))
    return [_alert_record(r) for r in store.query(built.sql, built.parameters)]


# -- one alert with its history, deliveries and evidence ------------------------------------
EVIDENCE_DIMENSIONS = ("mcc", "merchant_country", "channel", "model_version", "currency",
                       "merchant_id", "card_id", "ip", "device_id", "beneficiary_name")
RULE_HIT_DIMENSIONS = ("mcc", "merchant_country", "channel", "model_version", "merchant_id",
                       "card_id")


def _window(alert: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    def at(text: str | None) -> dt.datetime | None:
        if not text:
            return None
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    ann = alert["annotations"]
    starts = at(alert["starts_at"]) or dt.datetime.now(dt.UTC)
    lo = at(ann.get("window_start")) or starts - dt.timedelta(hours=1)
    hi = at(ann.get("window_end")) or at(alert.get("ends_at")) or at(alert.get("updated_at"))
    hi = max(hi or starts, starts) + dt.timedelta(milliseconds=1)
    return lo, hi


def evidence(store: Store, alert: dict[str, Any], limit: int) -> dict[str, Any]:
    """The transactions behind an alert: the first ``limit`` rows of its own
    ``evidence_sql`` annotation, so what is shown is exactly what the query an analyst
    copies returns (``source`` is ``evidence_sql``).

    The stored query runs read-only (:func:`driftwatch.store.readsql.run_read_only`:
    one statement, ClickHouse ``readonly`` mode, a time limit). An alert without one, or
    whose query no longer runs (a table dropped since), falls back to its labels: rule
    alerts read ``rule_hits`` for the rule in the alert's window and segment, detector
    alerts ``scored_transactions`` (with labels) in the window and segment; segment
    dimensions that are not columns are reported, not queried.
    """
    stored = alert["annotations"].get("evidence_sql", "")
    if stored and limit > 0:
        from driftwatch.store.readsql import run_read_only

        lo, hi = _window(alert)
        try:
            result = run_read_only(store, stored, max_rows=limit, max_seconds=10.0)
        except StoreError as exc:
            fallback = _evidence_from_labels(store, alert, limit)
            fallback["evidence_sql_error"] = str(exc)
            return fallback
        else:
            rows = [{c: clean(v) for c, v in zip(result.columns, row, strict=True)}
                    for row in result.rows]
            return {
                "source": "evidence_sql", "window_start": iso(lo), "window_end": iso(hi),
                "filters": parse_segment(alert["labels"].get("segment", ""), strict=False),
                "ignored_dimensions": [], "rows": rows, "truncated": result.truncated,
            }
    return _evidence_from_labels(store, alert, limit)


def _evidence_from_labels(store: Store, alert: dict[str, Any], limit: int) -> dict[str, Any]:
    """The fallback of :func:`evidence`: the alert's window and segment."""
    labels = alert["labels"]
    seg = parse_segment(labels.get("segment", ""), strict=False)
    if labels.get("model_version"):
        seg.setdefault("model_version", labels["model_version"])
    lo, hi = _window(alert)
    params: dict[str, Any] = {"lo": lo, "hi": hi, "limit": limit}
    rule_id = labels.get("rule_id", "")
    allowed = RULE_HIT_DIMENSIONS if rule_id else EVIDENCE_DIMENSIONS
    where = ["event_time >= {lo:DateTime64(3, 'UTC')}", "event_time < {hi:DateTime64(3, 'UTC')}"]
    ignored = []
    for i, (name, value) in enumerate(sorted(seg.items())):
        if name in allowed:
            where.append(f"{name} = {{v{i}:String}}")
            params[f"v{i}"] = value
        else:
            ignored.append(name)
    out: dict[str, Any] = {
        "window_start": iso(lo), "window_end": iso(hi), "filters": seg,
        "ignored_dimensions": ignored, "rows": [],
    }
    if limit == 0:
        out["source"] = "none"
        return out
    if rule_id:
        params["rule_id"] = rule_id
        sql = (
            "SELECT event_id, txn_id, event_time, rule_id, rule_version, severity AS rule_severity,"
            " mode, reason_code, mcc, merchant_country, channel, merchant_id, card_id,"
            " model_version, score, decision, amount_minor, evidence\n"
            "FROM {db}.rule_hits FINAL\nWHERE rule_id = {rule_id:String} AND "
            + " AND ".join(where) + "\nORDER BY event_time DESC LIMIT {limit:UInt32}"
        )
        try:
            out["rows"] = records(store.query_columns(sql, params))
        except StoreError:
            out["rows"] = []  # no rule_hits table (schema older than 0003)
        params.pop("rule_id")
        if out["rows"]:
            out["source"] = "rule_hits"
            return out
        # no hits recorded in the window: show the segment's transactions instead
    sql = (
        "SELECT s.event_id AS event_id, s.txn_id AS txn_id, s.event_time AS event_time,"
        " s.amount_minor AS amount_minor, s.currency AS currency, s.mcc AS mcc,"
        " s.merchant_id AS merchant_id, s.merchant_country AS merchant_country,"
        " s.channel AS channel, s.beneficiary_name AS beneficiary_name,"
        " s.model_version AS model_version, s.score AS score, s.decision AS decision,"
        " if(l.txn_id = '', NULL, l.label) AS label\n"
        "FROM (SELECT * FROM {db}.scored_transactions FINAL WHERE "
        + " AND ".join(where)
        + ") AS s\nLEFT JOIN (SELECT txn_id, label FROM {db}.labels FINAL) AS l"
        " ON l.txn_id = s.txn_id\nORDER BY s.event_time DESC LIMIT {limit:UInt32}"
    )
    out["rows"] = records(store.query_columns(sql, params))
    out["source"] = "scored_transactions"
    return out


def alert_detail(store: Store, fingerprint: str, evidence_limit: int = 20) -> dict[str, Any] | None:
    """One alert: its current state, history, deliveries and evidence rows."""
    rows = store.query(
        f"SELECT {ALERT_COLUMNS}, findings, written_at FROM {{db}}.alerts FINAL"
        " WHERE fingerprint = {fp:String}",
        {"fp": fingerprint},
    )
    if not rows:
        return None
    alert = _alert_record(rows[0])
    history = store.query(
        f"SELECT {ALERT_COLUMNS}, findings, written_at FROM {{db}}.alert_log"
        " WHERE fingerprint = {fp:String} ORDER BY version",
        {"fp": fingerprint},
    )
    deliveries = store.query_columns(
        "SELECT sink, version, status, delivered_at, attempts, last_error"
        " FROM {db}.alert_deliveries FINAL WHERE fingerprint = {fp:String}"
        " ORDER BY version, sink",
        {"fp": fingerprint},
    )
    return {
        "alert": alert,
        "history": [_alert_record(r) for r in history],
        "deliveries": records(deliveries),
        "evidence": evidence(store, alert, evidence_limit),
    }
