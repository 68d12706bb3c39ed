"""Artifact integrity: a model whose SHA-256 does not match is refused before it is
deserialised; skops artifacts load only allow-listed types."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from driftwatch.gate.artifact import ArtifactScorer, load_model, sha256_bytes, write_record
from driftwatch.gate.errors import ArtifactError, GateError
from driftwatch.gate.scorer import open_scorer

MARKER: list[str] = []


def _explode(path: str) -> list[str]:
    """Run on unpickling: proves whether a pickle was loaded."""
    Path(path).write_text("unpickled")
    return MARKER


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (_explode, (self.path,))


def test_a_pickle_with_a_wrong_hash_is_refused_before_it_is_unpickled(tmp_path: Path) -> None:
    flag = tmp_path / "ran"
    art = tmp_path / "model.pkl"
    art.write_bytes(pickle.dumps(_Evil(str(flag))))
    write_record(tmp_path / "record.json", [art])
    art.write_bytes(art.read_bytes() + b" ")  # tampered after training
    with pytest.raises(ArtifactError, match="does not match the training-run record"):
        load_model(art)
    assert not flag.exists()
    with pytest.raises(ArtifactError, match="does not match --sha256"):
        load_model(art, sha256="ab" * 32)
    assert not flag.exists()
    # the right hash on the command line is not enough while the record disagrees
    with pytest.raises(ArtifactError, match="training-run record"):
        load_model(art, sha256=sha256_bytes(art.read_bytes()))
    assert not flag.exists()


def test_an_unrecorded_artifact_is_refused(tmp_path: Path) -> None:
    art = tmp_path / "model.pkl"
    art.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ArtifactError, match="unverified artifact"):
        load_model(art)
    assert load_model(art, sha256=sha256_bytes(art.read_bytes())) == [1, 2]
    with pytest.raises(ArtifactError, match="64 hex digits"):
        load_model(art, sha256="xyz")


def test_skops_round_trip_and_the_gate_refuses_a_tampered_model(tmp_path: Path) -> None:
    sio = pytest.importorskip("skops.io")
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.random((300, 3))
    y = (x[:, 0] > 0.5).astype(int)
    model = HistGradientBoostingClassifier(max_iter=10).fit(x, y)
    art = tmp_path / "m.skops"
    sio.dump(model, art)
    write_record(tmp_path / "record.json", [art])

    def featurize(events: object) -> np.ndarray:
        return x[:5]

    scorer = ArtifactScorer(art, featurize)
    assert scorer([{}] * 5).tolist() == model.predict_proba(x[:5])[:, 1].tolist()
    good = sha256_bytes(art.read_bytes())
    scorer.load(sha256=good)
    with pytest.raises(ArtifactError, match="--sha256"):
        scorer.load(sha256="0" * 64)
    data = bytearray(art.read_bytes())
    data[-30] ^= 1
    art.write_bytes(bytes(data))
    with pytest.raises(GateError, match="does not match"):
        ArtifactScorer(art, featurize).load()


def test_artifact_scorer_through_the_gate_spec(tmp_path: Path) -> None:
    art = tmp_path / "model.pkl"
    art.write_bytes(pickle.dumps({"k": 1}))
    (tmp_path / "s.py").write_text(
        "from driftwatch.gate.artifact import ArtifactScorer\n"
        f"model = ArtifactScorer({str(art)!r}, lambda ev: ev)\n"
    )
    with pytest.raises(ArtifactError, match="does not match --sha256"):
        open_scorer(f"{tmp_path / 's.py'}:model", batch_size=10, max_calls=0, sha256="1" * 64)
