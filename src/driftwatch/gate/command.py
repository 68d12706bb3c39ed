"""``driftwatch gate``: compare a challenger with the champion before promotion.

Exit status: 0 = pass (promote), 1 = blocking findings, 2 = usage or scorer error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from driftwatch.errors import DriftwatchError

if TYPE_CHECKING:
    from driftwatch.context import Ctx


@click.command("gate")
@click.option("--champion", required=True,
              help="Champion scorer: MODULE:ATTR, file.py:ATTR or URL.")
@click.option("--challenger", required=True, help="Challenger scorer (same forms).")
@click.option("--traffic", required=True, type=click.Path(dir_okay=False),
              help="Recent traffic: scored-transaction JSON lines (.gz too).")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="Labels JSONL: recall of both models on the traffic's labelled fraud.")
@click.option("--training", type=click.Path(file_okay=False), default=None,
              help="Training snapshot directory: widens the probe vocabulary.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write the contract JSON here.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), default=None,
              help="Write a self-contained HTML page here.")
@click.option("--champion-sha256", default=None, help="Expected SHA-256 of the champion artifact.")
@click.option("--challenger-sha256", default=None,
              help="Expected SHA-256 of the challenger artifact.")
@click.option("--scenarios", "scenario_files", multiple=True, type=click.Path(dir_okay=False),
              help="Scenario YAML files (default: the shipped ones). Repeatable.")
@click.option("--store-trend", is_flag=True,
              help="Read recall per model version from the configured store (--store).")
@click.pass_obj
def gate(c: Ctx, champion: str, challenger: str, traffic: str, labels: str | None,
         training: str | None, json_out: str | None, html_out: str | None,
         champion_sha256: str | None, challenger_sha256: str | None,
         scenario_files: tuple[str, ...], store_trend: bool) -> None:
    """Gate a CHALLENGER against the CHAMPION (contract: scorer.md); exit 0/1/2."""
    from driftwatch.gate import report
    from driftwatch.gate import scenarios as scen
    from driftwatch.gate.inputs import read_events, read_labels, read_training
    from driftwatch.gate.run import GateOptions, run_gate
    from driftwatch.gate.scorer import open_scorer

    s = c.settings
    try:
        common = {"batch_size": s.gate_batch_size, "max_calls": s.gate_request_budget,
                  "token": s.scorer_token, "timeout_s": s.gate_http_timeout_s,
                  "retries": s.gate_http_retries}
        champ = open_scorer(champion, sha256=champion_sha256, **common)  # type: ignore[arg-type]
        chall = open_scorer(challenger, sha256=challenger_sha256, **common)  # type: ignore[arg-type]
        events, rejected = read_events(traffic, s.gate_max_events)
        train = read_training(training, s.gate_max_events) if training else []
        known = read_labels(labels, s.gate_max_events) if labels else None
        scenario_list = scen.load([Path(p) for p in scenario_files] or None)
        store = None
        if store_trend:
            from driftwatch.store.client import open_store

            store = open_store(s.store_dsn, s.database, init=False)
        options = GateOptions(
            threshold=s.decision_threshold, probe_budget=s.gate_probe_budget,
            fixtures=s.gate_fixtures, strata=s.gate_strata, max_values=s.gate_max_values,
            min_drop=s.gate_min_drop,
            flip_share=s.gate_flip_share, alpha=s.gate_alpha, fdr_q=s.fdr_q,
            trend_versions=s.gate_trend_versions, trend_p=s.gate_trend_p,
            label_maturity_s=s.label_maturity_s,
        )
        result = run_gate(champ, chall, events, training=train, scenario_list=scenario_list,
                          store=store, labels=known, rejected=rejected, options=options)
    except DriftwatchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(report.terminal(result), nl=False)
    if json_out:
        report.write_json(result, json_out)
    if html_out:
        report.write_html(result, html_out)
    sys.exit(1 if result.verdict == "block" else 0)
