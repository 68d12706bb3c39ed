"""``driftwatch worker`` and ``driftwatch topics create``."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from driftwatch.context import Ctx

log = logging.getLogger(__name__)


@click.command()
@click.option("--app", "app_spec", default=None, help="faust app as module:attr "
              "(default: the worker_app setting, streams.main:app).")
@click.option("--app-dir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Directory put first on sys.path to import the app (holds streams/).")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Directory for the worker's local faust data (the worker_datadir setting).")
@click.option("--web-port", type=int, default=None, help="Port of /metrics and /healthz.")
@click.option("--web-host", default=None, help="Address of the web server.")
@click.option("--batch-size", type=int, default=None, help="Largest batch of events.")
@click.option("--group", "consumer_group", default=None, help="Kafka consumer group.")
@click.pass_obj
def worker(
    c: Ctx,
    app_spec: str | None,
    app_dir: str,
    workdir: str | None,
    web_port: int | None,
    web_host: str | None,
    batch_size: int | None,
    consumer_group: str | None,
) -> None:
    """Consume the topics and run validation, storage, rules and (on the leader) the
    monitors until SIGTERM; settings come from DRIFTWATCH_* variables and flags.

    On SIGTERM the batch in flight is stored and committed before the worker exits.
    """
    from driftwatch.streaming.app import export_settings, load_app, run_app

    overrides = {
        "worker_web_port": web_port,
        "worker_web_host": web_host,
        "batch_size": batch_size,
        "consumer_group": consumer_group,
        "worker_datadir": workdir,
    }
    settings = c.settings.replace(**{k: v for k, v in overrides.items() if v is not None})
    export_settings(settings, os.environ)
    app = load_app(app_spec or settings.worker_app, Path(app_dir).resolve())
    log.info(
        "worker starting",
        extra={
            "bootstrap": settings.kafka_bootstrap,
            "group": settings.consumer_group,
            "topic": settings.topic_scored,
            "web_port": settings.worker_web_port,
        },
    )
    run_app(app, settings)


@click.group()
def topics() -> None:
    """Manage the driftwatch Kafka topics."""


@topics.command("create")
@click.option("--partitions", type=int, default=None,
              help="Partitions per topic (default: the topic_partitions setting).")
@click.option("--replication", type=int, default=None,
              help="Replication factor (default: the topic_replication setting).")
@click.pass_obj
def topics_create(c: Ctx, partitions: int | None, replication: int | None) -> None:
    """Create the scored, labels, dead-letter and rule-hit topics (existing ones are
    left as they are)."""
    from driftwatch.streaming.topics import create_topics, topic_specs

    try:
        specs = topic_specs(c.settings, partitions, replication)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    outcome = asyncio.run(create_topics(c.settings, specs))
    for spec in specs:
        click.echo(f"{spec.name:<32} {spec.partitions:>4} partitions  {outcome[spec.name]}")
