"""The ``driftwatch`` command line.

Every command reads the effective settings (defaults < ``driftwatch.toml`` <
``DRIFTWATCH_*`` environment < flags); ``driftwatch config`` shows them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from driftwatch.errors import DriftwatchError
from driftwatch.settings import Settings


class Ctx:
    """What every subcommand receives: the effective settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings


pass_ctx = click.make_pass_decorator(Ctx)


class _Group(click.Group):
    """A group that prints driftwatch errors as one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DriftwatchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML settings file (default: $DRIFTWATCH_CONFIG or ./driftwatch.toml).",
)
@click.option("--store", "store_dsn", default=None, help="Store DSN (overrides the setting).")
@click.option("--database", default=None, help="ClickHouse database (overrides the setting).")
@click.version_option(package_name="driftwatch")
@click.pass_context
def main(
    ctx: click.Context, config_file: str | None, store_dsn: str | None, database: str | None
) -> None:
    """driftwatch: streaming drift and attack detection for fraud-scoring models."""
    try:
        settings = Settings.load(
            config_file=config_file if config_file else True,
            overrides={"store_dsn": store_dsn, "database": database},
        )
    except DriftwatchError as exc:
        raise click.ClickException(str(exc)) from exc
    from driftwatch.logs import setup_logging

    setup_logging(settings.log_level, settings.log_format)
    ctx.obj = Ctx(settings)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--markdown", is_flag=True, help="Print the documentation table of all settings.")
@pass_ctx
def config(c: Ctx, as_json: bool, markdown: bool) -> None:
    """Print the effective settings (secrets masked) with their environment variables."""
    if markdown:
        click.echo(Settings.markdown_table(), nl=False)
        return
    rows = c.settings.masked()
    if as_json:
        click.echo(json.dumps({name: value for name, _, value, _ in rows}, indent=2))
        return
    width = max(len(r[1]) for r in rows)
    for _name, env, value, doc in rows:
        click.echo(f"{env:<{width}}  {value!s:<40}  {doc}")


@main.group()
def db() -> None:
    """Manage the ClickHouse schema."""


@db.command("init")
@pass_ctx
def db_init(c: Ctx) -> None:
    """Create the database and apply pending migrations (safe to run again)."""
    from driftwatch.assemble import store_from
    from driftwatch.store.schema import applied_versions

    store = store_from(c.settings, init=False)
    applied = store.init()
    for name in applied:
        click.echo(f"applied {name}")
    click.echo(
        f"schema up to date in database {store.database} "
        f"({len(applied_versions(store))} migrations applied)"
    )


@db.command("status")
@pass_ctx
def db_status(c: Ctx) -> None:
    """Show applied migrations and row counts of the main tables."""
    from driftwatch.assemble import store_from
    from driftwatch.store.schema import applied_versions, migrations

    store = store_from(c.settings, init=False)
    done = applied_versions(store)
    for mig in migrations():
        mark = "applied" if mig.version in done else "pending"
        click.echo(f"{mig.version:04d}_{mig.name:<30} {mark}")
    for table in ("scored_transactions", "labels", "rejected_events"):
        click.echo(f"{table:<24} {store.count(table):>12,} rows")


@main.command()
@click.argument("events", type=click.Path(exists=True, dir_okay=False))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="Labels JSONL.")
@click.option(
    "--alerts-out",
    type=click.Path(dir_okay=False),
    help="Write one JSON line per alert state change (alert contract).",
)
@click.option(
    "--batch-size", type=int, default=None, help="Events per batch [replay_batch_size]."
)
@pass_ctx
def replay(
    c: Ctx, events: str, labels: str | None, alerts_out: str | None, batch_size: int | None
) -> None:
    """Replay EVENTS.jsonl[.gz] (and labels) through validation, storage and detection."""
    from driftwatch.assemble import build_pipeline, store_from
    from driftwatch.sources.replay import replay as run_replay
    from driftwatch.sources.replay import terminal_progress

    settings = c.settings
    store = store_from(settings)
    pipeline = build_pipeline(settings, store, alerts_out=alerts_out)
    try:
        result = run_replay(
            pipeline,
            events,
            labels,
            batch_size=batch_size or settings.replay_batch_size,
            progress=terminal_progress(),
        )
    finally:
        pipeline.close()
    if sys.stderr.isatty():
        click.echo("", err=True)
    s = pipeline.stats
    rate = result.events / result.seconds if result.seconds else 0.0
    click.echo(f"events read     {result.events:>12,}")
    click.echo(f"accepted        {s.accepted:>12,}")
    click.echo(f"rejected        {s.rejected_total:>12,}")
    for reason, n in s.rejected.most_common():
        click.echo(f"  {reason:<40} {n:>8,}")
    click.echo(f"labels          {s.labels:>12,}")
    click.echo(f"rule hits       {s.rule_hits:>12,}")
    click.echo(f"alert changes   {len(result.alerts):>12,}")
    click.echo(f"seconds         {result.seconds:>12.2f}")
    click.echo(f"events/s        {rate:>12,.0f}")
    click.echo(f"store           {Path(settings.store_dsn).name} database {store.database}")
    if alerts_out:
        click.echo(f"alerts written  {alerts_out}")


# Commands of the other faces and subsystems. Imported after `main` exists because
# their modules refer back to this one (``Ctx``) for typing only.
from driftwatch.api.commands import alerts as _alerts  # noqa: E402
from driftwatch.api.commands import api as _api  # noqa: E402
from driftwatch.api.commands import segments as _segments  # noqa: E402
from driftwatch.demo_command import demo as _demo  # noqa: E402
from driftwatch.gate.command import gate as _gate  # noqa: E402
from driftwatch.monitors.command import monitor as _monitor  # noqa: E402
from driftwatch.report.command import report as _report  # noqa: E402
from driftwatch.rules.command import rules as _rules  # noqa: E402
from driftwatch.simulate.command import simulate as _simulate  # noqa: E402
from driftwatch.streaming.command import topics as _topics  # noqa: E402
from driftwatch.streaming.command import worker as _worker  # noqa: E402

for _command in (
    _demo, _worker, _topics, _simulate, _monitor, _rules, _segments, _alerts, _report, _api,
    _gate,
):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
