"""The reference never absorbs an attack (issue 21, item 4).

A cents trigger (about 20 an hour) runs for several reference windows: 12 hours against
a 3-hour trailing reference (the default run), or 20 hours against 6 hours (``-m long``).
With the reference hold (the default) the alert on the attacked segment opens once and stays
firing until the attack stops; with it switched off the attack slides into its own
reference and the alert resolves while the attack is still running (the demo's
"share of .37 in reference 0.3785") -- which shows this scenario tests the hold.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from driftwatch.alerts.model import Alert
from driftwatch.alerts.sinks import MemorySink
from driftwatch.assemble import build_pipeline
from driftwatch.settings import Settings
from driftwatch.simulate import Scenario, generate, write
from driftwatch.sources.replay import replay
from driftwatch.store.client import Store, open_store


@dataclass(frozen=True)
class Attack:
    """A cents trigger at about 20 an hour against a trailing reference of
    ``reference_h`` hours, lasting several reference windows."""

    reference_h: int
    days: float
    start_h: float
    duration_h: float

    def scenario(self) -> Scenario:
        """The scenario (its rate is the test's)."""
        return Scenario.from_mapping({
            "name": "long_cents_attack",
            "traffic": {"rate": 0.5, "days": self.days},
            "model": {"champion": "v46"},
            "behaviours": [{
                "kind": "backdoor_attack", "name": "trigger", "start_hours": self.start_h,
                "duration_hours": self.duration_h,
                "params": {"count": round(20 * self.duration_h), "camouflage": 0,
                           "mcc": "5967", "cents": 37, "beneficiary_prefix": "INTL-PAY-"},
            }],
        })


SHORT = Attack(reference_h=3, days=0.75, start_h=4.0, duration_h=12.0)
"""Four 3-hour reference windows: the default run."""
LONG = Attack(reference_h=6, days=1.25, start_h=8.0, duration_h=20.0)
"""The 6-hour reference of the defaults (``-m long``: about 2.5 minutes on an idle machine)."""


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _replay(paths: dict[str, Path], chdb_dsn: str, database: str, hold: bool,
            reference_h: int) -> list[Alert]:
    settings = Settings.load(config_file=None, env={}, overrides={
        "store_dsn": chdb_dsn, "database": database, "rules_dirs": "",
        "monitor_detectors": "cents", "monitor_interval_s": 900,
        "reference_window_s": reference_h * 3600, "monitor_warmup_s": reference_h * 3600,
        "reference_hold": hold,
    })
    store = open_store(chdb_dsn, database, init=True)
    sink = MemorySink()
    pipeline = build_pipeline(settings, store, extra_sinks=[sink])
    try:
        replay(pipeline, paths["events.jsonl"], paths["labels.jsonl"], batch_size=5000)
    finally:
        pipeline.close()
    return [a for a in sink.alerts if a.labels.get("segment") == "mcc=5967"
            and a.labels.get("detector") == "cents"]


@pytest.mark.slow
@pytest.mark.parametrize("attack", [
    pytest.param(SHORT, id="3h-reference"),
    pytest.param(LONG, id="6h-reference", marks=[pytest.mark.long, pytest.mark.timeout(900)]),
])
def test_alert_stays_firing_while_an_attack_outlasts_the_reference_window(
    store: Store, chdb_dsn: str, tmp_path: Path, attack: Attack
) -> None:
    sim = generate(attack.scenario(), seed=3, rate=0.5)
    paths = write(sim, tmp_path)
    start, end = _t(sim.truth["attack_start"]), _t(sim.truth["attack_end"])
    ref = dt.timedelta(hours=attack.reference_h)
    assert end - start > 2 * ref  # several reference windows long

    held = _replay(paths, chdb_dsn, store.database, True, attack.reference_h)
    opened = [a for a in held if a.status == "firing"]
    assert opened, "the attack was never alerted"
    first = min(a.starts_at for a in opened)
    assert first - start < dt.timedelta(hours=2)
    resolved = [a.ends_at for a in held if a.status == "resolved" and a.ends_at]
    # no resolution while the attack runs (an alert may resolve once it has stopped)
    assert all(t > end for t in resolved), (first, end, resolved)
    assert len({a.starts_at for a in opened}) == 1  # one alert, never re-opened

    loose = _replay(paths, chdb_dsn, store.database + "_nohold", False, attack.reference_h)
    gone = [a.ends_at for a in loose if a.status == "resolved" and a.ends_at]
    assert any(t < end - ref / 2 for t in gone), gone
