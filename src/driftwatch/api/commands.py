"""``driftwatch segments``, ``driftwatch alerts list|show`` and ``driftwatch api``.

The commands take the same parameters as the HTTP API and validate them with the same
declarations (:mod:`driftwatch.api.params`), so a value the API refuses with a 422 the
command refuses with the same message.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from driftwatch.api.params import (
    ALERT_PARAMS,
    DIMENSIONS,
    FINGERPRINT,
    SEGMENT_PARAMS,
    SEGMENT_SORTS,
    ParamError,
    parse,
)

if TYPE_CHECKING:
    from driftwatch.context import Ctx

FORMATS = click.Choice(["table", "csv", "json"])


def _raw(**options: Any) -> dict[str, list[str]]:
    """Click option values -> the raw parameter form the validator takes."""
    out: dict[str, list[str]] = {}
    for name, value in options.items():
        if value is None or value == ():
            continue
        out[name] = [str(v) for v in value] if isinstance(value, tuple) else [str(value)]
    return out


def _money(minor: Any) -> str:
    if minor is None:
        return ""
    n = int(minor)
    return f"{n // 100:,}.{n % 100:02d}"


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * float(value):.1f}%"
    if kind == "money":
        return _money(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """Fixed-width text table; columns are (key, header, kind)."""
    cells = [[_fmt(r.get(k), kind) for k, _, kind in columns] for r in rows]
    heads = [h for _, h, _ in columns]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
    right = [kind in ("pct", "money", "num") for _, _, kind in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)
        ).rstrip()

    return "\n".join([line(heads), line(["-" * w for w in widths]), *map(line, cells)])


def emit(rows: list[dict[str, Any]], fmt: str, columns: Sequence[tuple[str, str, str]]) -> None:
    """Print rows as a table, CSV (every field) or JSON."""
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        buf = io.StringIO()
        fields = list(rows[0]) if rows else [k for k, _, _ in columns]
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, dict | list) else v
                             for k, v in r.items()})
        click.echo(buf.getvalue(), nl=False)
    elif rows:
        click.echo(table(rows, columns))
    else:
        click.echo("no rows")


def _store(c: Ctx) -> Any:
    """The store, for reading: never created or migrated here (a typo in ``--store`` or
    ``--database`` is an error naming what exists). Against a ClickHouse server these
    read-only faces may run as the read-only user (``driftwatch secure reader``); the
    schema is ``driftwatch db init``'s."""
    from driftwatch.assemble import read_store_from

    return read_store_from(c.settings)


def _store_or_worker(c: Ctx) -> Any:
    """The store, or the URL of the worker that holds it (a ``str``): read commands then
    ask the worker's web port, which serves the same API (token: ``api_token``)."""
    from driftwatch.api.sql_command import worker_url
    from driftwatch.errors import StoreBusyError

    try:
        return _store(c)
    except StoreBusyError:
        return worker_url(c.settings)


SEGMENT_COLUMNS = [
    ("n", "n", "num"), ("amount_minor", "amount", "money"), ("score_mean", "score", "num"),
    ("score_p90", "p90", "num"), ("approve_rate", "approve", "pct"),
    ("review_rate", "review", "pct"), ("decline_rate", "decline", "pct"),
    ("labelled", "labelled", "num"), ("fraud", "fraud", "num"),
    ("fraud_rate", "fraud%", "pct"), ("recall", "recall", "pct"),
    ("precision", "precision", "pct"),
]


@click.command()
@click.option("--by", multiple=True, help=f"Break down by ({', '.join(DIMENSIONS)}); "
              "repeat or comma-separate. Default: mcc.")
@click.option("--mcc", multiple=True, help="Only these MCCs (repeatable).")
@click.option("--country", "merchant_country", multiple=True,
              help="Only these merchant countries (repeatable).")
@click.option("--channel", multiple=True, help="Only these channels (repeatable).")
@click.option("--model-version", multiple=True, help="Only these model versions (repeatable).")
@click.option("--currency", multiple=True, help="Only these currencies (repeatable).")
@click.option("--since", help="Start (RFC 3339, date, or 6h/7d back from the newest event). "
              "Default 24h.")
@click.option("--until", help="End (exclusive), same forms as --since.")
@click.option("--bucket", type=click.Choice(["none", "hour", "day"]), default=None,
              help="Time buckets (default none: the whole range).")
@click.option("--min-count", type=int, default=None, help="Leave out smaller rows.")
@click.option("--sort", type=click.Choice(SEGMENT_SORTS), default=None,
              help="Sort key, descending unless --asc (default n); within each time "
                   "bucket when bucketed (buckets come in time order).")
@click.option("--asc", "ascending", is_flag=True, help="Sort ascending.")
@click.option("--limit", type=int, default=None, help="Most rows (default 100).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.pass_obj
def segments(c: Ctx, /, fmt: str, ascending: bool, **options: Any) -> None:
    """Per-segment breakdown: volume, amount, scores, decision rates, labels, fraud
    rate, recall and precision (flagged = score >= threshold), per model version."""
    from driftwatch.api import queries

    raw = _raw(**options, order="asc" if ascending else None)
    p = parse(SEGMENT_PARAMS, raw)
    keys = ([("bucket", "bucket", "")] if p["bucket"] != "none" else []) + [
        (d, d, "") for d in DIMENSIONS if d in p["by"]
    ]
    store = _store_or_worker(c)
    if isinstance(store, str):
        from driftwatch.api.sql_command import remote

        emit(remote(c.settings, store, "/segments", params=raw)["segments"], fmt,
             keys + SEGMENT_COLUMNS)
        return
    since = queries.resolve_time(store, p["since"])
    until = queries.resolve_time(store, p["until"])
    if since is not None and until is not None and since >= until:
        raise ParamError("until", "must be after since")
    built = queries.segment_sql(p, since, until)
    rows = queries.records(store.query_columns(built.sql, built.parameters))
    emit(rows, fmt, keys + SEGMENT_COLUMNS)


ALERT_COLUMNS = [
    ("fingerprint", "fingerprint", ""), ("status", "status", ""), ("severity", "severity", ""),
    ("alertname", "alertname", ""), ("segment", "segment", ""),
    ("model_version", "model", ""), ("starts_at", "starts_at", ""),
    ("ends_at", "ends_at", ""), ("summary", "summary", ""),
]


def _flat(alert: dict[str, Any]) -> dict[str, Any]:
    labels, ann = alert["labels"], alert["annotations"]
    return {
        **{k: v for k, v in alert.items() if k not in ("labels", "annotations")},
        "severity": labels.get("severity", ""), "alertname": labels.get("alertname", ""),
        "segment": labels.get("segment", ""), "model_version": labels.get("model_version", ""),
        "summary": ann.get("summary", ""),
    }


@click.group()
def alerts() -> None:
    """List alerts and show one with its evidence rows."""


INCIDENT_COLUMNS = [
    ("incident", "incident", ""), ("status", "status", ""), ("severity", "severity", ""),
    ("first_seen", "first_seen", ""), ("last_seen", "last_seen", ""),
    ("alerts", "alerts", ""), ("members", "members", ""), ("keys", "segments/conjunctions", ""),
]


@alerts.command("list")
@click.option("--status", type=click.Choice(["firing", "resolved", "all"]), default=None,
              help="Current status (default all).")
@click.option("--severity", multiple=True, help="info, warning or critical (repeatable).")
@click.option("--source", multiple=True, help="detector or rule (repeatable).")
@click.option("--alertname", multiple=True, help="Alert names (repeatable).")
@click.option("--segment", default=None, help="Exact segment, e.g. mcc=5967.")
@click.option("--model-version", multiple=True, help="Model versions (repeatable).")
@click.option("--since", help="Updated at or after (RFC 3339, date or 6h/7d).")
@click.option("--until", help="Updated before.")
@click.option("--limit", type=int, default=None, help="Most alerts (default 100).")
@click.option("--offset", type=int, default=None, help="Skip this many.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--incidents", is_flag=True,
              help="One row per incident (the alerts' `incident` label): first/last seen, "
                   "status, highest severity, member alerts by detector/rule, segments and "
                   "conjunctions. Filters select the alerts read (--limit: up to 1000).")
@click.pass_obj
def alerts_list(c: Ctx, /, fmt: str, incidents: bool, **options: Any) -> None:
    """Current alert states, newest first (or the incidents they form)."""
    from driftwatch.api import queries

    status = options.get("status")
    if incidents:  # read every status and the most alerts; filter incidents afterwards
        options = {**options, "status": None, "limit": options.get("limit") or 1000}
    raw = _raw(**options)
    p = parse(ALERT_PARAMS, raw)
    store = _store_or_worker(c)
    if isinstance(store, str):
        from driftwatch.api.sql_command import remote

        rows = remote(c.settings, store, "/alerts", params=raw)["alerts"]
    else:
        rows = queries.alerts(store, p)
    if incidents:
        from driftwatch.alerts.incident_list import summarise
        from driftwatch.alerts.incident_merges import load_merges

        # merged incidents as one (the merges are read from a store, not over HTTP)
        merges = {} if isinstance(store, str) else load_merges(store)
        found = [x.to_dict() for x in summarise(rows, merges)
                 if status in (None, "all") or x.status == status]
        if fmt != "json":
            found = [{**x, "members": "; ".join(x["members"]), "keys": "; ".join(x["keys"])}
                     for x in found]
        emit(found, fmt, INCIDENT_COLUMNS)
        return
    emit(rows if fmt == "json" else [_flat(r) for r in rows], fmt, ALERT_COLUMNS)



EVIDENCE_COLUMNS = [
    ("event_time", "event_time", ""), ("txn_id", "txn_id", ""),
    ("amount_minor", "amount", "money"), ("amount", "amount", ""), ("mcc", "mcc", ""),
    ("merchant_country", "country", ""), ("channel", "channel", ""),
    ("beneficiary_name", "beneficiary", ""), ("rule_id", "rule", ""),
    ("model_version", "model", ""), ("score", "score", "num"),
    ("decision", "decision", ""), ("label", "label", ""),
]


@alerts.command("show")
@click.argument("fingerprint")
@click.option("--evidence-limit", type=click.IntRange(0, 1000), default=20, show_default=True,
              help="Most evidence rows.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.pass_obj
def alerts_show(c: Ctx, fingerprint: str, evidence_limit: int, fmt: str) -> None:
    """One alert: labels, annotations, history, deliveries and the evidence rows."""
    from driftwatch.api import queries

    if not FINGERPRINT.fullmatch(fingerprint):
        raise ParamError("fingerprint", "must be 16 lowercase hex digits")
    store = _store_or_worker(c)
    if isinstance(store, str):
        from driftwatch.api.sql_command import remote
        from driftwatch.errors import StoreError

        try:
            detail = remote(c.settings, store, f"/alerts/{fingerprint}",
                            params={"evidence_limit": evidence_limit})
        except StoreError as exc:
            if "HTTP 404" not in str(exc):
                raise
            detail = None
    else:
        detail = queries.alert_detail(store, fingerprint, evidence_limit)
    if detail is None:
        raise click.ClickException(f"no alert with fingerprint {fingerprint}")
    if fmt == "json":
        click.echo(json.dumps({**detail, "evidence_rows": detail["evidence"]["rows"]}, indent=2))
        return
    a = detail["alert"]
    click.echo(f"{a['labels'].get('alertname', '')}  [{a['status']}]  {a['fingerprint']}")
    click.echo(f"  starts_at  {a['starts_at']}   ends_at {a['ends_at'] or '-'}"
               f"   version {a['version']}")
    for k, v in sorted(a["labels"].items()):
        click.echo(f"  label      {k} = {v}")
    for k, v in a["annotations"].items():
        if k != "evidence_sql":
            click.echo(f"  annotation {k}: {v}")
    click.echo("\nhistory")
    for h in detail["history"]:
        click.echo(f"  v{h['version']:<4} {h['status']:<9} updated {h['updated_at']}"
                   f"  severity {h['labels'].get('severity', '')}")
    click.echo("\ndeliveries")
    if not detail["deliveries"]:
        click.echo("  none yet")
    for d in detail["deliveries"]:
        click.echo(f"  {d['sink']:<13} v{d['version']!s:<4} {d['status']:<9} "
                   f"{d['delivered_at']}  attempts {d['attempts']}"
                   + (f"  last error: {d['last_error']}" if d["last_error"] else ""))
    ev = detail["evidence"]
    click.echo(f"\nevidence ({ev.get('source')}, {ev['window_start']} .. {ev['window_end']},"
               f" filters {ev['filters']})")
    if ev["ignored_dimensions"]:
        click.echo(f"  not filterable: {', '.join(ev['ignored_dimensions'])}")
    present = [col for col in EVIDENCE_COLUMNS if any(col[0] in r for r in ev["rows"])]
    click.echo(table(ev["rows"], present) if ev["rows"] else "  no rows")
    if a["annotations"].get("evidence_sql"):
        click.echo(f"\nevidence query:\n{a['annotations']['evidence_sql']}")


@click.command()
@click.option("--host", default=None, help="Address to bind (default: worker_web_host).")
@click.option("--port", type=int, default=None, help="Port (default: the api_port setting).")
@click.option("--insecure-no-auth", is_flag=True,
              help="Serve without a bearer token (local experiments only).")
@click.pass_obj
def api(c: Ctx, host: str | None, port: int | None, insecure_no_auth: bool) -> None:
    """Serve the read-only HTTP API (/healthz, /metrics, /alerts, /segments,
    /openapi.json); every path but /healthz needs DRIFTWATCH_API_TOKEN."""
    import logging

    from aiohttp import web

    from driftwatch.api.app import create_app

    settings = c.settings
    app = create_app(_store(c), settings, insecure_no_auth=insecure_no_auth)
    if insecure_no_auth:
        logging.getLogger("driftwatch.api").warning("serving WITHOUT authentication")
    web.run_app(app, host=host or settings.worker_web_host, port=port or settings.api_port,
                access_log=None, print=None)
