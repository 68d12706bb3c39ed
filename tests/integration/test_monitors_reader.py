"""The pass-bucket reader (monitors/reader.py): each pass's window summed from pass
intervals holds exactly the keys and counts of the per-pass ``WINDOW`` query."""

from __future__ import annotations

import datetime as dt

import numpy as np

from driftwatch.monitors.base import SCORED, WINDOW, query_table
from driftwatch.monitors.reader import read_windows, whole_buckets
from driftwatch.monitors.segments import SegmentSpec, segment_sql
from driftwatch.store.client import Store
from tests.integration.monitor_data import HOUR, T0, event, insert

SEC = dt.timedelta(seconds=1)
SELECT = "intDiv(amount_minor, 1000) AS cell, count() AS c, countIf(score > 0.5) AS k"


def _per_pass(store: Store, spec: SegmentSpec, at: dt.datetime, width: dt.timedelta
              ) -> dict[tuple[str, int], tuple[int, int]]:
    sql = segment_sql(spec, select=SELECT, source=SCORED, where=WINDOW, keys=("cell",))
    cols = query_table(store, sql, {"lo": at - width, "hi": at})
    return {(str(s), int(c)): (int(n), int(k)) for s, c, n, k in zip(
        cols["segment"], cols["cell"], cols["c"], cols["k"], strict=True)}


def _got(cols: dict[str, np.ndarray]) -> dict[tuple[str, int], tuple[int, int]]:
    return {(str(s), int(c)): (int(n), int(k)) for s, c, n, k in zip(
        cols["segment"], cols["cell"], cols["c"], cols["k"], strict=True)}


def test_bucket_sums_give_every_pass_the_rows_and_keys_of_its_own_query(store: Store) -> None:
    """Rows on and around pass times and window starts (to the millisecond), two
    segment definitions, a key with a zero count column: every pass of a block with a
    gap gets what its own query returns; a pass without rows gets empty columns."""
    at0 = T0 + 3 * HOUR
    ms = dt.timedelta(milliseconds=1)
    times = [at0, at0 - ms, at0 - HOUR, at0 - HOUR - ms, at0 + 7 * 60 * SEC, at0 - 2 * HOUR,
             at0 + HOUR, at0 + HOUR - ms, at0 - 30 * SEC, at0 + 3 * HOUR, at0 + 299 * SEC,
             at0 + 300 * SEC, at0 + 301 * SEC]
    rng = np.random.default_rng(1)
    insert(store, [
        event(i, t, mcc=f"{5000 + i % 3}", country="US" if i % 2 else "LT",
              amount=f"{int(rng.integers(1, 30))}.00", score=0.9 if i % 4 == 0 else 0.1)
        for i, t in enumerate(times)
    ])
    spec = SegmentSpec.parse("mcc, mcc*merchant_country")
    passes = [at0 + k * 300 * SEC for k in range(13)] + [at0 + 3 * HOUR]
    assert whole_buckets(passes, 3600, 300)
    got = read_windows(store, spec, passes, 3600, 300, select=SELECT, source=SCORED,
                       where=WINDOW, keys=("cell",), values=("c", "k"))
    seen = 0
    for at in passes:
        want = _per_pass(store, spec, at, HOUR)
        assert _got(got[at]) == want, at
        seen += len(want)
    assert seen > 20
    assert not len(got[at0 + 3 * HOUR]["segment"])  # its one row is at the pass: outside
    # a window that is no whole number of intervals: the arrayJoin grid, same answer
    odd = [at0 + k * 300 * SEC for k in range(4)]
    assert not whole_buckets(odd, 1000, 300)
    got = read_windows(store, spec, odd, 1000, 300, select=SELECT, source=SCORED,
                       where=WINDOW, keys=("cell",), values=("c", "k"))
    for at in odd:
        assert _got(got[at]) == _per_pass(store, spec, at, 1000 * SEC), at
