"""SHA-256 manifests of training snapshots, and their verification.

A manifest (JSON) lists every data file with its SHA-256, size, record and label
counts (and bad records), the label share per segment (``mcc``, ``merchant_country``,
``channel``), and carries its own SHA-256: the hash of its canonical JSON form
(sorted keys, no spaces) without the ``manifest_sha256`` field. Verification
re-hashes the files and names every changed, added or removed one; it also refuses
a manifest whose own hash does not match (edited after it was written).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     _ = (Path(d) / "a.jsonl").write_bytes(GOOD + b"\\n")
...     m = build_manifest(d)
...     ok = verify(d, m)
...     _ = (Path(d) / "a.jsonl").write_bytes(GOOD.replace(b"4892", b"4893") + b"\\n")
...     changed = verify(d, m)
>>> m["records"], ok.ok, [(p.file, p.change) for p in changed.problems]
(1, True, [('a.jsonl', 'changed')])
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from driftwatch.training.records import GOOD, BadRecord, data_files, read_file

__all__ = ["GOOD", "ManifestProblem", "Verification", "build_manifest", "manifest_hash",
           "sha256_file", "verify"]

SEGMENTS = ("mcc", "merchant_country", "channel")
FORMAT_VERSION = 1
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def manifest_hash(manifest: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``manifest`` without ``manifest_sha256``."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _label_shares(frame: pd.DataFrame) -> dict[str, dict[str, dict[str, float | int]]]:
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    if frame.empty:
        return {s: {} for s in SEGMENTS}
    for seg in SEGMENTS:
        g = frame.groupby(frame[seg].astype(str), observed=True)["label"].agg(["size", "sum"])
        out[seg] = {
            str(v): {"records": int(r["size"]), "fraud": int(r["sum"]),
                     "label_share": round(float(r["sum"]) / float(r["size"]), 6)}
            for v, r in g.iterrows()
        }
    return out


def build_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of ``directory`` (see the module doc), its own hash included."""
    root = Path(directory)
    files: list[dict[str, Any]] = []
    frames: list[pd.DataFrame] = []
    bad_total = 0
    for path in data_files(root):
        bad: list[BadRecord] = []
        frame = read_file(path, bad)
        n = len(frame)
        fraud = int(frame["label"].sum()) if n else 0
        files.append({"name": path.name, "sha256": sha256_file(path),
                      "size": path.stat().st_size, "records": n, "fraud": fraud,
                      "legit": n - fraud, "bad_records": len(bad)})
        bad_total += len(bad)
        if n:
            frames.append(frame[[*SEGMENTS, "label"]].astype({s: str for s in SEGMENTS}))
    allf = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    records = sum(f["records"] for f in files)
    fraud = sum(f["fraud"] for f in files)
    manifest: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace(
            "+00:00", "Z"),
        "files": files,
        "records": records,
        "fraud": fraud,
        "label_share": round(fraud / records, 8) if records else 0.0,
        "bad_records": bad_total,
        "segments": _label_shares(allf),
    }
    manifest["manifest_sha256"] = manifest_hash(manifest)
    return manifest


@dataclass(frozen=True)
class ManifestProblem:
    """One difference between a snapshot and its manifest."""

    file: str
    change: str  # "changed", "added", "removed", "manifest_altered"
    detail: str


@dataclass(frozen=True)
class Verification:
    """Result of :func:`verify`: ``ok`` when nothing changed."""

    problems: tuple[ManifestProblem, ...]
    files: int

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(directory: str | Path, manifest: dict[str, Any]) -> Verification:
    """Compare ``directory`` with ``manifest``: changed, added and removed files.

    Raises
    ------
    ValueError
        When ``manifest`` is not a manifest (no ``files`` list of name/sha256/size).
    """
    entries = manifest.get("files")
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("sha256"), str)
        for e in entries
    ):
        raise ValueError("manifest has no valid 'files' list of {name, sha256, size}")
    problems: list[ManifestProblem] = []
    own = manifest.get("manifest_sha256")
    if own != manifest_hash(manifest):
        problems.append(ManifestProblem("(manifest)", "manifest_altered",
                                        "the manifest's own SHA-256 does not match its content"))
    expected = {e["name"]: e for e in entries}
    present = {p.name: p for p in data_files(directory)}
    for name in sorted(expected.keys() | present.keys()):
        if name not in present:
            problems.append(ManifestProblem(name, "removed", "listed in the manifest, missing"))
        elif name not in expected:
            problems.append(ManifestProblem(name, "added", "not in the manifest"))
        else:
            path, entry = present[name], expected[name]
            size, digest = path.stat().st_size, sha256_file(path)
            if digest != entry["sha256"] or size != entry.get("size", size):
                problems.append(ManifestProblem(
                    name, "changed",
                    f"sha256 {digest[:16]}… (manifest {entry['sha256'][:16]}…), "
                    f"size {size} (manifest {entry.get('size')})"))
    return Verification(tuple(problems), len(present))
