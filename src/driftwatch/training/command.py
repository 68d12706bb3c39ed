"""``driftwatch training manifest | verify | scan | record-run`` (contract ``training.md``).

Exit codes: ``verify`` 0 = unchanged, 1 = a file changed, was added or removed
(each named); ``scan`` 0 = pass, 1 = blocking findings; 2 = usage or input error
for every command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from driftwatch.context import Ctx


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _write_json(path: str, obj: Any) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")


def _load_manifest(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _fail(f"{path}: cannot read the manifest: {exc}")
    if not isinstance(data, dict):
        _fail(f"{path}: a manifest is a JSON object")
    out: dict[str, Any] = data
    return out


@click.group("training")
def training() -> None:
    """Training-data integrity: manifests, verification, snapshot scans."""


@training.command("manifest")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the manifest here (default: print it).")
def manifest_cmd(directory: str, out: str | None) -> None:
    """SHA-256 and size of every file, record and label counts, label share per segment."""
    from driftwatch.training.manifest import build_manifest
    from driftwatch.training.records import SnapshotError

    try:
        m = build_manifest(directory)
    except SnapshotError as exc:
        _fail(str(exc))
    if out:
        _write_json(out, m)
        click.echo(f"wrote {out}: {len(m['files'])} files, {m['records']:,} records, "
                   f"sha256 {m['manifest_sha256']}")
    else:
        click.echo(json.dumps(m, indent=1))


@training.command("verify")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--manifest", "manifest_path", required=True,
              type=click.Path(dir_okay=False), help="The manifest to verify against.")
def verify_cmd(directory: str, manifest_path: str) -> None:
    """Exit 1 naming every file changed, added or removed since the manifest; 0 otherwise."""
    from driftwatch.training.manifest import verify
    from driftwatch.training.records import SnapshotError

    m = _load_manifest(manifest_path)
    try:
        result = verify(directory, m)
    except (SnapshotError, ValueError) as exc:
        _fail(str(exc))
    for p in result.problems:
        click.echo(f"{p.change:<16} {p.file}  {p.detail}")
    if not result.ok:
        click.echo(f"FAILED: {len(result.problems)} problem(s) in {directory}")
        sys.exit(1)
    click.echo(f"OK: {result.files} files match {manifest_path}")


@training.command("scan")
@click.argument("new_dir", type=click.Path(file_okay=False))
@click.option("--baseline", "baseline_dir", required=True, type=click.Path(file_okay=False),
              help="The previous snapshot.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write the contract's JSON here.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), default=None,
              help="Write an HTML page here.")
@click.pass_obj
def scan_cmd(c: Ctx, new_dir: str, baseline_dir: str, json_out: str | None,
             html_out: str | None) -> None:
    """Compare NEW_DIR with the baseline: counts, label shares, sources, new values and
    the poisoning scan. Exit 0 = pass, 1 = blocking findings, 2 = input error."""
    from driftwatch.training.checks import CheckConfig
    from driftwatch.training.html import render
    from driftwatch.training.poisoning import PoisonConfig
    from driftwatch.training.records import SnapshotError
    from driftwatch.training.risk import RiskRule
    from driftwatch.training.scan import scan

    s = c.settings
    try:
        checks = CheckConfig(
            count_tolerance=s.training_count_tolerance, alpha=s.training_alpha,
            label_share_tolerance=s.training_label_share_tolerance,
            bulk=s.training_bulk_records, listed=s.training_listed_records)
        poison = PoisonConfig(
            alpha=s.training_alpha, min_support=s.training_min_support,
            max_depth=s.training_max_depth, listed=s.training_listed_records,
            rule=RiskRule(min_flags=s.training_fraud_like_flags))
        report = scan(new_dir, baseline_dir, check_config=checks, poison_config=poison)
    except (SnapshotError, ValueError) as exc:
        _fail(str(exc))
    data = report.as_dict()
    if json_out:
        _write_json(json_out, data)
    if html_out:
        Path(html_out).parent.mkdir(parents=True, exist_ok=True)
        Path(html_out).write_text(render(data), encoding="utf-8")
    click.echo(f"verdict {report.verdict}: baseline {report.records['baseline']:,} records, "
               f"new {report.records['new']:,} ({report.figures.get('seconds', 0):.1f} s)")
    for f in report.findings:
        if f.severity != "info" or f.blocking:
            mark = "BLOCK" if f.blocking else f.severity
            click.echo(f"  [{mark}] {f.check}: {f.summary}")
            for r in f.records[:5]:
                click.echo(f"      {r.get('file')}:{r.get('line', r.get('row'))}")
    sys.exit(1 if report.blocking else 0)


@training.command("record-run")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False),
              help="The training snapshot the model was trained on.")
@click.option("--manifest", "manifest_path", required=True, type=click.Path(dir_okay=False))
@click.option("--artifact", type=click.Path(dir_okay=False), default=None,
              help="The model artifact about to be loaded or promoted.")
@click.option("--trained-sha256", default=None,
              help="SHA-256 of the artifact as the training run wrote it.")
@click.option("--scan-json", type=click.Path(dir_okay=False), default=None,
              help="The JSON of `training scan` for this snapshot.")
@click.option("--promote", is_flag=True, help="This record is a promotion.")
@click.option("--approved-by", default="", help="Who approved the promotion.")
@click.option("--out", default="training_runs.jsonl", show_default=True,
              type=click.Path(dir_okay=False), help="Append the run record here.")
@click.option("--alerts-out", type=click.Path(dir_okay=False), default=None,
              help="Also write the alerts as JSON lines (alert contract).")
@click.pass_obj
def record_run_cmd(c: Ctx, directory: str, manifest_path: str, artifact: str | None,
                   trained_sha256: str | None, scan_json: str | None, promote: bool,
                   approved_by: str, out: str, alerts_out: str | None) -> None:
    """Record a training run or promotion; alert (Alertmanager, webhook, --alerts-out) on an
    unverified manifest, a blocking scan, an artifact hash mismatch or a promotion without
    approval. Exit 1 when an alert was raised."""
    from driftwatch.training.runs import deliver, run_record

    m = _load_manifest(manifest_path)
    scan_data = _load_manifest(scan_json) if scan_json else None
    record, findings = run_record(directory, m, artifact=artifact,
                                  trained_sha256=trained_sha256, scan=scan_data,
                                  promote=promote, approved_by=approved_by)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
    sent = deliver(c.settings, findings, alerts_out)
    click.echo(f"recorded {record['kind']} {record['run_id']} in {out}; {sent} alert(s)")
    for f in findings:
        click.echo(f"  [{f.severity}] {f.alertname}: {f.summary}")
    sys.exit(1 if findings else 0)
