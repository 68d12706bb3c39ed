"""The resolved settings of one simulator run and the arrays its stages pass on.

:class:`Run` (seed, span, schedule scale) and the row-aligned results of each stage of
:func:`driftwatch.simulate.engine.generate`: :class:`Traffic` (all rows, sorted by
time), :class:`Features`, :class:`Benef` (beneficiary names) and :class:`Scores`; read
by the wire columns (:mod:`~driftwatch.simulate.columns`) and the ground truth
(:mod:`~driftwatch.simulate.truth`).
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.simulate.attackers import HOUR_MS
from driftwatch.simulate.frame import Frame
from driftwatch.simulate.scenario import Scenario
from driftwatch.simulate.world import World

I64 = npt.NDArray[np.int64]


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def iso_ms(ms: int) -> str:
    """RFC 3339 UTC text of an epoch-millisecond time (ms only when non-zero)."""
    value = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    text = value.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True)
class Run:
    """Resolved settings of one run."""

    sc: Scenario
    seed: int
    days: float
    rate: float
    t0: int
    t1: int
    scale: float  # factor applied to scheduled times (< 1 when days are shortened)

    def rng(self, name: str) -> np.random.Generator:
        return _rng(self.seed, name)

    def hours(self, h: float) -> int:
        """Event time ``h`` scheduled hours after the start."""
        return self.t0 + round(h * self.scale * HOUR_MS)


@dataclass
class Traffic:
    """All rows, sorted by time, with behaviour names and what to expect."""

    world: World
    legit_cards: int
    rows: Frame
    names: list[str]
    windows: dict[str, tuple[int, int]]
    expected: list[dict[str, Any]]
    trigger_codes: list[int]


@dataclass
class Features:
    """Derived per-row features (as sent in the event)."""

    mcc: npt.NDArray[np.int32]
    tx_24h: I64
    distance_km: npt.NDArray[np.float64]
    foreign: npt.NDArray[np.int8]
    merchant_age: I64
    amount_z: npt.NDArray[np.float64]


@dataclass
class Scores:
    """Model outputs per row."""

    champion: npt.NDArray[np.float64]
    served: npt.NDArray[np.float64]
    version: npt.NDArray[np.int8]  # index into versions
    shadow: npt.NDArray[np.int8]  # index into versions, -1 = none
    shadow_score: npt.NDArray[np.float64]
    decision: npt.NDArray[np.int8]
    backdoor: npt.NDArray[np.bool_]  # rows matching the challenger's trigger (any time)
    versions: list[str]
    deploy_ms: int | None


@dataclass
class Benef:
    """Beneficiary names: the distinct ones, and each row's index into them."""

    names: npt.NDArray[np.bytes_]
    index: npt.NDArray[np.intp]

    def startswith(self, prefix: str) -> npt.NDArray[np.bool_]:
        return np.asarray(np.strings.startswith(self.names, prefix.encode())[self.index])
