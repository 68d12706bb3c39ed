"""Determinism and the contracts: same seed, same bytes; every event and label valid."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftwatch.events import parse_label_batch, parse_scored_batch
from driftwatch.simulate import generate, list_scenarios, load_scenario, write
from tests.conftest import CONTRACTS

SCORED = jsonschema.Draft202012Validator(
    json.loads((CONTRACTS / "scored_transaction.schema.json").read_text()),
    format_checker=jsonschema.FormatChecker(),
)
LABEL = jsonschema.Draft202012Validator(
    json.loads((CONTRACTS / "label.schema.json").read_text()),
    format_checker=jsonschema.FormatChecker(),
)
RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
AMOUNT = re.compile(r"[1-9][0-9]*\.[0-9]{2}|0\.(?:0[1-9]|[1-9][0-9])")


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate("sc013_backdoor", seed=3, rate=0.02)
    b = generate("sc013_backdoor", seed=3, rate=0.02)
    assert a.events == b.events and a.labels == b.labels
    assert json.dumps(a.truth) == json.dumps(b.truth)
    pa, pb = write(a, tmp_path / "a"), write(b, tmp_path / "b")
    for name in ("events.jsonl", "labels.jsonl", "truth.json"):
        assert pa[name].read_bytes() == pb[name].read_bytes(), name
    assert pa["events.jsonl"].read_bytes() == b"".join(line + b"\n" for line in a.events)
    c = generate("sc013_backdoor", seed=4, rate=0.02)
    assert c.events != a.events


def test_streamed_chunks_equal_the_list() -> None:
    sim = generate("card_testing", seed=1, rate=0.02)
    chunks = list(sim.iter_events(chunk=777))
    assert [line for chunk in chunks for line in chunk] == sim.events
    assert [len(c) for c in chunks[:-1]] == [777] * (len(chunks) - 1)


@pytest.mark.parametrize("name", list_scenarios())
def test_every_event_and_label_is_valid(name: str) -> None:
    scenario = load_scenario(name)
    if name == "sc013_backdoor":  # keep jsonschema affordable: 1,500 camouflage rows
        from dataclasses import replace

        b = scenario.behaviours[0]
        scenario = replace(scenario, behaviours=(
            replace(b, params={**b.params, "camouflage": 1500}),))
    sim = generate(scenario, seed=2, rate=0.005)
    for line in sim.events:
        obj = json.loads(line)
        errors = [e.message for e in SCORED.iter_errors(obj)]
        assert not errors, (errors, line)
        assert RFC3339_Z.fullmatch(obj["event_time"]), obj["event_time"]
        assert AMOUNT.fullmatch(obj["amount"]), obj["amount"]
        dt.date.fromisoformat(obj["merchant_registered_at"])
    for line in sim.labels:
        obj = json.loads(line)
        assert not [e.message for e in LABEL.iter_errors(obj)], line
        assert RFC3339_Z.fullmatch(obj["label_time"])
    events = parse_scored_batch(sim.events)
    labels = parse_label_batch(sim.labels)
    assert events.rejected == [] and labels.rejected == []
    assert len(events.events) == sim.n_events == sim.truth["n_events"]
    times = [e.event_time for e in events.events]
    assert times == sorted(times)
    assert [la.label_time for la in labels.labels] == sorted(la.label_time for la in labels.labels)
    assert len({e.event_id for e in events.events}) == sim.n_events
    assert len({e.txn_id for e in events.events}) == sim.n_events
    known = {e.txn_id: e.event_time for e in events.events}
    assert all(la.txn_id in known and la.label_time >= known[la.txn_id] for la in labels.labels)


def test_full_reference_run_parses_without_rejections(sc013) -> None:  # type: ignore[no-untyped-def]
    assert len(sc013.events) == sc013.sim.n_events > 60_000
    assert len(sc013.labels) == len(sc013.sim.labels) > 0


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    days=st.floats(0.02, 0.3),
    rate=st.floats(0.05, 1.0),
    name=st.sampled_from(["clean_baseline", "card_testing", "coordinated_campaign"]),
)
def test_any_seed_gives_valid_sorted_unique_events(
    seed: int, days: float, rate: float, name: str
) -> None:
    sim = generate(name, seed=seed, days=days, rate=rate)
    batch = parse_scored_batch(sim.events)
    assert batch.rejected == []
    assert parse_label_batch(sim.labels).rejected == []
    ms = [e.event_ms for e in batch.events]
    assert ms == sorted(ms) and ms == sim.event_time_ms.tolist()
    assert len({e.event_id for e in batch.events}) == len(batch.events)
    start = dt.datetime.fromisoformat(sim.truth["start"])
    end = dt.datetime.fromisoformat(sim.truth["end"])
    assert all(start <= e.event_time < end for e in batch.events)
