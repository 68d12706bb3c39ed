"""Simulations shared by the simulator tests (generated once per session)."""

from __future__ import annotations

import msgspec
import pytest

from driftwatch.events import ScoredTransaction, parse_label_batch, parse_scored_batch
from driftwatch.simulate import Simulation, generate


class Parsed:
    """A simulation with its events and labels parsed by the contract parser."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        batch = parse_scored_batch(sim.events)
        labels = parse_label_batch(sim.labels)
        assert batch.rejected == [] and labels.rejected == []
        self.events = batch.events
        self.labels = labels.labels
        self.by_id: dict[str, ScoredTransaction] = {e.event_id: e for e in batch.events}

    def rows(self, ids: list[str]) -> list[ScoredTransaction]:
        return [self.by_id[i] for i in ids]

    def attack(self, name: str) -> list[ScoredTransaction]:
        return self.rows(self.sim.truth["attack_event_ids"][name])


@pytest.fixture(scope="session")
def sc013() -> Parsed:
    """The reference attack at 0.2 tx/s (full attack: 247 triggers, 15,000 camouflage)."""
    return Parsed(generate("sc013_backdoor", seed=11, rate=0.2))


@pytest.fixture(scope="session")
def attacks() -> dict[str, Parsed]:
    """Every other attack scenario at 0.1 tx/s."""
    names = ["card_testing", "coordinated_campaign", "account_takeover", "boundary_probing",
             "out_of_range_trigger", "mule_chains"]
    return {n: Parsed(generate(n, seed=5, rate=0.1)) for n in names}


class Lite(msgspec.Struct):
    """The few fields the distribution tests need."""

    event_id: str
    event_time: str
    amount: str
    mcc: str
    model: dict[str, object]


@pytest.fixture(scope="session")
def clean() -> tuple[Simulation, list[Lite]]:
    """Two days of clean_baseline at its default rate (2 tx/s: 345,600 events)."""
    sim = generate("clean_baseline", seed=7, days=2.0)
    rows = msgspec.json.Decoder(list[Lite]).decode(b"[" + b",".join(sim.events) + b"]")
    return sim, rows
