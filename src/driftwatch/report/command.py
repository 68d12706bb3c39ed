"""``driftwatch report --out report.html``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from driftwatch.api.params import ParamError, parse_time

if TYPE_CHECKING:
    from driftwatch.context import Ctx


@click.command()
@click.option("--out", type=click.Path(dir_okay=False), default="report.html",
              show_default=True, help="HTML file to write.")
@click.option("--since", default=None,
              help="Alerts updated at or after (RFC 3339, date, or 6h/7d back from the newest "
              "event). Default: all.")
@click.option("--until", default=None, help="Alerts updated before (same forms).")
@click.option("--max-segments", type=click.IntRange(1, 100), default=12, show_default=True,
              help="Chart at most this many alerted segments (most severe first).")
@click.option("--title", default="driftwatch report", show_default=True)
@click.pass_obj
def report(c: Ctx, out: str, since: str | None, until: str | None, max_segments: int,
           title: str) -> None:
    """Write a self-contained HTML page with, for every segment that alerted, its score
    distribution (reference vs current), cents histogram, recall over time and alert
    timeline. No network access is needed to view it."""
    from driftwatch.api.queries import resolve_time
    from driftwatch.assemble import read_store_from
    from driftwatch.report.data import report_data
    from driftwatch.report.html import render

    settings = c.settings
    store = read_store_from(settings)
    lo = resolve_time(store, parse_time("since", since)) if since else None
    hi = resolve_time(store, parse_time("until", until)) if until else None
    if lo is not None and hi is not None and lo >= hi:
        raise ParamError("until", "must be after since")
    spans, segments = report_data(
        store, lo, hi, window_s=settings.monitor_window_s,
        reference_s=settings.reference_window_s, max_segments=max_segments,
    )
    page = render(spans, segments, title=title, store_name=f"database {store.database}")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    click.echo(f"wrote {path} ({len(spans)} alerts, {len(segments)} segments, "
               f"{page.count('<svg')} charts)")
