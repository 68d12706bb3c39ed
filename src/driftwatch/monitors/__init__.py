"""Per-segment detectors: SQL in ClickHouse, statistics, results, findings.

:class:`Monitor` is the pipeline's clock stage; the detectors live one per module
and register by name (:mod:`driftwatch.monitors.registry`).
"""

from __future__ import annotations

from driftwatch.monitors.monitor import Monitor, PassResult
from driftwatch.monitors.segments import SegmentSpec

__all__ = ["Monitor", "PassResult", "SegmentSpec"]
