"""``driftwatch demo`` (the command; the work is in :mod:`driftwatch.demo`)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False), default=".driftwatch/demo",
              show_default=True, help="Where the embedded store, logs and report go.")
@click.option("--seed", type=int, default=1, show_default=True, help="Simulator seed.")
@click.option("--days", type=float, default=1.5, show_default=True,
              help="Simulated days; the scenario's 3-day schedule (v47 deployed at the end "
              "of day 1, 247 triggers over the next 48 h) is compressed to fit.")
@click.option("--rate", type=float, default=0.5, show_default=True,
              help="Transactions per second of event time (the scenario's own default is 2; "
              "the demo runs lighter so it ends within ~3 minutes on 2 cores).")
@click.option("--produce-rate", type=float, default=0.0, show_default=True,
              help="Events per second of wall time to produce (0: as fast as possible).")
@click.option("--bootstrap", default="",
              help="Use this Kafka instead of starting the test broker.")
@click.option("--store", "store_dsn", default="",
              help="Use this ClickHouse DSN instead of embedded ClickHouse.")
@click.option("--database", default="demo", show_default=True, help="ClickHouse database.")
@click.option("--alertmanager-url", default="",
              help="Also deliver alerts to this Alertmanager.")
@click.option("--timeout", "timeout_s", type=float, default=600.0, show_default=True,
              help="Give up when the worker has made no progress (events stored, monitor "
                   "passes) for this many seconds.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the summary as JSON to this file.")
def demo(workdir: str, seed: int, days: float, rate: float,
         produce_rate: float, bootstrap: str, store_dsn: str, database: str,
         alertmanager_url: str, timeout_s: float, json_out: str | None) -> None:
    """Run the reference backdoor attack (sc013) through Kafka, a worker, the rules and
    the monitors, show alerts live, and score every signal against the ground truth."""
    from driftwatch.demo import DemoOptions, run_demo

    summary = run_demo(
        DemoOptions(
            workdir=Path(workdir), seed=seed, days=days, rate=rate,
            produce_rate=produce_rate, bootstrap=bootstrap, store_dsn=store_dsn,
            database=database, alertmanager_url=alertmanager_url, timeout_s=timeout_s,
        ),
        echo=click.echo,
    )
    if json_out:
        Path(json_out).write_text(json.dumps(summary, indent=1) + "\n")
