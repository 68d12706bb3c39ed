"""The ``driftwatch simulate`` command (registered in :mod:`driftwatch.cli`)."""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Any

import click

from driftwatch.errors import DriftwatchError


def _settings(ctx: click.Context) -> Any:
    obj = ctx.find_root().obj
    settings = getattr(obj, "settings", None)
    if settings is None:
        from driftwatch.settings import Settings

        settings = Settings.load()
    return settings


def _parse_start(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    from driftwatch.simulate.scenario import parse_time

    return parse_time(value)


@click.command("simulate")
@click.argument("scenario", required=False)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (>= 0).")
@click.option("--days", type=float, default=None, help="Days of event time (scenario default).")
@click.option("--rate", type=float, default=None,
              help="Mean transactions per second of event time (scenario default).")
@click.option("--start", default=None, help="Start of event time, RFC 3339 (scenario default).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write events.jsonl, labels.jsonl and truth.json into this directory.")
@click.option("--bootstrap", default=None,
              help="Kafka HOST:PORT: produce events and labels to the configured topics.")
@click.option("--produce-rate", type=float, default=1000.0, show_default=True,
              help="Events per second of wall time when producing (0: as fast as possible).")
@click.option("--list", "list_only", is_flag=True, help="List the shipped scenarios and exit.")
@click.pass_context
def simulate(
    ctx: click.Context,
    scenario: str | None,
    seed: int,
    days: float | None,
    rate: float | None,
    start: str | None,
    out_dir: str | None,
    bootstrap: str | None,
    produce_rate: float,
    list_only: bool,
) -> None:
    """Generate realistic scored traffic with known ground truth from SCENARIO.

    SCENARIO is a shipped scenario name (see --list), a randomised variant
    (backdoor_variant:SEED, retrain_control:SEED) or a YAML file. The same
    seed gives byte-identical output.
    """
    from driftwatch.simulate import generate, list_scenarios, load_scenario, write

    try:
        if list_only:
            for name in list_scenarios():
                first = load_scenario(name).description.split(". ")[0]
                click.echo(f"{name:<22} {first}")
            click.echo(f"{'backdoor_variant:<seed>':<22} A backdoor with a trigger drawn per seed "
                       "(issue 21): one MCC or spread, any cents, prefix, age, amounts")
            click.echo(f"{'retrain_control:<seed>':<22} A version change with no backdoor "
                       "(benign retrain or global recalibration)")
            return
        if scenario is None:
            raise click.UsageError("SCENARIO is required (or --list)")
        if out_dir is None and bootstrap is None:
            raise click.UsageError("give --out DIR and/or --bootstrap HOST:PORT")
        began = time.monotonic()
        sim = generate(scenario, seed=seed, days=days, rate=rate, start=_parse_start(start))
        if out_dir is not None:
            paths = write(sim, out_dir)
            took = time.monotonic() - began
            click.echo(f"scenario        {sim.scenario.name} (seed {seed})")
            click.echo(f"event time      {sim.truth['start']} .. {sim.truth['end']}")
            click.echo(f"events          {sim.n_events:>12,}  {paths['events.jsonl']}")
            click.echo(f"labels          {len(sim.labels):>12,}  {paths['labels.jsonl']}")
            click.echo(f"truth           {'':>12}  {paths['truth.json']}")
            click.echo(f"seconds         {took:>12.2f}")
            click.echo(f"events/s        {sim.n_events / took if took else 0.0:>12,.0f}")
        if bootstrap is not None:
            from driftwatch.simulate.produce import produce

            settings = _settings(ctx)

            def show(done: int, total: int) -> None:
                if sys.stderr.isatty():
                    click.echo(f"\rproduced {done:,}/{total:,}", err=True, nl=False)

            result = produce(sim, bootstrap, topic_events=settings.topic_scored,
                             topic_labels=settings.topic_labels, rate=produce_rate,
                             progress=show)
            if sys.stderr.isatty():
                click.echo("", err=True)
            click.echo(f"produced        {result.events:>12,} events to {settings.topic_scored}")
            click.echo(f"                {result.labels:>12,} labels to {settings.topic_labels}")
            click.echo(f"wall seconds    {result.seconds:>12.2f} ({result.rate:,.0f} events/s)")
    except DriftwatchError as exc:
        raise click.ClickException(str(exc)) from exc
