"""Composite-key sequence windows served by the card's window (rules/sharing.py) give
the hits and evidence of windows of their own."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.rules import live
from driftwatch.rules.live import LiveEvaluator
from driftwatch.rules.pack import rule_from_text
from driftwatch.rules.sharing import SHORT, FilteredHeld
from tests.unit.rules.helpers import DAY_MS, event, parse

SEQUENCES = [
    "travel_speed_kmh(by=card_id, within=1h, slack_km=10, slack_h=0.5) > 100",
    "monotonic_increase(amount_minor, by=[card_id, ip], n=2, within=10m)",
    "monotonic_decrease(amount_minor, by=[card_id, device_id], n=3, within=30m, factor<=0.95)",
    "amount_minor >= 100 and monotonic_increase(amount_minor, by=[card_id, merchant_id], n=3,"
    " within=20m, factor>=1.1) and (not present(geo_lat)"
    " or travel_km(by=[card_id, merchant_id], within=20m) <= 1)",
    "travel_km(by=[card_id, device_id], within=1h) > 5",
]


def _run(shared: bool, batches: list[list[Any]], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    rules = [rule_from_text(f"s{i}", text) for i, text in enumerate(SEQUENCES)]
    with monkeypatch.context() as m:
        if not shared:
            m.setattr(live, "share", lambda specs: [])
        ev = LiveEvaluator(rules, horizon_ms=DAY_MS)
    assert len(ev._views) == (3 if shared else 0)
    assert len(ev._windows) == (1 if shared else 4)
    return [(h.rule.id, h.event.event_id, h.evidence) for b in batches for h in ev.process(b)]


@st.composite
def card_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A few cards from a few devices, IPs and merchants, at increasing times."""
    out, t = [], 0
    for i in range(draw(st.integers(1, 60))):
        t += draw(st.sampled_from([0, 1, 60_000, 300_000, 900_000]))
        fields: dict[str, Any] = {
            "card_id": draw(st.sampled_from(["c1", "c2"])),
            "merchant_id": draw(st.sampled_from(["m1", "m2"])),
            "amount": f"{draw(st.integers(1, 400))}.00",
        }
        for name, values in (("ip", ["", "10.0.0.1", "10.0.0.2"]), ("device_id", ["", "d1",
                                                                                  "d2"])):
            if value := draw(st.sampled_from(values)):
                fields[name] = value
        if draw(st.booleans()):
            fields["geo"] = {"lat": draw(st.sampled_from([51.5, 51.51, 40.7])), "lon": -0.12}
        out.append(event(i, t, **fields))
    return out


@settings(max_examples=50, deadline=None)
@given(card_streams(), st.integers(1, 30))
def test_shared_windows_hit_as_windows_of_their_own(dicts: list[dict[str, Any]], size: int,
                                                    ) -> None:
    evs = parse(dicts)
    batches = [evs[i : i + size] for i in range(0, len(evs), size)]
    with pytest.MonkeyPatch.context() as mp:
        assert _run(True, batches, mp) == _run(False, batches, mp)


def test_a_card_flooded_from_many_devices_reads_its_groups(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # more entries than SHORT on one card: the card's entries are grouped per batch
    dicts = [event(i, i * 1000, card_id="c1", device_id=f"d{i % 7}", amount=f"{10 + i}.00",
                   geo={"lat": 51.5 + (i % 3), "lon": -0.12})
             for i in range(6 * SHORT)]
    evs = parse(dicts)
    batches = [evs[i : i + 40] for i in range(0, len(evs), 40)]
    got = _run(True, batches, monkeypatch)
    assert got == _run(False, batches, monkeypatch)
    assert {r for r, _, _ in got} == {"s0", "s4"}  # fast travel; amounts only rise


FILTERED = [
    "travel_speed_kmh(by=card_id, within=1h, slack_km=10, slack_h=0.5) > 100",  # the base
    "amount_minor <= 300 and count(by=card_id, within=15m, where=amount_minor <= 300) >= 3",
    "amount_minor >= 100 and (count(by=card_id, within=30m, where=amount_minor >= 100) >= 2"
    " and monotonic_decrease(amount_minor, by=card_id, n=2, within=30m)"
    " or count(by=card_id, within=1h, where=amount_minor >= 100) >= 3"
    " and max(amount_minor, by=card_id, within=1h, where=amount_minor >= 100) * 10"
    " >= min(amount_minor, by=card_id, within=1h, where=amount_minor >= 100) * 25)",
    "sum(amount_minor, by=card_id, within=20m, where=present(device_id)) >= 500",
    "count(by=card_id, within=2h, where=amount_minor > 5) >= 1",  # longer than the base
]


def _run_filtered(shared: bool, batches: list[list[Any]]) -> list[Any]:
    rules = [rule_from_text(f"f{i}", text) for i, text in enumerate(FILTERED)]
    with pytest.MonkeyPatch.context() as m:
        if not shared:
            m.setattr(live, "share_filtered", lambda specs: [])
        ev = LiveEvaluator(rules, horizon_ms=DAY_MS)
    # the card's 1 h window serves the 15 min, 30 min / 1 h and 20 min filtered ones
    assert len(ev._windows) == (2 if shared else 5)
    return [(h.rule.id, h.event.event_id, h.evidence) for b in batches for h in ev.process(b)]


@settings(max_examples=50, deadline=None)
@given(card_streams(), st.integers(1, 30))
def test_filtered_windows_hit_as_windows_of_their_own(dicts: list[dict[str, Any]], size: int,
                                                      ) -> None:
    evs = parse(dicts)
    batches = [evs[i : i + size] for i in range(0, len(evs), size)]
    got = _run_filtered(True, batches)
    assert got == _run_filtered(False, batches)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.booleans()), max_size=12),
       st.integers(0, 22), st.integers(1, 6))
def test_recent_counts_the_filtered_entries_since_low(
        rows: list[tuple[int, bool]], low: int, need: int) -> None:
    """``FilteredHeld.recent`` (counted from the newest back, stopping early) is the count
    of the entries at ``low`` or later whose filter slot is true, compared with ``need``;
    a key's lone entry is held bare, a missing key is None."""
    entries = [(ms, f"e{i}", ok) for i, (ms, ok) in enumerate(sorted(rows))]
    data: dict[Hashable, Any] = {}
    if entries:
        data["k"] = entries[0] if len(entries) == 1 else entries
    held = FilteredHeld(data.get, 2, 10)
    want = sum(1 for ms, _, ok in entries if ms >= low and ok) >= need
    assert held.recent("k", low, need) is want
