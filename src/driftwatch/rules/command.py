"""``driftwatch rules``: check, list and backtest rule packs.

``check [PATHS] [--events FILE]``
    Parse and type-check every pack (default: the configured ``rules_dirs``),
    compile each rule to SQL, and run its examples. Prints one line per problem as
    ``file:line:col: rule <id>: message`` and exits 1 if there is any. Then the
    field coverage of every rule: the optional fields it needs and the share of
    events carrying them -- over the packs' own example events, or over ``--events``
    (a JSON-lines file of scored events, e.g. ``driftwatch simulate --out``).
``list [PATHS]``
    One line per rule: id, version, severity, mode, reason code, pack and SHA-256
    (``--json``: also the fields it reads and the optional ones it needs).
``backtest RULES --since T [--until T] [--format table|json]``
    Would-be hits of each rule over the stored history (store from the global
    ``--store``/``--database``), split into fraud / legitimate / unlabelled per day,
    and what each adds beyond the model, with each rule's field coverage over the period.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import TYPE_CHECKING

import click

from driftwatch.errors import DriftwatchError
from driftwatch.rules.check import run_examples
from driftwatch.rules.coverage import FieldCoverage, coverage_table, fields_read, needs_text
from driftwatch.rules.pack import RuleLoadError, RuleSet, load_rules
from driftwatch.rules.sql import compile_rule

if TYPE_CHECKING:
    from driftwatch.context import Ctx
    from driftwatch.store.client import Store


def _paths(c: Ctx, paths: tuple[str, ...]) -> list[str]:
    return list(paths) or c.settings.list_setting("rules_dirs")


def _load(c: Ctx, paths: tuple[str, ...]) -> RuleSet:
    return load_rules(_paths(c, paths), c.settings.rule_state_horizon_s * 1000)


def _time(store: Store, value: str, name: str) -> dt.datetime:
    """An RFC 3339 time, a date, or a duration (``7d``) counted back from the newest
    stored event: the same syntax as ``segments`` and ``alerts``."""
    from driftwatch.api.params import ParamError, parse_time
    from driftwatch.api.queries import resolve_time

    try:
        parsed = parse_time(name, value)
    except ParamError as exc:
        raise click.BadParameter(exc.message, param_hint=name) from None
    out = resolve_time(store, parsed)
    assert out is not None
    return out


@click.group("rules")
def rules() -> None:
    """Check, list and backtest rule packs (YAML)."""


def _coverage(ruleset: RuleSet, events_path: str | None, warn_below: float) -> str:
    """The coverage table over a JSON-lines file, or over every example event."""
    from driftwatch.events import parse_scored_batch

    cov = FieldCoverage(ruleset.rules, warn_below=0.0)
    if events_path is None:
        source = "the packs' example events"
        for rule in ruleset.rules:
            for ex in rule.examples:
                cov.update(parse_scored_batch(
                    [json.dumps(e).encode() for e in ex.events]).events)
    else:
        source = events_path
        with open(events_path, "rb") as fh:
            batch: list[bytes] = []
            for line in fh:
                batch.append(line)
                if len(batch) >= 10_000:
                    cov.update(parse_scored_batch(batch).events)
                    batch = []
            cov.update(parse_scored_batch(batch).events)
    return (f"field coverage over {source} ({cov.events:,} valid events):\n"
            + coverage_table(cov.rules, warn_below=warn_below))


@rules.command("check")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--events", "events_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="JSON lines of scored events to measure field coverage on.")
@click.pass_obj
def check(c: Ctx, paths: tuple[str, ...], events_path: str | None) -> None:
    """Parse, type-check and run the examples of rule packs (default: rules_dirs)."""
    try:
        ruleset = _load(c, paths)
    except RuleLoadError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        click.echo(f"FAILED: {len(exc.problems)} problem(s)", err=True)
        sys.exit(1)
    failures = 0
    examples = 0
    for pack in ruleset.packs:
        for rule in pack.rules:
            try:
                compile_rule(rule)
            except DriftwatchError as exc:  # pragma: no cover - compiler covers the checker
                failures += 1
                click.echo(f"{rule.path}:{rule.line}: rule {rule.id}: SQL: {exc}", err=True)
            for result, ex in zip(run_examples(rule, ruleset.horizon_ms), rule.examples,
                                  strict=True):
                examples += 1
                if result.ok:
                    continue
                failures += 1
                detail = f": {result.detail}" if result.detail else ""
                shown = f"; aggregates at the last event: {result.evidence}" if (
                    result.evidence) else ""
                click.echo(
                    f"{rule.path}:{ex.line}: rule {rule.id}: example {ex.name!r}: expected "
                    f"{result.expect}, got {result.got}{detail}{shown}",
                    err=True,
                )
        click.echo(f"ok {pack.path} sha256={pack.sha256} rules={len(pack.rules)}")
    n_rules = len(ruleset.rules)
    if failures:
        click.echo(f"FAILED: {failures} problem(s) in {n_rules} rules", err=True)
        sys.exit(1)
    click.echo(f"{n_rules} rules in {len(ruleset.packs)} packs; {examples} examples passed")
    click.echo(_coverage(ruleset, events_path, c.settings.rule_coverage_warn_below))


@rules.command("list")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@click.pass_obj
def list_rules(c: Ctx, paths: tuple[str, ...], as_json: bool) -> None:
    """List the rules of the packs (default: rules_dirs)."""
    ruleset = _load(c, paths)
    for rule in ruleset.rules:
        if as_json:
            click.echo(json.dumps({
                "id": rule.id, "version": rule.version, "severity": rule.severity,
                "mode": rule.mode, "reason_code": rule.reason_code, "pack": rule.pack,
                "path": rule.path, "sha256": rule.pack_sha256, "when": rule.when,
                "fields": list(fields_read(rule)), "needs": needs_text(rule),
                "case_alert": rule.case_alert,
            }))
        else:
            click.echo(
                f"{rule.id:<32} v{rule.version:<3} {rule.severity:<8} {rule.mode:<8} "
                f"{rule.reason_code:<28} {rule.pack} ({rule.pack_sha256[:12]})"
            )


@rules.command("backtest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--since", required=True, help="Start: RFC 3339 time, date (UTC if no offset) "
              "or a duration before the newest stored event, e.g. 7d, 6h, 30m.")
@click.option("--until", default=None, help="End, exclusive, same syntax (default: newest "
              "stored event).")
@click.option("--rule", "rule_ids", multiple=True, help="Only these rule ids.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def backtest_cmd(
    c: Ctx, paths: tuple[str, ...], since: str, until: str | None, rule_ids: tuple[str, ...],
    fmt: str,
) -> None:
    """Backtest the rules of RULES (files or directories) against stored history."""
    from driftwatch.assemble import read_store_from
    from driftwatch.rules.backtest import backtest

    ruleset = _load(c, paths)
    chosen = [ruleset.rule(i) for i in rule_ids] if rule_ids else list(ruleset.rules)
    store = read_store_from(c.settings)
    start = _time(store, since, "--since")
    if until is None:
        newest = store.max_event_time()
        end = (newest + dt.timedelta(milliseconds=1)) if newest else start
    else:
        end = _time(store, until, "--until")
    if end <= start:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    report = backtest(store, chosen, start, end)
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.table(warn_below=c.settings.rule_coverage_warn_below))
