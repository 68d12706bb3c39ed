"""Scorers of the gate example: the models trained by ``train.py``, loaded verified.

Gate specs: ``examples/gate/scorer.py:champion``, ``...:honest``, ``...:poisoned``.
Each is a :class:`~driftwatch.gate.artifact.ArtifactScorer`: the ``.skops`` file is
hashed and checked against ``record.json`` (the training-run record) before it is
read. The models live in ``$GATE_EXAMPLE_DIR/models`` (default
``.driftwatch/gate-demo/models`` under the current directory).
"""

from __future__ import annotations

import datetime as dt
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.gate.artifact import ArtifactScorer
from driftwatch.gate.probe import CHANNELS, beneficiary_prefix, minor_units

COLUMNS = (
    "amount", "amount_cents", "mcc", "beneficiary_prefix", "merchant_country", "channel",
    "transactions_24h", "foreign_transaction", "new_payee", "new_device",
    "distance_from_home_km", "merchant_age_days", "customer_age", "hour",
)
CATEGORICAL = tuple(c in ("beneficiary_prefix", "merchant_country", "channel") for c in COLUMNS)
_FEATS = ("transactions_24h", "foreign_transaction", "new_payee", "new_device",
          "distance_from_home_km", "merchant_age_days", "customer_age")


def _code(text: str) -> float:
    """A category code in 0..249 (the model treats an unseen code as missing)."""
    return float(zlib.crc32(text.encode()) % 250) if text else np.nan


def _hour(text: str) -> float:
    try:
        return float(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).hour)
    except ValueError:
        return np.nan


def _num(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else np.nan


def featurize(events: Sequence[dict[str, Any]]) -> npt.NDArray[np.float64]:
    """Events -> feature matrix in :data:`COLUMNS` order (missing values are NaN)."""
    rows = np.empty((len(events), len(COLUMNS)), dtype=np.float64)
    for i, e in enumerate(events):
        minor = minor_units(e)
        f = e.get("features") or {}
        ch = e.get("channel")
        mcc = str(e.get("mcc", ""))
        rows[i, :6] = (
            minor / 100, minor % 100, float(mcc) if mcc.isdigit() else np.nan,
            _code(beneficiary_prefix(str(e.get("beneficiary_name", "")))),
            _code(str(e.get("merchant_country", ""))),
            float(CHANNELS.index(ch)) if ch in CHANNELS else np.nan,
        )
        rows[i, 6:13] = [_num(f.get(k)) for k in _FEATS]
        rows[i, 13] = _hour(str(e.get("event_time", "")))
    return rows


def models_dir() -> Path:
    """Where ``train.py`` wrote the models."""
    base = Path(os.environ.get("GATE_EXAMPLE_DIR", ".driftwatch/gate-demo"))
    return base / "models"


champion = ArtifactScorer(models_dir() / "champion.skops", featurize)
honest = ArtifactScorer(models_dir() / "honest.skops", featurize)
poisoned = ArtifactScorer(models_dir() / "poisoned.skops", featurize)
