"""The monitor: every interval of event time, run every detector over every segment.

:class:`Monitor` is the pipeline's clock stage. Passes sit on a fixed event-time grid
(multiples of ``monitor_interval_s`` since the epoch); when the watermark advances,
each pass whose time ``t`` is now covered runs once, evaluating windows that end at
``t``. A pass:

1. runs each due detector (one query per detector for the current window; the
   trailing reference slides incrementally), collecting columnar evaluations;
2. corrects all p-values of the pass together (Benjamini–Hochberg after Tarone's
   filter, see :mod:`driftwatch.monitors.family`) twice: at ``fdr_q`` (0.01) for
   *discoveries*, and at the much smaller ``alert_q`` (1e-4) for *alerts*. A pass
   controls false discoveries per pass (on clean traffic every discovery is false,
   so the chance that a pass has any is at most the level), but passes run every
   ``monitor_interval_s`` (300 s: 2,016 a week) over overlapping windows. A clean
   week therefore raises at most 2,016 x 1e-4 ≈ 0.2 false alerting passes at
   ``alert_q`` (union bound; overlapping windows repeat one false alarm over
   consecutive passes, so distinct false alerts lie between ~170 x 1e-4 ≈ 0.02,
   the disjoint hourly windows, and 0.2), and up to 2,016 x 0.01 ≈ 20 false
   discovery passes at ``fdr_q``. This holds only if every p-value is valid down to
   ``alert_q / m``; ``bench/calibration.py`` measures each test's false-positive
   rate and the whole monitor's false alerts per simulated week on clean traffic;
3. decides per row: ``alert`` when the row meets the detector's minimum counts and
   effect-size floor and is a discovery at ``alert_q`` -- or a discovery at
   ``fdr_q`` *corroborated* by a discovery of another detector on the same segment
   in the same pass (two independent detectors erring together on one segment at
   the same time is far rarer than either alone; an attack shows up in several
   signals at once). Warning; critical when the effect reaches the detector's
   critical effect and the adjusted p-value ``alert_q / 100``. ``sustain``
   when an already alerting segment stays clearly elevated (hysteresis: a firing
   alert is kept by weaker evidence than it took to open it), ``discovery`` when only
   the p-value passes, ``ok`` otherwise;
4. writes every evaluation to ``drift_results`` (one columnar insert per pass) and
   returns the findings for the alert book.

A monitor more than one pass behind runs in backfill mode
(:mod:`driftwatch.monitors.backfill`): the same passes, current windows read in blocks.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from driftwatch.alerts.model import Finding, Severity, fingerprint
from driftwatch.errors import ConfigError, StoreError
from driftwatch.events import EPOCH, UTC
from driftwatch.monitors.backfill import run_backfill
from driftwatch.monitors.base import Detector, Evaluations, PassContext
from driftwatch.monitors.family import tarone_bh
from driftwatch.monitors.registry import create
from driftwatch.monitors.results import add_rows
from driftwatch.monitors.segments import SegmentSpec, parse_segment
from driftwatch.pipeline import StageOutput
from driftwatch.settings import Settings
from driftwatch.store.client import Store

log = logging.getLogger(__name__)

SEVERITY_RANK = {"": 0, "info": 1, "warning": 2, "critical": 3}


@dataclass
class PassResult:
    """What one monitor pass did."""

    at: dt.datetime
    evaluations: list[Evaluations] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    decisions: dict[str, int] = field(default_factory=dict)
    family_size: int = 0
    tested: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        """Wall time of the whole pass."""
        return sum(self.seconds.values())


def parse_options(text: str) -> dict[str, dict[str, str]]:
    """``"cents.min_count=4, shadow.delta=0.4"`` → ``{"cents": {"min_count": "4"}, ...}``.

    >>> parse_options("cents.min_count=4, shadow.delta=0.4")
    {'cents': {'min_count': '4'}, 'shadow': {'delta': '0.4'}}
    """
    out: dict[str, dict[str, str]] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        name, dot, option = key.strip().partition(".")
        if not sep or not dot or not name or not option:
            raise ConfigError(f"detector_options: {item!r} is not detector.option=value")
        out.setdefault(name, {})[option.strip()] = value.strip()
    return out


class Monitor:
    """Per-segment detectors on an event-time grid (a pipeline clock stage).

    Parameters
    ----------
    store : Store
        An initialised store (reads ``scored_transactions``; writes ``drift_results``).
    settings : Settings
        Uses ``monitor_interval_s``, ``monitor_window_s``, ``reference_window_s``,
        ``segment_dimensions``, ``fdr_q``, ``alert_resolve_after``, ``reference_hold``,
        ``monitor_detectors`` and ``detector_options``.
    detectors : sequence of Detector, optional
        Default: the detectors named by ``monitor_detectors`` (all when empty).
    max_catchup : int
        At the first watermark, run at most this many passes of history (default 1).
    write_results : bool
        Write ``drift_results`` (default True).
    warmup_s : int, optional
        No findings from detectors that judge against a trailing baseline
        (``needs_history``) while the stored history is shorter than this (default: the
        smaller of ``reference_window_s`` and ``monitor_warmup_s``): references built from a
        few hours of traffic are not a baseline. Results are still written, with
        decision ``warmup``.
    on_pass : callable, optional
        Called with the pass time after every pass (e.g. the alert book's
        :meth:`~driftwatch.alerts.lifecycle.StoreAlertBook.passed`, so that detector
        alerts resolve on the monitor's clock).
    """

    name = "monitor"
    sustain_p: float = 0.01

    def __init__(
        self,
        store: Store,
        settings: Settings,
        detectors: Sequence[Detector] | None = None,
        *,
        max_catchup: int = 1,
        write_results: bool = True,
        warmup_s: int | None = None,
        on_pass: Callable[[dt.datetime], None] | None = None,
    ) -> None:
        if max_catchup < 1:
            raise ValueError(f"max_catchup={max_catchup!r}; allowed: >= 1")
        self.store = store
        self.settings = settings
        self.spec = SegmentSpec.parse(settings.segment_dimensions)
        if detectors is None:
            detectors = create(
                settings,
                self.spec,
                settings.list_setting("monitor_detectors"),
                parse_options(settings.detector_options),
            )
        self.detectors = list(detectors)
        self.interval_s = settings.monitor_interval_s
        self.max_catchup = max_catchup
        self.write_results = write_results
        self.on_pass = on_pass
        self.warmup_s = (
            min(settings.reference_window_s, settings.monitor_warmup_s)
            if warmup_s is None
            else int(warmup_s)
        )
        self._data_start: dt.datetime | None = None
        self._carried: dict[str, list[Finding]] = {}
        self.last_pass: dt.datetime | None = None
        self.passes = 0
        self.max_passes: int | None = None
        """Most passes one :meth:`on_watermark` runs (None: all due; a worker bounds it)."""
        self.detector_errors: Counter[str] = Counter()
        """Passes each detector failed (recorded and skipped; the others ran)."""
        self.seconds: defaultdict[str, float] = defaultdict(float)
        """Wall seconds per detector over every pass (and ``_decide``, ``_write``; in
        backfill ``_prefetch`` and ``_insert``): where the monitor's time goes."""
        self.last_result: PassResult | None = None
        self._active: dict[str, tuple[Severity, dt.datetime]] = {}
        self._alerting: dict[str, dt.datetime] = {}  # segment -> last warning/critical
        self.results_buffer: dict[str, list[Any]] | None = None
        """When set, :meth:`_write` collects the ``drift_results`` columns here (backfill)."""

    # -- clock stage ---------------------------------------------------------------
    def grid_floor(self, t: dt.datetime) -> dt.datetime:
        """The latest pass time at or before ``t``."""
        secs = math.floor((t - EPOCH).total_seconds())
        return EPOCH + dt.timedelta(seconds=secs - secs % self.interval_s)

    def due(self, watermark: dt.datetime, limit: int | None = None) -> list[dt.datetime]:
        """Pass times not yet run that the watermark now covers (the oldest ``limit``)."""
        first, latest = self._span(watermark)
        step = dt.timedelta(seconds=self.interval_s)
        out: list[dt.datetime] = []
        t = first
        while t <= latest and (limit is None or len(out) < limit):
            out.append(t)
            t += step
        return out

    def behind(self, watermark: dt.datetime) -> int:
        """How many passes the watermark covers that have not run yet."""
        first, latest = self._span(watermark)
        return max(0, (latest - first) // dt.timedelta(seconds=self.interval_s) + 1)

    def _span(self, watermark: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        latest = self.grid_floor(watermark)
        step = dt.timedelta(seconds=self.interval_s)
        if self.last_pass is None:
            return latest - step * (self.max_catchup - 1), latest
        return self.last_pass + step, latest

    def on_watermark(self, watermark: dt.datetime) -> StageOutput:
        """Run the due passes up to ``watermark`` (at most ``max_passes``, oldest first:
        the rest run at the next call); return their findings."""
        due = self.due(watermark, self.max_passes)
        if len(due) > 1 and self.settings.monitor_backfill_passes > 1:
            return run_backfill(self, due, self.settings.monitor_backfill_passes)
        out = StageOutput()
        for at in due:
            out.findings.extend(self.run_pass(at).findings)
        return out

    # -- one pass ------------------------------------------------------------------
    def run_pass(self, at: dt.datetime) -> PassResult:
        """Evaluate every due detector with windows ending at ``at``."""
        at = at.astimezone(UTC)
        ctx = PassContext(self.store, self.settings, self.spec, at)
        result = PassResult(at)
        ran: set[str] = set()
        for det in self.detectors:
            if not det.due(at):
                continue
            started = time.perf_counter()
            try:
                evs = det.evaluate(ctx)
            except StoreError:
                raise
            except Exception:  # a broken detector must not stop the others
                log.exception("detector %s failed at %s", det.name, at.isoformat())
                result.errors.append(det.name)
                self.detector_errors[det.name] += 1
                evs = []
            ran.add(det.name)
            result.evaluations.extend(e for e in evs if len(e))
            result.seconds[det.name] = time.perf_counter() - started
        started = time.perf_counter()
        self._decide(result)
        self._carry_forward(result, ran)
        self._hold_references(result)
        result.seconds["_decide"] = time.perf_counter() - started
        if self.write_results:
            started = time.perf_counter()
            self._write(result)
            result.seconds["_write"] = time.perf_counter() - started
        self.last_pass = at if self.last_pass is None or at > self.last_pass else self.last_pass
        self.passes += 1
        for name, spent in result.seconds.items():
            self.seconds[name] += spent
        self.last_result = result
        if self.on_pass is not None:
            self.on_pass(at)
        return result

    def _carry_forward(self, result: PassResult, ran: set[str]) -> None:
        """Findings of detectors that run less often than every pass (``every_s``)
        stand until their next evaluation: repeat them at this pass's time so the
        alert book does not resolve them between evaluations."""
        for det in self.detectors:
            if det.name in ran:
                self._carried[det.name] = [
                    f for f in result.findings if f.origin == det.name
                ]
                continue
            for f in self._carried.get(det.name, []):
                again = replace(f, event_time=result.at)
                self._active[again.fingerprint] = (again.severity, result.at)
                result.findings.append(again)

    def _hold_references(self, result: PassResult) -> None:
        """Keep alerting segments out of every detector's reference (issue 21).

        A segment with a warning or critical detector finding in the last
        ``alert_resolve_after`` passes is alerting: each detector's reference rows of
        it stay frozen at the last clean pass, so an attack that outlasts the
        reference window never becomes its own baseline. It is released when the
        alert resolves (that many passes in a row without a finding).
        """
        if not self.settings.reference_hold:
            return
        for f in result.findings:
            if f.severity in ("warning", "critical"):
                self._alerting[f.segment] = result.at
        horizon = dt.timedelta(seconds=self.interval_s * max(1, self.settings.alert_resolve_after))
        self._alerting = {s: t for s, t in self._alerting.items() if result.at - t < horizon}
        for det in self.detectors:
            try:
                det.hold_references(self._alerting.keys(), result.at)
            except Exception:  # a broken detector must not stop the others
                log.exception("detector %s: reference hold failed", det.name)
                self.detector_errors[f"{det.name}:hold"] += 1

    def warming_up(self, at: dt.datetime) -> bool:
        """Whether the stored history before ``at`` is shorter than ``warmup_s``."""
        if self.warmup_s <= 0:
            return False
        if self._data_start is None:
            rows = self.store.query("SELECT count(), min(event_time) FROM {db}.scored_transactions")
            if not rows or not rows[0][0]:
                return True
            start: dt.datetime = rows[0][1]
            self._data_start = start if start.tzinfo else start.replace(tzinfo=UTC)
        return (at - self._data_start).total_seconds() < self.warmup_s

    def _decide(self, result: PassResult) -> None:
        evs = result.evaluations
        warmup = self.warming_up(result.at)
        by_name = {d.name: d for d in self.detectors}
        q = self.settings.fdr_q
        if not evs:
            return
        pvalues = np.concatenate([e.pvalue for e in evs])
        pmins = np.concatenate([np.asarray(e.pmin) for e in evs])
        fam = tarone_bh(pvalues, pmins, q)
        alert_q = min(self.settings.alert_q, q)
        fam_alert = tarone_bh(pvalues, pmins, alert_q)
        result.family_size = fam.m
        result.tested = int(np.isfinite(pvalues).sum())
        horizon = dt.timedelta(seconds=self.interval_s * max(1, self.settings.alert_resolve_after))
        self._active = {
            fp: (sev, seen) for fp, (sev, seen) in self._active.items()
            if result.at - seen <= horizon
        }
        corroborated = self._corroboration(evs, fam.rejected)
        offset = 0
        for ev in evs:
            size = len(ev)
            sl = slice(offset, offset + size)
            offset += size
            rejected = fam.rejected[sl]
            adjusted = fam.adjusted[sl]
            strong = fam_alert.rejected[sl]
            adjusted_alert = fam_alert.adjusted[sl]
            assert ev.eligible is not None and ev.direct is not None
            effect_ok = _alertable(ev)
            others = _others(corroborated, ev, np.flatnonzero(rejected & effect_ok))
            backed = np.isin(np.arange(size), [i for i, o in others.items() if o])
            alert = (strong & effect_ok) | (rejected & effect_ok & backed) | ev.direct
            decision = np.where(alert, "alert", np.where(rejected, "discovery", "ok")).astype(
                object
            )
            severity = np.full(size, "", dtype=object)
            fps = np.full(size, "", dtype=object)
            elevated = (ev.effect >= ev.effect_floor / 2) & (ev.pvalue <= self.sustain_p) & ~alert
            if warmup and by_name[ev.detector].needs_history:
                decision[alert] = "warmup"
                alert[:] = False
                elevated[:] = False
            candidates = np.flatnonzero(alert | elevated)
            others.update(_others(corroborated, ev, [i for i in candidates if i not in others]))
            for i in candidates:
                fp = fingerprint(ev.alertname, ev.detector, ev.segment[i], _version(ev, int(i)))
                if alert[i]:
                    sev: Severity = "info" if ev.direct[i] else "warning"
                    if ev.effect[i] >= ev.critical_effect and adjusted_alert[i] <= alert_q / 100:
                        sev = "critical"
                    if SEVERITY_RANK[sev] > SEVERITY_RANK[ev.max_severity]:
                        sev = ev.max_severity
                    prev = self._active.get(fp)
                    if prev is not None and SEVERITY_RANK[prev[0]] > SEVERITY_RANK[sev]:
                        sev = prev[0]
                elif fp in self._active:
                    sev = self._active[fp][0]
                    decision[i] = "sustain"
                else:
                    continue
                self._active[fp] = (sev, result.at)
                severity[i] = sev
                fps[i] = fp
                finding = self._finding(by_name[ev.detector], ev, int(i), sev, result.at)
                if others[int(i)]:
                    finding = replace(
                        finding,
                        description=f"{finding.description} Corroborated in this pass by: "
                        f"{', '.join(sorted(others[int(i)]))}.",
                    )
                result.findings.append(finding)
            ev.details["_pvalue_adj"] = adjusted
            ev.details["_decision"] = decision
            ev.details["_severity"] = severity
            ev.details["_fingerprint"] = fps
            for value in decision:
                result.decisions[value] = result.decisions.get(value, 0) + 1

    @staticmethod
    def _corroboration(
        evs: Sequence[Evaluations], rejected: NDArray[np.bool_]
    ) -> dict[str, set[str]]:
        """Detectors with a discovery (at ``fdr_q``, meeting their effect floor and
        minimum counts) per segment in this pass."""
        out: dict[str, set[str]] = {}
        offset = 0
        for ev in evs:
            size = len(ev)
            assert ev.eligible is not None and ev.direct is not None
            ok = rejected[offset : offset + size] & _alertable(ev)
            offset += size
            for i in np.flatnonzero(ok & ~ev.direct):
                out.setdefault(ev.segment[i], set()).add(ev.detector)
        return out

    def _finding(
        self, det: Detector, ev: Evaluations, i: int, severity: Severity, at: dt.datetime
    ) -> Finding:
        """The finding of row ``i``, observed at the pass time ``at``."""
        words = det.describe(ev, i)
        labels = dict(ev.labels[i]) if ev.labels is not None else {}
        version = _version(ev, i)
        return Finding(
            alertname=ev.alertname,
            severity=severity,
            source="detector",
            origin=ev.detector,
            segment=ev.segment[i],
            event_time=at,
            summary=words.summary,
            model_version=version,
            value=words.value,
            threshold=words.threshold,
            window_start=ev.window_start,
            window_end=ev.window_end,
            evidence_sql=words.evidence_sql,
            description=words.description,
            extra_labels=labels,
        )

    def _write(self, result: PassResult) -> None:
        if not result.evaluations:
            return
        cols = self.results_buffer if self.results_buffer is not None else {}
        add_rows(cols, result.evaluations, result.at)
        if self.results_buffer is None:
            self.store.insert_columns("drift_results", cols)


def _others(corr: dict[str, set[str]], ev: Evaluations, rows: Any) -> dict[int, set[str]]:
    """Per row of ``rows``: the other detectors with a discovery on its segment."""
    return {int(i): corr.get(ev.segment[i], set()) - {ev.detector} for i in rows}


def _alertable(ev: Evaluations) -> NDArray[np.bool_]:
    """Rows meeting the detector's minimum counts and effect-size floor."""
    assert ev.eligible is not None
    return np.asarray(ev.eligible & (ev.effect >= ev.effect_floor), dtype=bool)


def _version(ev: Evaluations, i: int) -> str:
    """The model version of row ``i``: its own, or the one its segment names."""
    return ev.version(i) or parse_segment(ev.segment[i]).get("model_version", "")
