"""Backfill mode (issue 24): the same sc013 backdoor replay pass by pass and in backfill
blocks gives the same ``drift_results`` rows and the same alerts, reference hold and
alert lifecycle included."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftwatch.assemble import build_pipeline
from driftwatch.events import EPOCH
from driftwatch.monitors.backfill import (
    GRID_KEY,
    BatchedWindows,
    grid_params,
    grid_sql,
    split_passes,
)
from driftwatch.monitors.base import SCORED, WINDOW, query_table
from driftwatch.monitors.dispersion import ReferenceDispersion
from driftwatch.monitors.monitor import Monitor
from driftwatch.monitors.reference import SlidingReference
from driftwatch.monitors.registry import create
from driftwatch.monitors.segments import SegmentSpec, segment_sql
from driftwatch.settings import Settings
from driftwatch.simulate import generate, load_scenario, write
from driftwatch.sources.replay import replay
from driftwatch.store.client import Store, open_store
from tests.integration.monitor_data import HOUR, T0, background, event, insert, settings_for

SEC = dt.timedelta(seconds=1)

COLUMNS = (
    "evaluated_at, detector, test, segment, model_version, window_start, window_end, "
    "reference, statistic, pvalue, pvalue_adj, effect, n, n_ref, decision, severity, "
    "fingerprint, details"
)


def _run(
    store: Store, dsn: str, paths: dict[str, Path], out: Path, block: int, span: Span
) -> tuple[list[dict[str, Any]], Monitor]:
    settings = Settings.load(
        config_file=None,
        env={},
        overrides={
            "store_dsn": dsn,
            "database": store.database,
            "rules_dirs": str(out.parent / "no-rules"),
            "monitor_interval_s": span.interval_s,
            "monitor_warmup_s": span.warmup_s,
            "monitor_backfill_passes": block,
        },
    )
    pipeline = build_pipeline(settings, store, alerts_out=out)
    try:
        result = replay(pipeline, paths["events.jsonl"], paths["labels.jsonl"],
                        batch_size=span.batch_size)
    finally:
        pipeline.close()
    (monitor,) = pipeline.clock_stages
    assert isinstance(monitor, Monitor)
    return [a.to_dict() for a in result.alerts], monitor


def _results(store: Store) -> list[tuple[Any, ...]]:
    rows = store.query(f"SELECT {COLUMNS} FROM {{db}}.drift_results")
    return sorted(rows, key=repr)


@dataclass(frozen=True)
class Span:
    """One replay of the comparison: the sc013 stretch and the monitor's schedule."""

    days: float
    rate: float
    interval_s: int
    warmup_s: int
    block: int
    min_passes: int
    min_rows: int
    resolves: bool
    batch_size: int = 4000
    """Events a replay batch (the passes between two batches are what a block holds)."""
    min_batched: float = 0.8
    """Least share of passes read in blocks by the disagreement detector (pass by pass
    until the first rule hit is stored)."""


SHORT = Span(days=2 / 24, rate=0.25, interval_s=900, warmup_s=1800, block=6, min_passes=15,
             min_rows=1000, resolves=False, batch_size=20_000, min_batched=0.5)
"""Two hours, every scheduled time of the scenario scaled into them (the attack's
camouflage is not scaled: about 17,000 events), replayed in one batch so the backfill
run's blocks are full; the attack runs to the end, so nothing resolves. The default
run."""
LONG = Span(days=1.4, rate=0.25, interval_s=900, warmup_s=6 * 3600, block=24, min_passes=100,
            min_rows=1000, resolves=True)
"""1.4 days, with resolutions (``-m long``: about 4 minutes on an idle machine)."""


@pytest.mark.slow
@pytest.mark.parametrize("span", [  # two monitored replays each; pytest's default is 300 s
    pytest.param(SHORT, id="2h", marks=pytest.mark.timeout(900)),
    pytest.param(LONG, id="1.4d", marks=[pytest.mark.long, pytest.mark.timeout(1800)]),
])
def test_backfill_blocks_write_the_rows_and_alerts_of_the_pass_by_pass_path(
    store: Store, chdb_dsn: str, tmp_path: Path, span: Span
) -> None:
    sim = generate(load_scenario("sc013_backdoor"), seed=5, days=span.days, rate=span.rate)
    paths = write(sim, tmp_path)
    other = open_store(chdb_dsn, f"{store.database}_bf", init=True)
    try:
        alerts_seq, seq = _run(store, chdb_dsn, paths, tmp_path / "seq.jsonl", 1, span)
        alerts_bf, bf = _run(other, chdb_dsn, paths, tmp_path / "bf.jsonl", span.block, span)
        rows_seq, rows_bf = _results(store), _results(other)
    finally:
        other.drop()
    # alert texts name the database in their evidence SQL: the two runs use two
    seq_text = sorted(json.dumps(a) for a in alerts_seq)
    bf_text = sorted(json.dumps(a).replace(other.database, store.database) for a in alerts_bf)
    # the backfill run really read its current windows in blocks, the other never did
    batched = {d.name: d.batched_passes for d in bf.detectors
               if isinstance(d, BatchedWindows) and not d.every_s}
    hourly = [d for d in bf.detectors if isinstance(d, BatchedWindows) and d.every_s]
    assert hourly and all(d.batched_passes > 0 for d in hourly)
    # (disagreement reads pass by pass until the first rule hit is stored)
    assert batched and min(batched.values()) >= span.min_batched * bf.passes, (batched, bf.passes)
    assert all(batched[n] == bf.passes for n in ("cents", "volume", "shadow", "pileup"))
    assert all(d.batched_passes == 0 for d in seq.detectors if isinstance(d, BatchedWindows))
    assert seq.passes == bf.passes >= span.min_passes
    assert seq.detector_errors == bf.detector_errors == {}
    # reference chunks: read a block ahead in backfill, one by one pass by pass; each
    # dispersion refresh reads its chunks in one query on both paths
    ref_seq, disp_seq = _reads(seq)
    ref_bf, disp_bf = _reads(bf)
    assert ref_seq[0] == ref_bf[0] > 0 and ref_seq[1] == ref_seq[0]  # tables asked for
    # (rebuilds and released segments' rows are read as before: only chunks read ahead)
    assert 0 < ref_bf[1] <= 0.8 * ref_seq[1], (ref_bf, ref_seq)  # store queries
    assert disp_seq == disp_bf and 0 < disp_seq[1] * 4 <= disp_seq[0], disp_seq
    # the attack alerts (and resolves) -- the comparison is not between two empty runs
    firing = [a for a in alerts_seq if a["status"] == "firing"]
    assert any("mcc=5967" in a["labels"]["segment"] for a in firing), firing
    assert any(a["status"] == "resolved" for a in alerts_seq) is span.resolves
    # drift_results row for row (every column but written_at), then the alerts
    assert len(rows_seq) == len(rows_bf) > span.min_rows
    assert {r[14] for r in rows_seq} >= {"ok", "alert"}
    for a, b in zip(rows_seq, rows_bf, strict=True):
        assert a == b or _same(a, b), (a, b)
    assert len(seq_text) == len(bf_text) > 0
    for a, b in zip(seq_text, bf_text, strict=True):
        assert a == b


def _reads(monitor: Monitor) -> tuple[tuple[int, int], tuple[int, int]]:
    """(tables asked for, store queries) of the sliding references that can read many
    chunks at once and of the dispersion estimates of every detector."""
    refs: list[SlidingReference] = []
    disps: list[ReferenceDispersion] = []
    for det in monitor.detectors:
        for value in vars(det).values():
            if isinstance(value, SlidingReference) and value.many is not None:
                refs.append(value)
            elif isinstance(value, ReferenceDispersion):
                disps.append(value)
    return (
        (sum(r.fetches for r in refs), sum(r.reads for r in refs)),
        (sum(d.fetches for d in disps), sum(d.reads for d in disps)),
    )


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Equal, NaN equal to NaN."""
    return all(x == y or (_nan(x) and _nan(y)) for x, y in zip(a, b, strict=True))


def _nan(x: object) -> bool:
    return isinstance(x, float) and math.isnan(x)


def test_pass_grid_counts_every_row_in_exactly_the_windows_of_the_per_pass_query(
    store: Store,
) -> None:
    """Rows on and around pass times and window starts (to the millisecond): the pass
    grid puts each in the same windows as the per-pass ``WINDOW`` query, for every
    pass of the block and none outside it; a pass without rows gets empty columns."""
    at0 = T0 + 3 * HOUR
    ms = dt.timedelta(milliseconds=1)
    times = [at0, at0 - ms, at0 - HOUR, at0 - HOUR - ms, at0 + 7 * 60 * SEC, at0 - 2 * HOUR,
             at0 + HOUR, at0 + HOUR - ms, at0 - 30 * SEC, at0 + 3 * HOUR]
    insert(store, [event(i, t, mcc=f"{5000 + i % 3}") for i, t in enumerate(times)])
    passes = [at0 + k * 300 * SEC for k in range(13)] + [at0 + 3 * HOUR]  # a gap, then one
    sql = grid_sql(SegmentSpec.parse("mcc"), batched=True, select="count() AS n",
                   source=SCORED, where=WINDOW)
    cols = query_table(store, sql, grid_params(passes, 3600, 300))
    got = split_passes(cols, passes)
    one = segment_sql(SegmentSpec.parse("mcc"), select="count() AS n", source=SCORED,
                      where=WINDOW)
    for at in passes:
        want = query_table(store, one, {"lo": at - HOUR, "hi": at})
        assert dict(zip(got[at]["segment"], got[at]["n"], strict=True)) == dict(
            zip(want["segment"], want["n"], strict=True)
        ), at
    assert not len(got[at0 + 3 * HOUR]["segment"])  # its row is at the pass: not inside
    assert sum(int(x) for x in got[at0]["n"]) == 3  # at0 - 1 ms, at0 - 30 s, at0 - 1 h
    # groups of grid times between the passes asked for (the gap) are left out
    keys = np.unique(cols[GRID_KEY]).astype(int)
    first, last = ((a - EPOCH) // SEC for a in (passes[0], passes[-1]))
    assert keys.min() >= first and keys.max() <= last and not (keys % 300).any()


def _monitor_rows(store: Store, events: list[dict[str, Any]], block: int, broken: str = "",
                  names: tuple[str, ...] = ("cents", "pileup", "volume"),
                  options: dict[str, dict[str, Any]] | None = None
                  ) -> tuple[list[tuple[Any, ...]], Monitor]:
    insert(store, events)
    settings = settings_for(store, monitor_warmup_s=3600, monitor_backfill_passes=block)
    monitor = Monitor(store, settings, create(settings, SegmentSpec.parse(
        settings.segment_dimensions), list(names), options), max_catchup=120)
    for det in monitor.detectors:
        if det.name == broken:
            det.window_batch = _raise  # type: ignore[attr-defined]
    monitor.on_watermark(T0 + 10 * HOUR)
    return _results(store), monitor


def _raise(*_: object) -> None:
    raise RuntimeError("batched query broken")


@pytest.mark.slow
def test_a_detector_whose_batched_query_fails_runs_pass_by_pass(
    store: Store, chdb_dsn: str
) -> None:
    """In a block, one detector's batched read fails: it is counted, its passes query
    their windows one by one, and every row is still that of the pass-by-pass run."""
    rng = np.random.default_rng(3)
    events = background(rng, 10, 120)
    events += [event(f"a{i}", T0 + 8 * HOUR + i * 90 * SEC, mcc="5967", country="LT",
                     amount=f"{40 + i}.37", card=f"c-x{i}") for i in range(30)]
    other = open_store(chdb_dsn, f"{store.database}_bf", init=True)
    try:
        rows_seq, seq = _monitor_rows(store, events, 1)
        rows_bf, bf = _monitor_rows(other, events, 50, broken="pileup")
    finally:
        other.drop()
    assert seq.passes == bf.passes == 120
    assert bf.detector_errors == {"pileup:backfill": 3}  # three blocks: 50, 50, 20
    by_name = {d.name: d for d in bf.detectors}
    assert by_name["pileup"].batched_passes == 0  # type: ignore[attr-defined]
    assert by_name["cents"].batched_passes == 120  # type: ignore[attr-defined]
    assert any(r[14] == "alert" and r[1] == "cents" for r in rows_seq)
    assert len(rows_seq) == len(rows_bf)
    assert all(a == b or _same(a, b) for a, b in zip(rows_seq, rows_bf, strict=True))


@pytest.mark.slow
def test_beneficiary_payers_read_per_block_give_the_rows_of_the_pass_by_pass_path(
    store: Store, chdb_dsn: str
) -> None:
    """A payout family spreads over merchants and cards in one segment: who pays under
    the candidate prefix is read once per block and cell (pass buckets, card sets
    united in memory) and every row, cards/merchants/others included, is that of the
    per-pass query; the candidate rows do alert."""
    rng = np.random.default_rng(5)
    words = ["GREEN", "CITY", "BLUE", "NORTH", "ACME", "DELTA", "OMEGA", "PRIME"]
    events = background(rng, 10, 150)
    for j, ev in enumerate(events):
        ev["beneficiary_name"] = f"{words[j % 8]} {words[(j * 5 + 3) % 8]} {j}"
    events += [event(f"p{i}", T0 + 8 * HOUR + i * 100 * SEC, mcc="5967", country="LT",
                     beneficiary=f"INTL-PAY-GLOBAL-{i % 4}", merchant=f"m-x{i % 5}",
                     card=f"c-p{i % 7}") for i in range(40)]
    other = open_store(chdb_dsn, f"{store.database}_bf", init=True)
    try:
        rows_seq, seq = _monitor_rows(store, events, 1, names=("beneficiary",))
        rows_bf, bf = _monitor_rows(other, events, 50, names=("beneficiary",))
    finally:
        other.drop()
    reads = [d.block_payer_reads for m in (seq, bf) for d in m.detectors]  # type: ignore[attr-defined]
    assert reads[0] == 0 < reads[1] < 6, reads
    assert any(r[14] == "alert" for r in rows_seq)
    assert any(json.loads(r[17])["cards"] >= 2 for r in rows_seq)
    assert len(rows_seq) == len(rows_bf) and seq.detector_errors == bf.detector_errors == {}
    assert all(a == b or _same(a, b) for a, b in zip(rows_seq, rows_bf, strict=True))


@pytest.mark.slow
def test_cents_cards_from_repeats_give_the_rows_of_the_pass_by_pass_path(
    store: Store, chdb_dsn: str
) -> None:
    """Cards paying the same cents again (within a window, across windows, in other
    segments): distinct cards per block are rows minus repeats, exactly the per-pass
    ``uniqExact``; an attack by a few cards alerts with its card count."""
    rng = np.random.default_rng(11)
    events = background(rng, 10, 150, cents_profile={0: 0.4, 99: 0.2})
    for j, ev in enumerate(events):
        ev["card_id"] = f"c-{j % 23}"
        if j % 5 == 0:  # a fifth of the rows at young merchants (new_merchant_cell)
            ev["merchant_registered_at"] = "2026-01-01"
    events += [event(f"a{i}", T0 + 8 * HOUR + i * 90 * SEC, mcc="5967", country="LT",
                     amount=f"{40 + i}.37", card=f"c-x{i % 4}",
                     registered="2026-01-01" if i % 2 else None) for i in range(30)]
    other = open_store(chdb_dsn, f"{store.database}_bf", init=True)
    young = {"cents": {"new_merchant_days": 180}}
    try:
        rows_seq, seq = _monitor_rows(store, events, 1, names=("cents",), options=young)
        rows_bf, bf = _monitor_rows(other, events, 50, names=("cents",), options=young)
    finally:
        other.drop()
    assert [d.batched_passes for d in bf.detectors] == [120]  # type: ignore[attr-defined]
    new = [json.loads(r[17]) for r in rows_seq if r[2] == "new_merchant_cell"]
    assert any(1 <= d["cards"] < d["count"] for d in new)
    assert any(1 <= d["merchants"] < d["count"] for d in new)
    cards = [(json.loads(r[17])["cards"], json.loads(r[17])["count"]) for r in rows_seq]
    assert any(1 <= c < n for c, n in cards) and any(c == n > 1 for c, n in cards)
    assert any(r[14] == "alert" and json.loads(r[17])["cards"] == 4 for r in rows_seq)
    assert len(rows_seq) == len(rows_bf) and seq.detector_errors == bf.detector_errors == {}
    assert all(a == b or _same(a, b) for a, b in zip(rows_seq, rows_bf, strict=True))


@pytest.mark.slow
def test_benford_hourly_day_windows_read_in_blocks_give_the_pass_by_pass_rows(
    store: Store, chdb_dsn: str
) -> None:
    """Benford runs hourly on day-long windows: in backfill it gets the passes it is
    due at, their windows from pass buckets and its reference chunks read ahead; the
    rows are those of the pass-by-pass run."""
    events = background(np.random.default_rng(2), 40, 200)
    out = []
    for db, block in ((store, 1), (open_store(chdb_dsn, f"{store.database}_bf", init=True), 50)):
        try:
            insert(db, events)
            settings = settings_for(db, monitor_warmup_s=3600, monitor_backfill_passes=block)
            monitor = Monitor(db, settings, create(settings, SegmentSpec.parse(
                settings.segment_dimensions), ["benford"]), max_catchup=120)
            monitor.on_watermark(T0 + 40 * HOUR)
            out.append((_results(db), monitor))
        finally:
            if block > 1:
                db.drop()
    (rows_seq, seq), (rows_bf, bf) = out
    assert [d.batched_passes for d in seq.detectors] == [0]  # type: ignore[attr-defined]
    assert [d.batched_passes for d in bf.detectors] == [10]  # type: ignore[attr-defined]
    assert len(rows_seq) == len(rows_bf) >= 10 and bf.detector_errors == {}
    assert all(a == b or _same(a, b) for a, b in zip(rows_seq, rows_bf, strict=True))


@pytest.mark.slow
def test_volume_new_merchants_and_cards_from_pass_buckets_give_the_pass_by_pass_rows(
    store: Store, chdb_dsn: str
) -> None:
    """New merchants and their cards recur within and across windows: the distinct
    counts from (segment, merchant or card) pairs per pass bucket are the per-pass
    ``uniqExactIf`` ones; a burst of new merchants alerts."""
    rng = np.random.default_rng(8)
    events = background(rng, 10, 150)
    for j, ev in enumerate(events):  # (old merchants registered long ago)
        ev["merchant_id"], ev["card_id"] = f"m-{j % 11}", f"c-{j % 37}"
        ev["merchant_registered_at"] = "2019-01-01"
        if j % 11 < 3:  # three young merchants
            ev["merchant_registered_at"] = "2026-02-08"
    events += [event(f"n{i}", T0 + 8 * HOUR + i * 60 * SEC, mcc="5967", country="LT",
                     merchant=f"m-new{i % 6}", card=f"c-n{i % 9}",
                     registered="2026-03-09") for i in range(60)]
    other = open_store(chdb_dsn, f"{store.database}_bf", init=True)
    try:
        rows_seq, seq = _monitor_rows(store, events, 1, names=("volume",))
        rows_bf, bf = _monitor_rows(other, events, 50, names=("volume",))
    finally:
        other.drop()
    assert [d.batched_passes for d in bf.detectors] == [120]  # type: ignore[attr-defined]
    details = [json.loads(r[17]) for r in rows_seq]
    assert any(d.get("new_merchants", 0) >= 2 for d in details), details[:3]
    assert any(r[14] == "alert" for r in rows_seq)
    assert len(rows_seq) == len(rows_bf) and seq.detector_errors == bf.detector_errors == {}
    assert all(a == b or _same(a, b) for a, b in zip(rows_seq, rows_bf, strict=True))
