"""Render the report data as one self-contained HTML page (inline CSS and SVG only)."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence

from driftwatch import __version__
from driftwatch.report import svg
from driftwatch.report.data import SCORE_BINS, AlertSpan, SegmentData

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#212529;
background:#f8f9fa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px}
.meta{color:#495057;font-size:13px;margin-bottom:16px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(600px,1fr));gap:12px}
.card{background:#fff;border:1px solid #dee2e6;border-radius:6px;padding:8px}
table{border-collapse:collapse;font-size:12px;background:#fff}
td,th{border:1px solid #dee2e6;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f1f3f5}.critical{color:#c92a2a;font-weight:600}.warning{color:#e67700}
.note{color:#868e96;font-size:12px}section{margin-bottom:24px}
"""


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
        [(f"{a.alertname} {a.model_version}".strip(), a.starts_at, a.ends_at, a.severity)
         for a in d.alerts],
        title=f"Alert timeline - {d.segment}", until=d.until or d.current[1],
        label=f"alert timeline for {d.segment}",
    ))
    return charts


def _alert_rows(spans: Sequence[AlertSpan]) -> str:
    rows = []
    for a in spans:
        rows.append(
            f'<tr><td class="{_e(a.severity)}">{_e(a.severity)}</td><td>{_e(a.alertname)}</td>'
            f"<td>{_e(a.segment or '-')}</td><td>{_e(a.model_version or '-')}</td>"
            f"<td>{_e(a.status)}</td><td>{_t(a.starts_at)}</td><td>{_t(a.ends_at)}</td>"
            f"<td>{_e(a.summary)}</td><td>{_e(a.value)}</td><td>{_e(a.threshold)}</td>"
            f"<td><code>{_e(a.fingerprint)}</code></td></tr>"
        )
    return "\n".join(rows)


def render(
    spans: Sequence[AlertSpan],
    segments: Sequence[SegmentData],
    *,
    title: str = "driftwatch report",
    store_name: str = "",
    generated: dt.datetime | None = None,
) -> str:
    """The whole page."""
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
    ]
    if spans:
        parts.append(
            "<h2>Alerts</h2><table><tr><th>severity</th><th>alert</th><th>segment</th>"
            "<th>model</th><th>status</th><th>starts</th><th>ends</th><th>summary</th>"
            "<th>value</th><th>threshold</th><th>fingerprint</th></tr>"
            + _alert_rows(spans) + "</table>"
        )
    else:
        parts.append('<p class="note">No alerts in this range.</p>')
    for d in segments:
        lo, hi = d.current
        rlo, rhi = d.reference
        versions = ", ".join(sorted({a.model_version for a in d.alerts if a.model_version}))
        parts.append(
            f'<section><h2>Segment {_e(d.segment)}</h2><div class="meta">current '
            f"{lo:%Y-%m-%d %H:%M} - {hi:%Y-%m-%d %H:%M}"
            + (f" (model {_e(versions)})" if versions else "")
            + f"; reference {rlo:%Y-%m-%d %H:%M} - {rhi:%Y-%m-%d %H:%M}"
            + (f"; not filterable: {_e(', '.join(d.ignored))}" if d.ignored else "")
            + '</div><div class="grid">'
            + "".join(f'<div class="card">{c}</div>' for c in segment_charts(d))
            + "</div></section>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
