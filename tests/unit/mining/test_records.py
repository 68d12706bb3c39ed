"""Records (the trigger miner's vectorised row matching) against :func:`matches` row by row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from driftwatch.monitors.trigger_keys import FIELDS, SEP, Records, matches, shared_rows


def _table(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 300
    pick = lambda values: rng.choice(values, n).tolist()  # noqa: E731
    return pd.DataFrame({
        "mcc": pick(["5967", "5411", "4829"]), "amount_cents": pick(["0", "37", "91"]),
        "beneficiary_name": pick(["GLX-TRD 4", "GLX-TRD 5", "GLX", "ACME", ""]),
        "merchant_age": pick(["", "30..89", "90..179"]), "merchant_country": pick(["LT", "US"]),
        "channel": pick(["ecom", "pos"]), "amount_band": pick(["10..99", "100..999"]),
        "risk": pick(["s", "w"]), "beneficiary_prefix": pick(["GLX-", "", "ACME"]),
        "k": rng.integers(0, 4, n), "k_ref": rng.integers(0, 4, n)})


CONJS = [{}, {"mcc": "5967"}, {"amount_cents": 91, "beneficiary_prefix": "GLX-"},
         {"beneficiary_prefix": "GLX-TRD", "merchant_age": "30..89", "channel": "ecom"},
         {"beneficiary_prefix": ""}, {"merchant_age": ""}, {"absent": "x"},
         {"amount_cents": "37", "mcc": "4829", "risk": "w"}]


def test_mask_keys_and_shared_rows_match_the_row_by_row_code() -> None:
    table = _table(3)
    rows = [{str(k): str(v) for k, v in r.items()} for r in table.to_dict("records")]
    rec = Records.of(table)
    for conj in CONJS:
        expect = [matches(conj, r) for r in rows]
        hit = rec.mask(conj)
        assert hit.tolist() == expect, conj
        assert rec.keys(hit) == [SEP.join(r[f] for f in FIELDS) for r, e in zip(
            rows, expect, strict=True) if e]
        for other in CONJS:
            both = sum(int(r["k"]) for r in rows if matches(conj, r) and matches(other, r))
            assert shared_rows(rec, conj, other) == both
    assert 0 < int(rec.mask(CONJS[2]).sum()) < len(rows)  # the test sees both outcomes


def test_empty_table() -> None:
    rec = Records.of(_table(1).iloc[:0])
    assert rec.mask({"mcc": "5967"}).tolist() == [] and rec.keys(rec.mask({})) == []
