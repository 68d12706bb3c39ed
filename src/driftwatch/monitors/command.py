"""``driftwatch monitor``: run the per-segment monitors against a store.

``--once`` runs the pass due at the store's watermark (the newest stored event time
minus the allowed lateness), or the pass at ``--at``; ``--interval S`` keeps
running every ``S`` wall-clock seconds, catching up every pass the watermark has
reached. Findings go through the alert lifecycle (``alerts``/``alert_log``) and the
configured sinks, exactly as in a worker or a replay.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import click

from driftwatch.errors import ConfigError
from driftwatch.events import UTC


def _parse_at(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--at {text!r}: expected an RFC 3339 time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _report(monitor: Any, alerts: list[Any], verbose: bool) -> None:
    result = monitor.last_result
    if result is None:
        click.echo("no pass due (no data, or the watermark has not reached a new pass)")
        return
    decisions = ", ".join(f"{k} {v}" for k, v in sorted(result.decisions.items()))
    click.echo(
        f"pass {result.at.isoformat()}: {result.tested} tests, family {result.family_size}, "
        f"{decisions or 'nothing tested'}; {len(result.findings)} findings, "
        f"{len(alerts)} alert changes, {result.total_seconds:.2f}s"
    )
    if verbose:
        for name, secs in sorted(result.seconds.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {name:<16} {secs:8.3f}s")
    for alert in alerts:
        labels = alert.labels
        click.echo(
            f"  {alert.status:<8} {labels.get('severity', ''):<8} {labels.get('alertname', ''):<32}"
            f" {labels.get('segment', '')}: {alert.annotations.get('summary', '')}"
        )


@click.command("monitor")
@click.option("--once", is_flag=True, help="Run the due pass once and exit.")
@click.option("--interval", type=float, default=None, help="Run every S wall-clock seconds.")
@click.option("--at", "at_text", default=None, help="Pass time (RFC 3339) for --once.")
@click.option("--iterations", type=int, default=0, help="With --interval: stop after N rounds.")
@click.option(
    "--alerts-out", type=click.Path(dir_okay=False), default=None, help="Also write JSONL."
)
@click.option("-v", "--verbose", is_flag=True, help="Print the time per detector.")
@click.pass_obj
def monitor(
    c: Any,
    once: bool,
    interval: float | None,
    at_text: str | None,
    iterations: int,
    alerts_out: str | None,
    verbose: bool,
) -> None:
    """Run the per-segment detectors on the stored transactions and raise alerts."""
    from driftwatch.assemble import build_pipeline, store_from
    from driftwatch.monitors.monitor import Monitor

    if once == (interval is not None):
        raise ConfigError("give exactly one of --once and --interval S")
    if interval is not None and interval <= 0:
        raise ConfigError(f"--interval {interval}: must be > 0")
    settings = c.settings
    store = store_from(settings)
    pipeline = build_pipeline(settings, store, alerts_out=Path(alerts_out) if alerts_out else None)
    mon = next(s for s in pipeline.clock_stages if isinstance(s, Monitor))
    lateness = dt.timedelta(seconds=settings.watermark_delay_s)
    try:
        if once:
            at = _parse_at(at_text)
            if at is None:
                newest = store.max_event_time()
                if newest is None:
                    click.echo("store is empty: nothing to monitor")
                    return
                at = newest - lateness
            alerts = pipeline.advance(at)
            _report(mon, alerts, verbose)
            return
        assert interval is not None
        rounds = 0
        while True:
            newest = store.max_event_time()
            if newest is not None:
                before = mon.passes
                alerts = pipeline.advance(newest - lateness)
                if mon.passes > before:
                    _report(mon, alerts, verbose)
            rounds += 1
            if iterations and rounds >= iterations:
                break
            time.sleep(interval)
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        click.echo("stopped")
    finally:
        pipeline.close()
