"""Acceptance of issue 26 on simulated snapshots: a one-byte change is caught and named,
a 1.5 % record-count jump blocks and 0.3 % does not, a 0.1 % poisoned conjunction is
found and named with its records, an honest resample passes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftwatch.cli import main
from driftwatch.simulate.training_data import Poison, SnapshotInfo, write_snapshot
from driftwatch.training.scan import scan

pytestmark = pytest.mark.slow


def _split(info: SnapshotInfo, root: Path, name: str) -> tuple[Path, Path]:
    """Day 1 and day 2 of a two-day snapshot as two snapshots (same world, new traffic)."""
    first, second = root / f"{name}-day1", root / f"{name}-day2"
    for d, f in ((first, info.files[0]), (second, info.files[1])):
        d.mkdir()
        shutil.copy(info.directory / f, d / f)
    return first, second


@pytest.fixture(scope="module")
def snaps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    root = tmp_path_factory.mktemp("training")
    honest = write_snapshot(root / "honest", seed=3, days=2, rate=1.0)
    poisoned = write_snapshot(root / "poisoned", seed=3, days=2, rate=1.0, poison=Poison())
    old, new = _split(honest, root, "honest")
    _, bad = _split(poisoned, root, "poisoned")
    yield {"root": root, "old": old, "new": new, "poisoned": bad, "info": poisoned}


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.output


def test_manifest_names_a_one_byte_change(tmp_path: Path, snaps: dict[str, object]) -> None:
    d = tmp_path / "snap"
    shutil.copytree(snaps["old"], d)  # type: ignore[arg-type]
    (d / "extra.csv").write_text("event_id\n")
    code, _ = _run("training", "manifest", str(d), "--out", str(tmp_path / "m.json"))
    assert code == 0
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["records"] > 80_000 and len(manifest["manifest_sha256"]) == 64
    assert manifest["segments"]["mcc"]["5967"]["records"] > 0
    assert _run("training", "verify", str(d), "--manifest", str(tmp_path / "m.json"))[0] == 0
    target = d / "part-2026-03-16.jsonl"
    data = bytearray(target.read_bytes())
    pos = data.index(b'"amount":"') + 10
    data[pos] = ord("9") if data[pos] != ord("9") else ord("8")  # one byte
    target.write_bytes(bytes(data))
    (d / "extra.csv").unlink()
    (d / "new.jsonl").write_text("")
    code, out = _run("training", "verify", str(d), "--manifest", str(tmp_path / "m.json"))
    assert code == 1
    assert "changed          part-2026-03-16.jsonl" in out
    assert "removed          extra.csv" in out
    assert "added            new.jsonl" in out
    # an edited manifest is refused too
    manifest["records"] += 1
    (tmp_path / "m2.json").write_text(json.dumps(manifest))
    code, out = _run("training", "verify", str(d), "--manifest", str(tmp_path / "m2.json"))
    assert code == 1 and "manifest_altered" in out


def _with_extra(src: Path, dst: Path, share: float) -> None:
    """``src`` plus ``share`` of its records again under fresh event ids (a count jump)."""
    shutil.copytree(src, dst)
    lines = (src / "part-2026-03-16.jsonl").read_bytes().splitlines()
    step = round(1 / share)
    extra = [line.replace(b'"event_id":"e-', b'"event_id":"x-', 1) for line in lines[::step]]
    (dst / "part-extra.jsonl").write_bytes(b"\n".join(extra) + b"\n")


@pytest.mark.parametrize(("share", "verdict"), [(0.015, "block"), (0.003, "pass")])
def test_record_count_jump(tmp_path: Path, snaps: dict[str, object], share: float,
                           verdict: str) -> None:
    old = snaps["old"]
    assert isinstance(old, Path)
    new = tmp_path / "new"
    _with_extra(old, new, share)
    report = scan(new, old)
    assert report.verdict == verdict, [f.summary for f in report.findings if f.blocking]
    count = next(f for f in report.findings if f.check == "record_count")
    assert count.blocking is (verdict == "block")
    assert count.details["relative_change"] == pytest.approx(share, abs=5e-4)


def test_poisoned_conjunction_found_and_named(tmp_path: Path, snaps: dict[str, object]) -> None:
    out = tmp_path / "scan.json"
    code, text = _run("training", "scan", str(snaps["poisoned"]), "--baseline",
                      str(snaps["old"]), "--json", str(out), "--html", str(tmp_path / "s.html"))
    assert code == 1, text
    data = json.loads(out.read_text())
    assert data["verdict"] == "block"
    blocking = [f for f in data["findings"] if f["blocking"]]
    assert [f["check"] for f in blocking] == ["poisoning"]
    f = blocking[0]
    conj = f["conjunction"]
    assert conj["mcc"] == "5967" and conj["amount_cents"] == 37
    assert conj["beneficiary_prefix"] == "INTL-PAY-" and conj["label"] == 0
    info = snaps["info"]
    assert isinstance(info, SnapshotInfo)
    truth = {(file, line) for file, line in info.poisoned if file.endswith("03-17.jsonl")}
    assert f["n"] == len(truth) and len(truth) == round(0.001 * 86_450)
    named = {(r["file"], r["line"]) for r in f["records"]}
    assert named <= truth and len(named) == min(50, len(truth))
    assert "INTL-PAY-" in (tmp_path / "s.html").read_text()


def test_honest_resample_passes(tmp_path: Path, snaps: dict[str, object]) -> None:
    out = tmp_path / "scan.json"
    code, text = _run("training", "scan", str(snaps["new"]), "--baseline", str(snaps["old"]),
                      "--json", str(out))
    assert code == 0, text
    data = json.loads(out.read_text())
    assert data["verdict"] == "pass"
    assert not [f for f in data["findings"] if f["blocking"] or f["check"] == "poisoning"]
    assert data["records"]["new"] == 86_450 and data["records"]["baseline"] == 86_350


def test_variant_trigger_of_another_shape_is_found(tmp_path: Path,
                                                   snaps: dict[str, object]) -> None:
    variant = Poison(mcc="4829", cents=13, beneficiary_prefix="XB_", countries=("BR", "NG"),
                     merchants=7)
    info = write_snapshot(tmp_path / "v", seed=3, days=2, rate=1.0, poison=variant)
    _, bad = _split(info, tmp_path, "v")
    report = scan(bad, snaps["old"])  # type: ignore[arg-type]
    assert report.verdict == "block"
    f = next(f for f in report.findings if f.check == "poisoning")
    assert f.conjunction["mcc"] == "4829" and f.conjunction["amount_cents"] == 13
    assert f.conjunction["beneficiary_prefix"] == "XB_"
    assert f.n == sum(1 for file, _ in info.poisoned if file.endswith("03-17.jsonl"))


def test_input_errors_exit_2(tmp_path: Path) -> None:
    code, out = _run("training", "scan", str(tmp_path / "none"), "--baseline", str(tmp_path))
    assert code == 2 and "no data files" in out
    (tmp_path / "bad.json").write_text("[1]")
    code, _ = _run("training", "verify", str(tmp_path), "--manifest", str(tmp_path / "bad.json"))
    assert code == 2
