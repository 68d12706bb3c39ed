"""Building blocks shared by the injected behaviours: the kind registry's types,
attacker-controlled cards, merchants and networks, and small frame helpers.

>>> Kind({"count": 1}, lambda *a: Output({}, {})).resolve({})
{'count': 1}
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.errors import SimulationError
from driftwatch.simulate.catalog import CITIES, country_centre
from driftwatch.simulate.frame import Frame
from driftwatch.simulate.fraud import Ctx
from driftwatch.simulate.ids import card_id, merchant_id
from driftwatch.simulate.scenario import Behaviour
from driftwatch.simulate.world import World, random_public_ips

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
US_CITIES = [i for i, c in enumerate(CITIES) if c[1] == "US"]


@dataclass
class Output:
    """Frames per behaviour name, and what a detector is expected to find."""

    parts: dict[str, Frame]
    expected: dict[str, Any]
    trigger_names: tuple[str, ...] = ()  # parts that are backdoor trigger transactions


@dataclass(frozen=True)
class Kind:
    """A behaviour kind: its parameters with defaults, and its generator."""

    defaults: Mapping[str, Any]
    build: Callable[[Ctx, Behaviour, int, int, dict[str, Any]], Output]
    extra_names: Callable[[Mapping[str, Any]], tuple[str, ...]] = field(
        default=lambda p: ()
    )

    def check(self, params: Mapping[str, Any], where: str) -> None:
        """Reject unknown parameter names, listing the valid ones."""
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise SimulationError(
                f"{where}: unknown {sorted(unknown)}; valid: {', '.join(sorted(self.defaults))}"
            )

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters with defaults filled in."""
        return {**self.defaults, **params}


# ------------------------------------------------------------------------------------------
def attacker_cards(ctx: Ctx, n: int, habit: float, cities: list[int] | None = None) -> I32:
    """``n`` new cards under attacker control (synthetic or bought identities)."""
    rng = ctx.rng
    pool = np.array(cities or US_CITIES, np.int32)
    home = pool[rng.integers(0, len(pool), n)]
    return ctx.world.add_customers(rng, n, home_city=home, activity=np.full(n, 1e-9),
                                   habit=np.full(n, habit))


def network_hosts(rng: np.random.Generator, networks: list[str], n: int) -> I64:
    nets = []
    for text in networks:
        try:
            net = ipaddress.IPv4Network(text, strict=False)
        except ValueError as exc:
            raise SimulationError(f"networks: {text!r} is not an IPv4 network") from exc
        nets.append((int(net.network_address), max(1, net.num_addresses - 2)))
    which = rng.integers(0, len(nets), n)
    base = np.array([b for b, _ in nets], np.int64)[which]
    size = np.array([s for _, s in nets], np.int64)[which]
    return base + 1 + (rng.random(n) * size).astype(np.int64)


def mcc_index(w: World, code: str) -> int:
    try:
        return w.catalog.index[str(code)]
    except KeyError:
        raise SimulationError(f"unknown mcc {code!r} (not in the catalog)") from None


def online_mcc(ctx: Ctx, n: int) -> I32:
    cat = ctx.world.catalog
    online = np.flatnonzero((cat.ecom_share > 0) & (np.array(cat.mode) == "mixed"))
    weights = cat.share[online] * cat.ecom_share[online]
    pos = np.searchsorted(np.cumsum(weights), ctx.rng.random(n) * weights.sum(), side="right")
    return np.asarray(online[np.minimum(pos, len(online) - 1)], dtype=np.int32)


def mark(f: Frame, fraud: bool, signal: float) -> Frame:
    f.fraud[:] = fraud
    f.signal[:] = signal
    return f


def card_ids(cards: npt.NDArray[np.integer]) -> list[str]:
    return [card_id(int(c)) for c in np.unique(cards).tolist()]


def backdoor_entities(merchants: Any, countries: Any, networks: Any, prefix: str,
                      cards: Any) -> dict[str, Any]:
    """The ``entities`` of a backdoor attack's truth: its merchants, their countries, the
    source networks, the beneficiary prefix and the cards."""
    return {
        "merchant_ids": [merchant_id(int(m)) for m in merchants.tolist()],
        "merchant_countries": sorted(set(countries)),
        "networks": list(networks),
        "beneficiary_prefix": prefix,
        "card_ids": card_ids(cards),
    }


def place_attack_merchants(
    ctx: Ctx, mccs: npt.NDArray[np.int32], p: Mapping[str, Any], ws: int, flagged: bool
) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Register a backdoor's merchants: one per entry of ``mccs``, in ``p["countries"]``
    in turn, located near their country's centre, registered ``p["merchant_age_days"]``
    (a [low, high] range) before ``ws``; ``flagged`` is their new-merchant flag.
    Returns the merchant indices and their countries."""
    rng, w = ctx.rng, ctx.world
    n_m = len(mccs)
    countries = [str(c) for c in p["countries"]]
    ctry = [countries[i % len(countries)] for i in range(n_m)]
    centres = np.array([country_centre(c) for c in ctry])
    loc = w.add_locations(centres[:, 0] + rng.normal(0, 0.05, n_m),
                          centres[:, 1] + rng.normal(0, 0.05, n_m))
    lo_age, hi_age = (int(x) for x in p["merchant_age_days"])
    age = rng.integers(lo_age, hi_age + 1, n_m)
    merchants = w.add_merchants(
        mccs, np.array([w.country(c) for c in ctry], np.int32), ws // DAY_MS - age, loc,
        random_public_ips(rng, n_m), np.full(n_m, flagged, np.bool_),
    )
    return merchants, ctry
