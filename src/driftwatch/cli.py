"""The ``driftwatch`` command line.

Every command reads the effective settings (defaults < ``driftwatch.toml`` <
``DRIFTWATCH_*`` environment < flags); ``driftwatch config`` shows them.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from driftwatch.context import Ctx, pass_ctx
from driftwatch.errors import DriftwatchError
from driftwatch.settings import Settings

#: Subcommands defined in other modules, imported only when run or asked for their help:
#: name -> ("module:attr", one-line help shown by ``driftwatch --help``). A test checks
#: each line against the command's own docstring.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "driftwatch.demo_command:demo",
        "Run the reference backdoor attack (sc013) through Kafka, a worker, the rules...",
    ),
    "worker": (
        "driftwatch.streaming.command:worker",
        "Consume the topics and run validation, storage, rules and (on the leader) the...",
    ),
    "topics": (
        "driftwatch.streaming.command:topics",
        "Manage the driftwatch Kafka topics.",
    ),
    "simulate": (
        "driftwatch.simulate.command:simulate",
        "Generate realistic scored traffic with known ground truth from SCENARIO.",
    ),
    "monitor": (
        "driftwatch.monitors.command:monitor",
        "Run the per-segment detectors on the stored transactions and raise alerts.",
    ),
    "rules": (
        "driftwatch.rules.command:rules",
        "Check, list and backtest rule packs (YAML).",
    ),
    "segments": (
        "driftwatch.api.commands:segments",
        "Per-segment breakdown: volume, amount, scores, decision rates, labels, fraud...",
    ),
    "alerts": (
        "driftwatch.api.commands:alerts",
        "List alerts and show one with its evidence rows.",
    ),
    "report": (
        "driftwatch.report.command:report",
        "Write a self-contained HTML page with, for every segment that alerted, its...",
    ),
    "sql": (
        "driftwatch.api.sql_command:sql",
        "Run one read-only SQL query (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN) and print...",
    ),
    "secure": (
        "driftwatch.secure_command:secure",
        "Credentials of a deployment: the read-only ClickHouse user, web configs.",
    ),
    "training": (
        "driftwatch.training.command:training",
        "Training-data integrity: manifests, verification, snapshot scans.",
    ),
    "gate": (
        "driftwatch.gate.command:gate",
        "Gate a CHALLENGER against the CHAMPION (contract: scorer.md); exit 0/1/2.",
    ),
    "api": (
        "driftwatch.api.commands:api",
        "Serve the read-only HTTP API (/healthz, /metrics, /alerts, /segments,...",
    ),
}


class _Group(click.Group):
    """A group that prints driftwatch errors as one line instead of a traceback, and
    imports the subcommands of :data:`LAZY_COMMANDS` only when they are used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module, _, attr = LAZY_COMMANDS[cmd_name][0].partition(":")
            command = getattr(importlib.import_module(module), attr)
            if not isinstance(command, click.Command):  # pragma: no cover - a wiring bug
                raise TypeError(f"{LAZY_COMMANDS[cmd_name][0]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS and name not in self.commands:
                rows.append((name, LAZY_COMMANDS[name][1]))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

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
    except DriftwatchError as exc:  # a bad setting is a usage error: exit 2, like click's
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
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
    if as_json:
        click.echo(json.dumps(c.settings.masked_values(), indent=2))
        return
    rows = c.settings.masked()
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
    from driftwatch.assemble import read_store_from
    from driftwatch.store.schema import applied_versions, migrations

    store = read_store_from(c.settings)
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




if __name__ == "__main__":  # pragma: no cover
    main()
