"""What the report shows, read from ClickHouse: the segments that alerted, and for each
its score distributions (reference vs current), cents histogram, recall over time and
alert timeline. All SQL is parameterised; segment dimensions come from a closed list.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from driftwatch.alerts.deliveries import as_utc
from driftwatch.api.queries import EVIDENCE_DIMENSIONS
from driftwatch.monitors.segments import parse_segment
from driftwatch.store.client import Store

SCORE_BINS = 20


@dataclass(frozen=True)
class AlertSpan:
    """One alert's state for the report."""

    fingerprint: str
    alertname: str
    severity: str
    source: str
    segment: str
    model_version: str
    status: str
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    updated_at: dt.datetime
    summary: str
    value: str
    threshold: str
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    origin: str = ""

    @property
    def name(self) -> str:
        """What the timeline and summary call it: the rule id for rule alerts."""
        base = self.origin if self.source == "rule" and self.origin else self.alertname
        return f"{base} {self.model_version}".strip()


@dataclass(frozen=True)
class Money:
    """Amounts of one currency in a segment's current window."""

    currency: str
    n: int
    amount_minor: int
    approved_n: int
    approved_minor: int


@dataclass
class SegmentData:
    """Everything drawn for one segment."""

    segment: str
    filters: dict[str, str]
    ignored: list[str]
    alerts: list[AlertSpan]
    current: tuple[dt.datetime, dt.datetime]
    reference: tuple[dt.datetime, dt.datetime]
    score_ref: list[int] = field(default_factory=list)
    score_cur: list[int] = field(default_factory=list)
    cents_ref: list[int] = field(default_factory=list)
    cents_cur: list[int] = field(default_factory=list)
    recall_times: list[dt.datetime] = field(default_factory=list)
    recall: dict[str, list[float | None]] = field(default_factory=dict)
    recall_n: dict[str, list[int]] = field(default_factory=dict)
    recall_step_h: int = 0
    until: dt.datetime | None = None
    money: list[Money] = field(default_factory=list)
    first_event: dt.datetime | None = None


def _at(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return as_utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def alert_spans(store: Store, since: dt.datetime | None, until: dt.datetime | None,
                limit: int = 2000) -> list[AlertSpan]:
    """Current alert states updated in [since, until), oldest first."""
    rows = store.query(
        "SELECT fingerprint, alertname, severity, source, segment, model_version, status,"
        " starts_at, ends_at, updated_at, annotations, origin FROM {db}.alerts FINAL"
        " WHERE updated_at >= {since:DateTime64(3, 'UTC')}"
        " AND updated_at < {until:DateTime64(3, 'UTC')}"
        " ORDER BY starts_at, fingerprint LIMIT {limit:UInt32}",
        {
            "since": since or dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
            "until": until or dt.datetime(2100, 1, 1, tzinfo=dt.UTC),
            "limit": limit,
        },
    )
    out = []
    for fp, name, sev, src, seg, mv, status, starts, ends, updated, ann, origin in rows:
        ann = dict(ann)
        out.append(AlertSpan(
            str(fp), str(name), str(sev), str(src), str(seg), str(mv), str(status),
            as_utc(starts), as_utc(ends) if ends is not None and status == "resolved" else None,
            as_utc(updated), ann.get("summary", ""), ann.get("value", ""),
            ann.get("threshold", ""), _at(ann.get("window_start")), _at(ann.get("window_end")),
            str(origin),
        ))
    return out


def _where(filters: dict[str, str], prefix: str) -> tuple[list[str], dict[str, Any]]:
    where, params = [], {}
    for i, (name, value) in enumerate(sorted(filters.items())):
        where.append(f"{name} = {{{prefix}{i}:String}}")
        params[f"{prefix}{i}"] = value
    return where, params


def _counts(store: Store, expr: str, nbins: int, filters: dict[str, str],
            lo: dt.datetime, hi: dt.datetime) -> list[int]:
    where, params = _where(filters, "f")
    rows = store.query(
        f"SELECT {expr} AS bin, count() FROM {{db}}.scored_transactions FINAL"
        " WHERE event_time >= {lo:DateTime64(3, 'UTC')} AND event_time < {hi:DateTime64(3, 'UTC')}"
        + "".join(f" AND {w}" for w in where)
        + " GROUP BY bin",
        {**params, "lo": lo, "hi": hi},
    )
    counts = [0] * nbins
    for b, n in rows:
        if 0 <= int(b) < nbins:
            counts[int(b)] += int(n)
    return counts


def segment_data(store: Store, segment: str, spans: list[AlertSpan], *,
                 window_s: int, reference_s: int,
                 until: dt.datetime | None = None) -> SegmentData:
    """Histograms and recall series for one alerted segment."""
    parsed = parse_segment(segment, strict=False)
    filters = {k: v for k, v in parsed.items() if k in EVIDENCE_DIMENSIONS}
    ignored = [k for k in parsed if k not in EVIDENCE_DIMENSIONS]
    lo = min(s.window_start or s.starts_at - dt.timedelta(seconds=window_s) for s in spans)
    hi = max(s.window_end or s.ends_at or s.updated_at for s in spans)
    hi = max(hi, max(s.starts_at for s in spans)) + dt.timedelta(milliseconds=1)
    first = _first_event(store, filters)
    # the reference is what exists before the current window, never a range before the data
    ref_lo = lo - dt.timedelta(seconds=reference_s)
    ref = (max(ref_lo, first) if first is not None else ref_lo, lo)
    if ref[0] > ref[1]:
        ref = (lo, lo)
    data = SegmentData(segment, filters, ignored, spans, (lo, hi), ref, until=until or hi,
                       first_event=first)
    versions = sorted({s.model_version for s in spans if s.model_version})
    cur_filters = dict(filters)
    if len(versions) == 1 and "model_version" not in cur_filters:
        cur_filters["model_version"] = versions[0]
    score_bin = f"least(toUInt32(floor(score * {SCORE_BINS})), {SCORE_BINS - 1})"
    data.score_ref = _counts(store, score_bin, SCORE_BINS, filters, *ref)
    data.score_cur = _counts(store, score_bin, SCORE_BINS, cur_filters, lo, hi)
    cents = "amount_cents"
    # cents of amounts >= 10.00 only (the digit test's population)
    big = {**filters}
    data.cents_ref = _counts(store, f"if(amount_minor >= 1000, {cents}, 1000)", 100, big, *ref)
    data.cents_cur = _counts(store, f"if(amount_minor >= 1000, {cents}, 1000)", 100,
                             cur_filters, lo, hi)
    _recall(store, data, ref[0], hi)
    data.money = _money(store, cur_filters, lo, hi)
    return data


def _first_event(store: Store, filters: dict[str, str]) -> dt.datetime | None:
    where, params = _where(filters, "f")
    rows = store.query(
        "SELECT count(), min(event_time) FROM {db}.scored_transactions"
        + (" WHERE " + " AND ".join(where) if where else ""),
        params,
    )
    return as_utc(rows[0][1]) if rows and rows[0][0] else None


def _money(store: Store, filters: dict[str, str], lo: dt.datetime,
           hi: dt.datetime) -> list[Money]:
    """Transactions and amounts per currency in ``[lo, hi)``, and those the model approved."""
    where, params = _where(filters, "f")
    rows = store.query(
        "SELECT currency, count(), sum(amount_minor), countIf(decision = 'approve'),"
        " sumIf(amount_minor, decision = 'approve') FROM {db}.scored_transactions FINAL"
        " WHERE event_time >= {lo:DateTime64(3, 'UTC')} AND event_time < {hi:DateTime64(3, 'UTC')}"
        + "".join(f" AND {w}" for w in where)
        + " GROUP BY currency ORDER BY sum(amount_minor) DESC",
        {**params, "lo": lo, "hi": hi},
    )
    return [Money(str(c), int(n), int(a), int(an), int(am)) for c, n, a, an, am in rows]


def _recall(store: Store, data: SegmentData, lo: dt.datetime, hi: dt.datetime) -> None:
    where, params = _where(data.filters, "f")
    inner = (
        "SELECT txn_id, event_time, model_version, score, threshold"
        " FROM {db}.scored_transactions FINAL"
        " WHERE event_time >= {lo:DateTime64(3, 'UTC')} AND event_time < {hi:DateTime64(3, 'UTC')}"
        + "".join(f" AND {w}" for w in where)
    )
    params = {**params, "lo": lo, "hi": hi}
    extent = store.query(f"SELECT count(), min(event_time), max(event_time) FROM ({inner})",
                         params)
    if not extent or not extent[0][0]:
        return
    span_h = (as_utc(extent[0][2]) - as_utc(extent[0][1])).total_seconds() / 3600
    step = next((h for h in (1, 2, 3, 6, 12) if span_h / h <= 24), 24)
    rows = store.query(
        f"SELECT toStartOfInterval(s.event_time, INTERVAL {step} HOUR) AS t,"
        " s.model_version AS mv, countIf(l.label = 1) AS fraud,"
        " countIf(l.label = 1 AND s.score >= s.threshold) AS tp"
        f" FROM ({inner}) AS s INNER JOIN (SELECT txn_id, label FROM {{db}}.labels FINAL) AS l"
        " ON l.txn_id = s.txn_id GROUP BY t, mv ORDER BY t, mv",
        params,
    )
    times = sorted({as_utc(t) for t, *_ in rows})
    index = {t: i for i, t in enumerate(times)}
    recall: dict[str, list[float | None]] = defaultdict(lambda: [None] * len(times))
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(times))
    for t, mv, fraud, tp in rows:
        i = index[as_utc(t)]
        counts[str(mv)][i] = int(fraud)
        recall[str(mv)][i] = int(tp) / int(fraud) if int(fraud) else None
    data.recall_times = times
    data.recall = dict(recall)
    data.recall_n = dict(counts)
    data.recall_step_h = step


def report_data(store: Store, since: dt.datetime | None, until: dt.datetime | None, *,
                window_s: int, reference_s: int, max_segments: int = 12
                ) -> tuple[list[AlertSpan], list[SegmentData]]:
    """Alerts in the range and the data of the segments that alerted (most severe first)."""
    spans = alert_spans(store, since, until)
    newest = until or store.max_event_time()
    by_segment: dict[str, list[AlertSpan]] = defaultdict(list)
    for s in spans:
        if s.segment:
            by_segment[s.segment].append(s)
    rank = {"critical": 0, "warning": 1, "info": 2}

    def key(item: tuple[str, list[AlertSpan]]) -> tuple[int, int, str]:
        seg, group = item
        return (min(rank.get(s.severity, 3) for s in group), -len(group), seg)

    chosen = sorted(by_segment.items(), key=key)[:max_segments]
    return spans, [segment_data(store, seg, group, window_s=window_s, reference_s=reference_s,
                                until=newest)
                   for seg, group in chosen]
