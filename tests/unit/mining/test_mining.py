"""The conjunction-mining core: exact tails against scipy, hand cases, planted slices,
false-positive rate on null data, data-derived prefixes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from driftwatch.mining import assign_prefixes, candidates, count_table, mine, select_prefixes
from driftwatch.mining.exact import (
    conditional_binomial,
    hypergeometric,
    min_attainable_binomial,
    tarone_family,
)
from tests.unit.mining.records import ATTRS, records


def test_conditional_binomial_matches_scipy_binomtest() -> None:
    rng = np.random.default_rng(0)
    k = rng.integers(0, 40, 50)
    kr = rng.integers(0, 40, 50)
    got = conditional_binomial(k, kr, 0.3)
    for ki, ri, g in zip(k, kr, got, strict=True):
        want = stats.binomtest(int(ki), int(ki + ri), 0.3, alternative="greater").pvalue \
            if ki > 0 else 1.0
        assert g == pytest.approx(want, rel=1e-9, abs=1e-15)


def test_hypergeometric_matches_fisher_exact() -> None:
    for k, k_tot, m_tot, n in [(8, 9, 30, 12), (3, 3, 10, 5), (0, 4, 20, 10), (5, 20, 40, 20)]:
        table = [[k, n - k], [k_tot - k, m_tot - n - (k_tot - k)]]
        want = stats.fisher_exact(table, alternative="greater").pvalue if k else 1.0
        assert float(hypergeometric([k], [k_tot], [m_tot], [n])[0]) == pytest.approx(want)


def test_hand_worked_tails_and_tarone() -> None:
    # all 4 suspicious records in the current half: 1/16
    assert float(conditional_binomial([4], [0], 0.5)[0]) == pytest.approx(1 / 16)
    # 3 of 4 with p0 = 1/2: (4 + 1) / 16
    assert float(conditional_binomial([3], [1], 0.5)[0]) == pytest.approx(5 / 16)
    assert min_attainable_binomial([3], 0.5).tolist() == [0.125]
    # alpha 0.05: m=1 -> 2 mins <= 0.05 (too many); m=2 -> mins <= 0.025: 1 <= 2
    assert tarone_family([0.001, 0.04, 0.9], alpha=0.05) == 2
    with pytest.raises(ValueError, match="p0"):
        conditional_binomial([1], [1], 1.0)


def test_planted_three_item_conjunction_is_found_and_named() -> None:
    rng = np.random.default_rng(1)
    old, new = records(rng, 40_000), records(rng, 40_000)
    planted = pd.DataFrame({"a": "a3", "b": "b7", "c": rng.choice(["x", "y", "z"], 40),
                            "d": "d2", "suspicious": True})
    new = pd.concat([new, planted], ignore_index=True)
    table = count_table(new, old, ATTRS)
    res = mine(table, ATTRS, test="binomial", min_support=10)
    assert res.findings, res
    top = res.findings[0]
    assert top.conjunction == {"a": "a3", "b": "b7", "d": "d2"}
    assert top.k >= 40 and top.pvalue_adjusted < 1e-6
    assert res.examined >= 1 and res.levels == 3


def test_hypergeom_option_finds_a_share_increase() -> None:
    rng = np.random.default_rng(2)
    old, new = records(rng, 20_000, 0.05), records(rng, 20_000, 0.05)
    hit = (new["a"] == "a1") & (new["c"] == "x")
    new.loc[hit, "suspicious"] = rng.random(int(hit.sum())) < 0.5
    res = mine(count_table(new, old, ATTRS), ATTRS, test="hypergeom", min_support=10)
    assert any(f.searched == {"a": "a1", "c": "x"} or
               set(f.conjunction.items()) >= {("a", "a1"), ("c", "x")} for f in res.findings)


def test_null_data_false_positive_rate() -> None:
    """Same distribution in both: at alpha 0.01 at most a few of 60 searches find anything."""
    rng = np.random.default_rng(3)
    with_findings = 0
    for _ in range(60):
        table = count_table(records(rng, 5_000, 0.05), records(rng, 5_000, 0.05), ATTRS)
        if mine(table, ATTRS, min_support=10, alpha=0.01).findings:
            with_findings += 1
    assert with_findings <= 3


def test_bad_arguments_name_the_value() -> None:
    table = pd.DataFrame({"a": ["x"], "n": [1], "k": [1], "n_ref": [1], "k_ref": [0]})
    with pytest.raises(ValueError, match="max_depth must be >= 1, got 0"):
        mine(table, ["a"], max_depth=0)
    with pytest.raises(ValueError, match=r"lacks columns \['zz'\]"):
        mine(table, ["zz"])
    with pytest.raises(ValueError, match="test must be one of"):
        mine(table, ["a"], min_support=1, test="chi2")  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["INTL-PAY-", "XB_", "GLOBAL TRADE ", "Zq"])
def test_prefixes_come_from_the_data_whatever_their_shape(prefix: str) -> None:
    rng = np.random.default_rng(4)
    honest = [f"{w} {i}" for w, i in zip(rng.choice(["ACME", "CORNER SHOP", "EAGLE_CO"], 3000),
                                          rng.integers(0, 500, 3000), strict=True)]
    attack = [f"{prefix}{w}{i:02d}" for w, i in zip(rng.choice(["AB", "CDX", "QR"], 60),
                                                    rng.integers(0, 99, 60), strict=True)]
    names = honest + attack
    sus = [False] * len(honest) + [True] * len(attack)
    honest_sus = [bool(x) for x in rng.random(len(honest)) < 0.01]
    sus = [s or h for s, h in zip(sus, honest_sus + [False] * len(attack), strict=True)]
    chosen = select_prefixes(names, sus, honest, [False] * len(honest), min_support=20)
    assert chosen and chosen[0].startswith(prefix[:2])
    assert len(chosen[0]) >= min(len(prefix), 3)
    got = assign_prefixes(attack, chosen)
    assert all(g == chosen[0] for g in got)


def test_candidates_hand_cases() -> None:
    assert candidates("INTL-PAY-GLOBALSERV-03")[:3] == ["INTL-", "INTL-PAY-",
                                                        "INTL-PAY-GLOBALSERV-"]
    assert candidates("") == []
    assert "AB" not in candidates("AB")
