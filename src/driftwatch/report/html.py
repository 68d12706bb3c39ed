"""Render the report data as one self-contained HTML page (inline CSS and SVG only)."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence

from driftwatch import __version__
from driftwatch.amounts import format_money
from driftwatch.report import svg
from driftwatch.report.data import SCORE_BINS, AlertSpan, SegmentData

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px;color:#212529;
background:#f8f9fa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px}
.meta{color:#495057;font-size:13px;margin-bottom:16px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(600px,100%),1fr));gap:12px}
svg.chart{max-width:100%;height:auto}
.card{background:#fff;border:1px solid #dee2e6;border-radius:6px;padding:8px}
table{border-collapse:collapse;font-size:12px;background:#fff;display:block;overflow-x:auto;
max-width:100%}
td,th{border:1px solid #dee2e6;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f1f3f5}.critical{color:#c92a2a;font-weight:600}.warning{color:#e67700}
.note{color:#868e96;font-size:12px}section{margin-bottom:24px}
.summary{background:#fff;border:1px solid #dee2e6;border-left:4px solid #c92a2a;
border-radius:6px;padding:10px 16px;margin-bottom:16px}.summary.quiet{border-left-color:#2b8a3e}
.summary ul{margin:6px 0;padding-left:18px}.summary li{margin:4px 0}
"""

RANK = {"critical": 0, "warning": 1, "info": 2}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _t(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "firing"


def _share(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def _over(count: int, n: int, p_ref: float) -> bool:
    """A cents value far above its reference share (z > 4 with a smoothed share).

    >>> _over(6, 15, 0.01), _over(4, 7, 0.4)
    (True, False)
    """
    if count < 3 or n == 0:
        return False
    p = min(max(p_ref, 0.5 / 100), 0.99)
    z = (count - n * p) / (n * p * (1 - p)) ** 0.5
    return z > 4 and count / n - p_ref > 0.05


def segment_charts(d: SegmentData) -> list[str]:
    """The four charts of one segment."""
    cur_n, ref_n = sum(d.score_cur), sum(d.score_ref)
    edges = [f"{i / SCORE_BINS:.2f}" for i in range(SCORE_BINS)]
    charts = [
        svg.bars(
            edges,
            [(f"reference (n={ref_n})", _share(d.score_ref), svg.COLORS["ref"]),
             (f"current (n={cur_n})", _share(d.score_cur), svg.COLORS["cur"])],
            title=f"Score distribution - {d.segment}", every=4, percent=True,
            label=f"score distribution reference vs current for {d.segment}",
        ),
    ]
    cents_ref, cents_cur = _share(d.cents_ref), _share(d.cents_cur)
    top = [i for i in range(100) if _over(d.cents_cur[i], sum(d.cents_cur), cents_ref[i])][:3]
    charts.append(svg.bars(
        [f".{i:02d}" for i in range(100)],
        [(f"reference (n={sum(d.cents_ref)})", cents_ref, svg.COLORS["ref"]),
         (f"current (n={sum(d.cents_cur)})", cents_cur, svg.COLORS["cur"])],
        title=f"Cents of amounts >= 10.00 - {d.segment}", every=10, highlight=top,
        percent=True, label=f"cents histogram for {d.segment}",
    ))
    if d.recall_times:
        charts.append(svg.lines(
            d.recall_times,
            [(f"recall {mv}", vals) for mv, vals in sorted(d.recall.items())],
            title=f"Recall per {d.recall_step_h}h (labelled fraud) - {d.segment}",
            label=f"recall over time for {d.segment}",
        ))
    else:
        charts.append(svg.empty(f"Recall over time - {d.segment}", "no labelled fraud yet"))
    charts.append(svg.timeline(
        [(a.name, a.starts_at, a.ends_at, a.severity) for a in d.alerts],
        title=f"Alert timeline - {d.segment}", until=d.until or d.current[1],
        label=f"alert timeline for {d.segment}",
    ))
    return charts


def _alert_name(a: AlertSpan) -> str:
    return f"{a.alertname} ({a.origin})" if a.source == "rule" and a.origin else a.alertname


def _alert_rows(spans: Sequence[AlertSpan]) -> str:
    rows = []
    for a in spans:
        rows.append(
            f'<tr><td class="{_e(a.severity)}">{_e(a.severity)}</td><td>{_e(_alert_name(a))}</td>'
            f"<td>{_e(a.segment or '-')}</td><td>{_e(a.model_version or '-')}</td>"
            f"<td>{_e(a.status)}</td><td>{_t(a.starts_at)}</td><td>{_t(a.ends_at)}</td>"
            f"<td>{_e(a.summary)}</td><td>{_e(a.value)}</td><td>{_e(a.threshold)}</td>"
            f"<td><code>{_e(a.fingerprint)}</code></td></tr>"
        )
    return "\n".join(rows)


def _money_line(d: SegmentData) -> str:
    if not d.money:
        return "no transactions in the alerted window"
    parts = [
        f"{format_money(m.amount_minor, m.currency)} in {m.n:,} transaction"
        f"{'s' if m.n != 1 else ''}, {format_money(m.approved_minor, m.currency)} of it "
        f"approved by the model"
        for m in d.money[:3]
    ]
    more = f" (and {len(d.money) - 3} more currencies)" if len(d.money) > 3 else ""
    return "; ".join(parts) + more


def summary(spans: Sequence[AlertSpan], segments: Sequence[SegmentData]) -> str:
    """The page's first block: what is attacked, since when, how much money, which
    signals — one line per charted segment, most severe first."""
    firing = [a for a in spans if a.status == "firing" and a.severity != "info"]
    if not spans:
        return ('<div class="summary quiet"><b>No alerts in this range.</b></div>')
    head = (f"<b>{len({a.segment for a in firing})} segment"
            f"{'s' if len({a.segment for a in firing}) != 1 else ''} with warning or critical "
            f"alerts firing</b> at the end of the range" if firing else
            "<b>No warning or critical alert is firing</b> at the end of the range")
    items = []
    for d in segments:
        worst = min(d.alerts, key=lambda a: (RANK.get(a.severity, 3), a.starts_at))
        since = min(a.starts_at for a in d.alerts)
        signals = sorted({a.name for a in d.alerts},
                         key=lambda n: min(RANK.get(a.severity, 3) for a in d.alerts
                                           if a.name == n))
        state = "firing" if any(a.status == "firing" for a in d.alerts) else "resolved"
        items.append(
            f'<li><span class="{_e(worst.severity)}">{_e(worst.severity)}</span> '
            f"<b>{_e(d.segment)}</b> since {since:%Y-%m-%d %H:%M} ({state}): "
            f"{_e(_money_line(d))}. Signals ({len(signals)}): {_e(', '.join(signals))}.</li>"
        )
    quiet = "" if firing else " quiet"
    return (f'<div class="summary{quiet}">{head}; {len(spans)} alert'
            f"{'s' if len(spans) != 1 else ''} in all.<ul>{''.join(items)}</ul></div>")


def render(
    spans: Sequence[AlertSpan],
    segments: Sequence[SegmentData],
    *,
    title: str = "driftwatch report",
    store_name: str = "",
    generated: dt.datetime | None = None,
) -> str:
    """The whole page: the summary, the charts of each alerted segment, then the table
    of every alert."""
    generated = generated or dt.datetime.now(dt.UTC)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<div class="meta">generated {generated:%Y-%m-%d %H:%M UTC} by driftwatch '
        f"{_e(__version__)}{' from ' + _e(store_name) if store_name else ''}; "
        f"{len(spans)} alerts, {len(segments)} segments charted. Times are event time.</div>",
        summary(spans, segments),
    ]
    for d in segments:
        lo, hi = d.current
        rlo, rhi = d.reference
        versions = ", ".join(sorted({a.model_version for a in d.alerts if a.model_version}))
        reference = (f"reference {rlo:%Y-%m-%d %H:%M} - {rhi:%Y-%m-%d %H:%M}" if rlo < rhi
                     else "no reference: no data before the current window")
        parts.append(
            f'<section><h2>Segment {_e(d.segment)}</h2><div class="meta">current '
            f"{lo:%Y-%m-%d %H:%M} - {hi:%Y-%m-%d %H:%M}"
            + (f" (model {_e(versions)})" if versions else "")
            + f"; {reference}"
            + (f"; not filterable: {_e(', '.join(d.ignored))}" if d.ignored else "")
            + '</div><div class="grid">'
            + "".join(f'<div class="card">{c}</div>' for c in segment_charts(d))
            + "</div></section>"
        )
    if spans:
        parts.append(
            "<h2>Alerts</h2><table><tr><th>severity</th><th>alert</th><th>segment</th>"
            "<th>model</th><th>status</th><th>starts</th><th>ends</th><th>summary</th>"
            "<th>value</th><th>threshold</th><th>fingerprint</th></tr>"
            + _alert_rows(spans) + "</table>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
