"""A columnar batch of simulated transactions (numpy arrays, one row per event).

Every generator (legitimate traffic, fraud profiles, campaigns) returns a
:class:`Frame`; the engine concatenates them, sorts by event time, derives the
features and scores, and serialises. Entities are integer indices into the
:class:`~driftwatch.simulate.world.World` tables, so frames stay compact.

>>> f = Frame.build(3, t=[5, 1, 3], amount=100, merchant=0, card=[0, 1, 2])
>>> f.take(f.t.argsort()).card.tolist()
[1, 2, 0]
>>> len(Frame.concat([f, f])), Frame.concat([]).amount.dtype
(6, dtype('int64'))
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

# name -> (dtype, default)
COLUMNS: dict[str, tuple[type[np.generic], float | int | bool]] = {
    "t": (np.int64, 0),  # event time, ms since the Unix epoch
    "amount": (np.int64, 0),  # minor units (cents)
    "merchant": (np.int32, 0),  # World merchant index
    "card": (np.int32, 0),  # World card index
    "channel": (np.int8, 0),  # index into CHANNELS
    "ip": (np.int64, 0),  # IPv4 as an integer
    "device": (np.int64, 0),  # device number (formatted d-<n>)
    "loc": (np.int32, 0),  # World location index (geo of the transaction)
    "benef": (np.int64, -1),  # beneficiary code (see World.beneficiary)
    "new_payee": (np.int8, 0),
    "new_device": (np.int8, 0),
    "age": (np.int16, 0),  # customer_age feature as sent to the model
    "behaviour": (np.int16, 0),  # index into BEHAVIOURS of the engine; 0 = legit
    "fraud": (np.bool_, False),  # ground truth
    "signal": (np.float32, 0.0),  # hidden evidence a real model would have (logit units)
    "override": (np.float32, np.nan),  # fixed champion score (NaN: the model decides)
}

CHANNELS: tuple[str, ...] = ("card_present", "ecom", "upi", "transfer", "atm", "other")
CH_CARD_PRESENT, CH_ECOM, CH_UPI, CH_TRANSFER, CH_ATM, CH_OTHER = range(6)


@dataclass
class Frame:
    """Parallel columns of one batch of events (see :data:`COLUMNS`)."""

    t: npt.NDArray[np.int64]
    amount: npt.NDArray[np.int64]
    merchant: npt.NDArray[np.int32]
    card: npt.NDArray[np.int32]
    channel: npt.NDArray[np.int8]
    ip: npt.NDArray[np.int64]
    device: npt.NDArray[np.int64]
    loc: npt.NDArray[np.int32]
    benef: npt.NDArray[np.int64]
    new_payee: npt.NDArray[np.int8]
    new_device: npt.NDArray[np.int8]
    age: npt.NDArray[np.int16]
    behaviour: npt.NDArray[np.int16]
    fraud: npt.NDArray[np.bool_]
    signal: npt.NDArray[np.float32]
    override: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.t.shape[0])

    @classmethod
    def build(cls, n: int, **columns: Any) -> Frame:
        """A frame of ``n`` rows; each column is an array, a scalar, or its default."""
        unknown = set(columns) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown columns {sorted(unknown)}; valid: {sorted(COLUMNS)}")
        out: dict[str, Any] = {}
        for name, (dtype, default) in COLUMNS.items():
            value = columns.get(name, default)
            arr = np.asarray(value).astype(dtype, copy=False)
            if arr.ndim == 0:
                arr = np.full(n, arr, dtype=dtype)
            if arr.shape != (n,):
                raise ValueError(f"column {name}: shape {arr.shape}, expected ({n},)")
            out[name] = arr
        return cls(**out)

    @classmethod
    def concat(cls, frames: list[Frame]) -> Frame:
        """Rows of ``frames`` one after the other."""
        if not frames:
            return cls.build(0)
        return cls(
            **{f.name: np.concatenate([getattr(fr, f.name) for fr in frames]) for f in fields(cls)}
        )

    def take(self, idx: npt.NDArray[np.intp] | npt.NDArray[np.int64]) -> Frame:
        """The rows at ``idx`` (in that order)."""
        return Frame(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})
