"""A self-contained HTML page of a training scan (every value escaped)."""

from __future__ import annotations

import html
import json
from typing import Any

_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:4px 6px;"
    "text-align:left;vertical-align:top}th{background:#f3f3f3}.critical{background:#fde2e2}"
    ".warning{background:#fff4d6}.block{color:#b00020}.pass{color:#0a7d32}"
    "code{font-size:12px}"
)


def render(report: dict[str, Any], title: str = "driftwatch training scan") -> str:
    """The scan's JSON object (``ScanReport.as_dict()``) as one HTML page."""
    e = html.escape
    verdict = str(report.get("verdict", ""))
    rec = report.get("records", {})
    rows = []
    for f in report.get("findings", []):
        records = f.get("records", [])
        where = ", ".join(
            f"{r.get('file', '')}:{r.get('line', r.get('row', ''))}" for r in records[:10]
        )
        if len(records) > 10:
            where += f" … ({len(records)} listed)"
        rows.append(
            f"<tr class='{e(str(f.get('severity', '')))}'><td>{e(str(f.get('check', '')))}</td>"
            f"<td>{e(str(f.get('severity', '')))}</td><td>{'yes' if f.get('blocking') else ''}"
            f"</td><td><code>{e(json.dumps(f.get('conjunction', {}), sort_keys=False))}</code>"
            f"</td><td>{int(f.get('n', 0)):,}</td><td>{e(str(f.get('summary', '')))}</td>"
            f"<td><code>{e(where)}</code></td></tr>"
        )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{e(title)}</h1>"
        f"<p>Verdict: <b class='{e(verdict)}'>{e(verdict.upper())}</b> — baseline "
        f"{int(rec.get('baseline', 0)):,} records, new {int(rec.get('new', 0)):,} records.</p>"
        "<table><tr><th>check</th><th>severity</th><th>blocks</th><th>conjunction</th>"
        "<th>n</th><th>summary</th><th>records (file:line)</th></tr>"
        + "".join(rows)
        + "</table></body></html>\n"
    )
