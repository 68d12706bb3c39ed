"""``driftwatch training scan``: compare a new training snapshot with the previous one.

Runs the aggregate checks (:mod:`.checks`) and the poisoning scan
(:mod:`.poisoning`) and decides the verdict: ``block`` when any finding blocks
(a record-count change over the tolerance that is significant, an overall
label-share anomaly, a poisoned conjunction), ``pass`` otherwise. The JSON form is
the contract's (``training.md``), with figures and record lists as extensions.

>>> import tempfile
>>> from driftwatch.simulate.training_data import write_snapshot
>>> with tempfile.TemporaryDirectory() as d:
...     _ = write_snapshot(f"{d}/old", seed=1, days=0.25, rate=0.5)
...     _ = write_snapshot(f"{d}/new", seed=2, days=0.25, rate=0.5)
...     report = scan(f"{d}/new", f"{d}/old")
>>> report.verdict, report.records["new"] > 10_000
('pass', True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftwatch.training import checks
from driftwatch.training.checks import CheckConfig
from driftwatch.training.findings import ScanFinding
from driftwatch.training.label_slices import label_share_slices
from driftwatch.training.poisoning import PoisonConfig, poisoning_scan
from driftwatch.training.records import read_snapshot

_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class ScanReport:
    """The outcome of :func:`scan`."""

    verdict: str
    records: dict[str, int]
    findings: tuple[ScanFinding, ...]
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        return self.verdict == "block"

    def as_dict(self) -> dict[str, Any]:
        """The contract's JSON object (plus ``figures``)."""
        return {"verdict": self.verdict, "records": self.records,
                "findings": [f.as_dict() for f in self.findings], "figures": self.figures}


def scan(new_dir: str | Path, baseline_dir: str | Path, *,
         check_config: CheckConfig | None = None,
         poison_config: PoisonConfig | None = None) -> ScanReport:
    """Read both snapshots and run every check (see the module doc).

    Raises
    ------
    SnapshotError
        When a directory is missing or holds no data file.
    """
    t0 = time.perf_counter()
    old = read_snapshot(baseline_dir)
    new = read_snapshot(new_dir)
    t_read = time.perf_counter() - t0
    cfg = check_config or CheckConfig()
    found: list[ScanFinding] = []
    found += checks.bad_records(new.bad, new.bad_total, "new", cfg)
    found += checks.bad_records(old.bad, old.bad_total, "baseline", cfg)
    nf, of = new.frame, old.frame
    found += checks.record_count(nf, of, cfg)
    found += checks.records_per_day(nf, of, cfg)
    found += checks.records_per_segment(nf, of, cfg)
    found += checks.label_share(nf, of, cfg)
    found += label_share_slices(nf, of, alpha=cfg.alpha,
                                min_support=(poison_config or PoisonConfig()).min_support)
    found += checks.label_sources(nf, of, cfg)
    found += checks.new_values(nf, of, cfg)
    poison, figures = poisoning_scan(nf, of, poison_config or PoisonConfig())
    found += poison
    ordered = sorted(found, key=lambda f: (not f.blocking, _ORDER[f.severity]))
    verdict = "block" if any(f.blocking for f in ordered) else "pass"
    seconds = time.perf_counter() - t0
    figures = {**figures, "read_seconds": round(t_read, 3), "seconds": round(seconds, 3),
               "bad_records": {"new": new.bad_total, "baseline": old.bad_total}}
    return ScanReport(verdict, {"baseline": len(of), "new": len(nf)}, tuple(ordered), figures)
