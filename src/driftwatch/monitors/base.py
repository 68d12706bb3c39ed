"""What every detector shares: the pass context, columnar evaluations, small helpers.

A detector runs once per monitor pass (or every ``every_s`` seconds of event time).
It issues one query for the current window that covers every segment at once
(``GROUP BY GROUPING SETS``), reads its trailing reference from a
:class:`~driftwatch.monitors.reference.SlidingReference`, computes its statistic
for all segments with numpy, and returns :class:`Evaluations`: one row per tested
segment with a statistic, a p-value, an effect size and the sample sizes. The
monitor then corrects the p-values of the whole pass together (Benjamini–Hochberg)
and decides which rows become findings; the detector only turns a chosen row into
words (:meth:`Detector.describe`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftwatch.alerts.model import Severity, iso
from driftwatch.monitors.reference import Fetch, FetchMany, SlidingReference
from driftwatch.monitors.segments import SegmentSpec, segment_where
from driftwatch.settings import Settings
from driftwatch.stats.rates import binom_sf
from driftwatch.store.client import Store

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

SCORED = "{db}.scored_transactions FINAL"
"""The table every detector reads (FINAL: a re-delivered event never counts twice)."""

WINDOW = "event_time >= {lo:DateTime64(3, 'UTC')} AND event_time < {hi:DateTime64(3, 'UTC')}"
"""Half-open event-time window condition with server-side parameters ``lo``/``hi``."""


@dataclass(frozen=True)
class PassContext:
    """One monitor pass: the store, settings, segments and the pass time ``at``.

    Every window of the pass ends at ``at`` (event time, exclusive).
    """

    store: Store
    settings: Settings
    spec: SegmentSpec
    at: dt.datetime

    def window(self, length_s: int) -> tuple[dt.datetime, dt.datetime]:
        """The current window ``[at - length_s, at)``."""
        return self.at - dt.timedelta(seconds=length_s), self.at


@dataclass
class Evaluations:
    """Columnar results of one test of one detector over many segments.

    ``pmin`` is the smallest p-value the test could reach at these sample sizes
    (0 when unknown); the monitor uses it to leave tests that can never be
    significant out of the multiple-testing family (Tarone's device). ``eligible``
    marks rows whose minimum counts allow an alert at all. ``direct`` marks rows
    without a p-value that are findings by themselves (e.g. a run of declines);
    they raise at most ``max_severity`` and never enter the multiple-testing family.
    """

    detector: str
    test: str
    alertname: str
    window_start: dt.datetime
    window_end: dt.datetime
    reference: str
    segment: list[str]
    statistic: FloatArray
    pvalue: FloatArray
    effect: FloatArray
    n: IntArray
    n_ref: IntArray
    effect_floor: float
    critical_effect: float
    model_version: list[str] | None = None
    pmin: FloatArray | None = None
    eligible: NDArray[np.bool_] | None = None
    direct: NDArray[np.bool_] | None = None
    details: dict[str, ArrayLike] = field(default_factory=dict)
    labels: list[dict[str, str]] | None = None
    max_severity: Severity = "critical"

    def __post_init__(self) -> None:
        size = len(self.segment)
        for name in ("statistic", "pvalue", "effect", "n", "n_ref"):
            if len(getattr(self, name)) != size:
                raise ValueError(f"{self.detector}/{self.test}: {name} has wrong length")
        if self.model_version is None:
            self.model_version = [""] * size
        if self.pmin is None:
            self.pmin = np.zeros(size)
        if self.eligible is None:
            self.eligible = np.ones(size, dtype=bool)
        if self.direct is None:
            self.direct = np.zeros(size, dtype=bool)

    def __len__(self) -> int:
        return len(self.segment)

    def version(self, i: int) -> str:
        """Model version of row ``i`` ('' when the row mixes versions)."""
        return self.model_version[i] if self.model_version else ""

    def detail(self, i: int) -> dict[str, Any]:
        """The details of row ``i`` as plain Python values."""
        out: dict[str, Any] = {}
        for key, col in self.details.items():
            if key.startswith("_"):
                continue
            value = np.asarray(col)[i]
            out[key] = value.item() if isinstance(value, np.generic) else value
        return out

    def details_json(self, i: int) -> str:
        """The details of row ``i`` as a JSON object (NaN written as null)."""
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in self.detail(i).items()
        }
        return json.dumps(clean, separators=(",", ":"), sort_keys=True, default=str)

    def details_json_all(self) -> list[str]:
        """:meth:`details_json` of every row, built column by column (fast)."""
        size = len(self.segment)
        keys = sorted(k for k in self.details if not k.startswith("_"))
        if not keys:
            return ["{}"] * size
        parts: list[list[str]] = []
        for key in keys:
            parts.append(_json_cells(json.dumps(key) + ":", np.asarray(self.details[key])))
        return ["{" + ",".join(cells) + "}" for cells in zip(*parts, strict=True)]

    def select(self, mask: NDArray[np.bool_]) -> Evaluations:
        """The rows where ``mask`` is true."""
        idx = np.flatnonzero(mask)
        assert self.model_version is not None and self.pmin is not None
        assert self.eligible is not None and self.direct is not None
        return Evaluations(
            detector=self.detector,
            test=self.test,
            alertname=self.alertname,
            window_start=self.window_start,
            window_end=self.window_end,
            reference=self.reference,
            segment=[self.segment[i] for i in idx],
            statistic=self.statistic[idx],
            pvalue=self.pvalue[idx],
            effect=self.effect[idx],
            n=self.n[idx],
            n_ref=self.n_ref[idx],
            effect_floor=self.effect_floor,
            critical_effect=self.critical_effect,
            model_version=[self.model_version[i] for i in idx],
            pmin=self.pmin[idx],
            eligible=self.eligible[idx],
            direct=self.direct[idx],
            details={k: np.asarray(v)[idx] for k, v in self.details.items()},
            labels=[self.labels[i] for i in idx] if self.labels is not None else None,
            max_severity=self.max_severity,
        )


def _json_cells(head: str, column: NDArray[Any]) -> list[str]:
    """``head`` plus :func:`_json_value` of every value of ``column``, by dtype (the
    text :func:`json.dumps` writes: ``repr`` of ints and floats, ``true``/``false``)."""
    values = column.tolist()
    kind = column.dtype.kind
    if kind == "b":
        return [head + ("true" if v else "false") for v in values]
    if kind in "iu":
        return [head + repr(v) for v in values]
    if kind == "f":
        finite = np.isfinite(column).tolist()
        return [head + (repr(v) if ok else "null") for v, ok in zip(values, finite, strict=True)]
    return [head + _json_value(v) for v in values]


def _json_value(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "null"
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    return json.dumps(str(value))


@dataclass(frozen=True)
class Description:
    """Words for one finding: summary, value, threshold, evidence SQL."""

    summary: str
    value: str = ""
    threshold: str = ""
    evidence_sql: str = ""
    description: str = ""


class Detector:
    """Base class of the per-segment detectors.

    Subclasses set ``name`` (the registry name), ``tests`` (test name to
    alertname) and implement :meth:`evaluate` and :meth:`describe`. Constructor
    keyword arguments override the class defaults of the same name (thresholds,
    minimum sample sizes, windows); an unknown name raises ``ValueError``.

    Attributes
    ----------
    window_s : int
        Length of the current window; 0 means the ``monitor_window_s`` setting.
    every_s : int
        Run only at passes whose time is a multiple of this (0: every pass).
    effect_floor : float
        Smallest effect that may raise a warning.
    critical_effect : float
        Effect from which a discovery is critical.
    needs_history : bool
        Whether the detector's judgement rests on a trailing baseline of the segment
        (default True): such detectors raise nothing while the monitor warms up.
        Detectors whose null is absolute or paired (shadow scores on the same
        transactions, configured feature ranges) judge from the first pass.
    """

    name: ClassVar[str] = ""
    tests: ClassVar[Mapping[str, str]] = {}
    window_s: int = 0
    every_s: int = 0
    effect_floor: float = 0.0
    critical_effect: float = math.inf
    needs_history: ClassVar[bool] = True
    reference_chunk_s: int = 3600
    reference_rebuild_s: int = 86400

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: Any) -> None:
        self.settings = settings
        self.spec = spec
        self._references: list[SlidingReference] = []
        for key, value in options.items():
            if key.startswith("_") or not hasattr(type(self), key) or callable(
                getattr(type(self), key)
            ):
                raise ValueError(
                    f"{self.name}: unknown option {key!r}; valid: {', '.join(self.option_names())}"
                )
            setattr(self, key, type(getattr(type(self), key))(value))
        if self.window_s == 0:
            self.window_s = settings.monitor_window_s
        for name in ("window_s", "every_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{self.name}: {name}={getattr(self, name)!r}; allowed: >= 0")

    @classmethod
    def option_names(cls) -> list[str]:
        """Names of the options a constructor accepts."""
        out = []
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if key.startswith("_") or key in ("name", "tests") or callable(value):
                    continue
                if isinstance(value, bool | int | float | str) and key not in out:
                    out.append(key)
        return sorted(out)

    def due(self, at: dt.datetime) -> bool:
        """Whether this detector runs at the pass at ``at``."""
        if self.every_s <= 0:
            return True
        secs = int((at - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds())
        return secs % self.every_s == 0

    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        """Run the detector for the pass ``ctx``; return one batch per test."""
        raise NotImplementedError

    def describe(self, ev: Evaluations, i: int) -> Description:
        """Words for row ``i`` of ``ev`` (called only for rows that raise a finding)."""
        raise NotImplementedError

    # -- helpers for subclasses --------------------------------------------------------
    def sliding(self, fetch: Fetch, many: FetchMany | None = None) -> SlidingReference:
        """A sliding trailing reference over ``fetch`` with this detector's chunking
        (held by :meth:`hold_references` while segments alert; ``many`` reads many
        chunks at once, see :meth:`look_ahead`)."""
        ref = SlidingReference(
            fetch, chunk_s=self.reference_chunk_s, rebuild_s=self.reference_rebuild_s,
            many=many,
        )
        self._references.append(ref)
        return ref

    def look_ahead(self, span_s: int) -> None:
        """Let the sliding references read the chunks of the next ``span_s`` seconds
        with each chunk read (a backfill block; 0: one chunk at a time), see
        :meth:`SlidingReference.look_ahead`."""
        for ref in self._references:
            ref.look_ahead(span_s)

    def hold_references(self, segments: Collection[str], at: dt.datetime | None = None) -> None:
        """The segments alerting at the pass ``at``: their reference rows stay frozen
        at the last clean pass until the alert resolves, and the alerting period stays
        out of them afterwards (the monitor calls this after every pass; see
        :meth:`SlidingReference.hold`)."""
        for ref in self._references:
            ref.hold(segments, at)

    def rate_test(
        self,
        test: str,
        window: tuple[dt.datetime, dt.datetime],
        reference: tuple[dt.datetime, dt.datetime],
        segments: list[str],
        n: FloatArray,
        k: FloatArray,
        rate: FloatArray,
        n_ref: FloatArray,
        *,
        min_count: int,
        count_name: str,
        rate_digits: int = 5,
        effect: FloatArray | None = None,
        with_pmin: bool = True,
        pvalue: FloatArray | None = None,
        pmin: FloatArray | None = None,
    ) -> Evaluations:
        """Evaluations of "``k`` of ``n`` rows are marked, against a reference rate".

        The p-value is the exact binomial upper tail ``P(X >= k)`` for
        ``X ~ Binomial(n, rate)``; the effect is the excess share ``k / n - rate``
        unless given; ``pmin = rate ** n`` (the p-value if every row were marked)
        unless ``with_pmin`` is False. ``pvalue`` and ``pmin``, when given, replace
        the binomial ones (e.g. the beta-binomial of
        :func:`driftwatch.monitors.dispersion.rate_pvalue`). Rows need
        ``k >= min_count`` to alert.
        Details: ``count_name`` (``k``) and ``rate_ref`` (rounded to ``rate_digits``).
        """
        if effect is None:
            with np.errstate(invalid="ignore", divide="ignore"):
                effect = np.where(n > 0, k / np.maximum(n, 1) - rate, 0.0)
        return Evaluations(
            detector=self.name,
            test=test,
            alertname=self.tests[test],
            window_start=window[0],
            window_end=window[1],
            reference=self.reference_label(*reference),
            segment=segments,
            statistic=k,
            pvalue=binom_sf(k, n, rate) if pvalue is None else pvalue,
            effect=effect,
            n=n.astype(np.int64),
            n_ref=n_ref.astype(np.int64),
            effect_floor=self.effect_floor,
            critical_effect=self.critical_effect,
            pmin=pmin if pmin is not None else (rate**n if with_pmin else None),
            eligible=k >= min_count,
            details={count_name: k.astype(np.int64), "rate_ref": np.round(rate, rate_digits)},
        )

    def reference_label(self, start: dt.datetime, end: dt.datetime) -> str:
        """How the reference window was chosen, for ``drift_results.reference``."""
        days = (end - start).total_seconds() / 86400
        span = f"{days:g}d" if days >= 1 else f"{(end - start).total_seconds() / 3600:g}h"
        return f"trailing {span} [{iso(start)}, {iso(end)})"


class Columns(dict[str, NDArray[Any]]):
    """Query result columns; an empty result (which names no columns) gives empty arrays."""

    def __missing__(self, key: str) -> NDArray[Any]:
        if self:
            raise KeyError(key)
        return np.zeros(0, dtype=object)


def query_table(store: Store, sql: str, params: Mapping[str, Any]) -> Columns:
    """Run ``sql`` and return its columns as numpy arrays."""
    df = store.query_df(sql, params)
    return Columns({str(c): df[c].to_numpy() for c in df.columns})


def fmt_p(p: float) -> str:
    """A p-value for people: ``3e-09``, ``0.0012``.

    >>> fmt_p(3.2e-9), fmt_p(0.00123), fmt_p(0.5)
    ('3e-09', '0.0012', '0.5')
    """
    if not math.isfinite(p):
        return "n/a"
    if p < 1e-3:
        return f"{p:.0e}"
    return f"{p:.2g}"


def span_words(seconds: float) -> str:
    """``3600`` → ``'hour'``, ``900`` → ``'15 min'``, ``86400`` → ``'24 h'``."""
    if seconds == 3600:
        return "hour"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def segments_of(values: Sequence[Any]) -> list[str]:
    """Segment names from a query column (bytes or str)."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def sql_time(t: dt.datetime) -> str:
    """A ClickHouse DateTime64 literal (for analyst-facing evidence SQL).

    >>> sql_time(dt.datetime(2026, 3, 18, 14, 5, tzinfo=dt.UTC))
    "toDateTime64('2026-03-18 14:05:00.000', 3, 'UTC')"
    """
    u = t.astimezone(dt.UTC) if t.tzinfo else t
    return f"toDateTime64('{u:%Y-%m-%d %H:%M:%S}.{u.microsecond // 1000:03d}', 3, 'UTC')"


EVIDENCE_COLUMNS = (
    "event_time, event_id, txn_id, mcc, merchant_country, channel, merchant_id, "
    "amount_minor / 100 AS amount, beneficiary_name, card_id, model_version, score, "
    "shadow_versions, shadow_scores, decision"
)


def evidence(db: str, segment: str, lo: dt.datetime, hi: dt.datetime, extra: str = "") -> str:
    """Analyst SQL listing the transactions of ``segment`` in ``[lo, hi)`` (and ``extra``).

    >>> t = dt.datetime(2026, 3, 18, 14, tzinfo=dt.UTC)
    >>> print(evidence("dw", "mcc=5967", t - dt.timedelta(hours=1), t, "amount_cents = 37"))
    ... # doctest: +NORMALIZE_WHITESPACE
    SELECT event_time, event_id, txn_id, mcc, merchant_country, channel, merchant_id,
    amount_minor / 100 AS amount, beneficiary_name, card_id, model_version, score,
    shadow_versions, shadow_scores, decision FROM dw.scored_transactions FINAL
    WHERE event_time >= toDateTime64('2026-03-18 13:00:00.000', 3, 'UTC')
    AND event_time < toDateTime64('2026-03-18 14:00:00.000', 3, 'UTC')
    AND mcc = '5967' AND amount_cents = 37 ORDER BY event_time
    """
    cond = f" AND {extra}" if extra else ""
    return (
        f"SELECT {EVIDENCE_COLUMNS} FROM {db}.scored_transactions FINAL "
        f"WHERE event_time >= {sql_time(lo)} AND event_time < {sql_time(hi)} "
        f"AND {segment_where(segment)}{cond} ORDER BY event_time"
    )
