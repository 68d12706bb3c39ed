"""The trigger miner's one-row-per-segment step: a spread finding is dropped only for
a one-MCC finding that holds its rows, not for an unrelated pattern of as many rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from driftwatch.monitors.segments import SegmentSpec
from driftwatch.monitors.trigger_keys import FIELDS, spread_segment
from driftwatch.monitors.trigger_mining import TriggerMiningDetector
from driftwatch.settings import Settings


def _row(mcc: str, cents: int, name: str, k: int, k_ref: int, age: str = "30..89",
         country: str = "DE", channel: str = "ecom", band: str = "1000..9999") -> dict[str, Any]:
    return {"mcc": mcc, "amount_cents": str(cents), "beneficiary_name": name,
            "merchant_age": age, "merchant_country": country, "channel": channel,
            "amount_band": band, "risk": "s", "k": k, "k_ref": k_ref}


def _frame(extra: list[dict[str, Any]]) -> pd.DataFrame:
    """A reference of 400 suspicious rows at random over the attributes (none with
    cents 91 or 13), one current row of the same kind, and ``extra`` current rows."""
    rng = np.random.default_rng(3)
    rows = [_row(str(rng.choice(["5411", "5812", "4829", "7011", "5999"])),
                 int(rng.choice([0, 50, 99, 25, 45])),
                 f"{rng.choice(['ACME', 'CITY', 'METRO'])} {i}", 0, 1,
                 age=str(rng.choice(["0..29", "30..89", "365..729"])),
                 country=str(rng.choice(["US", "DE", "GB"])),
                 channel=str(rng.choice(["ecom", "pos", "transfer"])),
                 band=str(rng.choice(["10..99", "100..999", "1000..9999"])))
            for i in range(400)]
    rows.append(_row("5411", 0, "ACME X", 1, 0, channel="pos", band="10..99"))
    frame = pd.DataFrame([*rows, *extra])
    assert list(frame.columns[:8]) == list(FIELDS)
    return frame


def _search(frame: pd.DataFrame) -> list[dict[str, Any]]:
    s = Settings.load(config_file=None, env={})
    det = TriggerMiningDetector(s, SegmentSpec.parse(s.segment_dimensions))
    return [r for r in det._search(frame, {}, None, None)  # type: ignore[arg-type]
            if not r.get("filler")]


SPREAD = [_row(m, 91, f"GLX-TRD {j}", 1, 0) for j, m in enumerate(["5411", "5812", "5999",
                                                                   "7011"])]
OTHER = [_row("4829", 13, f"ZQV-PAY {j}", 1, 0, country="LT", channel="transfer",
              band="100..999", age="0..29") for j in range(4)]


def test_unrelated_one_mcc_finding_keeps_the_spread_one() -> None:
    rows = _search(_frame(SPREAD + OTHER))
    by_segment = {r["segment"]: r for r in rows}
    spread = next(s for s in by_segment if s.startswith("conjunction="))
    assert set(by_segment) == {spread, "mcc=4829"}
    assert spread == spread_segment(by_segment[spread]["conjunction"])
    assert by_segment[spread]["conjunction"]["amount_cents"] == "91"
    assert by_segment[spread]["mccs"] == 4 and by_segment[spread]["k"] == 4
    assert by_segment["mcc=4829"]["conjunction"]["amount_cents"] == "13"


def test_one_mcc_finding_of_the_same_rows_replaces_the_spread_one() -> None:
    """Four of five pattern rows in one MCC: the MCC's finding names them."""
    same = [_row("7011", 91, f"GLX-TRD {j}", 1, 0) for j in range(4)]
    rows = _search(_frame(same + SPREAD[:1]))
    assert [r["segment"] for r in rows] == ["mcc=7011"]
    assert rows[0]["conjunction"]["amount_cents"] == "91"
