"""Model artifacts verified by SHA-256 *before* they are deserialised.

A pickle is code: loading one runs whatever it says. So the bytes of an artifact are
read once, hashed, compared with the hash recorded when the model was trained (the
training-run record) and with any hash given on the command line, and only those same
bytes are deserialised. The preferred format is skops (``.skops``), which is not code:
it rebuilds only an allow-list of types (:data:`TRUSTED_TYPES`) and refuses anything
else. ``.pkl`` / ``.joblib`` still load, after verification, for models skops cannot
hold.

The training-run record is JSON: ``{"artifacts": {"<file name>": {"sha256": "<hex>",
...}}, ...}``, written by :func:`write_record` next to the artifacts.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "m.pkl").write_bytes(b"not a pickle")
>>> rec = write_record(d / "record.json", [d / "m.pkl"])
>>> read_verified(d / "m.pkl", record=rec) == b"not a pickle"
True
>>> read_verified(d / "m.pkl", sha256="00" * 32)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
driftwatch.gate.errors.ArtifactError: m.pkl: SHA-256 ... does not match --sha256 ...
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.gate.errors import ArtifactError

#: Types a ``.skops`` artifact may contain beyond skops' own defaults (those a
#: scikit-learn HistGradientBoostingClassifier needs). Anything else is refused.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
    "functools.partial",
)
RECORD_NAME = "record.json"
_HEX = re.compile(r"[0-9a-f]{64}")


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _expected(path: Path, record: Path | None) -> str | None:
    if record is None:
        guess = path.parent / RECORD_NAME
        if not guess.is_file():
            return None
        record = guess
    try:
        doc = json.loads(record.read_text(encoding="utf-8"))
        entry = doc["artifacts"][path.name]
        value = str(entry["sha256"]).lower()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{record}: no SHA-256 recorded for {path.name} ({exc})") from None
    if not _HEX.fullmatch(value):
        raise ArtifactError(f"{record}: recorded SHA-256 of {path.name} is not 64 hex digits")
    return value


def read_verified(
    path: str | Path, *, sha256: str | None = None, record: str | Path | None = None
) -> bytes:
    """Read an artifact and check its SHA-256; return the bytes that were checked.

    Parameters
    ----------
    path : str or Path
        The artifact.
    sha256 : str, optional
        Expected hex digest (``--sha256`` on the command line).
    record : str or Path, optional
        Training-run record (default: ``record.json`` beside the artifact, if any).

    Raises
    ------
    ArtifactError
        No expected hash at all, or a hash that does not match (each source that
        was given must match).
    """
    p = Path(path)
    expected_cli = sha256.lower() if sha256 else None
    if expected_cli is not None and not _HEX.fullmatch(expected_cli):
        raise ArtifactError(f"--sha256 {sha256!r}: expected 64 hex digits")
    expected_rec = _expected(p, Path(record) if record is not None else None)
    if expected_cli is None and expected_rec is None:
        raise ArtifactError(
            f"{p}: no SHA-256 recorded for it (no {RECORD_NAME} beside it) and none given "
            "with --sha256; refusing to load an unverified artifact"
        )
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{p}: cannot read the artifact ({exc.strerror})") from None
    actual = sha256_bytes(data)
    for where, want in (("--sha256", expected_cli), ("the training-run record", expected_rec)):
        if want is not None and actual != want:
            raise ArtifactError(
                f"{p.name}: SHA-256 {actual[:12]}... does not match {where} "
                f"{want[:12]}...; refusing to load it"
            )
    return data


def load_model(
    path: str | Path, *, sha256: str | None = None, record: str | Path | None = None
) -> Any:
    """Load a verified model artifact (``.skops`` preferred; ``.pkl``/``.joblib``)."""
    p = Path(path)
    data = read_verified(p, sha256=sha256, record=record)
    if p.suffix == ".skops":
        import skops.io as sio

        untrusted = set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES)
        if untrusted:
            raise ArtifactError(f"{p.name}: refusing types outside the allow-list: "
                                f"{', '.join(sorted(untrusted))}")
        return sio.loads(data, trusted=list(TRUSTED_TYPES))
    if p.suffix in (".pkl", ".joblib"):
        return pickle.loads(data)  # noqa: S301 - bytes verified against the record above
    raise ArtifactError(f"{p.name}: unknown artifact format; valid: .skops, .pkl, .joblib")


def write_record(
    out: str | Path, artifacts: Iterable[str | Path], **extra: Any
) -> Path:
    """Write a training-run record with the SHA-256 and size of each artifact."""
    entries = {}
    for a in artifacts:
        ap = Path(a)
        data = ap.read_bytes()
        entries[ap.name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    doc = {"artifacts": entries, **extra}
    path = Path(out)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


Featurize = Callable[[Sequence[dict[str, Any]]], npt.NDArray[np.float64]]


class ArtifactScorer:
    """A scorer (``score(events) -> scores``) over a verified scikit-learn artifact.

    The model is loaded on :meth:`load` (the gate calls it with ``--…-sha256``) or on
    the first call, never before its hash is checked.

    Parameters
    ----------
    path : str or Path
        The artifact (``.skops`` preferred).
    featurize : callable
        Events -> 2-D feature array in the model's column order.
    record : str or Path, optional
        Training-run record (default: ``record.json`` beside the artifact).
    """

    def __init__(
        self, path: str | Path, featurize: Featurize, record: str | Path | None = None
    ) -> None:
        self.path = Path(path)
        self.featurize = featurize
        self.record = record
        self._model: Any = None

    def load(self, sha256: str | None = None) -> None:
        """Verify and load the artifact (again, if ``sha256`` is given)."""
        self._model = load_model(self.path, sha256=sha256, record=self.record)

    def __call__(self, events: Sequence[dict[str, Any]]) -> npt.NDArray[np.float64]:
        if self._model is None:
            self.load()
        x = self.featurize(events)
        return np.asarray(self._model.predict_proba(x)[:, 1], dtype=np.float64)
