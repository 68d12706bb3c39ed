"""Small, dependency-free SVG charts for the self-contained HTML report.

Each function takes plain numbers and returns one ``<svg class="chart">`` element as
a string: no scripts, no external fonts or files, so the page renders offline and
in any browser. Text is escaped; numbers are formatted, never raw user input.

>>> svg = bars(["a", "b"], [("ref", [1.0, 2.0], "#999")], title="t")
>>> svg.startswith('<svg class="chart"') and svg.count("<rect") >= 2
True
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

W, H = 600, 280
PAD_L, PAD_R, PAD_T, PAD_B = 52, 16, 54, 42
TITLE_Y, LEGEND_Y, LEGEND_ROW = 18, 28, 14
CHAR_W = {10: 6.0, 11: 6.6, 13: 8.0}
"""Generous widths of an average character at each font size, for layout: text is
placed from these estimates so that no two labels overlap (checked in a browser)."""
COLORS = {"ref": "#9aa5b1", "cur": "#d9480f", "info": "#1c7ed6", "warning": "#f59f00",
          "critical": "#c92a2a"}
MIN_ROW_H = 14
LINE_COLORS = ("#1c7ed6", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(x: float) -> str:
    return f"{x:.1f}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi].

    >>> nice_ticks(0, 1)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    >>> nice_ticks(0, 37)
    [0.0, 10.0, 20.0, 30.0, 40.0]
    """
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks: list[float] = []
    t = start
    while t <= hi + step * 0.5 and len(ticks) < 20:
        ticks.append(float(round(t, 10)))
        t += step
    return ticks


@dataclass(frozen=True)
class _Frame:
    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, v: float) -> float:
        span = self.x1 - self.x0 or 1.0
        return PAD_L + (v - self.x0) / span * (W - PAD_L - PAD_R)

    def y(self, v: float) -> float:
        span = self.y1 - self.y0 or 1.0
        return H - PAD_B - (v - self.y0) / span * (H - PAD_T - PAD_B)


def fit(text: str, width: float, size: int) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels at font ``size``.

    >>> fit("Score distribution - mcc=5967", 120, 13)
    'Score distribu…'
    """
    room = int(width // CHAR_W[size])
    return text if len(text) <= room else text[: max(room - 1, 1)] + "…"


def _open(title: str, label: str) -> list[str]:
    return [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}"'
        f' width="{W}" height="{H}" role="img" aria-label="{_e(label or title)}">',
        f"<title>{_e(label or title)}</title>",
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/>',
        f'<text x="{PAD_L}" y="{TITLE_Y}" font-size="13" font-weight="600">'
        f"{_e(fit(title, W - PAD_L - PAD_R, 13))}</text>",
    ]


def _y_axis(f: _Frame, ticks: Sequence[float], fmt: str = "{:g}") -> list[str]:
    out = []
    for t in ticks:
        y = _num(f.y(t))
        out.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y}" y2="{y}" stroke="#e9ecef"/>')
        out.append(f'<text x="{PAD_L - 6}" y="{y}" font-size="10" text-anchor="end"'
                   f' dominant-baseline="middle">{_e(fmt.format(t))}</text>')
    out.append(f'<line x1="{PAD_L}" x2="{PAD_L}" y1="{PAD_T}" y2="{H - PAD_B}" stroke="#495057"/>')
    out.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{H - PAD_B}" y2="{H - PAD_B}"'
               ' stroke="#495057"/>')
    return out


def _legend(items: Sequence[tuple[str, str]]) -> list[str]:
    """Swatches and names on the row under the title, left to right, wrapping to a
    second row; names cut to fit (at most two rows fit above the plot)."""
    out = []
    x, y = float(PAD_L), LEGEND_Y
    for name, color in items:
        shown = fit(name, W - PAD_L - PAD_R - 16, 11)
        width = 16 + CHAR_W[11] * len(shown) + 12
        if x + width > W - PAD_R and x > PAD_L:
            x, y = float(PAD_L), y + LEGEND_ROW
            if y > LEGEND_Y + LEGEND_ROW:
                break
        out.append(f'<rect x="{_num(x)}" y="{y}" width="10" height="10" fill="{color}"'
                   ' fill-opacity="0.8"/>')
        out.append(f'<text x="{_num(x + 14)}" y="{y + 9}" font-size="11">{_e(shown)}</text>')
        x += width
    return out


def bars(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], str]],
    *,
    title: str,
    ylabel: str = "",
    label: str = "",
    every: int = 1,
    highlight: Sequence[int] = (),
    percent: bool = False,
) -> str:
    """Grouped bars: one group per category, one bar per series.

    ``every`` labels only every n-th category; ``highlight`` marks categories (e.g. the
    over-represented cents value) with a label above their group.
    """
    top = max([v for _, vals, _ in series for v in vals] + [0.0])
    ticks = nice_ticks(0.0, top * 1.1 if top > 0 else 1.0)
    f = _Frame(0, max(len(categories), 1), 0.0, ticks[-1])
    out = _open(title, label)
    out += _y_axis(f, ticks, "{:.0%}" if percent else "{:g}")
    group_w = (W - PAD_L - PAD_R) / max(len(categories), 1)
    bar_w = max(group_w * 0.8 / max(len(series), 1), 0.6)
    for s_i, (_, vals, color) in enumerate(series):
        for c_i, v in enumerate(vals):
            if v <= 0:
                continue
            x = f.x(c_i) + group_w * 0.1 + s_i * bar_w
            y = f.y(v)
            out.append(f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(bar_w)}"'
                       f' height="{_num(f.y(0) - y)}" fill="{color}" fill-opacity="0.85">'
                       f"<title>{_e(categories[c_i])}: {v:.4g}</title></rect>")
    for c_i, cat in enumerate(categories):
        if c_i % every == 0:
            out.append(f'<text x="{_num(f.x(c_i + 0.5))}" y="{H - PAD_B + 14}" font-size="10"'
                       f' text-anchor="middle">{_e(cat)}</text>')
    for c_i in highlight:
        v = max(vals[c_i] for _, vals, _ in series)
        out.append(f'<text x="{_num(f.x(c_i + 0.5))}" y="{_num(f.y(v) - 4)}" font-size="11"'
                   f' font-weight="600" text-anchor="middle" fill="#c92a2a">'
                   f"{_e(categories[c_i])}</text>")
    if ylabel:
        out.append(f'<text x="12" y="{H / 2}" font-size="10" transform="rotate(-90 12 {H / 2})"'
                   f' text-anchor="middle">{_e(ylabel)}</text>')
    out += _legend([(name, color) for name, _, color in series])
    out.append("</svg>")
    return "\n".join(out)


def lines(
    times: Sequence[dt.datetime],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    title: str,
    label: str = "",
    ylim: tuple[float, float] = (0.0, 1.0),
    percent: bool = True,
) -> str:
    """Line chart over time; ``None`` leaves a gap (no data in that bucket)."""
    if not times:
        return empty(title, "no data")
    t0 = times[0].timestamp()
    t1 = times[-1].timestamp() if len(times) > 1 else t0 + 3600
    ticks = nice_ticks(*ylim)
    f = _Frame(t0, t1, ticks[0], ticks[-1])
    out = _open(title, label)
    out += _y_axis(f, ticks, "{:.0%}" if percent else "{:g}")
    for i, (name, vals) in enumerate(series):
        color = LINE_COLORS[i % len(LINE_COLORS)]
        path: list[str] = []
        for t, v in zip(times, vals, strict=True):
            if v is None:
                path.append("")
                continue
            x, y = _num(f.x(t.timestamp())), _num(f.y(v))
            path.append(f"{x},{y}")
            out.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{color}">'
                       f"<title>{_e(name)} {t:%Y-%m-%d %H:%M}: {v:.1%}</title></circle>")
        for run in " ".join(path).split("  "):
            if run.strip():
                out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"'
                           f' points="{run.strip()}"/>')
    out += _time_axis(f, times[0], times[-1])
    out += _legend([(name, LINE_COLORS[i % len(LINE_COLORS)])
                    for i, (name, _) in enumerate(series)])
    out.append("</svg>")
    return "\n".join(out)


def _time_axis(f: _Frame, lo: dt.datetime, hi: dt.datetime) -> list[str]:
    out = []
    span = max((hi - lo).total_seconds(), 1.0)
    fmt = "%m-%d %H:%M" if span <= 3 * 86400 else "%Y-%m-%d"
    for k in range(5):
        t = lo + dt.timedelta(seconds=span * k / 4)
        anchor = "start" if k == 0 else "end" if k == 4 else "middle"
        out.append(f'<text x="{_num(f.x(t.timestamp()))}" y="{H - PAD_B + 14}" font-size="10"'
                   f' text-anchor="{anchor}">{_e(t.strftime(fmt))}</text>')
    return out


def timeline(
    items: Sequence[tuple[str, dt.datetime, dt.datetime | None, str]],
    *,
    title: str,
    label: str = "",
    until: dt.datetime | None = None,
) -> str:
    """Horizontal bars (name, start, end or None for still firing, severity)."""
    if not items:
        return empty(title, "no alerts")
    ends = [e or until or s for _, s, e, _ in items]
    lo = min(s for _, s, _, _ in items)
    hi = max([*ends, until or lo])
    if hi <= lo:
        hi = lo + dt.timedelta(hours=1)
    room = int((H - PAD_T - PAD_B) // MIN_ROW_H)
    hidden = max(len(items) - room, 0)
    if hidden:  # the rows that fit, and a note: labels never overlap
        items, ends = items[: room - 1], ends[: room - 1]
    rows = len(items) + (1 if hidden else 0)
    f = _Frame(lo.timestamp(), hi.timestamp(), 0, rows)
    out = _open(title, label)
    row_h = (H - PAD_T - PAD_B) / max(rows, 1)
    if hidden:
        out.append(f'<text x="{PAD_L + 4}" y="{_num(H - PAD_B - row_h / 2)}" font-size="10"'
                   f' dominant-baseline="middle" fill="#868e96">+ {hidden + 1} more alerts'
                   " (see the table)</text>")
    for i, ((name, s, e, sev), end) in enumerate(zip(items, ends, strict=True)):
        y = PAD_T + i * row_h
        x0 = f.x(s.timestamp())
        x1 = max(f.x(end.timestamp()), x0 + 3)
        color = COLORS.get(sev, "#495057")
        state = "firing" if e is None else f"resolved {e:%Y-%m-%d %H:%M}"
        out.append(f'<rect x="{_num(x0)}" y="{_num(y + row_h * 0.15)}" width="{_num(x1 - x0)}"'
                   f' height="{_num(row_h * 0.7)}" fill="{color}" fill-opacity="0.85">'
                   f"<title>{_e(name)}: {s:%Y-%m-%d %H:%M} - {_e(state)}</title></rect>")
        out.append(f'<text x="{PAD_L + 4}" y="{_num(y + row_h / 2)}" font-size="10"'
                   f' dominant-baseline="middle">{_e(fit(name, W - PAD_L - PAD_R - 8, 10))}'
                   "</text>")
    out.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{H - PAD_B}" y2="{H - PAD_B}"'
               ' stroke="#495057"/>')
    out += _time_axis(f, lo, hi)
    out += _legend([(k, COLORS[k]) for k in ("info", "warning", "critical")])
    out.append("</svg>")
    return "\n".join(out)


def empty(title: str, message: str) -> str:
    """A chart frame saying why there is nothing to draw."""
    out = _open(title, f"{title}: {message}")
    out.append(f'<text x="{W / 2}" y="{H / 2}" font-size="13" text-anchor="middle"'
               f' fill="#868e96">{_e(message)}</text>')
    out.append("</svg>")
    return "\n".join(out)
