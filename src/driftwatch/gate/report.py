"""Gate output: the terminal table, the contract JSON and a self-contained HTML section."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from driftwatch.gate.findings import GateResult
from driftwatch.report.html import CSS

#: Trigger candidates shown in the HTML page.
TOP_CANDIDATES = 25


def _num(x: float) -> str:
    return "-" if x != x else f"{x:.2f}"


def terminal(result: GateResult) -> str:
    """The summary table printed by ``driftwatch gate``."""
    lines = [f"{'check':<30} {'severity':<9} {'block':<5} {'n':>7} {'champ':>6} {'chall':>6}"
             "  summary"]
    for f in result.findings:
        lines.append(f"{f.check[:30]:<30} {f.severity:<9} {'yes' if f.blocking else 'no':<5} "
                     f"{f.n:>7} {_num(f.champion_mean):>6} {_num(f.challenger_mean):>6}  "
                     f"{f.summary}")
    rows = result.tables.get("scenarios") or []
    if rows:
        lines.append("")
        lines.append(f"{'scenario':<26} {'expect':<14} {'champ Δ':>8} {'chall Δ':>8} "
                     f"{'champ ✗':>8} {'chall ✗':>8}")
        for r in rows:
            lines.append(f"{r['scenario']:<26} {r['expect']:<14} {r['champion_delta']:>+8.3f} "
                         f"{r['challenger_delta']:>+8.3f} {r['champion_violations']:>8.0%} "
                         f"{r['challenger_violations']:>8.0%}")
    lines.append("")
    lines.append(f"verdict: {result.verdict.upper()}  ({result.probes:,} synthetic probes, "
                 f"{result.seconds:.1f} s)")
    return "\n".join(lines) + "\n"


def write_json(result: GateResult, path: str | Path) -> None:
    """Write the contract's JSON document."""
    Path(path).write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"<td>{_e(f'{v:.3g}' if isinstance(v, float) else v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def section(result: GateResult) -> str:
    """The gate as one ``<section>`` in the report's style."""
    rows = [{"check": f.check, "severity": f.severity, "blocking": "yes" if f.blocking else "no",
             "n": f.n, "champion": _num(f.champion_mean), "challenger": _num(f.challenger_mean),
             "summary": f.summary} for f in result.findings]
    verdict = result.verdict
    parts = [
        "<section><h2>Pre-promotion gate: "
        f"<span class=\"{'critical' if verdict == 'block' else ''}\">{_e(verdict.upper())}"
        "</span></h2>",
        f"<div class=\"meta\">champion {_e(result.champion)} · challenger "
        f"{_e(result.challenger)} · {result.probes:,} probes · {result.seconds:.1f} s</div>",
        _table(rows, ["check", "severity", "blocking", "n", "champion", "challenger",
                      "summary"]),
    ]
    if result.tables.get("scenarios"):
        parts += ["<h2>Adversarial scenarios</h2>", _table(result.tables["scenarios"], [
            "scenario", "expect", "n", "champion_delta", "challenger_delta",
            "champion_violations", "challenger_violations"])]
    if result.tables.get("triggers"):
        top = sorted(result.tables["triggers"], key=lambda r: r["pvalue"])[:TOP_CANDIDATES]
        parts += [f"<h2>Trigger candidates (the {len(top)} most significant)</h2>",
                  _table(top, ["conjunction", "where", "positives", "fixtures",
                               "champion_mean", "challenger_mean", "pvalue"])]
    if result.tables.get("recall"):
        parts += ["<h2>Recall by model version</h2>", _table(result.tables["recall"], [
            "version", "first_seen", "pos", "tp", "recall"])]
    return "\n".join(parts) + "</section>"


def write_html(result: GateResult, path: str | Path) -> None:
    """Write a self-contained page holding :func:`section`."""
    page = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>driftwatch gate"
            f"</title><style>{CSS}</style></head><body><h1>driftwatch gate</h1>"
            f"{section(result)}</body></html>\n")
    Path(path).write_text(page, encoding="utf-8")
